"""Returns, pure: a contract's return policy, the return window, the monthly rate limit and what a
return may ask for. `now` and the counts are parameters (docs/protocol.md, Returns)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from pingpost.domain.money import percent_basis_points

DAY_MS = 86_400_000
DEFAULT_REASONS = ("disconnected", "wrong_number", "duplicate", "not_interested", "fraud", "other")

# Sale statuses: `charged` may be returned; what a return or a reversal leaves behind.
RETURNABLE = frozenset({"charged"})
RETURNED = "returned"
PARTIALLY_RETURNED = "partially_returned"
# The sales a buyer paid for and kept paying for: what the monthly return rate is a share of.
BILLED = ("charged", RETURNED, PARTIALLY_RETURNED)


@dataclass(frozen=True)
class ReturnPolicy:
    window_days: int = 0
    reasons: tuple[str, ...] = DEFAULT_REASONS
    max_return_rate_bp: int | None = None  # basis points of the month's sales; None = no limit
    auto_approve: bool = False
    partner_clawback: bool = True

    @classmethod
    def from_body(cls, contract_body: Mapping[str, Any]) -> ReturnPolicy:
        """The policy stored in a contract's body; a contract stored without one takes no returns."""
        raw = contract_body.get("return_policy") or {}
        rate = raw.get("max_return_rate_pct")
        return cls(
            window_days=int(raw.get("window_days", 0)),
            reasons=tuple(raw.get("reasons") or DEFAULT_REASONS),
            max_return_rate_bp=None if rate is None else percent_basis_points(rate),
            auto_approve=bool(raw.get("auto_approve", False)),
            partner_clawback=bool(raw.get("partner_clawback", True)),
        )


def window_open(*, sold_at_ms: int, now_ms: int, window_days: int) -> bool:
    """A return may be opened until `window_days` whole days after the sale (0 days: never)."""
    return window_days > 0 and now_ms < sold_at_ms + window_days * DAY_MS


@dataclass(frozen=True)
class Month:
    key: str  # "2026-11", in the contract's time zone
    start_ms: int
    end_ms: int  # exclusive


def month_of(at_ms: int, timezone: str) -> Month:
    """The calendar month holding `at_ms` in `timezone`, with its bounds as epoch milliseconds."""
    local = datetime.fromtimestamp(at_ms / 1000, UTC).astimezone(ZoneInfo(timezone))
    # Wall times in a ZoneInfo zone: each bound takes the UTC offset in force at that instant (DST).
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0, fold=0)
    end = start.replace(year=start.year + 1, month=1) if start.month == 12 else start.replace(month=start.month + 1)
    return Month(f"{start.year:04d}-{start.month:02d}", int(start.timestamp() * 1000), int(end.timestamp() * 1000))


def return_limit(*, sales: int, max_return_rate_bp: int | None) -> int | None:
    """How many pending and approved returns a month's `sales` allow: the rate's share, rounded down."""
    if max_return_rate_bp is None:
        return None
    return sales * max_return_rate_bp // 10_000


def limit_reached(*, returns: int, sales: int, max_return_rate_bp: int | None) -> bool:
    """Whether one more return would go over the month's limit (`returns` already pending or approved)."""
    limit = return_limit(sales=sales, max_return_rate_bp=max_return_rate_bp)
    return limit is not None and returns + 1 > limit


def status_after_return(*, amount_cents: int, price_cents: int) -> str:
    """The sale's status once a return of `amount_cents` is approved."""
    return RETURNED if amount_cents == price_cents else PARTIALLY_RETURNED
