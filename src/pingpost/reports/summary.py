"""The operator summary report (SPEC 5.4), from aggregate counters and the sales table."""

from __future__ import annotations

from typing import Any

from pingpost import errors
from pingpost.db.store import Store, Tx
from pingpost.reports.counters import utc_day

GROUPS = {"offer": "offer_id", "campaign": "campaign_id", "partner": "partner_id", "buyer": "buyer_id",
          "contract": "contract_id", "day": "day"}


def _day_sql(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"to_char(to_timestamp({column} / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
    return f"date({column} / 1000, 'unixepoch')"


async def summary(store: Store, *, group_by: str, start_ms: int | None, end_ms: int | None) -> list[dict[str, Any]]:
    """Rows of pings, bids, wins, posts, sales, revenue, payout, margin and accept rate per group.

    Counters are by UTC day, so `from`/`to` select whole days for pings, bids and wins; posts and
    sales are exact to the millisecond. Test traffic is never counted.
    """
    if group_by not in GROUPS:
        raise errors.ValidationFailed.one("group_by", f"one of {', '.join(GROUPS)}")
    column = GROUPS[group_by]

    async def unit(tx: Tx) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}

        def row(key: Any) -> dict[str, Any]:
            return rows.setdefault(str(key), {group_by: str(key), "pings": 0, "bids": 0, "wins": 0, "posts": 0,
                                              "sales": 0, "reversed": 0, "revenue_cents": 0, "payout_cents": 0})

        per_contract = group_by in ("buyer", "contract")
        day_from = utc_day(start_ms) if start_ms is not None else "0000-00-00"
        day_to = utc_day(end_ms - 1) if end_ms is not None else "9999-99-99"
        ping_rows = "" if per_contract else " AND contract_id = ''"
        for r in await tx.fetch(
                f"SELECT {column} AS g, CAST(SUM(pings) AS BIGINT) AS pings FROM report_counters "
                f"WHERE day >= :a AND day <= :b{ping_rows} AND {column} <> '' GROUP BY {column}",
                {"a": day_from, "b": day_to}):
            row(r["g"])["pings"] = int(r["pings"])
        for r in await tx.fetch(
                f"SELECT {column} AS g, CAST(SUM(bids) AS BIGINT) AS bids, CAST(SUM(wins) AS BIGINT) AS wins "
                f"FROM report_counters WHERE day >= :a AND day <= :b AND contract_id <> '' GROUP BY {column}",
                {"a": day_from, "b": day_to}):
            entry = row(r["g"])
            entry["bids"], entry["wins"] = int(r["bids"]), int(r["wins"])
        sale_group = _day_sql(tx.dialect, "created_at") if group_by == "day" else column
        for r in await tx.fetch(
                f"SELECT {sale_group} AS g, COUNT(*) AS n, status, CAST(SUM(price_cents) AS BIGINT) AS revenue, "
                "CAST(SUM(payout_cents) AS BIGINT) AS payout FROM sales WHERE created_at >= :a AND created_at < :b "
                f"GROUP BY {sale_group}, status", {"a": start_ms or 0, "b": end_ms or 2**62}):
            entry = row(r["g"])
            if r["status"] == "reversed":
                entry["reversed"] += int(r["n"])
            elif r["status"] == "charged":
                entry["sales"] += int(r["n"])
                entry["revenue_cents"] += int(r["revenue"])
                entry["payout_cents"] += int(r["payout"])
        post_group = _day_sql(tx.dialect, "d.created_at") if group_by == "day" else (
            f"d.{column}" if per_contract else f"p.{column}")
        for r in await tx.fetch(
                f"SELECT {post_group} AS g, COUNT(*) AS n FROM deliveries d JOIN pings p ON p.id = d.ping_id "
                "WHERE p.test = 0 AND d.created_at >= :a AND d.created_at < :b "
                f"GROUP BY {post_group}", {"a": start_ms or 0, "b": end_ms or 2**62}):
            row(r["g"])["posts"] = int(r["n"])
        out = []
        for key in sorted(rows):
            entry = rows[key]
            entry["margin_cents"] = entry["revenue_cents"] - entry["payout_cents"]
            accepted = entry["sales"] + entry["reversed"]
            entry["post_accept_rate"] = round(accepted / entry["posts"], 4) if entry["posts"] else None
            out.append(entry)
        return out

    return await store.read(unit)
