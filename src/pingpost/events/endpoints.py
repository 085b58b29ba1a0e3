"""Events, webhooks, the audit log (admin) and conversions (buyer): docs/events.md."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from pingpost import errors
from pingpost.auth import ApiKey, admin_key, buyer_key
from pingpost.events.conversions import ConversionService
from pingpost.events.schemas import ConversionIn, WebhookIn, WebhookPatch
from pingpost.events.service import EventsService
from pingpost.http import ID_PATTERN, IdPath, Page, query_time, refusals, time_query
from pingpost.services import services

# Keys are checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/admin", tags=["events"], route_class=admin_key.route, dependencies=admin_key.documented)
buyer_router = APIRouter(
    prefix="/v1/buyer", tags=["buyer"], route_class=buyer_key.route, dependencies=buyer_key.documented
)


def events_service(request: Request) -> EventsService:
    service: EventsService = services(request).events
    return service


@router.get("/events", summary="Events, oldest first (the outbox)", responses=refusals(401, 422))
async def list_events(
    type_: str | None = Query(None, alias="type", max_length=40, description="Only events of this type"),
    after: str | None = Query(None, max_length=80, description="Only events after this event id"),
    limit: int = Query(50, ge=1, le=500),
    svc: EventsService = Depends(events_service),
) -> dict[str, Any]:
    return await svc.events(type_=type_, after=after, limit=limit)


@router.post(
    "/events/{ident}/redeliver",
    status_code=202,
    summary="Deliver an event again to every active webhook subscribed to its type",
    responses=refusals(401, (404, "Unknown event (`not_found`)."), 422),
)
async def redeliver(ident: str = IdPath, svc: EventsService = Depends(events_service)) -> dict[str, Any]:
    return await svc.redeliver(ident)


@router.post(
    "/webhooks",
    status_code=201,
    summary="Subscribe a URL to events",
    description="The answer carries `secret` (given, or generated when absent) once; it is never shown again.",
    responses=refusals(400, 401, (409, "The id is taken (`conflict`)."), 413, 422),
)
async def create_webhook(body: WebhookIn, svc: EventsService = Depends(events_service)) -> dict[str, Any]:
    return await svc.create_webhook(body)


@router.get("/webhooks", summary="List webhooks", responses=refusals(401, 422))
async def list_webhooks(page: Page = Depends(), svc: EventsService = Depends(events_service)) -> dict[str, Any]:
    return await svc.webhooks(cursor=page.cursor, limit=page.limit)


@router.get("/webhooks/{ident}", summary="Get one webhook", responses=refusals(401, (404, "Unknown webhook."), 422))
async def get_webhook(ident: str = IdPath, svc: EventsService = Depends(events_service)) -> dict[str, Any]:
    return await svc.webhook(ident)


@router.patch(
    "/webhooks/{ident}",
    summary="Update (or pause) a webhook",
    responses=refusals(400, 401, (404, "Unknown webhook (`not_found`)."), 413, 422),
)
async def patch_webhook(
    body: WebhookPatch, ident: str = IdPath, svc: EventsService = Depends(events_service)
) -> dict[str, Any]:
    return await svc.patch_webhook(ident, body.model_dump(mode="json", exclude_unset=True))


@router.get(
    "/webhooks/{ident}/deliveries",
    summary="A webhook's deliveries, newest first",
    responses=refusals(401, (404, "Unknown webhook (`not_found`)."), 422),
)
async def webhook_deliveries(
    ident: str = IdPath, page: Page = Depends(), svc: EventsService = Depends(events_service)
) -> dict[str, Any]:
    return await svc.deliveries(ident, cursor=page.cursor, limit=page.limit)


@router.get("/audit", summary="The audit log of admin writes, newest first", responses=refusals(401, 422))
async def audit(  # noqa: PLR0913 - FastAPI: one parameter per query filter
    page: Page = Depends(),
    object_type: str | None = Query(None, max_length=40),
    object_id: str | None = Query(None, max_length=64, pattern=ID_PATTERN),
    actor: str | None = Query(None, max_length=64, description="An API key id, or an actor kind (`cli`)"),
    from_: str | None = time_query("from", "From"),
    to: str | None = time_query("to", "Until, exclusive"),
    svc: EventsService = Depends(events_service),
) -> dict[str, Any]:
    return await svc.audit(
        object_type=object_type,
        object_id=object_id,
        actor=actor,
        start=query_time(from_, "from"),
        end=query_time(to, "to"),
        cursor=page.cursor,
        limit=page.limit,
    )


@buyer_router.post(
    "/conversions",
    status_code=201,
    summary="Report a conversion of one of the buyer's sales",
    description="Idempotent on `sale_id` and `event`: a repeat answers 200 with the first record.",
    responses={
        200: {"description": "A repeat: the first record of this sale and event."},
        **refusals(
            400,
            401,
            (404, "Not one of this buyer's sales (`not_found`)."),
            (409, "The sale was never charged (`conflict`)."),
            413,
            422,
        ),
    },
)
async def create_conversion(
    body: ConversionIn, request: Request, response: Response, key: ApiKey = Depends(buyer_key)
) -> dict[str, Any]:
    if key.buyer_id is None:  # a buyer key always names its buyer (admin validation)
        raise errors.Unauthorized("a valid buyer key is required")
    service: ConversionService = services(request).conversions
    view, new = await service.record(key.buyer_id, body)
    if not new:
        response.status_code = 200
    return view
