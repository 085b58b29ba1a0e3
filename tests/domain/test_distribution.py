"""Distribution rules (SPEC section 4) as tables, and Hypothesis properties of winner selection."""

from __future__ import annotations

import asyncio
from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from pingpost.domain.distribution import Candidate, Choice, Plan, Rule, plan, select_winners


def cand(
    cid: str, buyer: str, price: int | None, *, excl: int | None = None, prio: int = 100, weight: int = 1
) -> Candidate:
    return Candidate(cid, buyer, prio, weight, price, excl if excl is not None else price)


def run(p: Plan, full: frozenset[str] = frozenset()) -> tuple[list[Choice], dict[str, tuple[str, str | None]]]:
    async def reserve(choice: Choice, standby: bool) -> tuple[str, str] | None:
        return ("cap_reached", "reserved_concurrently") if choice.candidate.contract_id in full else None

    winners, _, outcomes = asyncio.run(select_winners(p, reserve))
    return winners, outcomes


CANDS = [cand("a", "A", 8500), cand("b", "B", 7200), cand("c", "C", 9100, excl=9500), cand("d", "D", 9100, prio=1)]


def winners_of(p: Plan, full: frozenset[str] = frozenset()) -> list[tuple[str, str, int]]:
    return [(w.candidate.contract_id, w.sale_type, w.price_cents) for w in run(p, full)[0]]


def test_exclusive_takes_highest_exclusive_bid() -> None:
    p = plan(Rule("exclusive", 3), channel="form", candidates=CANDS)
    assert winners_of(p) == [("c", "exclusive", 9500)]
    # the winner lost its reservation race: the next bid is tried
    assert winners_of(p, frozenset({"c"})) == [("d", "exclusive", 9100)]
    _, outcomes = run(p)
    assert outcomes["a"] == ("lost_to_higher_bid", None)


def test_multisell_ties_break_by_priority_then_id() -> None:
    p = plan(Rule("multisell", 2), channel="form", candidates=CANDS)
    assert winners_of(p) == [("d", "shared", 9100), ("c", "shared", 9100)]


def test_hybrid_branches() -> None:
    high = plan(Rule("hybrid", 3, 9500), channel="form", candidates=CANDS)
    assert winners_of(high) == [("c", "exclusive", 9500)]
    low = plan(Rule("hybrid", 3, 9600), channel="form", candidates=CANDS)
    assert [w[0] for w in winners_of(low)] == ["d", "c", "a"]


def test_priority_and_single_winner_is_exclusive() -> None:
    p = plan(Rule("priority", 1), channel="form", candidates=CANDS)
    assert winners_of(p) == [("d", "exclusive", 9100)]
    p = plan(Rule("priority", 2), channel="form", candidates=CANDS)
    assert winners_of(p) == [("d", "shared", 9100), ("c", "shared", 9100)]


def test_round_robin_wraps_after_pointer() -> None:
    keys = sorted(c.rank_key for c in CANDS)  # d (priority 1) first, then a, b, c
    for i, last in enumerate(["", *keys]):
        p = plan(Rule("round_robin", 1), channel="form", candidates=CANDS, rr_last_key=last)
        start = i % len(keys)
        assert [c.rank_key for c, _, _ in p.order] == keys[start:] + keys[:start]
    assert winners_of(plan(Rule("round_robin", 1), channel="form", candidates=CANDS, rr_last_key=keys[0]))[0][0] == "a"


def test_calls_are_always_exclusive_with_standbys() -> None:
    p = plan(Rule("multisell", 3), channel="call", candidates=CANDS)
    assert winners_of(p) == [("c", "exclusive", 9500)]

    async def reserve(choice: Choice, standby: bool) -> tuple[str, str] | None:
        return ("cap_reached", "reserved_concurrently") if choice.candidate.contract_id == "d" else None

    winners, standbys, outcomes = asyncio.run(select_winners(p, reserve, standby=2))
    assert [w.candidate.contract_id for w in winners] == ["c"]
    assert [s.candidate.contract_id for s in standbys] == ["a", "b"]
    assert outcomes == {"d": ("cap_reached", "reserved_concurrently")}


def test_weighted_follows_weights() -> None:
    cands = [cand("a", "A", 100, weight=8), cand("b", "B", 100, weight=2)]
    firsts = Counter(
        plan(Rule("weighted", 1), channel="form", candidates=cands, seed=f"png_{i}").order[0][0].contract_id
        for i in range(2000)
    )
    assert 0.74 < firsts["a"] / 2000 < 0.86


def test_weighted_is_deterministic_per_ping() -> None:
    """The draw is seeded by the ping id: the same ping draws the same order (a replay reproduces it),
    other pings draw afresh (docs/replay.md)."""
    cands = [cand(c, c.upper(), 100, weight=w) for c, w in (("a", 3), ("b", 2), ("c", 1))]

    def order(seed: str) -> list[str]:
        p = plan(Rule("weighted", 3), channel="form", candidates=cands, seed=seed)
        return [c.contract_id for c, _, _ in p.order]

    assert all(order(f"png_{i}") == order(f"png_{i}") for i in range(50))
    assert len({tuple(order(f"png_{i}")) for i in range(50)}) > 1


candidates_st = st.lists(
    st.builds(
        cand,
        cid=st.text("abcdefgh", min_size=1, max_size=3),
        buyer=st.sampled_from("ABCD"),
        price=st.one_of(st.none(), st.integers(1, 20_000)),
        excl=st.one_of(st.none(), st.integers(1, 30_000)),
        prio=st.integers(1, 5),
        weight=st.integers(1, 10),
    ),
    max_size=12,
    unique_by=lambda c: c.contract_id,
)


@given(
    cands=candidates_st,
    rule=st.sampled_from(["exclusive", "multisell", "hybrid", "priority", "weighted", "round_robin"]),
    max_winners=st.integers(1, 5),
    full=st.frozensets(st.text("abcdefgh", min_size=1, max_size=3), max_size=4),
    channel=st.sampled_from(["form", "call"]),
    floor=st.integers(0, 30_000),
    seed=st.integers(0, 100),
)
def test_selection_properties(
    cands: list[Candidate], rule: str, max_winners: int, full: frozenset[str], channel: str, floor: int, seed: int
) -> None:
    p = plan(Rule(rule, max_winners, floor), channel=channel, candidates=cands, seed=str(seed))
    winners, outcomes = run(p, full)
    ids = [w.candidate.contract_id for w in winners]
    assert len(winners) <= p.max_winners <= max_winners
    assert len({w.candidate.buyer_id for w in winners}) == len(winners)  # one per buyer
    assert not set(ids) & full  # a full cap never wins
    assert not set(ids) & set(outcomes)  # every candidate has exactly one result
    if channel == "call" or rule == "exclusive":
        assert len(winners) <= 1 and all(w.sale_type == "exclusive" for w in winners)
    # nobody left out while a slot was free and a candidate of a new buyer could be reserved
    if len(winners) < p.max_winners:
        won_buyers = {w.candidate.buyer_id for w in winners}
        for c, _, _ in p.order:
            if c.contract_id not in full and c.contract_id not in ids:
                assert c.buyer_id in won_buyers
