"""The lease sizing rule (docs/scale-out.md): grows with the rate, never more than a share of what is
left of a cap or the funds, never leases the last slots."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pingpost.domain.leases import LeaseSize, lease_size, slots_left


def size(**kw: object) -> LeaseSize:
    args: dict[str, object] = {
        "wins_per_s": 200.0,
        "ttl_ms": 5000,
        "max_slots": 100,
        "slots_left": None,
        "funds_left_cents": 10**9,
        "price_cents": 1000,
    } | kw
    return lease_size(**args)  # type: ignore[arg-type]


def test_a_busy_uncapped_contract_leases_up_to_the_maximum() -> None:
    assert size() == LeaseSize(100, 100_000)
    assert size(wins_per_s=10.0) == LeaseSize(50, 50_000)  # a lifetime of wins


def test_a_quiet_contract_takes_one_slot_at_a_time() -> None:
    assert size(wins_per_s=0.0) == LeaseSize(1, 1000)


def test_near_the_cap_or_the_funds_leases_shrink_then_stop() -> None:
    assert size(slots_left=40).slots == 10
    assert size(slots_left=8).slots == 2
    assert size(slots_left=7) == LeaseSize(1, 1000)
    assert size(funds_left_cents=7_999) == LeaseSize(1, 1000)
    assert size(funds_left_cents=40_000).slots == 10


def test_slots_left_is_the_tightest_capped_period() -> None:
    assert slots_left((10, None, 100), (4, 50, 99)) == 1
    assert slots_left((None, None, None), (1, 2, 3)) is None
    assert slots_left((5, None, None), (9, 0, 0)) == 0


@given(
    rate=st.floats(0, 10_000),
    left=st.none() | st.integers(0, 10_000),
    funds=st.integers(0, 10**8),
    price=st.integers(1, 100_000),
    share=st.integers(2, 8),
)
def test_a_lease_never_takes_more_than_its_share_of_what_is_left(
    rate: float, left: int | None, funds: int, price: int, share: int
) -> None:
    got = size(wins_per_s=rate, slots_left=left, funds_left_cents=funds, price_cents=price, share=share, min_left=2)
    assert 1 <= got.slots <= 100 and got.cents == got.slots * price
    if got.slots > 1:
        assert left is None or got.slots * share <= left
        assert got.slots * price * share <= funds
