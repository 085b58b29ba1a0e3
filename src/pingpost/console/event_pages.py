"""The audit log (filters by object, actor and day) and the outbox: recent events and each webhook's
deliveries, over the same events service as the API (docs/console.md, docs/events.md)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request, Response

from pingpost.console.sessions import ConsoleSession
from pingpost.console.web import ConsoleRoute, admin_session, page, query_day
from pingpost.events.service import EventsService
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
DAY_MS = 86_400_000


def _events(request: Request) -> EventsService:
    service: EventsService = services(request).events
    return service


@router.get("/audit")
async def audit(  # noqa: PLR0913 - one parameter per filter of the page
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    object_type: str = Query("", max_length=40),
    object_id: str = Query("", max_length=64),
    actor: str = Query("", max_length=64),
    day: str = Query("", max_length=10),
    cursor: str | None = Query(None, max_length=64),
) -> Response:
    start = query_day(day, "day")
    result = await _events(request).audit(
        object_type=object_type or None,
        object_id=object_id or None,
        actor=actor or None,
        start=start,
        end=start + DAY_MS if start is not None else None,
        cursor=cursor,
        limit=50,
    )
    params = {"object_type": object_type, "object_id": object_id, "actor": actor, "day": day}
    return page(
        request, "audit.html", session, entries=result["items"], next_cursor=result["next_cursor"], params=params
    )


@router.get("/events")
async def events(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    type_: str = Query("", alias="type", max_length=40),
    webhook: str = Query("", max_length=64),
) -> Response:
    service = _events(request)
    hooks = (await service.webhooks(cursor=None, limit=100))["items"]
    chosen = next((h for h in hooks if h["id"] == webhook), None)
    deliveries = (await service.deliveries(chosen["id"], cursor=None, limit=50))["items"] if chosen else []
    latest = (await service.events(type_=type_ or None, after=None, limit=500))["items"][-50:]
    return page(
        request,
        "events.html",
        session,
        events=list(reversed(latest)),
        webhooks=hooks,
        chosen=chosen,
        deliveries=deliveries,
        params={"type": type_, "webhook": webhook},
    )
