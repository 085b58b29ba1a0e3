"""The live ping list (new pings within 2 s, by htmx polling) and a ping's page: the whole
waterfall, the timeline, the sales and deliveries. Leads show their non-PII fields only (the
ping row holds nothing else; posts' encrypted PII is never read here)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from pingpost.admin.views import PingQuery, page_pings, ping_record, ping_view
from pingpost.console.overview_pages import every
from pingpost.console.sessions import ConsoleSession
from pingpost.console.web import ConsoleRoute, admin_session, page
from pingpost.db import console_repo
from pingpost.db.store import Tx
from pingpost.http import IdPath
from pingpost.ids import now_ms
from pingpost.services import services

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
STATUSES = ("bids", "no_bids", "sold", "unsold")


class PingFilters:
    """The list's filters (query parameters; an empty value means any)."""

    def __init__(
        self,
        offer: str | None = Query(None, max_length=64),
        campaign: str | None = Query(None, max_length=64),
        partner: str | None = Query(None, max_length=64),
        status: str | None = Query(None, max_length=64),
        source: str | None = Query(None, max_length=64),
    ) -> None:
        self.offer, self.campaign, self.partner, self.status = offer, campaign, partner, status
        self.source = source

    def columns(self) -> dict[str, str | None]:
        return {
            "offer_id": self.offer or None,
            "campaign_id": self.campaign or None,
            "partner_id": self.partner or None,
            "status": self.status or None,
            "source": self.source or None,
        }

    def params(self) -> dict[str, str]:
        return {
            "offer": self.offer or "",
            "campaign": self.campaign or "",
            "partner": self.partner or "",
            "status": self.status or "",
            "source": self.source or "",
        }


@router.get("/pings")
async def pings(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    filters: PingFilters = Depends(),
    cursor: str | None = Query(None, max_length=64),
) -> Response:
    svc = services(request)
    result = await page_pings(svc.store, PingQuery(filters=filters.columns(), cursor=cursor, limit=50))
    items = result["items"]
    params = filters.params()
    return page(
        request,
        "pings.html",
        session,
        pings=items,
        next_cursor=result["next_cursor"],
        params=params,
        live=cursor is None,
        newest=items[0]["ping_id"] if items else "png_",
        offers=await every(svc.admin, "offer"),
        campaigns=await every(svc.admin, "campaign"),
        partners=await every(svc.admin, "partner"),
        statuses=STATUSES,
    )


@router.get("/pings/live")
async def pings_live(
    request: Request,
    session: ConsoleSession = Depends(admin_session),
    after: str = Query("png_", max_length=64),
    filters: PingFilters = Depends(),
) -> Response:
    """The rows of pings newer than `after` and the next poller (htmx, every second)."""
    present = {k: v for k, v in filters.columns().items() if v is not None}

    async def unit(tx: Tx) -> list[dict[str, Any]]:
        now = now_ms()
        return [
            ping_view(row, [], now=now)
            for row in await console_repo.pings_after(tx, after=after, filters=present, limit=50)
        ]

    fresh = await services(request).store.read(unit)
    params = filters.params()
    return page(
        request, "pings_live.html", session, pings=fresh, params=params, newest=fresh[0]["ping_id"] if fresh else after
    )


@router.get("/pings/{ident}")
async def ping(request: Request, ident: str = IdPath, session: ConsoleSession = Depends(admin_session)) -> Response:
    store = services(request).store
    record = await ping_record(store, ident)
    sale_ids = [w["sale_id"] for w in record["waterfall"] if w.get("sale_id")]
    bid_ids = [w["bid_id"] for w in record["waterfall"] if w.get("bid_id")]

    async def unit(tx: Tx) -> tuple[list[Any], list[Any]]:
        return await console_repo.sales_by_ids(tx, sale_ids), await console_repo.deliveries_by_bids(tx, bid_ids)

    sales, deliveries = await store.read(unit)
    return page(request, "ping.html", session, ping=record, sales=sales, deliveries=deliveries)
