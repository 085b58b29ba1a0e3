"""The figures behind the console's overview and contract pages, each from an indexed read:
pings, bids and wins from the report counters (per UTC day), pings per hour as ranges of the
time-ordered primary key, sales from the sales table by time (revenue and payout net of approved
returns), closed days' sales totals stored once and forgotten when a sale of theirs is reversed or
returned (docs/console.md)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from pingpost.db import console_repo
from pingpost.db.store import Store, Tx
from pingpost.domain.eligibility import local_minute
from pingpost.domain.returns import BILLED
from pingpost.reports.counters import utc_day

DAY_MS = 86_400_000
HOUR_MS = 3_600_000
CHART_DAYS = 30
FRESH_DAYS = 2  # today and yesterday are summed from the sales table on every view (late call billing)


def id_at(prefix: str, ms: int) -> str:
    """The smallest id of `prefix` generated at or after `ms` (ids start with their time, ids.py)."""
    return f"{prefix}_{ms:011x}"


def _empty() -> dict[str, int]:
    return {"pings": 0, "bids": 0, "wins": 0, "sales": 0, "reversed": 0, "revenue_cents": 0, "payout_cents": 0}


def _add_sales(target: dict[str, int], rows: list[Any]) -> None:
    """Sales as the summary report counts them (reports/summary.py): a returned or partially returned
    sale is still sold, its approved return taken off revenue and its clawback off payout, on the
    sale's day; a reversed sale counts in `reversed` only."""
    for r in rows:
        if r["status"] in BILLED:
            target["sales"] += int(r["n"])
            target["revenue_cents"] += int(r["revenue"] or 0) - int(r["returned"] or 0)
            target["payout_cents"] += int(r["payout"] or 0) - int(r["clawed_back"] or 0)
        elif r["status"] == "reversed":
            target["reversed"] += int(r["n"])


def finish(figures: dict[str, int]) -> dict[str, Any]:
    """Margin and fill rate (sold per ping) beside the counts."""
    out: dict[str, Any] = dict(figures)
    out["margin_cents"] = figures["revenue_cents"] - figures["payout_cents"]
    out["fill_rate"] = figures["sales"] / figures["pings"] if figures["pings"] else None
    return out


async def overview(store: Store, *, now: int) -> dict[str, Any]:
    """Today, the last 7 days, today by hour and the last 30 days by day (UTC)."""
    day_start = now - now % DAY_MS
    days = [utc_day(day_start - i * DAY_MS) for i in range(CHART_DAYS - 1, -1, -1)]
    closed = days[:-FRESH_DAYS]

    async def read(tx: Tx) -> tuple[dict[str, dict[str, int]], list[dict[str, Any]], list[str]]:
        by_day = {day: _empty() for day in days}
        for r in await console_repo.counters_by_day(tx, day_from=days[0], day_to=days[-1]):
            by_day[r["day"]].update(pings=int(r["pings"]), bids=int(r["bids"]), wins=int(r["wins"]))
        stored = {r["day"]: r for r in await console_repo.day_totals(tx, closed)}
        missing: list[str] = []
        for i, day in enumerate(days):
            if day in stored:
                r = stored[day]
                by_day[day].update(
                    sales=int(r["sales"]),
                    reversed=int(r["reversed"]),
                    revenue_cents=int(r["revenue_cents"]),
                    payout_cents=int(r["payout_cents"]),
                )
                continue
            start = day_start - (CHART_DAYS - 1 - i) * DAY_MS
            _add_sales(by_day[day], await console_repo.sales_totals(tx, start=start, end=start + DAY_MS))
            if day in closed:
                missing.append(day)
        hours = []
        hourly_sales: dict[int, dict[str, int]] = {}
        for r in await console_repo.sales_by_hour(tx, start=day_start, end=day_start + DAY_MS):
            entry = hourly_sales.setdefault(int(r["hour"]), _empty())
            _add_sales(entry, [r])
        for h in range((now - day_start) // HOUR_MS + 1):
            start = day_start + h * HOUR_MS
            figures = hourly_sales.get(start // HOUR_MS, _empty())
            figures["pings"] = await console_repo.count_ids(
                tx, "pings", low=id_at("png", start), high=id_at("png", start + HOUR_MS)
            )
            hours.append({"hour": f"{h:02d}:00", **finish(figures)})
        return by_day, hours, missing

    by_day, hours, missing = await store.read(read)
    if missing:
        await _store_closed_days(store, {day: by_day[day] for day in missing}, now=now)
    series = [{"day": day, **finish(by_day[day])} for day in days]
    today, week = _empty(), _empty()
    for entry in series[-7:]:
        for key in week:
            week[key] += entry[key]
    for key in today:
        today[key] = by_day[days[-1]][key]
    return {"today": finish(today), "week": finish(week), "hours": hours, "days": series}


async def _store_closed_days(store: Store, totals: dict[str, dict[str, int]], *, now: int) -> None:
    async def write(tx: Tx) -> None:
        for day, figures in totals.items():
            await console_repo.put_day_totals(tx, day=day, totals=figures, now=now)

    await store.write(write)


async def contract_today(store: Store, contract_id: str, *, now: int) -> dict[str, Any]:
    """A contract's pings evaluated, bids and wins (counters) and sales (sales table) today, UTC."""
    day_start = now - now % DAY_MS

    async def read(tx: Tx) -> dict[str, Any]:
        figures = _empty()
        counters = await console_repo.contract_counters(tx, contract_id, day=utc_day(now))
        figures.update(pings=int(counters["pings"]), bids=int(counters["bids"]), wins=int(counters["wins"]))
        _add_sales(figures, await console_repo.sales_by_hour(tx, start=day_start, end=now + 1, contract_id=contract_id))
        return finish(figures)

    return await store.read(read)


def caps_used(contract: dict[str, Any], usage: Any, *, now: int) -> list[dict[str, Any]]:
    """Each cap period of a contract: its cap, what is used in the current period (in the contract's
    time zone), and the period's key."""
    caps = contract.get("caps") or {}
    _, keys = local_minute(now, ZoneInfo(contract.get("timezone") or "UTC"))
    rows = []
    for name, column, current in (
        ("daily", "day", keys.day),
        ("weekly", "week", keys.week),
        ("monthly", "month", keys.month),
    ):
        used = int(usage[f"{column}_used"]) if usage is not None and usage[f"{column}_key"] == current else 0
        rows.append({"period": name, "key": current, "cap": caps.get(name), "used": used})
    if caps.get("max_concurrent_calls") is not None:
        rows.append(
            {
                "period": "live calls",
                "key": "now",
                "cap": caps["max_concurrent_calls"],
                "used": int(usage["live_calls"]) if usage is not None else 0,
            }
        )
    return rows


async def usage_of(store: Store, contract_ids: list[str]) -> dict[str, Any]:
    rows = await store.read(lambda tx: console_repo.contract_usage(tx, contract_ids))
    return {r["contract_id"]: r for r in rows}


def day_bounds(day: str) -> tuple[int, int]:
    start = datetime.fromisoformat(day).replace(tzinfo=UTC)
    return int(start.timestamp() * 1000), int((start + timedelta(days=1)).timestamp() * 1000)
