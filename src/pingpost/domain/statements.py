"""Account statements, pure: the period of whole UTC days, the folding of ledger lines into an
opening balance, totals per kind and a closing balance, and the CSV form (docs/protocol.md, Money)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

DAY_MS = 86_400_000
MAX_DAYS = 366
_EPOCH = date(1970, 1, 1)
CSV_HEADER = ("date", "kind", "count", "amount_cents")


class InvalidPeriod(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Period:
    """`first` to `last`, both included, as whole UTC days; [start_ms, end_ms) in epoch milliseconds."""

    first: date
    last: date

    @property
    def start_ms(self) -> int:
        return (self.first - _EPOCH).days * DAY_MS

    @property
    def end_ms(self) -> int:
        return ((self.last - _EPOCH).days + 1) * DAY_MS


def _day(value: str, field: str) -> date:
    if len(value) != 10:
        raise InvalidPeriod(field, "must be a date, YYYY-MM-DD")
    try:
        parsed = date.fromisoformat(value)
    except ValueError:
        raise InvalidPeriod(field, "must be a date, YYYY-MM-DD") from None
    if parsed < _EPOCH:
        raise InvalidPeriod(field, "must be 1970-01-01 or later")
    return parsed


def period(first: str, last: str) -> Period:
    """The statement period from the `from` and `to` dates; InvalidPeriod naming the bad one."""
    start, end = _day(first, "from"), _day(last, "to")
    if end < start:
        raise InvalidPeriod("to", "must not be before `from`")
    if (end - start).days + 1 > MAX_DAYS:
        raise InvalidPeriod("to", f"a statement covers at most {MAX_DAYS} days")
    return Period(start, end)


def day_of(day_number: int) -> str:
    """The ISO date of a UTC day number (epoch milliseconds // one day)."""
    return (_EPOCH + timedelta(days=day_number)).isoformat()


@dataclass(frozen=True)
class Line:
    date: str
    kind: str
    count: int
    amount_cents: int


@dataclass(frozen=True)
class Statement:
    account: str
    period: Period
    opening_balance_cents: int
    closing_balance_cents: int
    totals: dict[str, int]
    lines: tuple[Line, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "account": self.account,
            "from": self.period.first.isoformat(),
            "to": self.period.last.isoformat(),
            "opening_balance_cents": self.opening_balance_cents,
            "closing_balance_cents": self.closing_balance_cents,
            "totals": dict(self.totals),
            "lines": [
                {"date": ln.date, "kind": ln.kind, "count": ln.count, "amount_cents": ln.amount_cents}
                for ln in self.lines
            ],
        }


def fold(*, account: str, period: Period, opening_balance_cents: int, lines: Iterable[Line]) -> Statement:
    """Lines sorted by day then kind, totals per kind, and closing = opening + every line."""
    ordered = tuple(sorted(lines, key=lambda ln: (ln.date, ln.kind)))
    totals: dict[str, int] = {}
    for ln in ordered:
        totals[ln.kind] = totals.get(ln.kind, 0) + ln.amount_cents
    closing = opening_balance_cents + sum(ln.amount_cents for ln in ordered)
    return Statement(account, period, opening_balance_cents, closing, dict(sorted(totals.items())), ordered)


def as_csv(lines: Iterable[Line]) -> str:
    """The lines as CSV with a header row (RFC 4180 line endings)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADER)
    for ln in lines:
        writer.writerow((ln.date, ln.kind, ln.count, ln.amount_cents))
    return out.getvalue()
