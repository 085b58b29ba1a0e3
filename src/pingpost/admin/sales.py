"""Operator views of sales, the reconciliation of unknown deliveries, and buyers' own views."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request

from pingpost import errors
from pingpost.admin.schemas import ReverseIn
from pingpost.auth import ApiKey, admin_key, buyer_key
from pingpost.db import call_repo, post_repo, sales_repo
from pingpost.db.ledger_repo import record_transaction
from pingpost.db.store import Store, Tx
from pingpost.domain.outcomes import PostOutcome
from pingpost.http import IdPath, Page, query_time
from pingpost.ids import now_ms
from pingpost.ledger.reversals import reversal_entries_for
from pingpost.ledger.service import transaction_view
from pingpost.reports.counters import ReportCounters
from pingpost.reports.summary import summary
from pingpost.services import services
from pingpost.timefmt import rfc3339

# The admin token is checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=admin_key.route)
buyer_router = APIRouter(prefix="/v1/buyer", tags=["buyer"], route_class=buyer_key.route)


def sale_view(row: Any) -> dict[str, Any]:
    return {"sale_id": row["id"], "ping_id": row["ping_id"], "bid_id": row["bid_id"], "offer": row["offer_id"],
            "campaign": row["campaign_id"], "partner": row["partner_id"], "contract": row["contract_id"],
            "buyer": row["buyer_id"], "channel": row["channel"], "sale_type": row["sale_type"],
            "price_cents": int(row["price_cents"]), "payout_cents": int(row["payout_cents"]),
            "status": row["status"], "created_at": rfc3339(row["created_at"])}


async def list_sales(store: Store, page: Page, filters: dict[str, Any], *, start: int | None = None,
                     end: int | None = None) -> dict[str, Any]:
    present = {column: value for column, value in filters.items() if value is not None}

    async def unit(tx: Tx) -> dict[str, Any]:
        rows = await sales_repo.page_sales(tx, filters=present, start=start, end=end, cursor=page.cursor,
                                           limit=page.limit + 1)
        return {"items": [sale_view(r) for r in rows[:page.limit]],
                "next_cursor": rows[page.limit - 1]["id"] if len(rows) > page.limit else None}

    return await store.read(unit)


@router.get("/sales", summary="List sales, newest first")
async def admin_sales(request: Request, page: Page = Depends(),
                      offer: str | None = Query(None, max_length=64), campaign: str | None = Query(None, max_length=64),
                      partner: str | None = Query(None, max_length=64), buyer: str | None = Query(None, max_length=64),
                      status: str | None = Query(None, max_length=32),
                      from_: str | None = Query(None, alias="from", max_length=40),
                      to: str | None = Query(None, max_length=40)) -> dict[str, Any]:
    return await list_sales(services(request).store, page, {
        "offer_id": offer, "campaign_id": campaign, "partner_id": partner, "buyer_id": buyer, "status": status},
        start=query_time(from_, "from"), end=query_time(to, "to"))


@router.get("/sales/{ident}", summary="One sale")
async def admin_sale(request: Request, ident: str = IdPath) -> dict[str, Any]:
    row = await services(request).store.read(lambda tx: sales_repo.sale(tx, ident))
    if row is None:
        raise errors.NotFound("sale", ident)
    return sale_view(row)


# --- reconciliation ------------------------------------------------------------------------------

def delivery_view(row: Any) -> dict[str, Any]:
    return {"delivery_id": row["id"], "ping_id": row["ping_id"], "bid_id": row["bid_id"],
            "contract_id": row["contract_id"], "buyer_id": row["buyer_id"], "state": row["state"],
            "post_outcome": row["outcome"] or PostOutcome.POST_UNKNOWN.value,
            "created_at": rfc3339(row["created_at"]), "finished_at": rfc3339(row["finished_at"])}


@router.get("/reconciliation", summary="Deliveries whose result is unknown (a crash mid-delivery)")
async def reconciliation(request: Request, page: Page = Depends()) -> dict[str, Any]:
    async def unit(tx: Tx) -> dict[str, Any]:
        rows = await sales_repo.unknown_deliveries(tx, now=await tx.now_ms(), cursor=page.cursor,
                                                   limit=page.limit + 1)
        return {"items": [delivery_view(r) for r in rows[:page.limit]],
                "next_cursor": rows[page.limit - 1]["id"] if len(rows) > page.limit else None}

    result: dict[str, Any] = await services(request).store.read(unit)
    return result


async def _settle(request: Request, delivery_id: str, action: str) -> dict[str, Any]:
    async def unit(tx: Tx) -> dict[str, Any]:
        row = await sales_repo.unknown_delivery(tx, delivery_id, now=await tx.now_ms())
        if row is None:
            exists = await sales_repo.delivery_state(tx, delivery_id)
            if exists is None:
                raise errors.NotFound("delivery", delivery_id)
            raise errors.Conflict("this delivery is not awaiting reconciliation", details={"state": exists})
        ping = await post_repo.load_ping(tx, row["ping_id"])
        bid = next(b for b in orjson.loads(ping["bids"]) if b["bid_id"] == row["bid_id"])
        now = now_ms()
        if ping["channel"] in ("call", "callback"):
            return await _settle_call_data_post(tx, delivery_id=delivery_id, ping=ping, bid=bid, action=action,
                                                now=now)
        sale_id = None
        state = "recorded" if action == "record-sale" else "voided"
        await post_repo.finish_delivery(tx, bid_id=bid["bid_id"], state=state,
                                        outcome=PostOutcome.POST_ACCEPTED.value if state == "recorded"
                                        else PostOutcome.POST_UNKNOWN.value, detail=f"reconciled: {state}",
                                        latency_ms=None, buyer_lead_id=None, now=now)
        if action == "record-sale" and not ping["test"]:
            sale_id = await post_repo.record_sale(tx, ping=ping, bid=bid, now=now)
        else:
            await post_repo.release_bid(tx, bid)
        await post_repo.update_waterfall(tx, ping["id"], {row["contract_id"]: {
            "post_outcome": PostOutcome.POST_ACCEPTED.value if sale_id else PostOutcome.POST_UNKNOWN.value,
            "post_detail": f"reconciled: {state}", "sale_id": sale_id}})
        await post_repo.add_event(tx, ping_id=ping["id"], at=now, type_="reconciliation", bid_id=bid["bid_id"],
                                  detail=state)
        if sale_id:
            await post_repo.set_ping_status(tx, ping["id"], "sold")
        return {"delivery_id": delivery_id, "state": state, "sale_id": sale_id}

    result: dict[str, Any] = await services(request).store.write(unit)
    return result


async def _settle_call_data_post(tx: Tx, *, delivery_id: str, ping: Any, bid: dict[str, Any], action: str,
                                 now: int) -> dict[str, Any]:
    """Settle the data post of a call: only the delivery record changes, never billing.

    A call is billed by its events (`connected`, `completed`), not by the data post, so `record-sale`
    charges nothing more and answers the call's sale, and `void` is refused while the call has a sale
    that is charged or pending: to refund the buyer, reverse the sale (docs/crash-safety.md)."""
    sale = await call_repo.find_sale(tx, bid["bid_id"])
    if action == "void" and sale is not None and sale["status"] in ("charged", "pending"):
        raise errors.Conflict(
            f"this call's sale is {sale['status']}; voiding its data post would not refund it: reverse the sale "
            f"(POST /v1/admin/sales/{sale['id']}/reverse) before voiding", code="sale_exists",
            details={"sale_id": sale["id"], "status": sale["status"]})
    state = "recorded" if action == "record-sale" else "voided"
    await post_repo.finish_delivery(tx, bid_id=bid["bid_id"], state=state,
                                    outcome=PostOutcome.POST_ACCEPTED.value if state == "recorded"
                                    else PostOutcome.POST_UNKNOWN.value, detail=f"reconciled: {state}",
                                    latency_ms=None, buyer_lead_id=None, now=now)
    await post_repo.add_event(tx, ping_id=ping["id"], at=now, type_="reconciliation", bid_id=bid["bid_id"],
                              detail=f"data post {state}")
    return {"delivery_id": delivery_id, "state": state,
            "sale_id": sale["id"] if sale is not None and state == "recorded" else None}


@router.post("/reconciliation/{ident}/record-sale", summary="The buyer has the lead: record the sale")
async def record_sale(request: Request, ident: str = IdPath) -> dict[str, Any]:
    return await _settle(request, ident, "record-sale")


@router.post("/reconciliation/{ident}/void", summary="The buyer does not have the lead: void the delivery")
async def void(request: Request, ident: str = IdPath) -> dict[str, Any]:
    return await _settle(request, ident, "void")


# --- the buyer's own views -----------------------------------------------------------------------


@buyer_router.get("/sales", summary="The calling buyer's own sales")
async def buyer_sales(request: Request, page: Page = Depends(), key: ApiKey = Depends(buyer_key)) -> dict[str, Any]:
    return await list_sales(services(request).store, page, {"buyer_id": key.buyer_id})


@buyer_router.get("/balance", summary="The calling buyer's balance, holds and available funds")
async def buyer_balance(request: Request, key: ApiKey = Depends(buyer_key)) -> dict[str, Any]:
    if key.buyer_id is None:  # a buyer key always names its buyer (admin validation)
        raise errors.Unauthorized("a valid buyer key is required")
    view = await services(request).admin.get("buyer", key.buyer_id)
    return {k: view[k] for k in ("id", "balance_cents", "holds_cents", "available_cents", "credit_limit_cents")}


# --- reversals and reports -----------------------------------------------------------------------


@router.post("/sales/{ident}/reverse", summary="Refund the buyer and claw back the partner payout")
async def reverse_sale(body: ReverseIn, request: Request, ident: str = IdPath) -> dict[str, Any]:
    async def unit(tx: Tx) -> dict[str, Any]:
        sale = await sales_repo.sale(tx, ident, lock=True)
        if sale is None:
            raise errors.NotFound("sale", ident)
        entries = await reversal_entries_for(tx, sale)  # what its returns left of it (docs/protocol.md, Money)
        now = now_ms()
        txn_id = await record_transaction(tx, kind="reversal", now=now, sale_id=ident, reference=ident,
                                          entries=entries)
        await post_repo.set_sale_status(tx, ident, "reversed")
        await post_repo.update_waterfall(tx, sale["ping_id"], {sale["contract_id"]: {
            "reversal": {"at": rfc3339(now), "reason": body.reason[:200], "transaction_id": txn_id}}})
        await post_repo.add_event(tx, ping_id=sale["ping_id"], at=now, type_="reversal", bid_id=sale["bid_id"],
                                  detail=body.reason[:200])
        return {"sale": sale_view({**dict(sale), "status": "reversed"}),
                "transaction": await transaction_view(tx, txn_id)}

    result: dict[str, Any] = await services(request).store.write(unit)
    return result


@router.get("/reports/summary", summary="Pings, bids, wins, posts, sales and money per group")
async def report_summary(request: Request, group_by: str = Query("offer", max_length=16),
                         from_: str | None = Query(None, alias="from", max_length=40),
                         to: str | None = Query(None, max_length=40)) -> dict[str, Any]:
    counters: ReportCounters = services(request).counters
    await counters.flush()
    rows = await summary(services(request).store, group_by=group_by, start_ms=query_time(from_, "from"),
                         end_ms=query_time(to, "to"))
    return {"group_by": group_by, "rows": rows}
