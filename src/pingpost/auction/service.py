"""The ping auction: eligibility for every contract, bids, distribution, atomic reservations.

Three phases, none holding a transaction across an outbound call (DESIGN.md section 1):
(1) one read of usage, funds and dedup; (2) bids, RTB concurrently under one deadline;
(3) one write transaction: reclaim expired reservations, reserve winners in rank order, write the
ping with its waterfall and the round-robin pointer. A ping whose open contracts all have fixed
prices has nothing to wait for between (1) and (3): it runs all three as one unit of the write
batch, and the pings of one SQLite batch share the rows they read (`repo.read_state_for_write`).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
import structlog

from pingpost import errors
from pingpost.auction.bidders import BidRequest, BidResult, RtbBidder, fixed_bid
from pingpost.auction.rtb import contract_timeout_ms
from pingpost.auction.schemas import BidOut, PingIn, PingOut
from pingpost.auction.snapshot import SnapshotCache
from pingpost.db import auction_repo as repo
from pingpost.db.store import Store, Tx
from pingpost.domain import distribution
from pingpost.domain.eligibility import (
    PeriodKeys,
    PeriodKeysByContract,
    Usage,
    cap_reached,
    first_failing_filter,
    in_schedule,
    is_duplicate,
    local_minute,
)
from pingpost.domain.leads import LeadProblem, validate_lead
from pingpost.domain.model import Campaign, Contract, Offer, Snapshot
from pingpost.domain.money import payout_cents
from pingpost.domain.outcomes import Outcome
from pingpost.ids import new_id, now_ms
from pingpost.metrics import PING_SECONDS, PINGS
from pingpost.reports.counters import ReportCounters
from pingpost.security import SecretKey, key_hash
from pingpost.timefmt import rfc3339

log = structlog.get_logger("pingpost.auction")
RTB_FAILURES = (Outcome.BID_TIMEOUT, Outcome.BID_ERROR, Outcome.BID_INVALID)


def lead_problem_error(problem: LeadProblem) -> errors.PingpostError:
    if problem.kind == "invalid":
        return errors.ValidationFailed(problem.problems, message="the lead does not fit the vertical")
    message = {"pii_in_ping": "a ping must not carry PII fields",
               "unknown_field": "the lead has fields the vertical does not define"}[problem.kind]
    return errors.Unprocessable(message, code=problem.kind, details={"errors": problem.problems})


class _Contended(Exception):
    """An optimistic ping write found a counter row changed since its read (see AuctionService._decide)."""


class _StaleSnapshot(Exception):
    """The ping's configuration snapshot is older than the database's configuration version."""


@dataclass(frozen=True)
class Terms:
    """What the price checks of one auction compare against."""

    offer: Offer
    payout: dict[str, Any]
    channel: str
    min_payout: int
    kinds: tuple[str, ...]


@dataclass(slots=True)
class Row:
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

    def fail(self, outcome: Outcome, detail: str | None = None) -> None:
        self.outcome, self.detail = outcome.value, detail

    def saved(self) -> tuple[Any, ...]:
        """What a write unit may change, so a retried unit starts from the same line (docs/crash-safety.md)."""
        return (self.outcome, self.detail, self.bid, self.source, self.shared_cents, self.exclusive_cents,
                self.bid_id, self.sale_type, self.charged_cents, self.reservation_id)

    def restore(self, saved: tuple[Any, ...]) -> None:
        (self.outcome, self.detail, self.bid, self.source, self.shared_cents, self.exclusive_cents,
         self.bid_id, self.sale_type, self.charged_cents, self.reservation_id) = saved

    def entry(self) -> dict[str, Any]:
        """The stored waterfall entry: only the keys that have a value (`waterfall_entry` restores the rest)."""
        entry: dict[str, Any] = {"contract_id": self.contract.id, "buyer_id": self.contract.buyer_id,
                                 "outcome": self.outcome}
        if self.detail is not None:
            entry["detail"] = self.detail
        bid = self.bid
        bid_cents = self.charged_cents if self.charged_cents is not None else (
            bid.bid_cents if bid is not None else None)
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


class AuctionService:
    def __init__(self, *, store: Store, snapshots: SnapshotCache, secret: SecretKey, rtb: RtbBidder,
                 static_fallback_default: bool, counters: ReportCounters | None = None,
                 default_rate_limit: int = 0) -> None:
        self.default_rate_limit = default_rate_limit
        self.counters = counters
        self.store = store
        self.snapshots = snapshots
        self.secret = secret
        self.rtb = rtb
        self.static_fallback_default = static_fallback_default

    async def authenticate(self, token: str, *, cached: bool = False) -> tuple[Snapshot, Campaign]:
        """The campaign whose posting key this is (401), if it, its partner and offer are active (403).

        With `cached`, the process's snapshot is used as it is (the ping re-checks its version in its
        state read); a key the snapshot does not know is looked up again in a fresh one."""
        snap = await (self.snapshots.cached() if cached else self.snapshots.current())
        digest = key_hash(token)
        campaign = snap.campaigns_by_key.get(digest)
        if campaign is None and cached:
            snap = await self.snapshots.current()
            campaign = snap.campaigns_by_key.get(digest)
        if campaign is None:
            raise errors.Unauthorized("unknown posting key")
        try:
            self.check_active(snap, campaign)
        except errors.Forbidden:
            if not cached:
                raise
            return await self.authenticate(token)  # paused in a cached snapshot: check a fresh one
        return snap, campaign

    @staticmethod
    def check_active(snap: Snapshot, campaign: Campaign) -> None:
        if campaign.status != "active":
            raise errors.Forbidden("campaign is paused", details={"campaign": campaign.id})
        if snap.partner_status.get(campaign.partner_id) != "active":
            raise errors.Forbidden("partner is paused", details={"partner": campaign.partner_id})
        if snap.offers[campaign.offer_id].status != "active":
            raise errors.Forbidden("offer is paused", details={"offer": campaign.offer_id})

    def consumer_hmacs(self, consumer: dict[str, str | None]) -> dict[str, str]:
        return {name: self.secret.keyed(value.lower()) for name, value in consumer.items() if value}

    async def ping(self, *, snap: Snapshot, campaign: Campaign, body: PingIn,
                   finalize: Callable[[Tx, PingOut], Awaitable[None]] | None = None,
                   optimistic: bool = True) -> PingOut:
        """Run the auction; `finalize` runs inside the deciding transaction (the idempotency answer).

        `optimistic`: see `_decide` (a ping whose optimistic write met contention runs again without)."""
        started = time.perf_counter()
        offer = snap.offers[campaign.offer_id]
        if offer.mode != "ping_post":
            raise errors.Unprocessable("this offer takes direct posts, not pings", code="offer_mode_mismatch",
                                       details={"offer": offer.id, "mode": offer.mode})
        if body.channel not in offer.channels:
            raise errors.Unprocessable(f"this offer does not take channel '{body.channel}'",
                                       code="channel_mismatch", details={"channel": body.channel})
        try:
            lead = validate_lead(snap.verticals[offer.vertical_id], body.lead, allow_pii=False, require=False)
        except LeadProblem as problem:
            raise lead_problem_error(problem) from None
        consumer_plain = body.consumer.model_dump() if body.consumer else {}
        consumer = self.consumer_hmacs(consumer_plain)
        now = now_ms()
        ping_id = new_id("png")
        rows = [Row(c) for c in snap.contracts_by_offer.get(offer.id, [])]
        keys = self.pre_state_checks(snap, rows, lead, body.channel, now)
        open_rows = [r for r in rows if r.outcome is None]
        limit = campaign.rate_limit_per_s or self.default_rate_limit
        calls = body.channel in ("call", "callback")
        kinds = distribution.sale_types(offer.rule, offer.max_winners, body.channel)
        terms = Terms(offer=offer, payout=campaign.payout, channel=body.channel, min_payout=body.min_payout_cents,
                      kinds=kinds)
        contract_ids = [r.contract.id for r in open_rows]
        buyer_ids = sorted({r.contract.buyer_id for r in open_rows})
        hashes = sorted(consumer.values())
        rate_campaign = campaign.id if limit else None

        def decide(tx: Tx, reclaimed: bool = False, optimistic: bool = False) -> Awaitable[PingOut]:
            return self._decide(tx, ping_id=ping_id, snap=snap, offer=offer, campaign=campaign, body=body, lead=lead,
                                consumer=consumer, rows=rows, received=now, finalize=finalize,
                                reclaimed=reclaimed, optimistic=optimistic)

        def checked(state: repo.AuctionState, period_keys: PeriodKeysByContract) -> None:
            if state.config_version != snap.version:
                raise _StaleSnapshot
            if limit and state.rate_used >= limit:
                raise errors.RateLimited(f"over {limit} pings a second for this campaign",
                                         headers={"Retry-After": "1"}, details={"limit_per_s": limit})
            self.state_checks(open_rows, state, period_keys, body.channel, now)

        try:
            if calls or any(r.contract.rtb for r in open_rows):
                # Buyers are asked between a read and the deciding write; no transaction spans their answers.
                state = await self.store.read(lambda tx: repo.read_state(
                    tx, contract_ids=contract_ids, buyer_ids=buyer_ids, hashes=hashes, now=now, calls=calls,
                    rate_campaign=rate_campaign))
                checked(state, keys)
                plain_hashes = {k: v.lower() for k, v in consumer_plain.items() if v}
                await self._bid([r for r in rows if r.outcome is None], BidRequest(
                    ping_id=ping_id, offer_id=offer.id, vertical_id=offer.vertical_id, channel=body.channel,
                    lead=lead, test=body.test, consumer=plain_hashes), offer)
                self.price_checks(rows, state, terms)
                fallback = offer.static_fallback if offer.static_fallback is not None else self.static_fallback_default
                if fallback and not any(r.outcome is None for r in rows):
                    self._static_fallback(rows, state, terms)
                before = [r.saved() for r in rows]

                def decide_afresh(tx: Tx) -> Awaitable[PingOut]:
                    # A unit retried after a deadlock or serialization failure decides again from the
                    # lines as they were before its first attempt (docs/crash-safety.md).
                    for row, saved in zip(rows, before, strict=True):
                        row.restore(saved)
                    return decide(tx)

                answer = await self.store.write(decide_afresh, durable=False)
            else:
                # Fixed prices only: read, decide and write in one unit of the write batch (nothing to wait
                # for in between), sharing the rows read with the batch's other pings.
                before = [r.saved() for r in rows]

                async def whole(tx: Tx) -> PingOut:
                    for row, saved in zip(rows, before, strict=True):  # a retried unit starts afresh
                        row.restore(saved)
                    at = await tx.now_ms()  # the one clock of shared decisions (docs/crash-safety.md)
                    if offer.rule == "round_robin" and tx.dialect == "postgresql" and not body.test:
                        await repo.rr_last_key(tx, offer.id)  # the pointer first: the one lock order
                    state = await repo.read_state_for_write(tx, contract_ids=contract_ids, buyer_ids=buyer_ids,
                                                            hashes=hashes, now=at, rate_campaign=rate_campaign)
                    checked(state, PeriodKeysByContract(snap.contracts, at))
                    for row in open_rows:
                        if row.outcome is None:
                            row.bid = fixed_bid(row.contract)
                    self.price_checks(rows, state, terms)
                    # PostgreSQL: other processes commit between this read and the reservations, so the
                    # hot counter rows are taken last, after the inserts (see _decide).
                    return await decide(tx, reclaimed=True, optimistic=optimistic and tx.dialect == "postgresql")

                answer = await self.store.write(whole, batch_cache=True, durable=False)
        except _StaleSnapshot:
            # Configuration changed (maybe in another process): start again on the fresh snapshot.
            fresh = await self.snapshots.current()
            current = fresh.campaigns.get(campaign.id)
            if current is None:
                raise errors.Unauthorized("unknown posting key") from None
            self.check_active(fresh, current)
            return await self.ping(snap=fresh, campaign=current, body=body, finalize=finalize, optimistic=optimistic)
        except _Contended:
            # A counter row moved since this unit read it: nothing was written; decide again, taking each
            # winner's slots before the next one is chosen.
            return await self.ping(snap=snap, campaign=campaign, body=body, finalize=finalize, optimistic=False)
        if self.counters is not None and not body.test:
            self.count(now, campaign, rows)
        log.info("ping_decided", ping_id=answer.ping_id, offer=offer.id, campaign=campaign.id, channel=body.channel,
                 status=answer.status, bids=len(answer.bids), test=body.test)
        PINGS.labels(offer.id, answer.status).inc()
        PING_SECONDS.labels(offer.id).observe(time.perf_counter() - started)
        return answer

    def count(self, at_ms: int, campaign: Campaign, rows: list[Row]) -> None:
        """Report counters: the ping, and per contract whether it was evaluated, bid and won."""
        if self.counters is not None:
            won = Outcome.WON.value
            self.counters.add_ping(at_ms=at_ms, offer_id=campaign.offer_id, campaign_id=campaign.id,
                                   partner_id=campaign.partner_id, contracts=[
                                       (r.contract.id, r.contract.buyer_id, r.source is not None, r.outcome == won)
                                       for r in rows])

    # --- phase 1: eligibility --------------------------------------------------------------

    def pre_state_checks(self, snap: Snapshot, rows: list[Row], lead: dict[str, Any], channel: str,
                          now: int) -> PeriodKeysByContract:
        """The checks before any state is read, in SPEC order; answers the cap period keys (lazily)."""
        offer_id = rows[0].contract.offer_id if rows else ""
        for row, fixed in zip(rows, _config_outcomes(snap, offer_id, channel), strict=True):
            if fixed is not None:
                row.fail(*fixed)
                continue
            c = row.contract
            if c.windows is not None and not in_schedule(c.windows, local := local_minute(now, c.tz)[0]):
                row.fail(Outcome.OUTSIDE_SCHEDULE, local.strftime("%a %H:%M").lower())
            elif c.filters and (failing := first_failing_filter(c, lead)) is not None:
                row.fail(Outcome.FILTER_MISMATCH, failing)
            elif c.rtb and (missing := [f for f in c.rtb.get("required_fields") or [] if f not in lead]):
                row.fail(Outcome.MISSING_REQUIRED_FIELDS, ",".join(missing))
        return PeriodKeysByContract(snap.contracts, now)

    async def read_state(self, rows: list[Row], consumer: dict[str, str], now: int) -> repo.AuctionState:
        """Usage, funds and dedup of these contracts in a read of their own (direct posts)."""
        contract_ids = [r.contract.id for r in rows]
        buyer_ids = sorted({r.contract.buyer_id for r in rows})
        hashes = sorted(consumer.values())
        return await self.store.read(lambda tx: repo.read_state(tx, contract_ids=contract_ids, buyer_ids=buyer_ids,
                                                                hashes=hashes, now=now))

    @staticmethod
    def state_checks(rows: list[Row], state: repo.AuctionState, keys: PeriodKeysByContract, channel: str,
                      now: int) -> None:
        calls = channel in ("call", "callback")
        for row in rows:
            c = row.contract
            usage = state.usage.get(c.id, _NO_USAGE)
            funds = state.funds.get(c.buyer_id)
            if c.dedup_days and is_duplicate(c, state.last_sold.get(c.buyer_id), now):
                row.fail(Outcome.DUPLICATE)
            elif c.capped and (period := cap_reached(c, usage, keys[c.id])) is not None:
                row.fail(Outcome.CAP_REACHED, period)
            elif calls and c.max_concurrent_calls is not None \
                    and usage.live_calls >= c.max_concurrent_calls:
                row.fail(Outcome.CONCURRENCY_CAP_REACHED)
            elif funds is None or funds.available_cents < _pre_bid_minimum(c):
                row.fail(Outcome.INSUFFICIENT_BALANCE)

    # --- phase 2: bids ---------------------------------------------------------------------

    async def _bid(self, rows: list[Row], request: BidRequest, offer: Offer) -> None:
        rtb_rows = [r for r in rows if r.contract.rtb]
        for row in rows:
            if not row.contract.rtb:
                row.bid = fixed_bid(row.contract)
        if not rtb_rows:
            return
        deadline = offer.auction_timeout_ms or max(contract_timeout_ms(r.contract, request.channel) for r in rtb_rows)
        results = await self.rtb.bid_all([r.contract for r in rtb_rows], request, deadline)
        for row in rtb_rows:
            row.bid = results.get(row.contract.id) or BidResult(Outcome.BID_TIMEOUT, detail="no answer")

    # --- phase 3: price checks and fallback ------------------------------------------------

    def price_checks(self, rows: list[Row], state: repo.AuctionState, terms: Terms) -> None:
        for row in rows:
            if row.outcome is not None or row.bid is None:
                continue
            bid = row.bid
            if bid.outcome is not None:
                row.fail(bid.outcome, bid.detail)
                continue
            row.source = bid.source
            min_bid = (row.contract.rtb or {}).get("min_bid_cents")
            if bid.source == "rtb" and min_bid is not None and (bid.bid_cents or 0) < min_bid:
                row.fail(Outcome.BELOW_MIN_BID)
                continue
            self._check_prices(row, bid.bid_cents, bid.exclusive_bid_cents, state, terms)

    @staticmethod
    def _check_prices(row: Row, bid_cents: int | None, exclusive_cents: int | None,
                      state: repo.AuctionState, terms: Terms) -> None:
        """Floor, funds, margin, partner minimum and transfer, at each price that could be charged."""
        first_failure: tuple[Outcome, str | None] | None = None
        funds = state.funds.get(row.contract.buyer_id)
        for kind in terms.kinds:
            price = (exclusive_cents if exclusive_cents is not None else bid_cents) if kind == "exclusive" \
                else bid_cents
            failure = _price_failure(price, offer=terms.offer, funds=funds, payout=terms.payout,
                                     min_payout=terms.min_payout)
            if failure is None and terms.channel in ("call", "callback") and not (
                    (row.bid and row.bid.transfer) or row.contract.transfer):
                failure = (Outcome.MISSING_TRANSFER, None)
            if failure is None:
                if kind == "exclusive":
                    row.exclusive_cents = price
                else:
                    row.shared_cents = price
            elif first_failure is None:
                first_failure = failure
        if row.exclusive_cents is None and row.shared_cents is None and first_failure is not None:
            row.fail(*first_failure)

    def _static_fallback(self, rows: list[Row], state: repo.AuctionState, terms: Terms) -> None:
        """No candidate: eligible RTB contracts with a static price bid it, per their `rtb.fallback`."""
        for row in rows:
            c = row.contract
            if not c.rtb or c.price_cents is None or row.bid is None:
                continue  # not RTB, no static price, or never reached bidding
            mode = c.rtb.get("fallback", "always")
            rtb_outcome = row.bid.outcome
            if mode == "never" or (mode == "on_failure" and rtb_outcome not in RTB_FAILURES):
                continue
            before = (row.outcome, row.detail)
            row.outcome, row.detail = None, None
            self._check_prices(row, c.price_cents, c.exclusive_price_cents, state, terms)
            if row.outcome is None:
                row.source = "static_fallback"
                row.detail = f"rtb_{before[0]}" if before[0] else None
            else:
                row.outcome, row.detail = before

    # --- phase 4: the write ----------------------------------------------------------------

    async def _decide(self, tx: Tx, *, ping_id: str, snap: Snapshot, offer: Offer, campaign: Campaign,
                      body: PingIn, lead: dict[str, Any], consumer: dict[str, str], rows: list[Row],
                      received: int,
                      finalize: Callable[[Tx, PingOut], Awaitable[None]] | None, reclaimed: bool = False,
                      optimistic: bool = False) -> PingOut:
        """Reserve the winners and write the ping with its waterfall, in the unit's transaction.

        By default each winner's cap slot and hold are taken (conditional UPDATEs) as the plan is walked,
        so a winner that lost a race is replaced by the next candidate. `optimistic` (PostgreSQL, fixed
        prices, state read in this transaction) trusts that read: every row is inserted first and all the
        winners' counter rows are taken last, in one statement, so the rows every ping of the offer
        updates stay locked only for that statement and the commit (DESIGN.md section 8). If any of
        them moved meanwhile, `_Contended` undoes the whole unit and the ping runs again by default.

        Expiry and the cap periods a slot counts in are decided now, by the store's clock for shared
        decisions, not when the ping arrived (docs/crash-safety.md)."""
        now = await tx.now_ms()
        keys = PeriodKeysByContract(snap.contracts, now)
        candidates = [r for r in rows if r.outcome is None]
        by_id = {r.contract.id: r for r in rows}
        contract_ids = [r.contract.id for r in candidates]
        buyer_ids = sorted({r.contract.buyer_id for r in candidates})
        ttl_s = offer.callback_ttl_s if body.channel == "callback" else offer.ping_ttl_s
        expires_at = now + ttl_s * 1000
        rr_key = ""
        calls = body.channel in ("call", "callback")
        if candidates and not body.test:
            # No up-front lock of every candidate's rows: on PostgreSQL that serialised every ping of the
            # offer on the same 30 hot rows (measured: 174 pings/s). The conditional UPDATEs lock only
            # the rows of the winners actually tried, in rank order; a rare deadlock is retried whole.
            # One lock order on PostgreSQL (docs/crash-safety.md): the round-robin pointer, then counter
            # rows (contracts by id, then buyers by id), then reservations. This careful path takes its
            # winners' slots one by one in rank order, so it locks every candidate's rows first.
            if offer.rule == "round_robin":
                rr_key = await repo.rr_last_key(tx, offer.id)
            if not optimistic:
                await repo.lock_rows(tx, contract_ids=contract_ids, buyer_ids=buyer_ids)
            if not reclaimed:  # the fixed-price path reclaimed in its state read, in this same unit
                await repo.reclaim_expired(tx, contract_ids=contract_ids, buyer_ids=buyer_ids, now=now, calls=calls)
        plan = distribution.plan(
            rule=offer.rule, max_winners=offer.max_winners, hybrid_floor_cents=offer.hybrid_floor_cents,
            channel=body.channel, rr_last_key=rr_key,
            candidates=[distribution.Candidate(r.contract.id, r.contract.buyer_id, r.contract.priority,
                                               r.contract.weight, r.shared_cents, r.exclusive_cents)
                        for r in candidates])

        # A call's active bid holds a live-call slot from its win; callbacks take theirs at `connected`.
        live_at_win = body.channel == "call"

        async def try_reserve(choice: distribution.Choice, standby: bool) -> tuple[str, str] | None:
            row = by_id[choice.candidate.contract_id]
            row.bid_id = new_id("bid")
            if body.test:
                return None  # test pings run the whole flow but reserve nothing
            k: PeriodKeys | None = keys[row.contract.id]
            if optimistic:
                pass  # the state read passed its cap and funds: taken after the inserts
            elif (k := await repo.take_cap_slot(tx, contract_id=row.contract.id, keys=keys[row.contract.id])) is None:
                return Outcome.CAP_REACHED.value, "reserved_concurrently"
            elif not await repo.take_hold(tx, buyer_id=row.contract.buyer_id, amount_cents=choice.price_cents):
                await repo.return_cap_slot(tx, contract_id=row.contract.id, keys=k)
                return Outcome.INSUFFICIENT_BALANCE.value, "reserved_concurrently"
            assert k is not None
            live = live_at_win and not standby
            if live and not await repo.take_live_slot(tx, contract_id=row.contract.id):
                await repo.return_cap_slot(tx, contract_id=row.contract.id, keys=k)
                await repo.return_hold(tx, buyer_id=row.contract.buyer_id, amount_cents=choice.price_cents)
                return Outcome.CONCURRENCY_CAP_REACHED.value, "reserved_concurrently"
            row.reservation_id = new_id("rsv")
            reservations.append({
                "id": row.reservation_id, "bid_id": row.bid_id, "ping_id": ping_id,
                "contract_id": row.contract.id, "buyer_id": row.contract.buyer_id,
                "amount_cents": choice.price_cents, "day_key": k.day, "week_key": k.week, "month_key": k.month,
                "live_call": int(live), "expires_at": expires_at, "created_at": now})
            return None

        reservations: list[dict[str, Any]] = []  # inserted together once every winner is reserved
        winners, standbys, outcomes = await distribution.select_winners(
            plan, try_reserve, standby=offer.call_standby if calls else 0)
        await repo.insert_reservations(tx, reservations)
        bids: list[dict[str, Any]] = []
        answer_bids: list[BidOut] = []
        for role, chosen in (("winner", winners), ("standby", standbys)):
            for choice in chosen:
                row = by_id[choice.candidate.contract_id]
                row.outcome = Outcome.WON.value if role == "winner" else Outcome.STANDBY.value
                row.sale_type, row.charged_cents = choice.sale_type, choice.price_cents
                payout = payout_cents(campaign.payout, choice.price_cents)
                transfer = ((row.bid.transfer if row.bid else None) or row.contract.transfer) if calls else None
                bids.append({"bid_id": row.bid_id, "contract_id": row.contract.id, "buyer_id": row.contract.buyer_id,
                             "price_cents": choice.price_cents, "payout_cents": payout, "sale_type": choice.sale_type,
                             "source": row.source, "bid_ref": row.bid.bid_ref if row.bid else None,
                             "transfer": transfer, "role": role,
                             "reservation_id": row.reservation_id})
                if role == "winner":
                    answer_bids.append(BidOut(bid_id=row.bid_id or "", payout_cents=payout,
                                              sale_type=choice.sale_type,
                                              transfer=transfer or None))
        for contract_id, (outcome, detail) in outcomes.items():
            row = by_id[contract_id]
            row.outcome, row.detail, row.bid_id = outcome, detail, None
        unreached = Outcome.LOST_TO_HIGHER_BID.value if plan.price_ranked else Outcome.NOT_SELECTED.value
        for row in candidates:
            if row.outcome is None:  # a candidate the plan never reached (e.g. hybrid's exclusive branch)
                row.outcome = unreached
        if campaign.rate_limit_per_s or self.default_rate_limit:
            await repo.count_rate_window(tx, campaign_id=campaign.id, now=received)
        if winners and offer.rule == "round_robin" and not body.test:
            await repo.set_rr_last_key(tx, offer.id, winners[-1].candidate.rank_key)
        status = "bids" if winners else "no_bids"
        decided = now_ms()
        await repo.insert_ping(tx, {
            "id": ping_id, "offer_id": offer.id, "campaign_id": campaign.id, "partner_id": campaign.partner_id,
            "channel": body.channel, "mode": "ping_post", "status": status,
            "post_state": "open" if winners else "closed", "test": int(body.test),
            "partner_lead_id": body.partner_lead_id, "received_at": received, "decided_at": decided,
            "expires_at": expires_at, "lead": orjson.dumps(lead).decode(), "consumer": orjson.dumps(consumer).decode(),
            "bids": orjson.dumps(bids).decode(),
            "waterfall": orjson.dumps([r.entry() for r in rows]).decode()})
        answer = PingOut(ping_id=ping_id, status=status, expires_at=rfc3339(expires_at) or "", post_url="/v1/post",
                         bids=answer_bids)
        if finalize is not None:
            await finalize(tx, answer)
        if optimistic and reservations and not await repo.take_slots(tx, reservations):
            raise _Contended
        return answer


_NO_USAGE = Usage()


def _config_outcomes(snap: Snapshot, offer_id: str, channel: str) -> list[tuple[Outcome, str | None] | None]:
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


def _pre_bid_minimum(c: Contract) -> int:
    """Funds needed before bidding: a fixed price, or an RTB contract's minimum bid (at least 1 cent)."""
    if c.rtb:
        return max(int(c.rtb.get("min_bid_cents") or 0), 1)
    return c.price_cents or 0


def _price_failure(price: int | None, *, offer: Offer, funds: repo.Funds | None, payout: dict[str, Any],
                   min_payout: int) -> tuple[Outcome, str | None] | None:
    if price is None or price <= 0:
        return Outcome.NO_BID, None
    if price < offer.floor_cents:
        return Outcome.BELOW_FLOOR, None
    if funds is None or funds.available_cents < price:
        return Outcome.INSUFFICIENT_BALANCE, None
    paid = payout_cents(payout, price)
    if paid > price:
        return Outcome.NEGATIVE_MARGIN, None
    if paid < min_payout:
        return Outcome.BELOW_PARTNER_MINIMUM, None
    return None
