"""Distribution rules, pure (docs/protocol.md): which candidates to try, in which order.

The service reserves candidates in the order answered here and stops at `max_winners`, so a
candidate that loses a reservation race is replaced by the next one.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass


@dataclass(slots=True)
class Candidate:
    contract_id: str
    buyer_id: str
    priority: int
    weight: int
    shared_cents: int | None  # ordinary bid, when it passed every check at that price
    exclusive_cents: int | None  # exclusive bid, when it passed every check at that price
    rank_factor_pct: int = 100  # multiplies the bid for ranking only; the charge is the bid

    @property
    def rank_key(self) -> str:
        return f"{self.priority:010d}:{self.contract_id}"


@dataclass(frozen=True, slots=True)
class Rule:
    """An offer's distribution settings: the rule's name, at most how many winners, and the price an
    exclusive bid must reach for `hybrid` to sell exclusively."""

    name: str
    max_winners: int = 1
    hybrid_floor_cents: int = 0


@dataclass(frozen=True)
class Plan:
    """Candidates in the order to try, each with the sale type and the price it would be sold at."""

    order: list[tuple[Candidate, str, int]]
    max_winners: int
    price_ranked: bool  # losers are lost_to_higher_bid (price rules) or not_selected
    kind: str | None = None  # the sale type every winner gets, when there is one ("exclusive", "shared")


def sale_types(rule: str, max_winners: int, channel: str) -> tuple[str, ...]:
    """The sale types whose price checks matter for this offer."""
    if channel in ("call", "callback") or rule == "exclusive":
        return ("exclusive",)
    if rule == "multisell":
        return ("shared",)
    if rule == "hybrid":
        return ("exclusive", "shared")
    return ("exclusive",) if max_winners == 1 else ("shared",)


def _by_price(cands: Sequence[Candidate], kind: str) -> list[Candidate]:
    # ranked by bid x rank_factor_pct (integers: exact), then priority, then id (unique: the candidate
    # itself is never compared)
    exclusive = kind == "exclusive"
    keyed = []
    for c in cands:
        value = c.exclusive_cents if exclusive else c.shared_cents
        if value is not None and value >= 0:
            keyed.append((-value * c.rank_factor_pct, c.priority, c.contract_id, c))
    keyed.sort()
    return [k[3] for k in keyed]


def _priced(cands: Sequence[Candidate], kind: str) -> list[tuple[Candidate, str, int]]:
    out = []
    exclusive = kind == "exclusive"
    for c in cands:
        price = c.exclusive_cents if exclusive else c.shared_cents
        if price is not None:
            out.append((c, kind, price))
    return out


def plan(
    rule: Rule,
    *,
    channel: str,
    candidates: Sequence[Candidate],
    rr_last_key: str = "",
    seed: str = "",
) -> Plan:
    """Order the candidates to try under `rule`. `seed` (the ping id) makes the weighted rule's draw
    reproducible: a replay of the ping draws the same order (docs/replay.md)."""
    name, max_winners, floor = rule.name, rule.max_winners, rule.hybrid_floor_cents
    if channel in ("call", "callback"):
        return Plan(_priced(_by_price(candidates, "exclusive"), "exclusive"), 1, True, "exclusive")
    if name == "exclusive":
        return Plan(_priced(_by_price(candidates, "exclusive"), "exclusive"), 1, True, "exclusive")
    if name == "multisell":
        return Plan(_priced(_by_price(candidates, "shared"), "shared"), max_winners, True, "shared")
    if name == "hybrid":
        exclusive = _by_price(candidates, "exclusive")
        if exclusive and (exclusive[0].exclusive_cents or 0) >= floor:
            # The exclusive branch: if that winner loses its reservation race the next exclusive
            # bid above the floor is tried; shared bids are tried only when none is left.
            above = [c for c in exclusive if (c.exclusive_cents or 0) >= floor]
            return Plan(_priced(above, "exclusive"), 1, True, "exclusive")
        return Plan(_priced(_by_price(candidates, "shared"), "shared"), max_winners, True, "shared")
    kind = "exclusive" if max_winners == 1 else "shared"
    usable = [c for c in candidates if (c.exclusive_cents if kind == "exclusive" else c.shared_cents) is not None]
    if name == "priority":
        ordered = sorted(
            usable,
            key=lambda c: (
                c.priority,
                -((c.exclusive_cents if kind == "exclusive" else c.shared_cents) or 0) * c.rank_factor_pct,
                c.contract_id,
            ),
        )
    elif name == "weighted":
        ordered = weighted_order(usable, random.Random(seed))
    elif name == "round_robin":
        ordered = round_robin_order(usable, rr_last_key)
    else:
        raise ValueError(f"unknown distribution rule {name}")
    return Plan(_priced(ordered, kind), max_winners, False, kind)


def weighted_order(cands: Sequence[Candidate], rng: random.Random) -> list[Candidate]:
    """Random order by weight, without replacement (Efraimidis-Spirakis keys, integer weights)."""
    stable = sorted(cands, key=lambda c: c.rank_key)
    keyed = [(rng.random() ** (1.0 / c.weight), c) for c in stable]
    return [c for _, c in sorted(keyed, key=lambda kc: -kc[0])]


def round_robin_order(cands: Sequence[Candidate], last_key: str) -> list[Candidate]:
    """Stable (priority, id) order, starting after the pointer and wrapping around."""
    stable = sorted(cands, key=lambda c: c.rank_key)
    after = [c for c in stable if c.rank_key > last_key]
    before = [c for c in stable if c.rank_key <= last_key]
    return after + before


@dataclass(slots=True)
class Choice:
    candidate: Candidate
    sale_type: str
    price_cents: int


Selection = tuple[list[Choice], list[Choice], dict[str, tuple[str, str | None]]]
Reserve = Callable[[Choice, bool], tuple[str, str] | None]


def selection(
    chosen_plan: Plan, *, standby: int = 0
) -> Generator[tuple[Choice, bool], tuple[str, str] | None, Selection]:
    """Reserve in plan order until `max_winners`, one winning contract per buyer, then up to
    `standby` runners-up of other buyers (calls ring them if the winner fails).

    Yields each (choice, is_standby) to reserve and is sent None when the reservation was taken, else
    (outcome, detail). Returns the winners, the standbys and, for every other candidate, its (outcome,
    detail). The ping path drives it with the database (`select_winners`), a replay in memory
    (`select_winners_now`): one rule, two drivers."""
    winners: list[Choice] = []
    standbys: list[Choice] = []
    outcomes: dict[str, tuple[str, str | None]] = {}
    buyers_taken: set[str] = set()
    chosen: set[str] = set()
    for cand, kind, price in chosen_plan.order:
        if cand.contract_id in outcomes or cand.contract_id in chosen:
            continue
        full = len(winners) >= chosen_plan.max_winners
        if full and len(standbys) >= standby:
            outcomes[cand.contract_id] = (
                ("lost_to_higher_bid", None) if chosen_plan.price_ranked else ("not_selected", None)
            )
            continue
        if cand.buyer_id in buyers_taken:
            outcomes[cand.contract_id] = ("not_selected", "one_per_buyer")
            continue
        choice = Choice(cand, kind, price)
        failure = yield choice, full
        if failure is None:
            (standbys if full else winners).append(choice)
            buyers_taken.add(cand.buyer_id)
            chosen.add(cand.contract_id)
        else:
            outcomes[cand.contract_id] = failure
    return winners, standbys, outcomes


async def select_winners(
    chosen_plan: Plan,
    try_reserve: Callable[[Choice, bool], Awaitable[tuple[str, str] | None]],
    *,
    standby: int = 0,
) -> Selection:
    """`selection` with `try_reserve(choice, is_standby)` awaited for each reservation."""
    steps = selection(chosen_plan, standby=standby)
    try:
        request = next(steps)
        while True:
            request = steps.send(await try_reserve(*request))
    except StopIteration as done:
        result: Selection = done.value
        return result


def select_winners_now(chosen_plan: Plan, reserve: Reserve, *, standby: int = 0) -> Selection:
    """`selection` with a reserve step that answers at once (a replay's, in memory)."""
    steps = selection(chosen_plan, standby=standby)
    try:
        request = next(steps)
        while True:
            request = steps.send(reserve(*request))
    except StopIteration as done:
        result: Selection = done.value
        return result
