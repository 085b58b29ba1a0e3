"""Money operations on sales and deliveries, shared by the admin API and the console: list sales,
reverse a sale, list and settle the deliveries awaiting reconciliation (docs/crash-safety.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pingpost import actors, errors
from pingpost.admin.views import delivery_view, sale_view
from pingpost.db import audit_repo, call_repo, console_repo, events_repo, post_repo, sales_repo
from pingpost.db.ledger_repo import record_transaction
from pingpost.db.store import Store, Tx
from pingpost.domain.outcomes import PostOutcome
from pingpost.ids import now_ms
from pingpost.ledger.reversals import reversal_entries_for
from pingpost.ledger.service import transaction_view
from pingpost.reports.counters import utc_day
from pingpost.timefmt import rfc3339

SETTLE_ACTIONS = ("record-sale", "void")


async def page_sales(
    store: Store,
    *,
    filters: Mapping[str, Any],
    start: int | None = None,
    end: int | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> dict[str, Any]:
    """Sales newest first, `limit` after `cursor`; `filters` are column equalities, None meaning any."""
    present = {column: value for column, value in filters.items() if value is not None}

    async def unit(tx: Tx) -> dict[str, Any]:
        rows = await sales_repo.page_sales(tx, filters=present, start=start, end=end, cursor=cursor, limit=limit + 1)
        return {
            "items": [sale_view(r) for r in rows[:limit]],
            "next_cursor": rows[limit - 1]["id"] if len(rows) > limit else None,
        }

    return await store.read(unit)


async def get_sale(store: Store, sale_id: str) -> dict[str, Any]:
    row = await store.read(lambda tx: sales_repo.sale(tx, sale_id))
    if row is None:
        raise errors.NotFound("sale", sale_id)
    return sale_view(row)


async def reverse_sale(store: Store, sale_id: str, *, reason: str) -> dict[str, Any]:
    """Refund the buyer and claw back the partner payout of what returns left of the sale, in one
    `reversal` transaction; 404 for an unknown sale, 409 for one with nothing left to reverse or a
    return awaiting a decision."""
    actor = actors.current()

    async def unit(tx: Tx) -> dict[str, Any]:
        sale = await sales_repo.sale(tx, sale_id, lock=True)
        if sale is None:
            raise errors.NotFound("sale", sale_id)
        entries = await reversal_entries_for(tx, sale)  # what its returns left of it (docs/protocol.md, Money)
        now = now_ms()
        txn_id = await record_transaction(
            tx, kind="reversal", now=now, sale_id=sale_id, reference=sale_id, entries=entries
        )
        await post_repo.set_sale_status(tx, sale_id, "reversed")
        await post_repo.update_waterfall(
            tx,
            sale["ping_id"],
            {sale["contract_id"]: {"reversal": {"at": rfc3339(now), "reason": reason[:200], "transaction_id": txn_id}}},
        )
        await post_repo.add_event(
            tx, ping_id=sale["ping_id"], at=now, type_="reversal", bid_id=sale["bid_id"], detail=reason[:200]
        )
        # the sale's day no longer has the totals the console kept for it (docs/performance.md)
        await console_repo.forget_day_totals(tx, utc_day(int(sale["created_at"])))
        refund = sum(e.amount_cents for e in entries if e.account == f"buyer:{sale['buyer_id']}")
        await events_repo.record_event(
            tx,
            "sale.reversed",
            {
                "sale_id": sale_id,
                "ping_id": sale["ping_id"],
                "contract": sale["contract_id"],
                "buyer": sale["buyer_id"],
                "partner": sale["partner_id"],
                "campaign": sale["campaign_id"],
                "transaction_id": txn_id,
                "refund_cents": refund,
            },
        )
        answer = {
            "sale": sale_view({**dict(sale), "status": "reversed"}),
            "transaction": await transaction_view(tx, txn_id),
        }
        await audit_repo.record_audit(
            tx,
            actor=actor.as_dict(),
            action="reverse",
            object_type="sale",
            object_id=sale_id,
            before=sale_view(sale),
            after={**answer, "reason": reason[:200]},
            now=now,
        )
        return answer

    result: dict[str, Any] = await store.write(unit)
    return result


async def page_unknown_deliveries(store: Store, *, cursor: str | None = None, limit: int = 50) -> dict[str, Any]:
    """Deliveries whose result is unknown (a crash mid-delivery), oldest first."""

    async def unit(tx: Tx) -> dict[str, Any]:
        rows = await sales_repo.unknown_deliveries(tx, now=await tx.now_ms(), cursor=cursor, limit=limit + 1)
        return {
            "items": [delivery_view(r) for r in rows[:limit]],
            "next_cursor": rows[limit - 1]["id"] if len(rows) > limit else None,
        }

    result: dict[str, Any] = await store.read(unit)
    return result


async def settle_delivery(store: Store, delivery_id: str, action: str) -> dict[str, Any]:
    """`record-sale` (the buyer has the lead: charge it) or `void` (it does not: release the bid) a
    delivery awaiting reconciliation; 404 for an unknown one, 409 for one not awaiting it."""
    if action not in SETTLE_ACTIONS:
        raise errors.ValidationFailed.one("action", "one of record-sale, void")
    actor = actors.current()

    async def unit(tx: Tx) -> dict[str, Any]:
        answer = await _settle(tx, delivery_id, action)
        await audit_repo.record_audit(
            tx,
            actor=actor.as_dict(),
            action=action,
            object_type="delivery",
            object_id=delivery_id,
            before={"state": "pending"},
            after=answer,
            now=now_ms(),
        )
        return answer

    result: dict[str, Any] = await store.write(unit)
    return result


async def _settle(tx: Tx, delivery_id: str, action: str) -> dict[str, Any]:
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
        return await _settle_call_data_post(tx, delivery_id=delivery_id, ping=ping, bid=bid, action=action, now=now)
    sale_id = None
    state = "recorded" if action == "record-sale" else "voided"
    await post_repo.finish_delivery(
        tx,
        bid_id=bid["bid_id"],
        state=state,
        outcome=PostOutcome.POST_ACCEPTED.value if state == "recorded" else PostOutcome.POST_UNKNOWN.value,
        detail=f"reconciled: {state}",
        latency_ms=None,
        buyer_lead_id=None,
        now=now,
    )
    if action == "record-sale" and not ping["test"]:
        sale_id = await post_repo.record_sale(tx, ping=ping, bid=bid, now=now)
    else:
        await post_repo.release_bid(tx, bid)
    await post_repo.update_waterfall(
        tx,
        ping["id"],
        {
            row["contract_id"]: {
                "post_outcome": PostOutcome.POST_ACCEPTED.value if sale_id else PostOutcome.POST_UNKNOWN.value,
                "post_detail": f"reconciled: {state}",
                "sale_id": sale_id,
            }
        },
    )
    await post_repo.add_event(
        tx, ping_id=ping["id"], at=now, type_="reconciliation", bid_id=bid["bid_id"], detail=state
    )
    if sale_id:
        await post_repo.set_ping_status(tx, ping["id"], "sold")
    return {"delivery_id": delivery_id, "state": state, "sale_id": sale_id}


async def _settle_call_data_post(
    tx: Tx, *, delivery_id: str, ping: Any, bid: dict[str, Any], action: str, now: int
) -> dict[str, Any]:
    """Settle the data post of a call: only the delivery record changes, never billing.

    A call is billed by its events (`connected`, `completed`), not by the data post, so `record-sale`
    charges nothing more and answers the call's sale, and `void` is refused while the call has a sale
    that is charged or pending: to refund the buyer, reverse the sale (docs/crash-safety.md)."""
    sale = await call_repo.find_sale(tx, bid["bid_id"])
    if action == "void" and sale is not None and sale["status"] in ("charged", "pending"):
        raise errors.Conflict(
            f"this call's sale is {sale['status']}; voiding its data post would not refund it: reverse the sale "
            f"(POST /v1/admin/sales/{sale['id']}/reverse) before voiding",
            code="sale_exists",
            details={"sale_id": sale["id"], "status": sale["status"]},
        )
    state = "recorded" if action == "record-sale" else "voided"
    await post_repo.finish_delivery(
        tx,
        bid_id=bid["bid_id"],
        state=state,
        outcome=PostOutcome.POST_ACCEPTED.value if state == "recorded" else PostOutcome.POST_UNKNOWN.value,
        detail=f"reconciled: {state}",
        latency_ms=None,
        buyer_lead_id=None,
        now=now,
    )
    await post_repo.add_event(
        tx, ping_id=ping["id"], at=now, type_="reconciliation", bid_id=bid["bid_id"], detail=f"data post {state}"
    )
    return {
        "delivery_id": delivery_id,
        "state": state,
        "sale_id": sale["id"] if sale is not None and state == "recorded" else None,
    }
