"""Admin API of suppression lists (docs/protocol.md, Traffic controls): create, read, and add or
delete entries as JSON or CSV. Lists answer counts, never values."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError

from pingpost import errors
from pingpost.admin.suppression import SuppressionEntriesIn, SuppressionListIn, SuppressionService, parse_csv
from pingpost.auth import admin_key
from pingpost.http import IdPath, Page, refusals, validation_error
from pingpost.services import services

router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=admin_key.route, dependencies=admin_key.documented)

# `text/csv` is taken too (one value a line: a value with `@` is an email, anything else a phone); it
# is described, not declared, since no schema can say which strings are phones (docs/protocol.md).
_ENTRIES_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": SuppressionEntriesIn.model_json_schema()}},
    },
    "description": "A JSON body, or `Content-Type: text/csv` with one phone or email a line.",
}
_ENTRY_REFUSALS = refusals(
    400,
    401,
    (404, "Unknown suppression list (`not_found`)."),
    413,
    (422, "A value is not a phone or an email (`validation_error`, by position; the value is never echoed)."),
)


def suppression(request: Request) -> SuppressionService:
    found = services(request)
    return SuppressionService(found.store, found.secret)


async def _entries(request: Request) -> SuppressionEntriesIn:
    raw = await request.body()
    if request.headers.get("content-type", "").split(";")[0].strip().lower() == "text/csv":
        try:
            return parse_csv(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise errors.ValidationFailed.one("body", "the CSV is not UTF-8") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.MalformedJson("the request body is not JSON") from None
    if not isinstance(data, dict):
        raise errors.MalformedJson("the request body is not a JSON object")
    try:
        return SuppressionEntriesIn.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc.errors(include_input=False)) from None


@router.post(
    "/suppression-lists",
    status_code=201,
    summary="Create a suppression list",
    responses=refusals(400, 401, (409, "The id is taken (`conflict`)."), 413, 422),
)
async def create_list(body: SuppressionListIn, svc: SuppressionService = Depends(suppression)) -> dict[str, Any]:
    return await svc.create(body)


@router.get("/suppression-lists", summary="List suppression lists (counts only)", responses=refusals(401, 422))
async def list_lists(page: Page = Depends(), svc: SuppressionService = Depends(suppression)) -> dict[str, Any]:
    return await svc.list(cursor=page.cursor, limit=page.limit)


@router.get(
    "/suppression-lists/{ident}",
    summary="One suppression list (counts only)",
    responses=refusals(401, (404, "Unknown suppression list (`not_found`)."), 422),
)
async def get_list(ident: str = IdPath, svc: SuppressionService = Depends(suppression)) -> dict[str, Any]:
    return await svc.get(ident)


@router.post(
    "/suppression-lists/{ident}/entries",
    summary="Add phones and emails to a suppression list (JSON or text/csv)",
    responses=_ENTRY_REFUSALS,
    openapi_extra=_ENTRIES_BODY,
)
async def add_entries(
    request: Request, ident: str = IdPath, svc: SuppressionService = Depends(suppression)
) -> dict[str, Any]:
    return await svc.change(ident, await _entries(request), add=True)


@router.delete(
    "/suppression-lists/{ident}/entries",
    summary="Delete phones and emails from a suppression list (JSON or text/csv)",
    responses=_ENTRY_REFUSALS,
    openapi_extra=_ENTRIES_BODY,
)
async def delete_entries(
    request: Request, ident: str = IdPath, svc: SuppressionService = Depends(suppression)
) -> dict[str, Any]:
    return await svc.change(ident, await _entries(request), add=False)
