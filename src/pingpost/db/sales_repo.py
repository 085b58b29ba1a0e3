"""SQL of sales and of deliveries awaiting reconciliation (docs/crash-safety.md)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pingpost.db.paging_repo import Listing, newest_first
from pingpost.db.store import Tx

_SALES = Listing("sales", frozenset({"offer_id", "campaign_id", "partner_id", "buyer_id", "status"}))


async def page_sales(
    tx: Tx, *, filters: Mapping[str, Any], start: int | None, end: int | None, cursor: str | None, limit: int
) -> list[Any]:
    """Sales newest first after `cursor`; filters are column equalities from a fixed list."""
    return await newest_first(tx, _SALES, filters=filters, during=(start, end), cursor=cursor, limit=limit)


async def sale(tx: Tx, sale_id: str, *, lock: bool = False) -> Any:
    """A sale; with `lock`, its row locked on PostgreSQL. Every change of a sale's status or returns
    (opening, approving or denying a return, reversing) holds this lock, so they take turns per sale."""
    suffix = " FOR UPDATE" if lock and tx.dialect == "postgresql" else ""
    return await tx.fetchrow(f"SELECT * FROM sales WHERE id = :id{suffix}", {"id": sale_id})


# A delivery is awaiting reconciliation once nothing can finish it any more: its reservation lapsed
# (or is gone, or left `posting`) while the delivery is still pending.
_UNKNOWN = (
    "SELECT d.*, r.expires_at AS reservation_expires_at FROM deliveries d "
    "LEFT JOIN pings p ON p.id = d.ping_id "
    "LEFT JOIN reservations r ON r.bid_id = d.bid_id "
    "WHERE d.state = 'pending' AND (r.expires_at IS NULL OR r.expires_at <= :now OR r.state <> 'posting')"
)


async def unknown_deliveries(tx: Tx, *, now: int, cursor: str | None, limit: int) -> list[Any]:
    return list(
        await tx.fetch(
            _UNKNOWN + " AND (CAST(:cursor AS TEXT) IS NULL OR d.id > :cursor) ORDER BY d.id LIMIT :lim",
            {"now": now, "cursor": cursor, "lim": limit},
        )
    )


async def unknown_delivery(tx: Tx, delivery_id: str, *, now: int) -> Any:
    return await tx.fetchrow(_UNKNOWN + " AND d.id = :id", {"now": now, "id": delivery_id})


async def delivery_state(tx: Tx, delivery_id: str) -> str | None:
    state: str | None = await tx.fetchval("SELECT state FROM deliveries WHERE id = :id", {"id": delivery_id})
    return state
