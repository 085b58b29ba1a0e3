"""Traffic controls in the console (docs/console.md): suppression lists (counts only, values added or
removed through the same service as the API, never shown)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response

from pingpost.admin.suppression import SuppressionService, parse_csv
from pingpost.console.sessions import ConsoleSession
from pingpost.console.web import ConsoleRoute, admin_session, back, checked_form, page
from pingpost.fields import Slug
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)


def _service(request: Request) -> SuppressionService:
    found = services(request)
    return SuppressionService(found.store, found.secret)


@router.get("/suppression-lists")
async def suppression_lists(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    cursor: Slug | None = Query(None),
    done: str | None = Query(None, max_length=200),
) -> Response:
    result = await _service(request).list(cursor=cursor, limit=100)
    return page(
        request,
        "suppression_lists.html",
        session,
        lists=result["items"],
        next_cursor=result["next_cursor"],
        done=done,
    )


@router.post("/suppression-lists/entries")
async def suppression_entries(request: Request, session: ConsoleSession = Depends(admin_session)) -> Response:
    form = await checked_form(request, session)
    add = form.get("action", "add") != "remove"
    listed = await _service(request).change(form.get("list"), parse_csv(form.get("values")), add=add)
    counts = listed["counts"]
    return back(
        "/console/suppression-lists",
        done=f"{listed['id']}: {counts['phones']} phones, {counts['emails']} emails.",
    )
