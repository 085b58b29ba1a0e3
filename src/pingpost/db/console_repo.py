"""SQL of the operator console (docs/console.md): sessions, and the reads behind its pages that no
API repository has (counters by day, pings and sales by hour, closed days' sales totals, recent
waterfalls, cap usage). Every read is an indexed range or a bounded page: no count over a table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pingpost.db.store import Tx

# --- sessions ----------------------------------------------------------------------------------


async def insert_session(tx: Tx, session: Mapping[str, Any], *, now: int) -> None:
    """A new session row: `id_sha256`, `key_id`, `key_sha256`, `kind`, `buyer_id`, `csrf_token`."""
    await tx.execute(
        "INSERT INTO console_sessions (id_sha256, key_id, key_sha256, kind, buyer_id, csrf_token, created_at, "
        "last_seen_at) VALUES (:id_sha256, :key_id, :key_sha256, :kind, :buyer_id, :csrf_token, :now, :now)",
        {**session, "now": now},
    )


async def session_by_hash(tx: Tx, id_sha256: str) -> Any:
    """The session with the status of the key that opened it (None when that key is gone or replaced)."""
    return await tx.fetchrow(
        "SELECT s.*, k.status AS key_status FROM console_sessions s "
        "LEFT JOIN api_keys k ON k.id = s.key_id AND k.key_sha256 = s.key_sha256 WHERE s.id_sha256 = :h",
        {"h": id_sha256},
    )


async def touch_session(tx: Tx, id_sha256: str, *, now: int) -> None:
    await tx.execute(
        "UPDATE console_sessions SET last_seen_at = :now WHERE id_sha256 = :h", {"now": now, "h": id_sha256}
    )


async def delete_session(tx: Tx, id_sha256: str) -> None:
    await tx.execute("DELETE FROM console_sessions WHERE id_sha256 = :h", {"h": id_sha256})


async def delete_idle_sessions(tx: Tx, *, seen_before: int) -> int:
    return await tx.execute("DELETE FROM console_sessions WHERE last_seen_at < :t", {"t": seen_before})


# --- figures -----------------------------------------------------------------------------------


async def counters_by_day(tx: Tx, *, day_from: str, day_to: str) -> list[Any]:
    """(day, pings, bids, wins) per UTC day from the report counters: ping rows carry the pings,
    contract rows the bids and wins."""
    return list(
        await tx.fetch(
            "SELECT day, CAST(SUM(CASE WHEN contract_id = '' THEN pings ELSE 0 END) AS BIGINT) AS pings, "
            "CAST(SUM(bids) AS BIGINT) AS bids, CAST(SUM(wins) AS BIGINT) AS wins FROM report_counters "
            "WHERE day >= :a AND day <= :b GROUP BY day ORDER BY day",
            {"a": day_from, "b": day_to},
        )
    )


async def contract_counters(tx: Tx, contract_id: str, *, day: str) -> Any:
    """A contract's evaluations (pings it was in), bids and wins on one UTC day."""
    return await tx.fetchrow(
        "SELECT CAST(COALESCE(SUM(pings), 0) AS BIGINT) AS pings, CAST(COALESCE(SUM(bids), 0) AS BIGINT) AS bids, "
        "CAST(COALESCE(SUM(wins), 0) AS BIGINT) AS wins FROM report_counters WHERE day = :d AND contract_id = :c",
        {"d": day, "c": contract_id},
    )


async def count_ids(tx: Tx, table: str, *, low: str, high: str) -> int:
    """Rows whose time-ordered id lies in [low, high): a range of the primary key's index."""
    if table not in ("pings", "sales"):
        raise ValueError(f"not a time-ordered table: {table}")
    return int(await tx.fetchval(f"SELECT COUNT(*) FROM {table} WHERE id >= :a AND id < :b", {"a": low, "b": high}))


# Sums of sales with their approved returns (at most one a sale), from `sales s` joined to them.
_SALE_SUMS = (
    "CAST(SUM(s.price_cents) AS BIGINT) AS revenue, CAST(SUM(s.payout_cents) AS BIGINT) AS payout, "
    "CAST(COALESCE(SUM(r.amount_cents), 0) AS BIGINT) AS returned, "
    "CAST(COALESCE(SUM(r.clawback_cents), 0) AS BIGINT) AS clawed_back "
    "FROM sales s LEFT JOIN returns r ON r.sale_id = s.id AND r.status = 'approved'"
)


async def sales_by_hour(tx: Tx, *, start: int, end: int, contract_id: str | None = None) -> list[Any]:
    """(hour, status, n, revenue, payout, returned, clawed_back) of the sales created in [start, end),
    hour as epoch hours; a sale's approved return (at most one) counts with its sale."""
    only = " AND s.contract_id = :c" if contract_id is not None else ""
    return list(
        await tx.fetch(
            "SELECT s.created_at / 3600000 AS hour, s.status, COUNT(*) AS n, "
            f"{_SALE_SUMS} WHERE s.created_at >= :a AND s.created_at < :b{only} "
            "GROUP BY s.created_at / 3600000, s.status",
            {"a": start, "b": end, "c": contract_id},
        )
    )


async def sales_totals(tx: Tx, *, start: int, end: int) -> list[Any]:
    """(status, n, revenue, payout, returned, clawed_back) of the sales created in [start, end)."""
    return list(
        await tx.fetch(
            f"SELECT s.status, COUNT(*) AS n, {_SALE_SUMS} WHERE s.created_at >= :a AND s.created_at < :b "
            "GROUP BY s.status",
            {"a": start, "b": end},
        )
    )


async def day_totals(tx: Tx, days: Sequence[str]) -> list[Any]:
    return list(await tx.fetch("SELECT * FROM console_day_totals WHERE day IN (:days)", {"days": list(days)}))


async def put_day_totals(tx: Tx, *, day: str, totals: Mapping[str, int], now: int) -> None:
    """A closed day's sales figures (`sales`, `reversed`, `revenue_cents`, `payout_cents`)."""
    sales, reversed_, revenue_cents, payout_cents = (
        totals["sales"],
        totals["reversed"],
        totals["revenue_cents"],
        totals["payout_cents"],
    )
    await tx.execute(
        "INSERT INTO console_day_totals (day, sales, reversed, revenue_cents, payout_cents, computed_at) "
        "VALUES (:d, :s, :r, :rev, :pay, :now) ON CONFLICT (day) DO UPDATE SET sales = excluded.sales, "
        "reversed = excluded.reversed, revenue_cents = excluded.revenue_cents, "
        "payout_cents = excluded.payout_cents, computed_at = excluded.computed_at",
        {"d": day, "s": sales, "r": reversed_, "rev": revenue_cents, "pay": payout_cents, "now": now},
    )


async def forget_day_totals(tx: Tx, day: str) -> None:
    """A sale of `day` changed: its stored totals are recomputed at the next view."""
    await tx.execute("DELETE FROM console_day_totals WHERE day = :d", {"d": day})


async def recent_waterfalls(tx: Tx, *, limit: int) -> list[Any]:
    """The waterfalls of the newest pings (the buyers' health sample)."""
    return list(await tx.fetch("SELECT id, received_at, waterfall FROM pings ORDER BY id DESC LIMIT :n", {"n": limit}))


async def contract_usage(tx: Tx, contract_ids: Sequence[str]) -> list[Any]:
    if not contract_ids:
        return []
    return list(await tx.fetch("SELECT * FROM contract_usage WHERE contract_id IN (:ids)", {"ids": list(contract_ids)}))


_PING_FILTERS = frozenset({"offer_id", "campaign_id", "partner_id", "status", "source"})


async def pings_after(tx: Tx, *, after: str, filters: Mapping[str, Any], limit: int) -> list[Any]:
    """Pings newer than `after` (the live list's poll), newest first; filters are column equalities."""
    where = ["id > :after"]
    params: dict[str, Any] = {"after": after, "lim": limit}
    for column, value in filters.items():
        if column not in _PING_FILTERS:
            raise ValueError(f"not a ping filter: {column}")
        where.append(f"{column} = :{column}")
        params[column] = value
    return list(await tx.fetch(f"SELECT * FROM pings WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :lim", params))


async def sales_by_ids(tx: Tx, sale_ids: Sequence[str]) -> list[Any]:
    if not sale_ids:
        return []
    return list(await tx.fetch("SELECT * FROM sales WHERE id IN (:ids) ORDER BY id", {"ids": list(sale_ids)}))


async def deliveries_by_bids(tx: Tx, bid_ids: Sequence[str]) -> list[Any]:
    if not bid_ids:
        return []
    return list(await tx.fetch("SELECT * FROM deliveries WHERE bid_id IN (:ids) ORDER BY id", {"ids": list(bid_ids)}))
