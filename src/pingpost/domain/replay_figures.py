"""The figures a replay answers, pure (docs/replay.md, Figures): integer cents, counts, and the fill
rate as a decimal string with four places (sold ÷ pings, rounded down) computed from integers."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DAY_MS = 86_400_000


def fill_rate(sold: int, pings: int) -> str:
    """sold ÷ pings as "0.4312" (four places, rounded down; "0.0000" with no pings)."""
    bp = sold * 10_000 // pings if pings else 0
    return _bp_text(bp)


def _bp_text(bp: int) -> str:
    sign = "-" if bp < 0 else ""
    bp = abs(bp)
    return f"{sign}{bp // 10_000}.{bp % 10_000:04d}"


def _fill_bp(sold: int, pings: int) -> int:
    return sold * 10_000 // pings if pings else 0


_DAY_CACHE: dict[int, str] = {}


def utc_day(at_ms: int) -> str:
    """The UTC date of an instant, as YYYY-MM-DD (cached per day: a replay asks a million times)."""
    index = at_ms // DAY_MS
    day = _DAY_CACHE.get(index)
    if day is None:
        from datetime import UTC, datetime

        day = _DAY_CACHE[index] = datetime.fromtimestamp(index * 86_400, UTC).date().isoformat()
    return day


@dataclass
class Tally:
    """One side of a comparison (actual or proposed). `by_buyer` / `by_contract` hold [wins, sales,
    revenue_cents]; `days` hold [pings, sold, sales, revenue_cents, payout_cents] by the ping's UTC day."""

    pings: int = 0
    sold: int = 0
    sales: int = 0
    revenue_cents: int = 0
    payout_cents: int = 0
    by_buyer: dict[str, list[int]] = field(default_factory=dict)
    by_contract: dict[str, list[int]] = field(default_factory=dict)
    days: dict[str, list[int]] = field(default_factory=dict)

    def ping(self, day: str) -> None:
        self.pings += 1
        row = self.days.get(day)
        if row is None:
            row = self.days[day] = [0, 0, 0, 0, 0]
        row[0] += 1

    def win(self, contract_id: str, buyer_id: str) -> None:
        _row(self.by_contract, contract_id)[0] += 1
        _row(self.by_buyer, buyer_id)[0] += 1

    def sale(self, day: str, contract_id: str, buyer_id: str, price: int, payout: int, *, first: bool) -> None:
        """One sale record of a ping of `day`; `first` when it is the ping's first (the ping is sold)."""
        self.sales += 1
        self.revenue_cents += price
        self.payout_cents += payout
        for row in (_row(self.by_contract, contract_id), _row(self.by_buyer, buyer_id)):
            row[1] += 1
            row[2] += price
        days = self.days.get(day)
        if days is None:
            days = self.days[day] = [0, 0, 0, 0, 0]
        days[2] += 1
        days[3] += price
        days[4] += payout
        if first:
            self.sold += 1
            days[1] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "pings": self.pings,
            "sold": self.sold,
            "sales": self.sales,
            "revenue_cents": self.revenue_cents,
            "payout_cents": self.payout_cents,
            "margin_cents": self.revenue_cents - self.payout_cents,
            "fill_rate": fill_rate(self.sold, self.pings),
            "by_buyer": _named(self.by_buyer),
            "by_contract": _named(self.by_contract),
        }

    def series(self) -> dict[str, dict[str, int]]:
        return {
            day: {"pings": r[0], "sold": r[1], "sales": r[2], "revenue_cents": r[3], "payout_cents": r[4]}
            for day, r in sorted(self.days.items())
        }


def _row(rows: dict[str, list[int]], key: str) -> list[int]:
    row = rows.get(key)
    if row is None:
        row = rows[key] = [0, 0, 0]
    return row


def _named(rows: dict[str, list[int]]) -> dict[str, dict[str, int]]:
    return {k: {"wins": r[0], "sales": r[1], "revenue_cents": r[2]} for k, r in sorted(rows.items())}


_COUNTS = ("pings", "sold", "sales", "revenue_cents", "payout_cents", "margin_cents")


def delta(actual: dict[str, Any], proposed: dict[str, Any]) -> dict[str, Any]:
    """proposed minus actual, figure by figure (a buyer or contract on one side only counts 0 on the other)."""
    out: dict[str, Any] = {name: proposed[name] - actual[name] for name in _COUNTS}
    out["fill_rate"] = _bp_text(
        _fill_bp(proposed["sold"], proposed["pings"]) - _fill_bp(actual["sold"], actual["pings"])
    )
    for group in ("by_buyer", "by_contract"):
        a, p = actual[group], proposed[group]
        out[group] = {
            key: {
                name: p.get(key, {}).get(name, 0) - a.get(key, {}).get(name, 0)
                for name in ("wins", "sales", "revenue_cents")
            }
            for key in sorted(set(a) | set(p))
        }
    return out
