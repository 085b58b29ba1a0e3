"""Operator views of sales, the reconciliation of unknown deliveries, and buyers' own views."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from pingpost import errors
from pingpost.admin import money
from pingpost.admin.schemas import ReverseIn
from pingpost.auth import ApiKey, admin_key, buyer_key
from pingpost.http import IdPath, Page, query_time, refusals, time_query
from pingpost.reports.counters import ReportCounters
from pingpost.reports.summary import GROUPS, summary
from pingpost.services import services

# The admin token is checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=admin_key.route, dependencies=admin_key.documented)
buyer_router = APIRouter(
    prefix="/v1/buyer", tags=["buyer"], route_class=buyer_key.route, dependencies=buyer_key.documented
)


@router.get("/sales", summary="List sales, newest first", responses=refusals(401, 422))
async def admin_sales(  # noqa: PLR0913 - one query parameter per filter
    request: Request,
    page: Page = Depends(),
    offer: str | None = Query(None, max_length=64),
    campaign: str | None = Query(None, max_length=64),
    partner: str | None = Query(None, max_length=64),
    buyer: str | None = Query(None, max_length=64),
    status: str | None = Query(None, max_length=32),
    from_: str | None = time_query("from", "Created at or after"),
    to: str | None = time_query("to", "Created before"),
) -> dict[str, Any]:
    return await money.page_sales(
        services(request).store,
        filters={
            "offer_id": offer,
            "campaign_id": campaign,
            "partner_id": partner,
            "buyer_id": buyer,
            "status": status,
        },
        start=query_time(from_, "from"),
        end=query_time(to, "to"),
        cursor=page.cursor,
        limit=page.limit,
    )


@router.get("/sales/{ident}", summary="One sale", responses=refusals(401, (404, "Unknown sale (`not_found`)."), 422))
async def admin_sale(request: Request, ident: str = IdPath) -> dict[str, Any]:
    return await money.get_sale(services(request).store, ident)


# --- reconciliation ------------------------------------------------------------------------------


@router.get(
    "/reconciliation", summary="Deliveries whose result is unknown (a crash mid-delivery)", responses=refusals(401, 422)
)
async def reconciliation(request: Request, page: Page = Depends()) -> dict[str, Any]:
    return await money.page_unknown_deliveries(services(request).store, cursor=page.cursor, limit=page.limit)


_SETTLE = refusals(
    401,
    (404, "Unknown delivery (`not_found`)."),
    (
        409,
        "The delivery is settled already (`conflict`); voiding a call's data post while its sale "
        "is charged or pending (`sale_exists`).",
    ),
    422,
)


@router.post(
    "/reconciliation/{ident}/record-sale", summary="The buyer has the lead: record the sale", responses=_SETTLE
)
async def record_sale(request: Request, ident: str = IdPath) -> dict[str, Any]:
    return await money.settle_delivery(services(request).store, ident, "record-sale")


@router.post(
    "/reconciliation/{ident}/void", summary="The buyer does not have the lead: void the delivery", responses=_SETTLE
)
async def void(request: Request, ident: str = IdPath) -> dict[str, Any]:
    return await money.settle_delivery(services(request).store, ident, "void")


# --- the buyer's own views -----------------------------------------------------------------------


@buyer_router.get("/sales", summary="The calling buyer's own sales", responses=refusals(401, 422))
async def buyer_sales(request: Request, page: Page = Depends(), key: ApiKey = Depends(buyer_key)) -> dict[str, Any]:
    return await money.page_sales(
        services(request).store, filters={"buyer_id": key.buyer_id}, cursor=page.cursor, limit=page.limit
    )


@buyer_router.get("/balance", summary="The calling buyer's balance, holds and available funds", responses=refusals(401))
async def buyer_balance(request: Request, key: ApiKey = Depends(buyer_key)) -> dict[str, Any]:
    if key.buyer_id is None:  # a buyer key always names its buyer (admin validation)
        raise errors.Unauthorized("a valid buyer key is required")
    view = await services(request).admin.get("buyer", key.buyer_id)
    return {k: view[k] for k in ("id", "balance_cents", "holds_cents", "available_cents", "credit_limit_cents")}


# --- reversals and reports -----------------------------------------------------------------------


@router.post(
    "/sales/{ident}/reverse",
    summary="Refund the buyer and claw back the partner payout",
    responses=refusals(
        400,
        401,
        (404, "Unknown sale (`not_found`)."),
        (409, "Only a `charged` sale can be reversed (`conflict`, `details.status`)."),
        413,
        422,
    ),
)
async def reverse_sale(body: ReverseIn, request: Request, ident: str = IdPath) -> dict[str, Any]:
    return await money.reverse_sale(services(request).store, ident, reason=body.reason)


@router.get(
    "/reports/summary",
    summary="Pings, bids, wins, posts, sales and money per group",
    description="Pings, bids and wins are counted by UTC day, so `from`/`to` select whole days for them.",
    responses=refusals(401, 422),
)
async def report_summary(
    request: Request,
    group_by: str = Query("offer", max_length=16, json_schema_extra={"enum": list(GROUPS)}),
    from_: str | None = time_query("from", "From"),
    to: str | None = time_query("to", "Until, exclusive"),
) -> dict[str, Any]:
    counters: ReportCounters = services(request).counters
    await counters.flush()
    rows = await summary(
        services(request).store, group_by=group_by, start_ms=query_time(from_, "from"), end_ms=query_time(to, "to")
    )
    return {"group_by": group_by, "rows": rows}
