"""Operator views of pings: the audit record with its waterfall and timeline, and the list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from pingpost.admin.views import PingQuery, page_pings, ping_record
from pingpost.auth import admin_key
from pingpost.http import IdPath, Page, query_time, refusals, time_query
from pingpost.services import services

# The admin token is checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=admin_key.route, dependencies=admin_key.documented)


@router.get(
    "/pings/{ident}",
    summary="The audit record of one ping: waterfall and timeline",
    responses=refusals(401, (404, "Unknown ping (`not_found`)."), 422),
)
async def get_ping(request: Request, ident: str = IdPath) -> dict[str, Any]:
    return await ping_record(services(request).store, ident)


@router.get("/pings", summary="List pings, newest first", responses=refusals(401, 422))
async def list_pings(  # noqa: PLR0913 - one query parameter per filter
    request: Request,
    page: Page = Depends(),
    offer: str | None = Query(None, max_length=64),
    campaign: str | None = Query(None, max_length=64),
    partner: str | None = Query(None, max_length=64),
    buyer: str | None = Query(None, max_length=64),
    status: str | None = Query(None, max_length=32),
    partner_lead_id: str | None = Query(None, max_length=100),
    source: str | None = Query(None, max_length=64),
    from_: str | None = time_query("from", "Received at or after"),
    to: str | None = time_query("to", "Received before"),
) -> dict[str, Any]:
    return await page_pings(
        services(request).store,
        PingQuery(
            filters={
                "offer_id": offer,
                "campaign_id": campaign,
                "partner_id": partner,
                "status": status,
                "partner_lead_id": partner_lead_id,
                "source": source,
            },
            buyer=buyer,
            start=query_time(from_, "from"),
            end=query_time(to, "to"),
            cursor=page.cursor,
            limit=page.limit,
        ),
    )
