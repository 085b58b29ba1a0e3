"""The operator summary report (docs/protocol.md, Operators), from aggregate counters and the sales table."""

from __future__ import annotations

from typing import Any

from pingpost import errors
from pingpost.db import reports_repo
from pingpost.db.store import Store, Tx
from pingpost.domain.returns import BILLED
from pingpost.reports.counters import utc_day

GROUPS = {
    "offer": "offer_id",
    "campaign": "campaign_id",
    "partner": "partner_id",
    "buyer": "buyer_id",
    "contract": "contract_id",
    "day": "day",
    "source": "source",  # the ping's source ('' = pings without one)
}


async def summary(store: Store, *, group_by: str, start_ms: int | None, end_ms: int | None) -> list[dict[str, Any]]:
    """Rows of pings, bids, wins, posts, sales, revenue, payout, margin and accept rate per group.

    Counters are by UTC day, so `from`/`to` select whole days for pings, bids and wins; posts and
    sales are exact to the millisecond. Test traffic is never counted. An approved return counts with
    its sale (the sale's group and time): `returned_cents` is subtracted from revenue and its clawback
    from payout; a reversed sale counts in `reversed` only, with its returns.
    """
    if group_by not in GROUPS:
        raise errors.ValidationFailed.one("group_by", f"one of {', '.join(GROUPS)}")
    column = GROUPS[group_by]

    async def unit(tx: Tx) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}

        def row(key: Any) -> dict[str, Any]:
            return rows.setdefault(
                str(key),
                {
                    group_by: str(key),
                    "pings": 0,
                    "duplicate_pings": 0,
                    "bids": 0,
                    "wins": 0,
                    "posts": 0,
                    "sales": 0,
                    "reversed": 0,
                    "returned_cents": 0,
                    "revenue_cents": 0,
                    "payout_cents": 0,
                    "conversions": 0,
                    "conversion_value_cents": 0,
                },
            )

        per_contract = group_by in ("buyer", "contract")
        day_from = utc_day(start_ms) if start_ms is not None else "0000-00-00"
        day_to = utc_day(end_ms - 1) if end_ms is not None else "9999-99-99"
        if group_by == "source":
            for r in await reports_repo.source_counts(tx, day_from=day_from, day_to=day_to):
                entry = row(r["g"])
                entry["pings"], entry["duplicate_pings"] = int(r["pings"]), int(r["dups"])
                entry["bids"], entry["wins"] = int(r["bids"]), int(r["wins"])
        else:
            for r in await reports_repo.pings_by(
                tx, column, day_from=day_from, day_to=day_to, per_contract=per_contract
            ):
                entry = row(r["g"])
                entry["pings"], entry["duplicate_pings"] = int(r["pings"]), int(r["dups"])
            for r in await reports_repo.bids_by(tx, column, day_from=day_from, day_to=day_to):
                entry = row(r["g"])
                entry["bids"], entry["wins"] = int(r["bids"]), int(r["wins"])
        start, end = start_ms or 0, end_ms or 2**62
        for r in await reports_repo.sales_by(tx, column, start_ms=start, end_ms=end):
            entry = row(r["g"])
            if r["status"] == "reversed":
                entry["reversed"] += int(r["n"])
            elif r["status"] in BILLED:
                entry["sales"] += int(r["n"])
                entry["returned_cents"] += int(r["returned"])
                entry["revenue_cents"] += int(r["revenue"]) - int(r["returned"])
                entry["payout_cents"] += int(r["payout"]) - int(r["clawed_back"])
        for r in await reports_repo.conversions_by(tx, column, start_ms=start, end_ms=end):
            entry = row(r["g"])
            entry["conversions"], entry["conversion_value_cents"] = int(r["n"]), int(r["value"])
        for r in await reports_repo.posts_by(tx, column, start_ms=start, end_ms=end, per_contract=per_contract):
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
