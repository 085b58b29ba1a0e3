"""Eligibility rules, pure: filters, schedules, cap periods, funds. `now` is always a parameter."""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any
from zoneinfo import ZoneInfo

from pingpost.domain.model import Contract, FilterRule, Window


def _comparable(a: Any, b: Any) -> bool:
    numeric = (int, float)
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool)
    return (isinstance(a, numeric) and isinstance(b, numeric)) or (isinstance(a, str) and isinstance(b, str))


def _equal(a: Any, b: Any) -> bool:
    return _comparable(a, b) and a == b


def filter_holds(rule: FilterRule, lead: dict[str, Any]) -> bool:
    """True when `rule` holds for `lead`. A missing field fails every op but `exists: false`."""
    if rule.op == "exists":
        return (rule.field in lead) == bool(rule.value)
    if rule.field not in lead:
        return False
    value = lead[rule.field]
    op, target = rule.op, rule.value
    if op == "eq":
        return _equal(value, target)
    if op == "ne":
        return not _equal(value, target)
    if op == "in":
        return any(_equal(value, t) for t in target)
    if op == "not_in":
        return not any(_equal(value, t) for t in target)
    if op == "prefix":
        return isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).startswith(target)
    if op == "between":
        low, high = target
        return _comparable(value, low) and _comparable(value, high) and bool(low <= value <= high)
    if not _comparable(value, target):
        return False
    if op == "gt":
        return bool(value > target)
    if op == "gte":
        return bool(value >= target)
    if op == "lt":
        return bool(value < target)
    if op == "lte":
        return bool(value <= target)
    return False


_ORDERINGS: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def compiled_filter(rule: FilterRule) -> Callable[[dict[str, Any]], bool]:
    """`filter_holds` for one rule as a function of the lead: the ordering ops (the common ones) get a
    direct comparison; every other op goes through `filter_holds` itself."""
    compare = _ORDERINGS.get(rule.op)
    if compare is None:
        return partial(filter_holds, rule)
    name, target = rule.field, rule.value

    def holds(lead: dict[str, Any]) -> bool:
        if name not in lead:
            return False
        value = lead[name]
        return _comparable(value, target) and bool(compare(value, target))

    return holds


def first_failing_filter(contract: Contract, lead: dict[str, Any]) -> str | None:
    """The field of the first filter that fails, or None when all hold."""
    for rule, holds in zip(contract.filters, contract.filter_checks, strict=True):
        if not holds(lead):
            return rule.field
    return None


def local_time(now_ms: int, tz: ZoneInfo) -> datetime:
    return datetime.fromtimestamp(now_ms / 1000, tz)


_MINUTE_CACHE: dict[tuple[ZoneInfo, int], tuple[datetime, PeriodKeys]] = {}


def local_minute(now_ms: int, tz: ZoneInfo) -> tuple[datetime, PeriodKeys]:
    """The local wall clock (to the minute) and cap period keys for `tz` at `now_ms`.

    Schedules and periods change only at minute boundaries in every IANA zone, so the answer is
    cached per zone and UTC minute: 30 contracts in one zone cost one conversion, not 30."""
    minute = now_ms // 60_000
    key = (tz, minute)
    hit = _MINUTE_CACHE.get(key)
    if hit is None:
        local = datetime.fromtimestamp(minute * 60, tz)
        if len(_MINUTE_CACHE) > 4096:
            _MINUTE_CACHE.clear()
        hit = _MINUTE_CACHE[key] = (local, period_keys(local))
    return hit


class PeriodKeysByContract(dict[str, "PeriodKeys"]):
    """Cap period keys per contract id at one instant, computed on first use (most contracts of a
    ping never need theirs: only capped ones and the winners do)."""

    def __init__(self, contracts: Mapping[str, Contract], now_ms: int) -> None:
        super().__init__()
        self._contracts = contracts
        self._now_ms = now_ms

    def __missing__(self, contract_id: str) -> PeriodKeys:
        keys = self[contract_id] = local_minute(self._now_ms, self._contracts[contract_id].tz)[1]
        return keys


def in_schedule(windows: tuple[Window, ...] | None, local: datetime) -> bool:
    """Local wall clock within a window's [start, end); end <= start crosses midnight into the next day."""
    if windows is None:
        return True
    minute = local.hour * 60 + local.minute
    today = local.weekday()
    yesterday = (today - 1) % 7
    for w in windows:
        if w.start_min < w.end_min:
            if today in w.days and w.start_min <= minute < w.end_min:
                return True
        else:
            if today in w.days and minute >= w.start_min:
                return True
            if yesterday in w.days and minute < w.end_min:
                return True
    return False


@dataclass(frozen=True)
class PeriodKeys:
    day: str
    week: str
    month: str


def period_keys(local: datetime) -> PeriodKeys:
    """Cap periods as keys of local calendar dates (never instants): day, the week's Monday, month."""
    day = local.date()
    monday = day - timedelta(days=day.weekday())
    return PeriodKeys(day.isoformat(), monday.isoformat(), f"{day.year:04d}-{day.month:02d}")


@dataclass(slots=True)
class Usage:
    """Current use of a contract's caps (sales + live reservations), keyed to the periods stored.
    Never changed once built (a new one replaces it); not frozen because a frozen dataclass costs
    a microsecond more to build, and the replay builds one per reservation (docs/performance.md)."""

    day_key: str = ""
    day_used: int = 0
    week_key: str = ""
    week_used: int = 0
    month_key: str = ""
    month_used: int = 0
    live_calls: int = 0
    # spend (cents) in the same periods: reservations hold their price until released or sold
    day_spent: int = 0
    week_spent: int = 0
    month_spent: int = 0


def cap_reached(contract: Contract, usage: Usage, keys: PeriodKeys) -> str | None:
    """The first cap period that is full ('daily', 'weekly', 'monthly'), or None."""
    cap = contract.daily_cap
    if cap is not None and (usage.day_used if usage.day_key == keys.day else 0) >= cap:
        return "daily"
    cap = contract.weekly_cap
    if cap is not None and (usage.week_used if usage.week_key == keys.week else 0) >= cap:
        return "weekly"
    cap = contract.monthly_cap
    if cap is not None and (usage.month_used if usage.month_key == keys.month else 0) >= cap:
        return "monthly"
    return None


def spend_cap_reached(
    caps: tuple[int | None, int | None, int | None],
    stored: tuple[str, str, str],
    spent: tuple[int, int, int],
    keys: PeriodKeys,
    price: int,
) -> str | None:
    """The first spend cap (`spend_daily`, `spend_weekly`, `spend_monthly`) that `price` more would pass,
    counting what is stored only when it is of the current period, or None."""
    current = (keys.day, keys.week, keys.month)
    for name, cap, key, used, now_key in zip(SPEND_PERIODS, caps, stored, spent, current, strict=True):
        if cap is not None and (used if key == now_key else 0) + price > cap:
            return name
    return None


SPEND_PERIODS = ("spend_daily", "spend_weekly", "spend_monthly")


def available_cents(*, balance_cents: int, credit_limit_cents: int, holds_cents: int) -> int:
    return balance_cents + credit_limit_cents - holds_cents


def is_duplicate(contract: Contract, last_sold_ms: int | None, now_ms: int) -> bool:
    """The buyer bought this consumer within the contract's dedup window (0 days = off)."""
    if contract.dedup_days == 0 or last_sold_ms is None:
        return False
    return now_ms - last_sold_ms < contract.dedup_days * 86_400_000


@dataclass(frozen=True, slots=True)
class Suppression:
    """The suppression lists a consumer's keyed hashes are on (docs/protocol.md, Traffic controls)."""

    lists: frozenset[str] = frozenset()
    global_hit: bool = False  # on a global list: every contract

    def applies(self, c: Contract) -> bool:
        """Every global list, and the lists the contract names (a buyer's list applies where one of its
        contracts names it)."""
        return self.global_hit or (bool(c.suppression_lists) and not self.lists.isdisjoint(c.suppression_lists))

    def __bool__(self) -> bool:
        return bool(self.lists)


NO_SUPPRESSION = Suppression()


def with_source(lead: dict[str, Any], source: str | None) -> dict[str, Any]:
    """The lead as contract filters see it: its fields plus the ping's `source` (docs/protocol.md,
    Traffic controls)."""
    return {**lead, "source": source} if source is not None else lead
