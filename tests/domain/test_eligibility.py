"""Eligibility rules as tables: filters, schedules (DST included), cap periods, dedup."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingpost.domain.eligibility import (
    PeriodKeys,
    Usage,
    cap_reached,
    compiled_filter,
    filter_holds,
    in_schedule,
    is_duplicate,
    local_time,
    period_keys,
)
from pingpost.domain.model import Contract, FilterRule, Window

LEAD = {"state": "FL", "zip": "33109", "age": 67, "smoker": False, "coverage": "none", "date": "2026-01-15"}


@pytest.mark.parametrize(
    ("field", "op", "value", "holds"),
    [
        ("state", "eq", "FL", True),
        ("state", "eq", "fl", False),
        ("age", "eq", 67, True),
        ("age", "eq", "67", False),
        ("state", "ne", "TX", True),
        ("state", "ne", "FL", False),
        ("missing", "ne", "TX", False),
        ("state", "in", ["FL", "GA"], True),
        ("state", "in", ["TX"], False),
        ("state", "not_in", ["TX"], True),
        ("state", "not_in", ["FL"], False),
        ("missing", "not_in", ["FL"], False),
        ("age", "gt", 66, True),
        ("age", "gt", 67, False),
        ("age", "gte", 67, True),
        ("age", "lt", 67, False),
        ("age", "lte", 67, True),
        ("age", "gt", "66", False),
        ("date", "gte", "2026-01-01", True),
        ("age", "between", [65, 67], True),
        ("age", "between", [67, 80], True),
        ("age", "between", [68, 80], False),
        ("zip", "prefix", "331", True),
        ("zip", "prefix", "34", False),
        ("state", "exists", True, True),
        ("missing", "exists", False, True),
        ("missing", "exists", True, False),
        ("state", "exists", False, False),
        ("missing", "eq", "x", False),
        ("missing", "between", [1, 2], False),
        ("smoker", "eq", False, True),
        ("smoker", "eq", 0, False),
        ("age", "in", [True], False),
    ],
)
def test_filters(field: str, op: str, value: Any, holds: bool) -> None:
    assert filter_holds(FilterRule(field, op, value), LEAD) is holds
    assert compiled_filter(FilterRule(field, op, value))(LEAD) is holds


_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-5, 5, allow_nan=False),
    st.sampled_from(["", "a", "b", "3", "2026-01-01"]),
)


@given(
    op=st.sampled_from(["gt", "gte", "lt", "lte", "eq", "ne", "prefix", "exists"]),
    target=_VALUES,
    value=_VALUES,
    present=st.booleans(),
)
def test_compiled_filters_agree_with_filter_holds(op: str, target: Any, value: Any, present: bool) -> None:
    lead = {"x": value} if present else {}
    rule = FilterRule("x", op, target)
    try:
        expected: object = filter_holds(rule, lead)
    except TypeError:
        expected = TypeError
    try:
        got: object = compiled_filter(rule)(lead)
    except TypeError:
        got = TypeError
    assert got == expected


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


NY = ZoneInfo("America/New_York")
WEEKDAYS_9_TO_5 = (Window(frozenset(range(5)), 9 * 60, 17 * 60),)
OVERNIGHT_FRI = (Window(frozenset({4}), 22 * 60, 2 * 60),)


@pytest.mark.parametrize(
    ("utc", "windows", "open_"),
    [
        # 13:30 UTC is 08:30 EST before the 2026-03-08 DST change and 09:30 EDT after it.
        ("2026-03-06T13:30:00", WEEKDAYS_9_TO_5, False),
        ("2026-03-09T13:30:00", WEEKDAYS_9_TO_5, True),
        ("2026-03-09T20:59:00", WEEKDAYS_9_TO_5, True),
        ("2026-03-09T21:00:00", WEEKDAYS_9_TO_5, False),  # 17:00 EDT: end is exclusive
        ("2026-11-02T14:00:00", WEEKDAYS_9_TO_5, True),  # 09:00 EST after fall back: start is inclusive
        ("2026-11-02T13:59:00", WEEKDAYS_9_TO_5, False),
        ("2026-03-07T15:00:00", WEEKDAYS_9_TO_5, False),  # Saturday
        ("2026-03-07T03:30:00", OVERNIGHT_FRI, True),  # Fri 22:30 EST
        ("2026-03-07T06:59:00", OVERNIGHT_FRI, True),  # Sat 01:59 EST, the window crosses midnight
        ("2026-03-07T07:00:00", OVERNIGHT_FRI, False),  # Sat 02:00
        ("2026-03-06T07:30:00", OVERNIGHT_FRI, False),  # Fri 02:30: the window opens Friday night
    ],
)
def test_schedule_in_local_time(utc: str, windows: tuple[Window, ...], open_: bool) -> None:
    assert in_schedule(windows, local_time(_ms(utc), NY)) is open_


def test_no_schedule_is_always_open() -> None:
    assert in_schedule(None, local_time(_ms("2026-03-08T07:30:00"), NY))


@pytest.mark.parametrize(
    ("utc", "zone", "keys"),
    [
        ("2026-03-09T03:59:00", "America/New_York", PeriodKeys("2026-03-08", "2026-03-02", "2026-03")),
        ("2026-03-09T04:00:00", "America/New_York", PeriodKeys("2026-03-09", "2026-03-09", "2026-03")),
        ("2026-11-01T04:30:00", "America/New_York", PeriodKeys("2026-11-01", "2026-10-26", "2026-11")),
        ("2026-10-31T23:30:00", "UTC", PeriodKeys("2026-10-31", "2026-10-26", "2026-10")),
        ("2026-12-31T23:30:00", "Pacific/Auckland", PeriodKeys("2027-01-01", "2026-12-28", "2027-01")),
    ],
)
def test_period_keys_follow_local_calendar(utc: str, zone: str, keys: PeriodKeys) -> None:
    assert period_keys(local_time(_ms(utc), ZoneInfo(zone))) == keys


def _contract(**caps: Any) -> Contract:
    return Contract.from_body(
        "c",
        {
            "name": "c",
            "buyer": "b",
            "offer": "o",
            "status": "active",
            "price_cents": 1,
            "caps": caps,
            "dedup_days": caps.pop("dedup_days", 30),
        },
    )


def test_caps_count_only_the_current_period() -> None:
    keys = PeriodKeys("2026-03-09", "2026-03-09", "2026-03")
    c = _contract(daily=2, monthly=5)
    assert cap_reached(c, Usage("2026-03-09", 1, "2026-03-09", 1, "2026-03", 1), keys) is None
    assert cap_reached(c, Usage("2026-03-09", 2, "2026-03-09", 2, "2026-03", 2), keys) == "daily"
    assert cap_reached(c, Usage("2026-03-08", 2, "2026-03-09", 5, "2026-03", 5), keys) == "monthly"
    assert cap_reached(c, Usage("2026-03-08", 2, "2026-03-02", 9, "2026-02", 9), keys) is None
    assert cap_reached(_contract(), Usage("2026-03-09", 10**6), keys) is None


def test_dedup_window() -> None:
    day = 86_400_000
    assert is_duplicate(_contract(dedup_days=30), 0, 29 * day)
    assert not is_duplicate(_contract(dedup_days=30), 0, 30 * day)
    assert not is_duplicate(_contract(dedup_days=0), 0, 1)
    assert not is_duplicate(_contract(dedup_days=30), None, 1)
