"""The ping auction's flow: read, ask buyers, reserve, write. Its rules live in `domain/auction.py`.
Over 450 lines since `ruff format` puts one argument a line: the flow stays in one file to be read
top to bottom (its two paths, fixed prices and RTB, share every step).

Three phases, none holding a transaction across an outbound call (docs/architecture.md):
(1) one read of usage, funds and dedup; (2) bids, RTB concurrently under one deadline;
(3) one write transaction: reclaim expired reservations, reserve winners in rank order, write the
ping with its waterfall and the round-robin pointer. A ping whose open contracts all have fixed
prices has nothing to wait for between (1) and (3): it runs all three as one unit of the write
batch, and the pings of one SQLite batch share the rows they read (`repo.read_state_for_write`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog

from pingpost import errors
from pingpost.auction import autopause
from pingpost.auction.bidders import BidRequest, BidResult, RtbBidder
from pingpost.auction.duplicates import duplicate_answer, duplicate_key
from pingpost.auction.leases import Lease, LeaseBook
from pingpost.auction.rtb import contract_timeout_ms
from pingpost.auction.schemas import BidOut, PingIn, PingOut
from pingpost.auction.snapshot import SnapshotCache
from pingpost.db import auction_repo as repo
from pingpost.db import leases_repo, traffic_repo
from pingpost.db.store import Store, Tx
from pingpost.domain import auction as rules
from pingpost.domain import distribution
from pingpost.domain.auction import AuctionState, Line, Terms, is_voice
from pingpost.domain.eligibility import PeriodKeys, PeriodKeysByContract, local_minute, with_source
from pingpost.domain.leads import LeadProblem, validate_lead
from pingpost.domain.model import UTC, Buyer, Campaign, Contract, Offer, Snapshot
from pingpost.domain.money import bid_payout_cents
from pingpost.domain.outcomes import Outcome
from pingpost.domain.replay_inputs import replay_document
from pingpost.ids import new_id, now_ms
from pingpost.metrics import PING_SECONDS, PINGS
from pingpost.reports.counters import ReportCounters
from pingpost.security import SecretKey, key_hash
from pingpost.timefmt import rfc3339

log = structlog.get_logger("pingpost.auction")


class _Contended(Exception):
    """An optimistic ping write found a counter row changed since its read (see AuctionService._decide)."""


class _StaleSnapshot(Exception):
    """The ping's configuration snapshot is older than the database's configuration version."""


@dataclass(frozen=True)
class AuctionDefaults:
    """What applies where an offer or a campaign says nothing (settings `static_fallback`,
    `ping_rate_limit_per_s`; 0 is no limit)."""

    static_fallback: bool
    rate_limit_per_s: int = 0


class AuctionService:
    def __init__(  # noqa: PLR0913 - the services it uses
        self,
        *,
        store: Store,
        snapshots: SnapshotCache,
        secret: SecretKey,
        rtb: RtbBidder,
        defaults: AuctionDefaults,
        counters: ReportCounters | None = None,
        leases: LeaseBook | None = None,
    ) -> None:
        self.leases = leases  # PostgreSQL, several processes: docs/scale-out.md
        self._reads: dict[tuple[tuple[str, ...], tuple[str, ...]], asyncio.Future[repo.SharedRead | None]] = {}
        self.defaults = defaults
        self.counters = counters
        self.store = store
        self.snapshots = snapshots
        self.secret = secret
        self.rtb = rtb

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

    async def ping(
        self,
        *,
        snap: Snapshot,
        campaign: Campaign,
        body: PingIn,
        finalize: Callable[[Tx, PingOut], Awaitable[None]] | None = None,
        optimistic: bool = True,
    ) -> PingOut:
        """Run the auction; `finalize` runs inside the deciding transaction (the idempotency answer).

        `optimistic`: see `_decide` (a ping whose optimistic write met contention runs again without)."""
        started = time.perf_counter()
        auction = self._start(snap, campaign, body, finalize)
        if auction.ping.dup_key is not None:
            duplicate = await self._duplicate(auction.ping)
            if duplicate is not None:
                self._observe(auction.ping, duplicate, started)
                return duplicate
        try:
            if is_voice(body.channel) or any(line.contract.rtb for line in auction.open_lines):
                answer = await self._ping_with_bids(auction)
            else:
                answer = await self._ping_fixed_prices(auction, optimistic=optimistic)
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
        self._observe(auction.ping, answer, started)
        return answer

    def _start(
        self,
        snap: Snapshot,
        campaign: Campaign,
        body: PingIn,
        finalize: Callable[[Tx, PingOut], Awaitable[None]] | None,
    ) -> _Auction:
        """The ping's offer, channel and lead checked, one line per contract of the offer, and the checks
        that need no state run."""
        offer = snap.offers[campaign.offer_id]
        check_source(campaign, body.source)
        if offer.mode != "ping_post":
            raise errors.Unprocessable(
                "this offer takes direct posts, not pings",
                code="offer_mode_mismatch",
                details={"offer": offer.id, "mode": offer.mode},
            )
        if body.channel not in offer.channels:
            raise errors.Unprocessable(
                f"this offer does not take channel '{body.channel}'",
                code="channel_mismatch",
                details={"channel": body.channel},
            )
        try:
            lead = validate_lead(snap.verticals[offer.vertical_id], body.lead, allow_pii=False, require=False)
        except LeadProblem as problem:
            raise errors.lead_problem_error(problem) from None
        consumer_plain = body.consumer.model_dump() if body.consumer else {}
        now = now_ms()
        lines = [Line(c) for c in snap.contracts_by_offer.get(offer.id, [])]
        ping = _Ping(
            id=new_id("png"),
            snap=snap,
            offer=offer,
            campaign=campaign,
            body=body,
            lead=lead,
            consumer=self.consumer_hmacs(consumer_plain),
            received=now,
            lines=lines,
            finalize=finalize,
            rate_limit=campaign.rate_limit_per_s or self.defaults.rate_limit_per_s,
            replay=_replay_inputs([], body.min_payout_cents) if body.min_payout_cents else None,
        )
        if campaign.duplicate_ping_window_s and not body.test:
            ping.dup_key = duplicate_key(
                self.secret, campaign, lead=lead, channel=body.channel, source=body.source, consumer=ping.consumer
            )
        keys = rules.pre_state_checks(snap, lines, with_source(lead, body.source), body.channel, now)
        open_lines = rules.open_lines(lines)
        terms = Terms(
            offer=offer,
            payout=campaign.payout,
            channel=body.channel,
            min_payout=body.min_payout_cents,
            kinds=distribution.sale_types(offer.rule, offer.max_winners, body.channel),
            buyers=snap.buyers,
        )
        query = _state_query(
            open_lines,
            ping.consumer,
            rate_campaign=campaign.id if ping.rate_limit else None,
            suppression=snap.suppression_lists > 0,
        )
        return _Auction(
            ping=ping, open_lines=open_lines, arrival_keys=keys, terms=terms, query=query, consumer_plain=consumer_plain
        )

    async def _ping_with_bids(self, auction: _Auction) -> PingOut:
        """RTB contracts or a call: buyers are asked between a read and the deciding write; no transaction
        spans their answers."""
        ping = auction.ping
        offer, body, lines = ping.offer, ping.body, ping.lines
        state = await self.store.read(
            lambda tx: repo.read_state(tx, auction.query, now=ping.received, calls=is_voice(body.channel))
        )
        auction.check_state(state, auction.arrival_keys)
        watched = [line.contract.id for line in auction.open_lines if line.contract.max_consecutive_failures]
        failing = await self.store.read(lambda tx: traffic_repo.failing_contracts(tx, watched)) if watched else {}
        plain_hashes = {k: v.lower() for k, v in auction.consumer_plain.items() if v}
        await self._bid(
            rules.open_lines(lines),
            BidRequest(
                ping_id=ping.id,
                offer_id=offer.id,
                vertical_id=offer.vertical_id,
                channel=body.channel,
                lead=ping.lead,
                test=body.test,
                consumer=plain_hashes,
                source=body.source,
                subs=body.subs.given() if body.subs else None,
            ),
            offer,
        )
        health = autopause.rtb_results(lines, failing) if watched else []
        ping.replay = _replay_inputs(lines, body.min_payout_cents)
        rules.price_checks(lines, state, auction.terms)
        fallback = offer.static_fallback if offer.static_fallback is not None else self.defaults.static_fallback
        if fallback and not rules.open_lines(lines):
            rules.static_fallback(lines, state, auction.terms)
        before = [line.saved() for line in lines]

        def decide_afresh(tx: Tx) -> Awaitable[PingOut]:
            # A unit retried after a deadlock or serialization failure decides again from the
            # lines as they were before its first attempt (docs/crash-safety.md).
            for line, saved in zip(lines, before, strict=True):
                line.restore(saved)
            return self._decide(tx, ping, state=state)

        answer = await self.store.write(decide_afresh, durable=False)
        if health:  # failures, or the first answer after failures (docs/protocol.md, auto-pause)
            await self.store.write(lambda tx: autopause.record(tx, health))
        self._keep_leases(ping)
        return answer

    async def _ping_fixed_prices(self, auction: _Auction, *, optimistic: bool) -> PingOut:
        """Fixed prices only: read, decide and write in one unit of the write batch (nothing to wait for in
        between), sharing the rows read with the batch's other pings."""
        ping = auction.ping
        offer, body, lines = ping.offer, ping.body, ping.lines
        before = [line.saved() for line in lines]

        async def read_decide_write(tx: Tx) -> PingOut:
            for line, saved in zip(lines, before, strict=True):  # a retried unit starts afresh
                line.restore(saved)
            pointer = offer.rule == "round_robin" and tx.dialect == "postgresql" and not body.test
            if pointer:
                await repo.rr_last_key(tx, offer.id)  # the pointer first: the one lock order
            # read at the one clock of shared decisions (docs/crash-safety.md), on PostgreSQL along with it
            state = await self._read_state(tx, auction.query, share=not pointer)
            at = state.now
            keys = PeriodKeysByContract(ping.snap.contracts, at)
            if self.leases is not None:
                self.leases.adjust(state, keys, at)
            auction.check_state(state, keys)
            for line in auction.open_lines:
                if line.outcome is None:
                    line.bid = line.contract.fixed_bid
            rules.price_checks(lines, state, auction.terms)
            # PostgreSQL: other processes commit between this read and the reservations, so the
            # hot counter rows are taken last, after the inserts (see _decide).
            return await self._decide(
                tx, ping, reclaimed=True, optimistic=optimistic and tx.dialect == "postgresql", state=state
            )

        answer = await self.store.write(read_decide_write, batch_cache=True, durable=False)
        self._keep_leases(ping)
        return answer

    async def _read_state(self, tx: Tx, query: repo.StateQuery, *, share: bool) -> AuctionState:
        """A fixed-price ping's state read. PostgreSQL: usage, funds, the version and the clock in one
        statement outside any transaction, shared by this process's pings of the same contracts that
        ask while it is on its way (`share`; as SQLite's write batch shares them, docs/performance.md:
        each ping works on copies, and every cap and fund is still taken or drawn exactly at its
        write); the ping's own dedup, suppression and rate window are its own."""
        if tx.dialect != "postgresql":
            return await repo.read_state_for_write(tx, query, now=await tx.now_ms())
        if not share:
            return await repo.state_from(tx, query, await repo.read_counters(tx, query.contract_ids, query.buyer_ids))
        key = (tuple(query.contract_ids), tuple(query.buyer_ids))
        on_its_way = self._reads.get(key)
        if on_its_way is not None:  # None when it failed: read again in this unit (and reclaim what lapsed)
            return await repo.state_from(tx, query, await asyncio.shield(on_its_way))
        self._reads[key] = on_its_way = asyncio.get_running_loop().create_future()
        read = None
        try:
            read = await repo.read_counters(tx, query.contract_ids, query.buyer_ids)
        finally:
            del self._reads[key]
            on_its_way.set_result(read)
        return await repo.state_from(tx, query, read)

    @staticmethod
    def _spend_bound_row(ping: _Ping, reservation: dict[str, Any]) -> bool:
        contract = ping.snap.contracts[reservation["contract_id"]]
        return _spend_bound(contract, ping.snap.buyers.get(contract.buyer_id))

    def _keep_leases(self, ping: _Ping) -> None:
        """The ping's transaction committed: the next winners of these contracts draw from its leases."""
        if self.leases is not None:
            for lease in ping.new_leases:
                self.leases.add(lease)

    async def _duplicate(self, ping: _Ping) -> PingOut | None:
        """A duplicate of an earlier ping of the campaign within its window: that ping's answer (or
        `no_bids`, reason `duplicate_ping`), with no auction and no reservation; None otherwise."""
        assert ping.dup_key is not None
        dup_key, since = ping.dup_key, ping.received - ping.campaign.duplicate_ping_window_s * 1000
        earlier = await self.store.read(lambda tx: traffic_repo.earlier_ping(tx, dup_key=dup_key, since=since))
        if earlier is None:
            return None
        answer = duplicate_answer(earlier, now=now_ms())
        finalize = ping.finalize
        if finalize is not None:  # the Idempotency-Key's answer
            await self.store.write(lambda tx: finalize(tx, answer))
        return answer

    def _observe(self, ping: _Ping, answer: PingOut, started: float) -> None:
        """Report counters (real pings), the log line and the metrics of a decided ping."""
        offer, campaign, body = ping.offer, ping.campaign, ping.body
        if self.counters is not None and not body.test:
            duplicate = answer.duplicate_of is not None
            lines = [] if duplicate else ping.lines
            self.count(ping.received, campaign, lines, source=body.source, duplicate=duplicate)
        log.info(
            "ping_decided",
            ping_id=answer.ping_id,
            offer=offer.id,
            campaign=campaign.id,
            channel=body.channel,
            status=answer.status,
            bids=len(answer.bids),
            test=body.test,
        )
        PINGS.labels(offer.id, answer.status).inc()
        PING_SECONDS.labels(offer.id).observe(time.perf_counter() - started)

    def count(
        self, at_ms: int, campaign: Campaign, lines: list[Line], *, source: str | None = None, duplicate: bool = False
    ) -> None:
        """Report counters: the ping, and per contract whether it was evaluated, bid and won."""
        if self.counters is not None:
            won = Outcome.WON.value
            self.counters.add_ping(
                at_ms=at_ms,
                offer_id=campaign.offer_id,
                campaign_id=campaign.id,
                partner_id=campaign.partner_id,
                contracts=[
                    (line.contract.id, line.contract.buyer_id, line.source is not None, line.outcome == won)
                    for line in lines
                ],
                source=source,
                duplicate=duplicate,
            )

    async def read_state(
        self, lines: list[Line], consumer: dict[str, str], now: int, *, suppression: bool = False
    ) -> AuctionState:
        """Usage, funds, dedup and suppression of these contracts in a read of their own (direct posts)."""
        query = _state_query(lines, consumer, suppression=suppression)
        return await self.store.read(lambda tx: repo.read_state(tx, query, now=now))

    async def _bid(self, lines: list[Line], request: BidRequest, offer: Offer) -> None:
        """Fixed prices as they are; RTB buyers asked concurrently under the auction's one deadline."""
        rtb_lines = [line for line in lines if line.contract.rtb]
        for line in lines:
            if not line.contract.rtb:
                line.bid = line.contract.fixed_bid
        if not rtb_lines:
            return
        deadline = offer.auction_timeout_ms or max(
            contract_timeout_ms(line.contract, request.channel) for line in rtb_lines
        )
        results = await self.rtb.bid_all([line.contract for line in rtb_lines], request, deadline)
        for line in rtb_lines:
            line.bid = results.get(line.contract.id) or BidResult(Outcome.BID_TIMEOUT, detail="no answer")

    async def _decide(
        self,
        tx: Tx,
        ping: _Ping,
        *,
        reclaimed: bool = False,
        optimistic: bool = False,
        state: AuctionState | None = None,
    ) -> PingOut:
        """Reserve the winners and write the ping with its waterfall, in the unit's transaction.

        By default each winner's cap slot and hold are taken (conditional UPDATEs) as the plan is walked,
        so a winner that lost a race is replaced by the next candidate. `optimistic` (PostgreSQL, fixed
        prices, state read in this transaction) trusts that read: every row is inserted first and all the
        winners' counter rows are taken last, in one statement, so the rows every ping of the offer
        updates stay locked only for that statement and the commit (docs/performance.md). If any of
        them moved meanwhile, `_Contended` undoes the whole unit and the ping runs again by default.

        Expiry and the cap periods a slot counts in are decided now, by the store's clock for shared
        decisions, not when the ping arrived (docs/crash-safety.md).

        With leases (docs/scale-out.md) a winner draws its slot and price from this process's lease of
        the contract when it has one; otherwise the optimistic path takes a new lease sized to the
        contract's rate (`state`: what the unit read) along with the winner's own slot."""
        drawn: list[tuple[Lease, int]] = []
        ping.new_leases, ping.new_leases_rows = [], []
        try:
            return await self._decide_drawing(tx, ping, reclaimed, optimistic, state, drawn)
        except BaseException:
            if self.leases is not None:
                for lease, price in drawn:
                    if tx.in_doubt:  # the write may have committed: draw no more, the sweep counts what did
                        self.leases.retire(lease)
                    else:
                        self.leases.undraw(lease, price)
            raise

    async def _decide_drawing(  # noqa: C901 - the flow of _decide, top to bottom
        self,
        tx: Tx,
        ping: _Ping,
        reclaimed: bool,
        optimistic: bool,
        state: AuctionState | None,
        drawn: list[tuple[Lease, int]],
    ) -> PingOut:
        offer, body = ping.offer, ping.body
        now = await tx.now_ms()
        keys = PeriodKeysByContract(ping.snap.contracts, now)
        candidates = rules.open_lines(ping.lines)
        by_id = {line.contract.id: line for line in candidates}
        contract_ids = [line.contract.id for line in candidates]
        buyer_ids = sorted({line.contract.buyer_id for line in candidates})
        ttl_s = offer.callback_ttl_s if body.channel == "callback" else offer.ping_ttl_s
        expires_at = now + ttl_s * 1000
        rr_key = ""
        calls = is_voice(body.channel)
        if candidates and not body.test:
            # One lock order on PostgreSQL (docs/crash-safety.md): the round-robin pointer, then counter
            # rows (contracts by id, then buyers by id), then reservations. The careful path takes its
            # winners' slots one by one in rank order, so it locks every candidate's rows first; the
            # optimistic path locks only its winners' rows, in that order, in `take_slots`.
            if offer.rule == "round_robin":
                rr_key = await repo.rr_last_key(tx, offer.id)
            if not optimistic:
                await repo.lock_rows(tx, contract_ids=contract_ids, buyer_ids=buyer_ids)
            if not reclaimed:  # the fixed-price path reclaimed in its state read, in this same unit
                await repo.reclaim_expired(tx, contract_ids=contract_ids, buyer_ids=buyer_ids, now=now, calls=calls)
        plan = rules.plan_for(offer, body.channel, candidates, rr_key, seed=ping.id)
        live_at_win = body.channel == "call"  # callbacks take their live-call slot at `connected`
        reservations: list[dict[str, Any]] = []  # inserted together once every winner is reserved

        async def try_reserve(choice: distribution.Choice, standby: bool) -> tuple[str, str] | None:
            line = by_id[choice.candidate.contract_id]
            line.bid_id = new_id("bid")
            if body.test:
                return None  # test pings run the whole flow but reserve nothing
            live = live_at_win and not standby
            buyer = ping.snap.buyers.get(line.contract.buyer_id)
            reserve_keys = (keys[line.contract.id], local_minute(now, buyer.tz if buyer else UTC)[1])
            # Spend caps are not leased (docs/scale-out.md): their winners take the shared rows.
            leasable = self.leases is not None and not live and not _spend_bound(line.contract, buyer)
            lease = None
            if self.leases is not None and leasable:
                lease = self.leases.draw(line.contract.id, keys[line.contract.id], choice.price_cents, now)
            taken: _Taken | tuple[str, str]
            if lease is not None:
                drawn.append((lease, choice.price_cents))
                taken = _Taken(*reserve_keys)
            else:
                taken = await self._reserve(
                    tx, line, choice.price_cents, keys=reserve_keys, live=live, optimistic=optimistic
                )
                if leasable and state is not None and not optimistic and isinstance(taken, _Taken):
                    # the slot and price are taken: lease more along with them (docs/scale-out.md)
                    lease = await self._extend(tx, ping, line.contract, taken.slot, choice.price_cents, state, now)
            if not isinstance(taken, _Taken):
                return taken
            slot, held = taken.slot, taken.held
            line.reservation_id = new_id("rsv")
            reservations.append(
                {
                    "id": line.reservation_id,
                    "bid_id": line.bid_id,
                    "ping_id": ping.id,
                    "contract_id": line.contract.id,
                    "buyer_id": line.contract.buyer_id,
                    "amount_cents": choice.price_cents,
                    "day_key": slot.day,
                    "week_key": slot.week,
                    "month_key": slot.month,
                    "buyer_day_key": held.day,
                    "buyer_week_key": held.week,
                    "buyer_month_key": held.month,
                    "live_call": int(live_at_win and not standby),
                    "expires_at": expires_at,
                    "created_at": now,
                    "lease_id": lease.id if lease is not None else None,
                }
            )
            return None

        winners, standbys, outcomes = await distribution.select_winners(
            plan, try_reserve, standby=offer.call_standby if calls else 0
        )
        takes = self._lease_takes(ping, reservations, state, now) if optimistic and self.leases is not None else []
        rules.settle_lines(candidates, plan, winners=winners, standbys=standbys, outcomes=outcomes)
        bids, answer_bids = self._bids(ping, by_id, winners, standbys)
        status = "bids" if winners else "no_bids"
        ping_row = {
            "id": ping.id,
            "offer_id": offer.id,
            "campaign_id": ping.campaign.id,
            "partner_id": ping.campaign.partner_id,
            "channel": body.channel,
            "mode": "ping_post",
            "status": status,
            "post_state": "open" if winners else "closed",
            "test": int(body.test),
            "partner_lead_id": body.partner_lead_id,
            "received_at": ping.received,
            "decided_at": now_ms(),
            "expires_at": expires_at,
            "lead": orjson.dumps(ping.lead).decode(),
            "consumer": orjson.dumps(ping.consumer).decode(),
            "bids": orjson.dumps(bids).decode(),
            "waterfall": orjson.dumps([line.entry() for line in ping.lines]).decode(),
            "source": body.source,
            "subs": orjson.dumps(body.subs.given()).decode() if body.subs else None,
            "dup_key": ping.dup_key,
            "replay": ping.replay,
        }
        rr_winner = bool(winners) and offer.rule == "round_robin" and not body.test
        # winners bound by a spend cap drew no lease: the shared rows, as without leases
        plain = [
            r for r in reservations if self.leases is None or (r["lease_id"] is None and self._spend_bound_row(ping, r))
        ]
        plain = plain if optimistic else []
        watched = [b for r in reservations if (b := ping.snap.buyers.get(r["buyer_id"])) and b.low_balance_cents]
        last = not (ping.rate_limit or rr_winner or ping.finalize or takes or ping.new_leases or plain or watched)
        held = repo.WriteLeases(sorted({lease.id for lease, _ in drawn}), now, last=last)
        if not await repo.write_ping(tx, ping_row, reservations, held):
            if self.leases is not None:
                for lease, _ in drawn:
                    self.leases.retire(lease)  # ended meanwhile (or this process lost it): never again
            raise _Contended
        if ping.rate_limit:
            await repo.count_rate_window(tx, campaign_id=ping.campaign.id, now=ping.received)
        if rr_winner:
            await repo.set_rr_last_key(tx, offer.id, winners[-1].candidate.rank_key)
        answer = PingOut(
            ping_id=ping.id, status=status, expires_at=rfc3339(expires_at) or "", post_url="/v1/post", bids=answer_bids
        )
        if ping.finalize is not None:
            await ping.finalize(tx, answer)
        if takes and not await leases_repo.take(tx, takes):
            raise _Contended
        if ping.new_leases:
            await leases_repo.insert(tx, [row for _, row in ping.new_leases_rows])
        if plain and not await repo.take_slots(tx, plain):
            raise _Contended
        if watched:  # only buyers with a low-balance threshold (docs/protocol.md)
            await autopause.check_low_balance(tx, watched)
        return answer

    async def _extend(  # noqa: PLR0913 - the winner and what its ping read
        self,
        tx: Tx,
        ping: _Ping,
        contract: Contract,
        keys: PeriodKeys,
        price: int,
        state: AuctionState,
        now: int,
    ) -> Lease | None:
        """The careful path took one slot and the price: take a lease's worth more, if the rate and what
        is left allow, and answer the new lease (this winner's reservation is its first draw)."""
        assert self.leases is not None
        size = self.leases.size(contract, state, keys, price, now)
        if size.slots < 2:
            return None
        more = leases_repo.Take(
            contract.id, keys.day, keys.week, keys.month, contract.buyer_id, size.slots - 1, size.cents - price
        )
        repo.forget(tx)  # counter rows change outside the batch's shared state (SQLite)
        if not await leases_repo.extend(tx, more):
            return None
        lease = self.leases.new_lease(contract, keys, size, price, now)
        ping.new_leases.append(lease)
        ping.new_leases_rows.append((lease, self.leases.row(lease, size, now)))
        return lease

    def _lease_takes(
        self, ping: _Ping, reservations: list[dict[str, Any]], state: AuctionState | None, now: int
    ) -> list[leases_repo.Take]:
        """The optimistic path's takes from the shared rows: one per winner that drew from no lease, a
        new lease's worth where the contract's rate and what is left allow (docs/scale-out.md)."""
        assert self.leases is not None
        takes = []
        for r in reservations:
            contract = ping.snap.contracts[r["contract_id"]]
            if r["lease_id"] is None and self._spend_bound_row(ping, r):
                continue  # taken by `repo.take_slots` with its spend counters
            keys = PeriodKeys(r["day_key"], r["week_key"], r["month_key"])
            price = r["amount_cents"]
            if r["lease_id"] is not None:  # drawn: take the next lease ahead when this one runs low
                if state is not None and self.leases.needs_refill(contract.id, keys, now):
                    refill = self.leases.size(contract, state, keys, price, now)
                    if refill.slots > 1:
                        lease = self.leases.new_lease(contract, keys, refill, price, now, drawn=False)
                        ping.new_leases.append(lease)
                        ping.new_leases_rows.append((lease, self.leases.row(lease, refill, now)))
                        takes.append(
                            leases_repo.Take(
                                contract.id,
                                keys.day,
                                keys.week,
                                keys.month,
                                contract.buyer_id,
                                refill.slots,
                                refill.cents,
                            )
                        )
                continue
            size = self.leases.size(contract, state, keys, price, now) if state is not None else None
            slots, cents = (size.slots, size.cents) if size is not None else (1, price)
            if size is not None and size.slots > 1:
                lease = self.leases.new_lease(contract, keys, size, price, now)
                r["lease_id"] = lease.id
                ping.new_leases.append(lease)
                ping.new_leases_rows.append((lease, self.leases.row(lease, size, now)))
            takes.append(
                leases_repo.Take(r["contract_id"], keys.day, keys.week, keys.month, r["buyer_id"], slots, cents)
            )
        return takes

    @staticmethod
    async def _reserve(
        tx: Tx,
        line: Line,
        price_cents: int,
        *,
        keys: tuple[PeriodKeys, PeriodKeys],
        live: bool,
        optimistic: bool,
    ) -> _Taken | tuple[str, str]:
        """A winner's cap slot (and spend), hold (and the buyer's spend) and (calls) live-call slot;
        answers the periods the slot and the hold count in (`keys`: the contract's, the buyer's), or the
        race it lost. Optimistic: the state read passed them; taken after the inserts."""
        if optimistic:
            return _Taken(*keys)
        c = line.contract
        slot = await repo.take_cap_slot(tx, contract_id=c.id, keys=keys[0], amount_cents=price_cents)
        if slot is None:
            return Outcome.CAP_REACHED.value, "reserved_concurrently"
        held = await repo.take_hold(tx, buyer_id=c.buyer_id, amount_cents=price_cents, keys=keys[1])
        if held is None:
            await repo.return_cap_slot(tx, contract_id=c.id, keys=slot, amount_cents=price_cents)
            return Outcome.INSUFFICIENT_BALANCE.value, "reserved_concurrently"
        if live and not await repo.take_live_slot(tx, contract_id=c.id):
            await repo.return_cap_slot(tx, contract_id=c.id, keys=slot, amount_cents=price_cents)
            await repo.return_hold(tx, buyer_id=c.buyer_id, amount_cents=price_cents, keys=held)
            return Outcome.CONCURRENCY_CAP_REACHED.value, "reserved_concurrently"
        return _Taken(slot, held)

    @staticmethod
    def _bids(
        ping: _Ping, by_id: dict[str, Line], winners: list[distribution.Choice], standbys: list[distribution.Choice]
    ) -> tuple[list[dict[str, Any]], list[BidOut]]:
        """The bids stored with the ping (winners and standbys) and those answered to the partner."""
        calls = is_voice(ping.body.channel)
        bids: list[dict[str, Any]] = []
        answer_bids: list[BidOut] = []
        for role, chosen in (("winner", winners), ("standby", standbys)):
            for choice in chosen:
                line = by_id[choice.candidate.contract_id]
                payout = bid_payout_cents(
                    ping.campaign.payout,
                    choice.price_cents,
                    contract_id=line.contract.id,
                    buyer_id=line.contract.buyer_id,
                )
                transfer = ((line.bid.transfer if line.bid else None) or line.contract.transfer) if calls else None
                bids.append(
                    {
                        "bid_id": line.bid_id,
                        "contract_id": line.contract.id,
                        "buyer_id": line.contract.buyer_id,
                        "price_cents": choice.price_cents,
                        "payout_cents": payout,
                        "sale_type": choice.sale_type,
                        "source": line.source,
                        "bid_ref": line.bid.bid_ref if line.bid else None,
                        "transfer": transfer,
                        "role": role,
                        "reservation_id": line.reservation_id,
                    }
                )
                if role == "winner":
                    answer_bids.append(
                        BidOut(
                            bid_id=line.bid_id or "",
                            payout_cents=payout,
                            sale_type=choice.sale_type,
                            transfer=transfer or None,
                        )
                    )
        return bids, answer_bids


@dataclass(frozen=True, slots=True)
class _Taken:
    """The periods a reservation counts in: its contract's (cap slot and spend), its buyer's (spend)."""

    slot: PeriodKeys
    held: PeriodKeys


@dataclass(slots=True)
class _Ping:
    """One ping while its auction runs: what `_decide` writes."""

    id: str
    snap: Snapshot
    offer: Offer
    campaign: Campaign
    body: PingIn
    lead: dict[str, Any]
    consumer: dict[str, str]  # keyed hashes
    received: int
    lines: list[Line]
    finalize: Callable[[Tx, PingOut], Awaitable[None]] | None
    rate_limit: int
    dup_key: str | None = None  # with the campaign's duplicate-ping window
    replay: str | None = None  # what a replay needs beyond the waterfall (docs/replay.md), when anything
    new_leases: list[Lease] = field(default_factory=list)  # taken by this ping's transaction
    new_leases_rows: list[tuple[Lease, dict[str, Any]]] = field(default_factory=list)


def _replay_inputs(lines: list[Line], min_payout_cents: int) -> str | None:
    document = replay_document(lines, min_payout_cents)
    return orjson.dumps(document).decode() if document is not None else None


@dataclass(slots=True)
class _Auction:
    """What both ways of running a ping share once the checks that need no state ran (see `ping`)."""

    ping: _Ping
    open_lines: list[Line]  # the lines still open after those checks
    arrival_keys: PeriodKeysByContract  # the cap periods at the ping's arrival
    terms: Terms
    query: repo.StateQuery
    consumer_plain: dict[str, Any]  # the consumer hashes as the partner sent them

    def check_state(self, state: AuctionState, period_keys: PeriodKeysByContract) -> None:
        """The snapshot is current, the campaign under its rate limit; then the checks on usage, funds and
        dedup (against the ping's arrival)."""
        ping = self.ping
        if state.config_version != ping.snap.version:
            raise _StaleSnapshot
        if ping.rate_limit and state.rate_used >= ping.rate_limit:
            raise errors.RateLimited(
                f"over {ping.rate_limit} pings a second for this campaign",
                headers={"Retry-After": "1"},
                details={"limit_per_s": ping.rate_limit},
            )
        rules.state_checks(self.open_lines, state, period_keys, ping.body.channel, ping.received)


def check_source(campaign: Campaign, source: str | None) -> None:
    """A campaign's `sources` allow and block lists (403 `source_blocked`)."""
    if not campaign.source_allowed(source):
        raise errors.Forbidden(
            "this campaign does not take pings from this source",
            code="source_blocked",
            details={"source": source},
        )


def _state_query(
    lines: Sequence[Line], consumer: dict[str, str], *, rate_campaign: str | None = None, suppression: bool = False
) -> repo.StateQuery:
    """The state read of these lines: their contracts, their buyers, the consumer's keyed hashes."""
    return repo.StateQuery(
        contract_ids=[line.contract.id for line in lines],
        buyer_ids=sorted({line.contract.buyer_id for line in lines}),
        hashes=sorted(consumer.values()),
        rate_campaign=rate_campaign,
        suppression=suppression,
    )


def _spend_bound(contract: Contract, buyer: Buyer | None) -> bool:
    """Whether a spend cap (the contract's or its buyer's) counts this winner: never leased."""
    return contract.spend_capped or (buyer is not None and buyer.spend_capped)
