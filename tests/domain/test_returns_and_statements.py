"""The pure rules of returns, payouts and statements: table-driven, with Hypothesis for the invariants
(every transaction sums to zero, a sale is never refunded more than its price, statements add up)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingpost.domain import statements as stm
from pingpost.domain.money import (
    Entry,
    clawback_cents,
    net_by_account,
    payout_entries,
    remainder_reversal_entries,
    return_entries,
    sale_entries,
)
from pingpost.domain.returns import (
    DEFAULT_REASONS,
    ReturnPolicy,
    limit_reached,
    month_of,
    return_limit,
    status_after_return,
    window_open,
)

DAY = 86_400_000


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("payout", "amount", "price", "expected"),
    [
        (7000, 10_000, 10_000, 7000),  # a full return claws back the whole payout
        (7000, 2500, 10_000, 1750),
        (6999, 3334, 9999, 2333),  # 2333.67 rounds down
        (6999, 3333, 9999, 2333),  # exactly a third
        (1, 1, 3, 0),  # 0.33 rounds down to nothing
        (0, 500, 1000, 0),
        (10**12, 10**12, 10**12, 10**12),  # no overflow: Python integers
    ],
)
def test_clawback_is_proportional_and_rounded_down(payout: int, amount: int, price: int, expected: int) -> None:
    assert clawback_cents(payout_cents=payout, amount_cents=amount, price_cents=price) == expected


@pytest.mark.parametrize(("amount", "price"), [(0, 100), (101, 100), (-1, 100), (1, 0)])
def test_a_clawback_needs_a_real_return(amount: int, price: int) -> None:
    with pytest.raises(ValueError):
        clawback_cents(payout_cents=10, amount_cents=amount, price_cents=price)


def test_return_entries_leave_out_zero_amounts() -> None:
    assert return_entries(buyer_id="b", partner_id="p", amount_cents=2500, clawback_cents=0) == [
        Entry("buyer:b", 2500),
        Entry("house:revenue", -2500),
    ]
    assert return_entries(buyer_id="b", partner_id="p", amount_cents=100, clawback_cents=100) == [
        Entry("buyer:b", 100),
        Entry("partner:p", -100),
    ]
    assert payout_entries("p", 500) == [Entry("partner:p", -500), Entry("house:cash", 500)]


@given(
    price=st.integers(1, 10**9),
    payout_share=st.integers(0, 100),
    data=st.data(),
    clawback=st.booleans(),
    returned=st.booleans(),
)
def test_a_sale_its_return_and_its_reversal_net_to_zero(
    price: int, payout_share: int, data: st.DataObject, clawback: bool, returned: bool
) -> None:
    payout = price * payout_share // 100
    sale = sale_entries(buyer_id="b", partner_id="p", price_cents=price, payout_cents=payout)
    refunds: list[Entry] = []
    if returned:
        amount = data.draw(st.integers(1, price))
        back = clawback_cents(payout_cents=payout, amount_cents=amount, price_cents=price) if clawback else 0
        assert 0 <= back <= payout
        refunds = return_entries(buyer_id="b", partner_id="p", amount_cents=amount, clawback_cents=back)
        assert sum(e.amount_cents for e in refunds) == 0
    reversal = remainder_reversal_entries(sale, refunds)
    assert sum(e.amount_cents for e in reversal) == 0
    net = net_by_account([*sale, *refunds, *reversal])
    assert all(v == 0 for v in net.values())
    buyer_refunds = sum(e.amount_cents for e in [*refunds, *reversal] if e.account == "buyer:b")
    assert buyer_refunds == price  # refunded exactly the price, never more


@pytest.mark.parametrize(
    ("sold", "now", "days", "is_open"),
    [
        (0, 0, 0, False),  # 0 days: no returns
        (0, 0, 1, True),
        (0, DAY - 1, 1, True),
        (0, DAY, 1, False),  # the window ends exactly `days` after the sale
        (1000, 1000 + 30 * DAY - 1, 30, True),
    ],
)
def test_the_window(sold: int, now: int, days: int, is_open: bool) -> None:
    assert window_open(sold_at_ms=sold, now_ms=now, window_days=days) is is_open


@pytest.mark.parametrize(
    ("at", "zone", "key", "start", "end"),
    [
        (
            "2026-12-01T03:00:00",
            "America/New_York",
            "2026-11",
            "2026-11-01T04:00:00",
            "2026-12-01T05:00:00",
        ),  # DST ends
        ("2026-12-01T05:00:00", "America/New_York", "2026-12", "2026-12-01T05:00:00", "2027-01-01T05:00:00"),
        ("2026-03-31T23:30:00", "Europe/Paris", "2026-04", "2026-03-31T22:00:00", "2026-04-30T22:00:00"),
        ("2026-12-31T23:59:59", "UTC", "2026-12", "2026-12-01T00:00:00", "2027-01-01T00:00:00"),
    ],
)
def test_the_month_is_the_contracts(at: str, zone: str, key: str, start: str, end: str) -> None:
    month = month_of(ms(at), zone)
    assert (month.key, month.start_ms, month.end_ms) == (key, ms(start), ms(end))


@pytest.mark.parametrize(
    ("sales", "bp", "limit"),
    [
        (10, None, None),
        (10, 1000, 1),
        (9, 1000, 0),
        (3, 5000, 1),
        (0, 10_000, 0),
        (7, 1250, 0),
        (8, 1250, 1),
        (1000, 1, 0),
        (10_000, 1, 1),
    ],
)
def test_the_limit_rounds_down(sales: int, bp: int | None, limit: int | None) -> None:
    assert return_limit(sales=sales, max_return_rate_bp=bp) == limit


def test_one_more_return_must_fit_the_limit() -> None:
    assert not limit_reached(returns=0, sales=10, max_return_rate_bp=1000)
    assert limit_reached(returns=1, sales=10, max_return_rate_bp=1000)
    assert not limit_reached(returns=99, sales=0, max_return_rate_bp=None)


def test_the_policy_read_from_a_contract() -> None:
    assert ReturnPolicy.from_body({}) == ReturnPolicy(0, DEFAULT_REASONS, None, False, True)
    policy = ReturnPolicy.from_body(
        {
            "return_policy": {
                "window_days": 5,
                "reasons": ["x"],
                "max_return_rate_pct": 12.5,
                "auto_approve": True,
                "partner_clawback": False,
            }
        }
    )
    assert policy == ReturnPolicy(5, ("x",), 1250, True, False)
    assert status_after_return(amount_cents=5, price_cents=5) == "returned"
    assert status_after_return(amount_cents=4, price_cents=5) == "partially_returned"


@pytest.mark.parametrize(
    ("first", "last", "field"),
    [
        ("2026-12-02", "2026-12-01", "to"),
        ("2026-1-01", "2026-12-01", "from"),
        ("2026-12-01", "tomorrow", "to"),
        ("1969-12-31", "2026-12-01", "from"),
        ("2025-01-01", "2026-01-02", "to"),
        ("2026-02-30", "2026-03-01", "from"),
    ],
)
def test_bad_periods(first: str, last: str, field: str) -> None:
    with pytest.raises(stm.InvalidPeriod) as caught:
        stm.period(first, last)
    assert caught.value.field == field


def test_a_period_is_whole_utc_days() -> None:
    period = stm.period("2026-12-01", "2026-12-01")
    assert (period.start_ms, period.end_ms) == (ms("2026-12-01T00:00:00"), ms("2026-12-02T00:00:00"))
    assert stm.period("2025-01-01", "2026-01-01").last == date(2026, 1, 1)  # 366 days
    assert stm.day_of(ms("2026-12-01T23:59:59") // DAY) == "2026-12-01"


def test_folding_and_csv() -> None:
    lines = [
        stm.Line("2026-12-02", "sale", 1, -100),
        stm.Line("2026-12-01", "sale", 2, -300),
        stm.Line("2026-12-01", "deposit", 1, 1000),
    ]
    statement = stm.fold(
        account="buyer:b", period=stm.period("2026-12-01", "2026-12-02"), opening_balance_cents=50, lines=lines
    )
    assert [(ln.date, ln.kind) for ln in statement.lines] == [
        ("2026-12-01", "deposit"),
        ("2026-12-01", "sale"),
        ("2026-12-02", "sale"),
    ]
    assert statement.totals == {"deposit": 1000, "sale": -400} and statement.closing_balance_cents == 650
    assert stm.as_csv(statement.lines) == (
        "date,kind,count,amount_cents\r\n2026-12-01,deposit,1,1000\r\n"
        "2026-12-01,sale,2,-300\r\n2026-12-02,sale,1,-100\r\n"
    )


@given(opening=st.integers(-(10**12), 10**12), amounts=st.lists(st.integers(-(10**9), 10**9), max_size=30))
def test_opening_plus_lines_is_closing(opening: int, amounts: list[int]) -> None:
    kinds = ["deposit", "sale", "reversal", "return", "payout"]
    lines = [stm.Line(f"2026-12-{1 + i % 28:02d}", kinds[i % 5], 1, a) for i, a in enumerate(amounts)]
    statement = stm.fold(
        account="partner:p", period=stm.period("2026-12-01", "2026-12-28"), opening_balance_cents=opening, lines=lines
    )
    assert statement.closing_balance_cents == opening + sum(amounts) == opening + sum(statement.totals.values())
