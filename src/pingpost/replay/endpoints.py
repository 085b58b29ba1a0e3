"""Admin API of what-if replays (docs/replay.md): start one as a background job, follow it, list them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from pingpost.auth import admin_key
from pingpost.fields import Strict
from pingpost.http import IdPath, Page, refusals
from pingpost.replay.service import ReplayRequest
from pingpost.services import services

# The admin token is checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=admin_key.route, dependencies=admin_key.documented)

# A UTC day, 1970-01-01 or later, as statements take them (accounts/endpoints.py)
DAY = r"^(19[7-9][0-9]|[2-9][0-9]{3})-[0-9]{2}-[0-9]{2}$"
_DATE: JsonDict = {"format": "date"}


class ReplayIn(Strict):
    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(
        alias="from", max_length=10, pattern=DAY, json_schema_extra=_DATE, description="First UTC day, YYYY-MM-DD"
    )
    to: str = Field(
        max_length=10, pattern=DAY, json_schema_extra=_DATE, description="Last UTC day, YYYY-MM-DD (included)"
    )
    offer: str | None = Field(None, max_length=64, description="Only this offer's pings")
    setup: dict[str, Any] | None = Field(None, description="A proposed setup: the shape of a `pingpost apply` file")


@router.post(
    "/replays",
    status_code=202,
    summary="Start a what-if replay (a background job)",
    description=(
        "Validated at once, then run in the background: follow it with `GET /v1/admin/replays/{id}`. "
        "Rules the schema cannot state, refused with 422 `validation_error`: `to` not before `from` and at "
        "most 366 days after it, `offer` an existing offer, `setup` a valid setup for the configuration as it "
        "stands (the rules of `pingpost apply`: each object's fields, existing references)."
    ),
    responses=refusals(400, 401, 413, (422, "Bad dates, unknown offer or an invalid setup (`validation_error`).")),
)
async def start_replay(request: Request, body: ReplayIn) -> dict[str, Any]:
    replay = ReplayRequest.parse(body.from_, body.to, body.offer, body.setup)
    return await services(request).replays.start(replay)


@router.get("/replays", summary="List replays, newest first", responses=refusals(401, 422))
async def list_replays(request: Request, page: Page = Depends()) -> dict[str, Any]:
    items = await services(request).replays.jobs(limit=page.limit)
    return {"items": items, "next_cursor": None}


@router.get(
    "/replays/{ident}",
    summary="A replay's progress and, once done, actual against proposed",
    responses=refusals(401, (404, "Unknown replay (`not_found`)."), 422),
)
async def get_replay(request: Request, ident: str = IdPath) -> dict[str, Any]:
    return await services(request).replays.job(ident)
