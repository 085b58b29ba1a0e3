"""SQL of returns: the return rows, the month's counts the rate limit reads, and the locks that
serialise every change to one sale (docs/protocol.md, Returns)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pingpost.db.paging_repo import Listing, newest_first
from pingpost.db.store import Tx

_RETURNS = Listing("returns", frozenset({"status", "buyer_id", "partner_id", "contract_id", "sale_id"}))
_COLUMNS = (
    "id",
    "sale_id",
    "offer_id",
    "campaign_id",
    "partner_id",
    "contract_id",
    "buyer_id",
    "status",
    "reason",
    "note",
    "amount_cents",
    "sale_month",
    "opened_by",
    "created_at",
)


def _lock(tx: Tx) -> str:
    return " FOR UPDATE" if tx.dialect == "postgresql" else ""


async def lock_contract(tx: Tx, contract_id: str) -> dict[str, Any] | None:
    """The contract's body, its row locked on PostgreSQL: openings of returns on one contract take
    turns, so two of them cannot both pass the monthly limit (SQLite writers already take turns)."""
    raw = await tx.fetchval(f"SELECT body FROM contracts WHERE id = :id{_lock(tx)}", {"id": contract_id})
    return None if raw is None else dict(orjson.loads(raw))


async def open_return_of(tx: Tx, sale_id: str) -> Any:
    """The sale's pending or approved return, if any (there is at most one)."""
    return await tx.fetchrow(
        "SELECT * FROM returns WHERE sale_id = :s AND status IN ('pending', 'approved')", {"s": sale_id}
    )


async def count_month_returns(tx: Tx, *, contract_id: str, month: str) -> int:
    """Pending and approved returns of the contract's sales made in `month`."""
    return int(
        await tx.fetchval(
            "SELECT COUNT(*) FROM returns WHERE contract_id = :c AND sale_month = :m "
            "AND status IN ('pending', 'approved')",
            {"c": contract_id, "m": month},
        )
    )


async def count_month_sales(tx: Tx, *, contract_id: str, start_ms: int, end_ms: int, statuses: tuple[str, ...]) -> int:
    """The contract's sales in [start_ms, end_ms) whose status is one of `statuses`."""
    return int(
        await tx.fetchval(
            "SELECT COUNT(*) FROM sales WHERE contract_id = :c AND created_at >= :a AND created_at < :b "
            "AND status IN (:st)",
            {"c": contract_id, "a": start_ms, "b": end_ms, "st": list(statuses)},
        )
    )


async def insert_return(tx: Tx, row: Mapping[str, Any]) -> None:
    await tx.execute(
        f"INSERT INTO returns ({', '.join(_COLUMNS)}) VALUES ({', '.join(':' + c for c in _COLUMNS)})",
        {c: row[c] for c in _COLUMNS},
    )


async def get(tx: Tx, return_id: str) -> Any:
    return await tx.fetchrow("SELECT * FROM returns WHERE id = :id", {"id": return_id})


async def approve(
    tx: Tx, return_id: str, *, clawback_cents: int, transaction_id: str, note: str | None, now: int
) -> bool:
    """A pending return becomes approved (once: False when it was not pending)."""
    return (
        await tx.execute(
            "UPDATE returns SET status = 'approved', clawback_cents = :cb, transaction_id = :t, decision_note = :n, "
            "decided_at = :now WHERE id = :id AND status = 'pending'",
            {"cb": clawback_cents, "t": transaction_id, "n": note, "now": now, "id": return_id},
        )
        == 1
    )


async def deny(tx: Tx, return_id: str, *, note: str | None, now: int) -> bool:
    """A pending return becomes denied (once: False when it was not pending)."""
    return (
        await tx.execute(
            "UPDATE returns SET status = 'denied', decision_note = :n, decided_at = :now "
            "WHERE id = :id AND status = 'pending'",
            {"n": note, "now": now, "id": return_id},
        )
        == 1
    )


async def page(
    tx: Tx, *, filters: Mapping[str, Any], start: int | None, end: int | None, cursor: str | None, limit: int
) -> list[Any]:
    """Returns newest first after `cursor` (a return id); filters are column equalities from a fixed list."""
    return await newest_first(tx, _RETURNS, filters=filters, during=(start, end), cursor=cursor, limit=limit)
