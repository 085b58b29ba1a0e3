"""The auction's rules as functions of data: why each contract won or lost, in one file.
Over 450 lines since the traffic controls: every check, in its order, stays in this one file.

A ping's lines (one per contract of the offer) go through, in the order of docs/protocol.md:
1. `config_outcomes`: contract paused, buyer paused, channel (configuration alone, memoised);
2. `pre_state_checks`: schedule, filters, the RTB contract's required fields;
3. `state_checks` against what was read: dedup, caps, live calls, funds;
4. the bids (fixed prices, or RTB answers the service collected), then `price_checks`: the bid's
   own outcome, minimum bid, then at each price that could be charged floor, funds, margin (negative,
   then under the offer's minimum), partner minimum and a call's transfer (`check_prices`);
5. `static_fallback` when nothing is left;
6. distribution (`domain/distribution.py`) picks the winners; `settle_lines` writes `won`,
   `standby`, `lost_to_higher_bid`, `not_selected` and the races lost while reserving.
Nothing here reads a clock, a database or the network: `now`, the state read and the bids are
parameters, so the ping path, direct post, calls and replay share one set of rules.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pingpost.domain import distribution
from pingpost.domain.eligibility import (
    NO_SUPPRESSION,
    PeriodKeysByContract,
    Suppression,
    Usage,
    cap_reached,
    first_failing_filter,
    in_schedule,
    is_duplicate,
    local_minute,
    spend_cap_reached,
)
from pingpost.domain.model import BidResult, Buyer, Contract, Offer, Snapshot
from pingpost.domain.money import payout_cents, payout_rule
from pingpost.domain.outcomes import Outcome

RTB_FAILURES = (Outcome.BID_TIMEOUT, Outcome.BID_ERROR, Outcome.BID_INVALID)
VOICE_CHANNELS = frozenset({"call", "callback"})


def is_voice(channel: str) -> bool:
    """Calls and callbacks: live-call slots, transfers, standbys."""
    return channel in VOICE_CHANNELS


@dataclass
class Funds:
    balance_cents: int
    credit_limit_cents: int
    holds_cents: int
    # the buyer's spend caps and their counters, in its own time zone's periods
    spend_caps: tuple[int | None, int | None, int | None] = (None, None, None)
    spend_keys: tuple[str, str, str] = ("", "", "")
    spent: tuple[int, int, int] = (0, 0, 0)

    @property
    def available_cents(self) -> int:
        return self.balance_cents + self.credit_limit_cents - self.holds_cents


@dataclass
class AuctionState:
    """What one ping's decision read: usage, funds, dedup and the configuration version."""

    config_version: int = 0
    usage: dict[str, Usage] = field(default_factory=dict)
    funds: dict[str, Funds] = field(default_factory=dict)
    last_sold: dict[str, int] = field(default_factory=dict)  # buyer -> latest sale of this consumer
    rate_used: int = 0  # the campaign's pings in the current one-second window
    now: int = 0  # when it was read (spend periods)
    suppressed: Suppression = NO_SUPPRESSION  # the lists the consumer is on


@dataclass(frozen=True)
class Terms:
    """What the price checks of one auction compare against."""

    offer: Offer
    payout: dict[str, Any]
    channel: str
    min_payout: int
    kinds: tuple[str, ...]
    buyers: Mapping[str, Buyer] = field(default_factory=dict)  # spend caps in the buyer's time zone


@dataclass(slots=True)
class Line:
    """One contract's line in the waterfall while the auction runs."""

    contract: Contract
    outcome: str | None = None
    detail: str | None = None
    bid: BidResult | None = None
    source: str | None = None
    shared_cents: int | None = None
    exclusive_cents: int | None = None
    bid_id: str | None = None
    sale_type: str | None = None
    charged_cents: int | None = None
    reservation_id: str | None = None
    # by sale type; None until a price check fails (most lines never need one: a ping makes 30 lines)
    price_failures: dict[str, tuple[Outcome, str | None]] | None = None

    def fail(self, outcome: Outcome, detail: str | None = None) -> None:
        self.outcome, self.detail = outcome.value, detail

    def saved(self) -> tuple[Any, ...]:
        """What a write unit may change, so a retried unit starts from the same line (docs/crash-safety.md)."""
        return (
            self.outcome,
            self.detail,
            self.bid,
            self.source,
            self.shared_cents,
            self.exclusive_cents,
            self.bid_id,
            self.sale_type,
            self.charged_cents,
            self.reservation_id,
            dict(self.price_failures) if self.price_failures else None,
        )

    def restore(self, saved: tuple[Any, ...]) -> None:
        (
            self.outcome,
            self.detail,
            self.bid,
            self.source,
            self.shared_cents,
            self.exclusive_cents,
            self.bid_id,
            self.sale_type,
            self.charged_cents,
            self.reservation_id,
            failures,
        ) = saved
        self.price_failures = dict(failures) if failures else None

    def entry(self) -> dict[str, Any]:
        """The stored waterfall entry: only the keys that have a value (`waterfall_entry` restores the rest)."""
        entry: dict[str, Any] = {
            "contract_id": self.contract.id,
            "buyer_id": self.contract.buyer_id,
            "outcome": self.outcome,
        }
        if self.detail is not None:
            entry["detail"] = self.detail
        bid = self.bid
        bid_cents = (
            self.charged_cents if self.charged_cents is not None else (bid.bid_cents if bid is not None else None)
        )
        if bid_cents is None and self.source == "static_fallback":  # a fallback bid that lost shows its price
            bid_cents = self.shared_cents if self.shared_cents is not None else self.exclusive_cents
        if bid_cents is not None:
            entry["bid_cents"] = bid_cents
        if self.source is not None:
            entry["source"] = self.source
        if bid is not None and bid.latency_ms is not None:
            entry["rtb_latency_ms"] = bid.latency_ms
        if self.bid_id is not None:
            entry["bid_id"] = self.bid_id
        if self.sale_type is not None:
            entry["sale_type"] = self.sale_type
        return entry


# --- eligibility: configuration, then what is read (the order of docs/protocol.md) ---


def pre_state_checks(
    snap: Snapshot, lines: list[Line], lead: dict[str, Any], channel: str, now: int
) -> PeriodKeysByContract:
    """The checks before any state is read, in the order of docs/protocol.md; answers the cap period keys (lazily)."""
    offer_id = lines[0].contract.offer_id if lines else ""
    for line, fixed in zip(lines, config_outcomes(snap, offer_id, channel), strict=True):
        if fixed is not None:
            line.fail(*fixed)
            continue
        c = line.contract
        if c.windows is not None and not in_schedule(c.windows, local := local_minute(now, c.tz)[0]):
            line.fail(Outcome.OUTSIDE_SCHEDULE, local.strftime("%a %H:%M").lower())
        elif c.filters and (failing := first_failing_filter(c, lead)) is not None:
            line.fail(Outcome.FILTER_MISMATCH, failing)
        elif c.rtb and (missing := [f for f in c.rtb.get("required_fields") or [] if f not in lead]):
            line.fail(Outcome.MISSING_REQUIRED_FIELDS, ",".join(missing))
    return PeriodKeysByContract(snap.contracts, now)


def state_checks(lines: list[Line], state: AuctionState, keys: PeriodKeysByContract, channel: str, now: int) -> None:
    calls = is_voice(channel)
    usage_of, funds_of, last_sold = state.usage.get, state.funds.get, state.last_sold
    suppressed = state.suppressed if state.suppressed else None
    for line in lines:
        c = line.contract
        if c.dedup_days and last_sold and is_duplicate(c, last_sold.get(c.buyer_id), now):
            line.fail(Outcome.DUPLICATE)
        elif suppressed is not None and suppressed.applies(c):
            line.fail(Outcome.SUPPRESSED)
        elif c.capped and (period := cap_reached(c, usage_of(c.id, _NO_USAGE), keys[c.id])) is not None:
            line.fail(Outcome.CAP_REACHED, period)
        elif (
            calls
            and c.max_concurrent_calls is not None
            and usage_of(c.id, _NO_USAGE).live_calls >= c.max_concurrent_calls
        ):
            line.fail(Outcome.CONCURRENCY_CAP_REACHED)
        elif (funds := funds_of(c.buyer_id)) is None or (
            funds.balance_cents + funds.credit_limit_cents - funds.holds_cents < c.pre_bid_cents
        ):
            line.fail(Outcome.INSUFFICIENT_BALANCE)


# --- prices: floor, funds, margin, partner minimum, transfer; static fallback ---


def price_checks(lines: list[Line], state: AuctionState, terms: Terms) -> None:
    for line in lines:
        if line.outcome is not None or line.bid is None:
            continue
        bid = line.bid
        if bid.outcome is not None:
            line.fail(bid.outcome, bid.detail)
            continue
        line.source = bid.source
        min_bid = (line.contract.rtb or {}).get("min_bid_cents") if bid.source == "rtb" else None
        check_prices(line, bid.bid_cents, bid.exclusive_bid_cents, state, terms, min_bid_cents=min_bid)


def check_prices(
    line: Line,
    bid_cents: int | None,
    exclusive_cents: int | None,
    state: AuctionState,
    terms: Terms,
    *,
    min_bid_cents: int | None = None,
) -> None:
    """Minimum bid, floor, funds, margin, partner minimum and transfer, at each price that could be
    charged (the ordinary bid when shared, the exclusive bid, or else the ordinary one, when
    exclusive). Each kind's failure is kept: distribution reports it when it sells that kind."""
    first_failure: tuple[Outcome, str | None] | None = None
    c = line.contract
    funds = state.funds.get(c.buyer_id)
    payout = payout_rule(terms.payout, contract_id=c.id, buyer_id=c.buyer_id)
    buyer = terms.buyers.get(c.buyer_id)
    spend_capped = c.spend_capped or (buyer is not None and buyer.spend_capped)
    no_transfer = terms.channel in VOICE_CHANNELS and not ((line.bid and line.bid.transfer) or c.transfer)
    for kind in terms.kinds:
        price = (exclusive_cents if exclusive_cents is not None else bid_cents) if kind == "exclusive" else bid_cents
        failure: tuple[Outcome, str | None] | None = None
        if min_bid_cents is not None and price is not None and 0 < price < min_bid_cents:
            failure = (Outcome.BELOW_MIN_BID, None)
        elif spend_capped and price is not None and price > 0 and (spent := spend_failure(c, price, state, terms)):
            failure = (Outcome.CAP_REACHED, spent)
        else:
            failure = price_failure(price, offer=terms.offer, funds=funds, payout=payout, min_payout=terms.min_payout)
        if failure is None and no_transfer:
            failure = _MISSING_TRANSFER
        if failure is None:
            if kind == "exclusive":
                line.exclusive_cents = price
            else:
                line.shared_cents = price
        else:
            if line.price_failures is None:
                line.price_failures = {}
            line.price_failures[kind] = failure
            if first_failure is None:
                first_failure = failure
    if line.exclusive_cents is None and line.shared_cents is None and first_failure is not None:
        line.fail(*first_failure)


_MISSING_TRANSFER = (Outcome.MISSING_TRANSFER, None)


def spend_failure(c: Contract, price: int, state: AuctionState, terms: Terms) -> str | None:
    """The contract's or its buyer's spend cap this price would pass (docs/protocol.md, spend caps)."""
    if c.spend_capped:
        usage = state.usage.get(c.id, _NO_USAGE)
        reached = spend_cap_reached(
            (c.spend_daily_cap, c.spend_weekly_cap, c.spend_monthly_cap),
            (usage.day_key, usage.week_key, usage.month_key),
            (usage.day_spent, usage.week_spent, usage.month_spent),
            local_minute(state.now, c.tz)[1],
            price,
        )
        if reached is not None:
            return reached
    buyer = terms.buyers.get(c.buyer_id)
    funds = state.funds.get(c.buyer_id)
    if buyer is not None and buyer.spend_capped and funds is not None:
        return spend_cap_reached(
            funds.spend_caps, funds.spend_keys, funds.spent, local_minute(state.now, buyer.tz)[1], price
        )
    return None


def static_fallback(lines: list[Line], state: AuctionState, terms: Terms) -> None:
    """No candidate: eligible RTB contracts with a static price bid it, per their `rtb.fallback`."""
    for line in lines:
        c = line.contract
        if not c.rtb or c.price_cents is None or line.bid is None:
            continue  # not RTB, no static price, or never reached bidding
        mode = c.rtb.get("fallback", "always")
        rtb_outcome = line.bid.outcome
        if mode == "never" or (mode == "on_failure" and rtb_outcome not in RTB_FAILURES):
            continue
        before = (line.outcome, line.detail)
        line.outcome, line.detail = None, None
        check_prices(line, c.price_cents, c.exclusive_price_cents, state, terms)
        if line.outcome is None:
            line.source = "static_fallback"
            line.detail = f"rtb_{before[0]}" if before[0] else None
        else:
            line.outcome, line.detail = before


_NO_USAGE = Usage()


def config_outcomes(snap: Snapshot, offer_id: str, channel: str) -> list[tuple[Outcome, str | None] | None]:
    """Per contract of the offer (in `contracts_by_offer` order), the outcome decided by configuration
    alone (paused contract or buyer, channel), memoised per snapshot: the same for every ping until
    the configuration changes."""
    memo_key = ("config_outcomes", offer_id, channel)
    outcomes: list[tuple[Outcome, str | None] | None] | None = snap.memo.get(memo_key)
    if outcomes is None:
        outcomes = []
        for c in snap.contracts_by_offer.get(offer_id, []):
            buyer = snap.buyers.get(c.buyer_id)
            if c.status != "active":
                outcomes.append((Outcome.CONTRACT_PAUSED, None))
            elif buyer is None or buyer.status != "active":
                outcomes.append((Outcome.BUYER_PAUSED, None))
            elif c.channels is not None and channel not in c.channels:
                outcomes.append((Outcome.CHANNEL_MISMATCH, channel))
            else:
                outcomes.append(None)
        snap.memo[memo_key] = outcomes
    return outcomes


def pre_bid_minimum(c: Contract) -> int:
    """Funds needed before bidding: a fixed price, or an RTB contract's minimum bid (at least 1 cent)."""
    return c.pre_bid_cents


def price_failure(
    price: int | None, *, offer: Offer, funds: Funds | None, payout: dict[str, Any], min_payout: int
) -> tuple[Outcome, str | None] | None:
    if price is None or price <= 0:
        return Outcome.NO_BID, None
    if price < offer.floor_cents:
        return Outcome.BELOW_FLOOR, None
    if funds is None or funds.available_cents < price:
        return Outcome.INSUFFICIENT_BALANCE, None
    paid = payout_cents(payout, price)
    if paid > price:
        return Outcome.NEGATIVE_MARGIN, None
    if price - paid < offer.min_margin_cents:
        return Outcome.BELOW_MIN_MARGIN, None
    if paid < min_payout:
        return Outcome.BELOW_PARTNER_MINIMUM, None
    return None


# --- distribution: who wins among the candidates left --------------------------------------


def open_lines(lines: Sequence[Line]) -> list[Line]:
    """The lines no rule has excluded yet: the candidates."""
    return [line for line in lines if line.outcome is None]


def plan_for(
    offer: Offer, channel: str, candidates: Sequence[Line], rr_last_key: str, *, seed: str = ""
) -> distribution.Plan:
    """The order the offer's distribution rule would reserve the candidates in (`seed`: the ping id,
    so a weighted draw is the same when the ping is replayed)."""
    return distribution.plan(
        distribution.Rule(offer.rule, offer.max_winners, offer.hybrid_floor_cents),
        channel=channel,
        rr_last_key=rr_last_key,
        seed=seed,
        candidates=[
            distribution.Candidate(
                line.contract.id,
                line.contract.buyer_id,
                line.contract.priority,
                line.contract.weight,
                line.shared_cents,
                line.exclusive_cents,
                line.contract.rank_factor_pct,
            )
            for line in candidates
        ],
    )


def settle_lines(
    lines: Sequence[Line],
    plan: distribution.Plan,
    *,
    winners: Sequence[distribution.Choice],
    standbys: Sequence[distribution.Choice],
    outcomes: dict[str, tuple[str, str | None]],
) -> None:
    """Write each candidate's final outcome once distribution has reserved its winners: `won`,
    `standby`, the race a reservation lost, or `lost_to_higher_bid` / `not_selected` for the rest."""
    by_id = {line.contract.id: line for line in lines}
    for outcome, chosen in ((Outcome.WON, winners), (Outcome.STANDBY, standbys)):
        for choice in chosen:
            line = by_id[choice.candidate.contract_id]
            line.outcome = outcome.value
            line.sale_type, line.charged_cents = choice.sale_type, choice.price_cents
    for contract_id, (failure, detail) in outcomes.items():
        line = by_id[contract_id]
        line.outcome, line.detail, line.bid_id = failure, detail, None
    unreached = Outcome.LOST_TO_HIGHER_BID.value if plan.price_ranked else Outcome.NOT_SELECTED.value
    for line in lines:
        if line.outcome is None:  # a candidate the plan never reached (e.g. hybrid's exclusive branch)
            failed = line.price_failures.get(plan.kind) if plan.kind and line.price_failures else None
            if failed is not None and (line.shared_cents if plan.kind == "shared" else line.exclusive_cents) is None:
                line.fail(*failed)  # it could not be sold as the plan sells: its own price check says why
            else:
                line.outcome = unreached


# --- direct post: one buyer at a fixed price, tried in order ---------------------------------


def direct_post_bids(lines: Sequence[Line]) -> None:
    """A direct post has no bidding: each open contract offers its fixed price (RTB-only ones cannot)."""
    for line in lines:
        if line.outcome is None:
            price = line.contract.price_cents
            line.bid = (
                BidResult(None, price, None, source="fixed")
                if price is not None
                else BidResult(Outcome.NO_BID, detail="rtb_only_contract")
            )


def direct_post_order(lines: Sequence[Line]) -> list[Line]:
    """The candidates in the order a direct post tries them: best exclusive price, then priority, then
    id. Each starts as `lost_to_higher_bid` until an attempt reserves it."""
    candidates = sorted(
        open_lines(lines),
        key=lambda line: (
            -(line.exclusive_cents or 0) * line.contract.rank_factor_pct,  # ranking only (docs/protocol.md)
            line.contract.priority,
            line.contract.id,
        ),
    )
    for line in candidates:
        line.outcome = Outcome.LOST_TO_HIGHER_BID.value
    return candidates
