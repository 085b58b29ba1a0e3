"""The what-if replay engine, pure (docs/replay.md): stored pings run through the very rules of
`domain/auction.py` and `domain/distribution.py`, in received order, in simulated time, against
in-memory counters instead of the database.

What the database does for a live ping, the engine does in memory, in the same order:
- cap slots and spend per period key (the contract's time zone; a buyer's spend in its own), taken
  by a winner's reservation, kept by its sale, given back when it is released or lapses
  (`expires_at <= now`): `domain/replay_counters.py`;
- funds: balance, credit limit, holds; a sale turns its hold into a charge; deposits and refunds
  of the range arrive at their real instants;
- dedup: the buyers' latest purchase of each keyed consumer hash (from the claim of a post, gone
  again if the delivery was rejected);
- the round-robin pointer of each offer.
A replayed winner is posted when the real ping was posted (at its real instant); a contract that
really won the ping keeps its real fate (accepted, rejected, not delivered), any other is accepted
or not by its real accept rate, deterministically per ping id (`accepts`).
Nothing here reads a clock, a database or the network.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from pingpost.domain import auction as rules
from pingpost.domain import distribution
from pingpost.domain.auction import AuctionState, Funds, Line, Terms
from pingpost.domain.eligibility import PeriodKeys, PeriodKeysByContract
from pingpost.domain.model import BidResult, Campaign, Contract, Snapshot
from pingpost.domain.money import bid_payout_cents
from pingpost.domain.outcomes import Outcome
from pingpost.domain.replay_counters import Counters, spend_capped
from pingpost.domain.replay_figures import Tally, utc_day
from pingpost.domain.replay_inputs import (
    Acceptance,
    FixedHold,
    Move,
    StartState,
    StoredPing,
    accepts,
    bids_from_waterfall,
)

# Event kinds, in the order they apply at one instant: lapses and settlements free slots and funds
# before anything new takes them.
EXPIRE, SETTLE, FIXED_END, CLAIM, MOVE, FIXED_START = range(6)
HELD, POSTING, DONE = range(3)
_NOT_ASKED = BidResult(Outcome.NO_BID, detail="not_asked")
_DELIVERED = {"accepted": True, "rejected": False}  # a real winner's fate: delivered and how
Version = tuple[int, Snapshot, dict[str, int]]  # from this instant on: the configuration, buyers' credit limits


@dataclass(frozen=True, slots=True)
class _Market:
    terms: Terms
    contracts: tuple[Contract, ...]
    fallback: bool
    standby: int
    ttl_ms: int
    window_ms: int  # the campaign's duplicate-ping window
    campaign: Campaign  # its source rule (a blocked source is refused before any auction)
    sources: bool  # whether the campaign has a source rule at all
    # the partner's payout by contract and price (the campaign's rule with its overrides)
    payouts: dict[tuple[str, int], int] = field(default_factory=dict)
    # plans by their candidates' prices (and the round-robin pointer): every rule but `weighted`
    # orders the same candidates at the same prices the same way
    plans: dict[tuple[Any, ...], distribution.Plan] = field(default_factory=dict)


_UNKNOWN = object()
_REFUSED = None


class _Reservation:
    __slots__ = ("buyer_keys", "contract", "keys", "payout", "ping", "price", "state")

    def __init__(
        self,
        contract: Contract,
        price: int,
        keys: PeriodKeys | None,
        buyer_keys: PeriodKeys | None,
        ping: StoredPing,
        payout: int,
    ) -> None:
        self.contract, self.price, self.keys, self.state, self.ping = contract, price, keys, HELD, ping
        self.buyer_keys, self.payout = buyer_keys, payout  # the partner's payout, fixed at the decision


class Replayer:
    """Replays stored pings one by one (`step`, in received order), then `finish`."""

    def __init__(
        self,
        snap: Snapshot,
        start: StartState,
        acceptance: Acceptance,
        *,
        static_fallback: bool = True,
        keep_winners: bool = False,
        versions: Sequence[Version] = (),
    ) -> None:
        self.snap = snap
        self._versions = sorted(versions, key=lambda v: -v[0])  # the next one last
        self.acceptance = acceptance
        self.static_fallback = static_fallback
        self.actual, self.proposed = Tally(), Tally()
        self.winners: dict[str, list[str]] | None = {} if keep_winners else None
        funds = {
            b: Funds(start.balances.get(b, 0), start.credit_limits.get(b, 0), 0)
            for b in {*snap.buyers, *start.balances}
        }
        self.counters = Counters(funds, spend_on=any(spend_capped(s) for s in (snap, *(v[1] for v in versions))))
        self.funds, self.usage = self.counters.funds, self.counters.usage
        self._funds = self.counters.funds_of
        self._dup_seen: dict[str, int] = {}  # duplicate-ping key -> latest ping that ran an auction
        self.dedup: dict[str, dict[str, dict[object, int]]] = {
            h: {b: {"before": at} for b, at in buyers.items()} for h, buyers in start.dedup.items()
        }
        self.rr = dict(start.rr)
        self.sold: set[tuple[str, str]] = set()
        self._sold_pings: set[str] = set()
        self._events: list[tuple[int, int, int, Any]] = []
        self._seq = 0
        self._now = -(1 << 62)
        self._state = AuctionState(funds=self.funds, usage=self.usage)
        self._keys_minute, self._keys = -1, PeriodKeysByContract(snap.contracts, 0)
        self._markets: dict[tuple[str, str, str, int], Any] = {}
        self._rtb_ids = {k for k, c in snap.contracts.items() if c.rtb}
        self.counters.spend_caps(snap)
        for hold in start.holds:
            self._push(hold.start, FIXED_START, hold)
        for move in start.moves:
            self._push(move.at, MOVE, move)

    # --- simulated time ---------------------------------------------------------------------

    def _push(self, at: int, kind: int, payload: Any) -> None:
        self._seq += 1
        heapq.heappush(self._events, (at, kind, self._seq, payload))

    def _advance(self, now: int) -> None:
        events = self._events
        while events and events[0][0] <= now:
            at, kind, _, payload = heapq.heappop(events)
            self._apply(at, kind, payload)
        self._now = now

    def _apply(self, at: int, kind: int, payload: Any) -> None:
        if kind == EXPIRE:
            if payload.state == HELD:
                self._release(payload)
        elif kind == CLAIM:
            self._claim(at, *payload)
        elif kind == SETTLE:
            self._settle(at, *payload)
        elif kind == MOVE:
            move: Move = payload
            if move.sale is None or move.sale in self.sold:
                self._funds(move.buyer_id).balance_cents += move.amount_cents
        elif kind == FIXED_START:
            hold: FixedHold = payload
            self.counters.count(hold.contract_id, hold.keys, 1, hold.amount_cents)
            self.counters.buyer_spend(hold.buyer_id, hold.buyer_keys, hold.amount_cents)
            if hold.funds:
                self._funds(hold.buyer_id).holds_cents += hold.amount_cents
                self._push(max(hold.end, at), FIXED_END, hold)
        else:  # FIXED_END
            hold = payload
            funds = self._funds(hold.buyer_id)
            funds.holds_cents -= hold.amount_cents
            if hold.sold:
                funds.balance_cents -= hold.amount_cents
            else:
                self.counters.count(hold.contract_id, hold.keys, -1, hold.amount_cents)
                self.counters.buyer_spend(hold.buyer_id, hold.buyer_keys, -hold.amount_cents)

    def _release(self, res: _Reservation) -> None:
        res.state = DONE
        self.counters.give_back(res.contract.id, res.contract.buyer_id, res.keys, res.buyer_keys, res.price)

    def _claim(self, at: int, res: _Reservation, accepted: bool | None, settle_at: int) -> None:
        """The real post claimed the ping's bids: delivered (`accepted` True or False, settled at
        `settle_at`) or not (None: released now)."""
        if res.state != HELD:
            return
        if accepted is None:
            self._release(res)
            return
        res.state = POSTING
        token = object()
        for h in res.ping.hashes:
            self.dedup.setdefault(h, {}).setdefault(res.contract.buyer_id, {})[token] = at
        self._push(max(settle_at, at), SETTLE, (res, accepted, token))

    def _settle(self, at: int, res: _Reservation, accepted: bool, token: object) -> None:
        ping, contract = res.ping, res.contract
        if not accepted:
            self._release(res)
            for h in ping.hashes:
                self.dedup[h][contract.buyer_id].pop(token, None)
            return
        res.state = DONE
        funds = self._funds(contract.buyer_id)
        funds.holds_cents -= res.price
        funds.balance_cents -= res.price
        for h in ping.hashes:
            self.dedup[h][contract.buyer_id][token] = at
        first = ping.id not in self._sold_pings
        self._sold_pings.add(ping.id)
        self.sold.add((ping.id, contract.id))
        day = utc_day(ping.received_at)
        self.proposed.sale(day, contract.id, contract.buyer_id, res.price, res.payout, first=first)

    # --- one ping ---------------------------------------------------------------------------

    def step(self, ping: StoredPing) -> None:
        """Replay one ping (pings come in received order)."""
        now = ping.received_at
        if self._events and self._events[0][0] <= now:
            self._advance(now)
        while self._versions and self._versions[-1][0] <= now:
            self.use(*self._versions.pop()[1:])
        day = utc_day(now)
        self._actual(ping, day)
        self.proposed.ping(day)
        winners = self._auction(ping)
        if self.winners is not None:
            self.winners[ping.id] = winners

    def use(self, snap: Snapshot, credit_limits: dict[str, int]) -> None:
        """The configuration as it stood from here on (docs/replay.md): markets are indexed again;
        funds (with the new credit limits), counters, dedup records and round-robin pointers carry over."""
        self.snap, self._markets = snap, {}
        self._rtb_ids = {k for k, c in snap.contracts.items() if c.rtb}
        self._keys_minute = -1  # period keys follow the contracts' time zones of this version
        self.counters.spend_caps(snap)
        for buyer, limit in credit_limits.items():
            self._funds(buyer).credit_limit_cents = limit

    def _actual(self, ping: StoredPing, day: str) -> None:
        tally, first = self.actual, True
        tally.ping(day)
        for real in ping.real:
            tally.win(real.contract_id, real.buyer_id)
            if real.sale is not None:
                tally.sale(day, real.contract_id, real.buyer_id, *real.sale, first=first)
                first = False

    def _auction(self, ping: StoredPing) -> list[str]:
        snap, now, channel = self.snap, ping.received_at, ping.channel
        key = (ping.campaign_id, ping.offer_id, channel, ping.min_payout_cents)
        market = self._markets.get(key, _UNKNOWN)
        if market is _UNKNOWN:
            market = self._markets[key] = self._market(ping)
        if market is None or (market.sources and not market.campaign.source_allowed(ping.source)):
            return []  # refused under this configuration: no auction
        if ping.dup_key is not None and self._duplicate(ping.dup_key, now, market.window_ms):
            return []  # a duplicate ping under this configuration: no auction, no reservation
        offer, terms = market.terms.offer, market.terms
        lines = [Line(c) for c in market.contracts]
        lead = ping.lead if ping.source is None else {**ping.lead, "source": ping.source}
        keys = rules.pre_state_checks(snap, lines, lead, channel, now)
        if now // 60_000 == self._keys_minute:  # period keys change only at minute boundaries
            keys = self._keys
        else:
            self._keys_minute, self._keys = now // 60_000, keys
        open_lines = rules.open_lines(lines)
        state = self._state
        state.last_sold = self._last_sold(ping.hashes) if ping.hashes else {}
        state.suppressed, state.now = ping.suppressed, now
        rules.state_checks(open_lines, state, keys, channel, now)
        for line in open_lines:
            if line.outcome is None:
                c = line.contract
                line.bid = self._bid(c, ping) if c.rtb else c.fixed_bid
        rules.price_checks(lines, state, terms)
        if market.fallback and not rules.open_lines(lines):
            rules.static_fallback(lines, state, terms)
        candidates = rules.open_lines(lines)
        if not candidates:
            return []
        plan = self._plan(market, channel, candidates, ping.id)
        reserved: list[_Reservation] = []

        def reserve(choice: distribution.Choice, standby: bool) -> tuple[str, str] | None:
            return self._reserve(snap.contracts[choice.candidate.contract_id], choice.price_cents, ping, reserved)

        winners, _, _ = distribution.select_winners_now(plan, reserve, standby=market.standby)
        if winners and offer.rule == "round_robin":
            self.rr[offer.id] = winners[-1].candidate.rank_key
        expires_at = ping.decided_at + market.ttl_ms
        if len(reserved) == len(winners):
            for res in reserved:
                self.proposed.win(res.contract.id, res.contract.buyer_id)
                self._fate(res, ping, expires_at)
        else:
            winner_ids = {w.candidate.contract_id for w in winners}
            for res in reserved:
                if res.contract.id in winner_ids:
                    self.proposed.win(res.contract.id, res.contract.buyer_id)
                    self._fate(res, ping, expires_at)
                else:  # a call's standby: held until its bids lapse (calls are not modelled further)
                    self._push(expires_at, EXPIRE, res)
        return [w.candidate.contract_id for w in winners]

    def _plan(self, market: _Market, channel: str, candidates: list[Line], ping_id: str) -> distribution.Plan:
        """`plan_for`, remembered per market for the rules whose order is a function of the
        candidates' prices (and the pointer): the same candidates at the same prices plan the same."""
        offer = market.terms.offer
        rr = self.rr.get(offer.id, "")
        if offer.rule == "weighted":  # drawn from the ping id
            return rules.plan_for(offer, channel, candidates, rr, seed=ping_id)
        key = (rr, *[(line.contract.id, line.shared_cents, line.exclusive_cents) for line in candidates])
        plan = market.plans.get(key)
        if plan is None:
            if len(market.plans) > 50_000:
                market.plans.clear()
            plan = market.plans[key] = rules.plan_for(offer, channel, candidates, rr, seed=ping_id)
        return plan

    def _market(self, ping: StoredPing) -> _Market | None:
        """What every ping of one campaign, channel and partner minimum shares, or `_REFUSED` when the
        configuration refuses them (paused campaign, partner or offer, another mode or channel)."""
        snap, channel = self.snap, ping.channel
        campaign = snap.campaigns.get(ping.campaign_id)
        offer = snap.offers.get(ping.offer_id)
        if (
            campaign is None
            or offer is None
            or campaign.status != "active"
            or snap.partner_status.get(campaign.partner_id) != "active"
            or offer.status != "active"
            or offer.mode != "ping_post"
            or channel not in offer.channels
        ):
            return _REFUSED
        terms = Terms(
            offer=offer,
            payout=campaign.payout,
            channel=channel,
            min_payout=ping.min_payout_cents,
            kinds=distribution.sale_types(offer.rule, offer.max_winners, channel),
            buyers=snap.buyers,
        )
        return _Market(
            terms=terms,
            contracts=tuple(snap.contracts_by_offer.get(offer.id, ())),
            fallback=offer.static_fallback if offer.static_fallback is not None else self.static_fallback,
            standby=offer.call_standby if rules.is_voice(channel) else 0,
            ttl_ms=(offer.callback_ttl_s if channel == "callback" else offer.ping_ttl_s) * 1000,
            window_ms=campaign.duplicate_ping_window_s * 1000,
            campaign=campaign,
            sources=campaign.sources_allow is not None or bool(campaign.sources_block),
        )

    def _duplicate(self, dup_key: str, now: int, window_ms: int) -> bool:
        """Whether an earlier ping of the campaign with this key ran an auction within the window (as
        `auction/duplicates.py` decides); a ping that is not one is remembered."""
        earlier = self._dup_seen.get(dup_key)
        if window_ms and earlier is not None and earlier >= now - window_ms:
            return True
        self._dup_seen[dup_key] = now
        return False

    def _last_sold(self, hashes: tuple[str, ...]) -> dict[str, int]:
        last: dict[str, int] = {}
        for h in hashes:
            for buyer, purchases in (self.dedup.get(h) or {}).items():
                if purchases:
                    latest = max(purchases.values())
                    if latest > last.get(buyer, -1):
                        last[buyer] = latest
        return last

    def _bid(self, c: Contract, ping: StoredPing) -> BidResult:
        """An RTB contract's stored answer; one that did not bid then (or did not exist) bids its static
        price, if it has one."""
        if ping.rtb is None:
            ping.rtb = bids_from_waterfall(orjson.loads(ping.waterfall or "[]"), self._rtb_ids)
        stored = ping.rtb.get(c.id)
        if stored is not None:
            return stored
        if c.price_cents is not None:
            return BidResult(None, c.price_cents, c.exclusive_price_cents, source="static_fallback")
        return _NOT_ASKED

    def _reserve(
        self, c: Contract, price: int, ping: StoredPing, reserved: list[_Reservation]
    ) -> tuple[str, str] | None:
        """`take_cap_slot` and `take_hold` in memory, at the decision's instant (`Counters.take`)."""
        taken = self.counters.take(c, self.snap.buyers.get(c.buyer_id), price, ping.decided_at)
        failure, keys, buyer_keys = taken
        if failure is None:
            reserved.append(_Reservation(c, price, keys, buyer_keys, ping, self._payout(c, price, ping)))
        return failure

    def _payout(self, c: Contract, price: int, ping: StoredPing) -> int:
        """The bid's payout to the partner, fixed at the decision (the campaign's rule as it stands
        then, with its overrides), remembered per market."""
        market = self._markets[(ping.campaign_id, ping.offer_id, ping.channel, ping.min_payout_cents)]
        paid: int | None = market.payouts.get((c.id, price))
        if paid is None:
            paid = market.payouts[c.id, price] = bid_payout_cents(
                market.terms.payout, price, contract_id=c.id, buyer_id=c.buyer_id
            )
        return paid

    def _fate(self, res: _Reservation, ping: StoredPing, expires_at: int) -> None:
        """What happens to a replayed winner: lapses unposted, or is claimed by the real post, then
        delivered with the real outcome (a real winner) or the modelled one."""
        posted = ping.posted_at
        if posted is None or posted >= expires_at:
            self._push(expires_at, EXPIRE, res)
            return
        contract_id = res.contract.id
        real = next((r for r in ping.real if r.contract_id == contract_id), None)
        accepted: bool | None
        if real is not None:
            accepted = _DELIVERED.get(real.fate)
            settle_at = real.at if real.at is not None else posted
        else:
            rate = self.acceptance.by_contract.get(contract_id, self.acceptance.default_bp)
            accepted = accepts(ping.id, contract_id, rate)
            settle_at = ping.settled_at if ping.settled_at is not None else posted
        self._push(posted, CLAIM, (res, accepted, settle_at))

    def finish(self) -> dict[str, Any]:
        """Run every pending event (sales recorded after the last ping) and answer both tallies."""
        self._advance(1 << 62)
        return {"actual": self.actual, "proposed": self.proposed}
