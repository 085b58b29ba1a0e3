"""SQL of reports: the per-day aggregate counters, and sales and deliveries grouped for the summary."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pingpost.db.store import Tx

GROUP_COLUMNS = frozenset({"offer_id", "campaign_id", "partner_id", "buyer_id", "contract_id", "day", "source"})


def _column(name: str) -> str:
    if name not in GROUP_COLUMNS:
        raise ValueError(f"not a report column: {name}")
    return name


def _day_sql(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"to_char(to_timestamp({column} / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    return f"date({column} / 1000, 'unixepoch')"


async def add_counters(tx: Tx, rows: Sequence[dict[str, Any]]) -> None:
    """Add pings, bids and wins to each (day, contract, campaign) counter row."""
    await tx.executemany(
        "INSERT INTO report_counters (day, offer_id, campaign_id, partner_id, contract_id, buyer_id, pings, "
        "bids, wins, duplicate_pings) VALUES (:d, :o, :c, :p, :ct, :b, :pings, :bids, :wins, :dups) "
        "ON CONFLICT (day, contract_id, campaign_id) DO UPDATE SET pings = report_counters.pings + "
        "excluded.pings, bids = report_counters.bids + excluded.bids, wins = report_counters.wins + "
        "excluded.wins, duplicate_pings = report_counters.duplicate_pings + excluded.duplicate_pings",
        rows,
    )


async def add_source_counters(tx: Tx, rows: Sequence[dict[str, Any]]) -> None:
    """Add pings, bids, wins and duplicate pings to each (day, campaign, source) counter row."""
    if rows:
        await tx.executemany(
            "INSERT INTO source_counters (day, offer_id, campaign_id, partner_id, source, pings, bids, wins, "
            "duplicate_pings) VALUES (:d, :o, :c, :p, :s, :pings, :bids, :wins, :dups) "
            "ON CONFLICT (day, campaign_id, source) DO UPDATE SET pings = source_counters.pings + "
            "excluded.pings, bids = source_counters.bids + excluded.bids, wins = source_counters.wins + "
            "excluded.wins, duplicate_pings = source_counters.duplicate_pings + excluded.duplicate_pings",
            rows,
        )


async def source_counts(tx: Tx, *, day_from: str, day_to: str) -> list[Any]:
    """(g, pings, bids, wins, dups) per source ('' = pings without one)."""
    return list(
        await tx.fetch(
            "SELECT source AS g, CAST(SUM(pings) AS BIGINT) AS pings, CAST(SUM(bids) AS BIGINT) AS bids, "
            "CAST(SUM(wins) AS BIGINT) AS wins, CAST(SUM(duplicate_pings) AS BIGINT) AS dups "
            "FROM source_counters WHERE day >= :a AND day <= :b GROUP BY source",
            {"a": day_from, "b": day_to},
        )
    )


async def pings_by(tx: Tx, column: str, *, day_from: str, day_to: str, per_contract: bool) -> list[Any]:
    """(g, pings) per group; per-contract groups count the pings their contracts were evaluated in."""
    column = _column(column)
    only_pings = "" if per_contract else " AND contract_id = ''"
    return list(
        await tx.fetch(
            f"SELECT {column} AS g, CAST(SUM(pings) AS BIGINT) AS pings, "
            "CAST(SUM(duplicate_pings) AS BIGINT) AS dups FROM report_counters "
            f"WHERE day >= :a AND day <= :b{only_pings} AND {column} <> '' GROUP BY {column}",
            {"a": day_from, "b": day_to},
        )
    )


async def bids_by(tx: Tx, column: str, *, day_from: str, day_to: str) -> list[Any]:
    column = _column(column)
    return list(
        await tx.fetch(
            f"SELECT {column} AS g, CAST(SUM(bids) AS BIGINT) AS bids, CAST(SUM(wins) AS BIGINT) AS wins "
            f"FROM report_counters WHERE day >= :a AND day <= :b AND contract_id <> '' GROUP BY {column}",
            {"a": day_from, "b": day_to},
        )
    )


async def sales_by(tx: Tx, column: str, *, start_ms: int, end_ms: int) -> list[Any]:
    """(g, n, status, revenue, payout, returned, clawed_back) per group and sale status; a sale's
    approved return (at most one) counts with its sale: its group, its day."""
    join = ""
    if column == "day":
        group = _day_sql(tx.dialect, "s.created_at")
    elif column == "source":  # the ping's source ('' = none)
        group, join = "COALESCE(pg.source, '')", "JOIN pings pg ON pg.id = s.ping_id "
    else:
        group = f"s.{_column(column)}"
    return list(
        await tx.fetch(
            f"SELECT {group} AS g, COUNT(*) AS n, s.status AS status, CAST(SUM(s.price_cents) AS BIGINT) AS revenue, "
            "CAST(SUM(s.payout_cents) AS BIGINT) AS payout, "
            "CAST(COALESCE(SUM(r.amount_cents), 0) AS BIGINT) AS returned, "
            f"CAST(COALESCE(SUM(r.clawback_cents), 0) AS BIGINT) AS clawed_back FROM sales s {join}"
            "LEFT JOIN returns r ON r.sale_id = s.id AND r.status = 'approved' "
            f"WHERE s.created_at >= :a AND s.created_at < :b GROUP BY {group}, s.status",
            {"a": start_ms, "b": end_ms},
        )
    )


async def conversions_by(tx: Tx, column: str, *, start_ms: int, end_ms: int) -> list[Any]:
    """(g, n, value) of buyers' conversions, counted with their sale: its group, its time."""
    join = ""
    if column == "day":
        group = _day_sql(tx.dialect, "s.created_at")
    elif column == "source":  # the ping's source ('' = none)
        group, join = "COALESCE(pg.source, '')", "JOIN pings pg ON pg.id = s.ping_id "
    else:
        group = f"s.{_column(column)}"
    return list(
        await tx.fetch(
            f"SELECT {group} AS g, COUNT(*) AS n, CAST(COALESCE(SUM(c.value_cents), 0) AS BIGINT) AS value "
            f"FROM conversions c JOIN sales s ON s.id = c.sale_id {join}"
            f"WHERE s.created_at >= :a AND s.created_at < :b GROUP BY {group}",
            {"a": start_ms, "b": end_ms},
        )
    )


async def posts_by(tx: Tx, column: str, *, start_ms: int, end_ms: int, per_contract: bool) -> list[Any]:
    """(g, n) deliveries of real (not test) pings per group."""
    if column == "day":
        group = _day_sql(tx.dialect, "d.created_at")
    elif column == "source":
        group = "COALESCE(p.source, '')"
    else:
        group = f"d.{_column(column)}" if per_contract else f"p.{_column(column)}"
    return list(
        await tx.fetch(
            f"SELECT {group} AS g, COUNT(*) AS n FROM deliveries d JOIN pings p ON p.id = d.ping_id "
            f"WHERE p.test = 0 AND d.created_at >= :a AND d.created_at < :b GROUP BY {group}",
            {"a": start_ms, "b": end_ms},
        )
    )
