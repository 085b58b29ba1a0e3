"""Admin API of what-if replays (docs/replay.md): start one as a background job, follow it, list them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ConfigDict, Field

from pingpost.auth import admin_key
from pingpost.fields import Strict
from pingpost.http import IdPath, Page, refusals
from pingpost.replay.service import ReplayRequest
from pingpost.services import services

# The admin token is checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=admin_key.route, dependencies=admin_key.documented)

DAY = r"^\d{4}-\d{2}-\d{2}$"


class ReplayIn(Strict):
    model_config = ConfigDict(populate_by_name=True)
    from_: str = Field(alias="from", pattern=DAY, description="First UTC day, YYYY-MM-DD")
    to: str = Field(pattern=DAY, description="Last UTC day, YYYY-MM-DD (included)")
    offer: str | None = Field(None, max_length=64, description="Only this offer's pings")
    setup: dict[str, Any] | None = Field(None, description="A proposed setup: the shape of a `pingpost apply` file")


@router.post(
    "/replays",
    status_code=202,
    summary="Start a what-if replay (a background job)",
    responses=refusals(401, (422, "Bad dates, unknown offer or an invalid setup (`validation_error`).")),
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
