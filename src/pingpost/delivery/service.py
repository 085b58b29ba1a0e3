"""What happens on a post (docs/crash-safety.md): claim, deliver with nothing open, record.

T1 claims the ping, moves accepted reservations to `posting`, re-checks filters, dedup and
consent on the full lead, stores the post (PII encrypted) and one pending delivery per bid.
Deliveries then run in parallel with no transaction open. Each result is recorded in its own short
transaction: a sale with its ledger transaction, or a release. A crash between delivery and its
record leaves the delivery pending: money and caps stay right (the reservation lapses) and the
operator settles it from the reconciliation list. Nothing is ever redelivered automatically.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson
import structlog

from pingpost import errors
from pingpost.auction import autopause
from pingpost.db import auction_repo, post_repo, traffic_repo
from pingpost.db.store import Store, Tx
from pingpost.delivery.payload import consumer_hashes, delivery_payload, missing_consent
from pingpost.delivery.schemas import Consent, PostIn, PostOut, RejectedOut, SaleOut
from pingpost.delivery.verification import Verifier
from pingpost.domain import verification as verify_rules
from pingpost.domain.delivery_rules import Verdict, judge
from pingpost.domain.eligibility import NO_SUPPRESSION, first_failing_filter, with_source
from pingpost.domain.leads import LeadProblem, validate_lead
from pingpost.domain.model import Campaign, Contract, Snapshot, Vertical
from pingpost.domain.outcomes import PostOutcome
from pingpost.domain.verification import Result
from pingpost.ids import now_ms
from pingpost.metrics import DELIVERIES
from pingpost.outbound.client import BuyerClient
from pingpost.security import SecretKey

log = structlog.get_logger("pingpost.delivery")
GRACE_MS = 30_000  # a posting reservation outlives its delivery deadline by this much


@dataclass(frozen=True)
class Delivery:
    bid: dict[str, Any]
    contract: Contract


@dataclass(frozen=True)
class _ValidPost:
    """A post that passed validation, as its claim (T1) needs it: the ping row and its campaign, the
    winning bids and those the partner chose, the full lead, the consent, the consumer's keyed hashes."""

    ping: Any
    campaign: Campaign
    winners: list[dict[str, Any]]
    chosen: set[str]
    lead: dict[str, Any]
    consent: dict[str, Any]
    keyed: list[str]


def verification_json(results: list[Result]) -> str | None:
    """The results as stored with the post (docs/verification.md); None when no check ran."""
    return orjson.dumps([r.view() for r in results]).decode() if results else None


class PostService:
    def __init__(
        self,
        *,
        store: Store,
        secret: SecretKey,
        client: BuyerClient,
        grace_ms: int = GRACE_MS,
        verifier: Verifier | None = None,
    ) -> None:
        self.store = store
        self.secret = secret
        self.client = client
        self.grace_ms = grace_ms
        self.verifier = verifier

    async def post(self, *, snap: Snapshot, campaign: Campaign, body: PostIn, resume: bool = False) -> PostOut:
        """Post a lead for a ping. With `resume` (an idempotent retry whose first attempt crashed), a
        ping whose post already started is answered from what was recorded, never delivered again."""
        ping = await self.store.read(lambda tx: post_repo.load_ping(tx, body.ping_id))
        if (
            resume
            and ping is not None
            and ping["campaign_id"] == campaign.id
            and ping["post_state"] in ("posting", "posted")
        ):
            return await self.recorded_answer(ping["id"])
        self._check_ping(ping, campaign, body.ping_id)
        offer = snap.offers[ping["offer_id"]]
        vertical = snap.verticals[offer.vertical_id]
        lead = self.validate_lead(vertical, ping, body.lead)
        if body.source != ping["source"]:
            raise errors.Unprocessable(
                "the post changes the source the ping sent", code="lead_mismatch", details={"fields": ["source"]}
            )
        hashes = consumer_hashes(vertical, lead)
        keyed = {name: self.secret.keyed(value) for name, value in hashes.items()}
        stored = orjson.loads(ping["consumer"])
        mismatched = [name for name, value in stored.items() if keyed.get(name) != value]
        if mismatched:
            raise errors.Unprocessable(
                "the lead does not match the consumer hashes of the ping",
                code="consumer_mismatch",
                details={"fields": mismatched},
            )
        bids: list[dict[str, Any]] = orjson.loads(ping["bids"])
        winners = [b for b in bids if b["role"] == "winner"]
        if body.bid_ids is not None:
            unknown = sorted(set(body.bid_ids) - {b["bid_id"] for b in winners})
            if unknown:
                raise errors.ValidationFailed.one("bid_ids", f"{len(unknown)} bid id(s) are not bids of this ping")
        chosen = set(body.bid_ids) if body.bid_ids is not None else {b["bid_id"] for b in winners}
        consent = (body.consent or Consent()).model_dump()
        valid = _ValidPost(
            ping=ping,
            campaign=campaign,
            winners=winners,
            chosen=chosen,
            lead=lead,
            consent=consent,
            keyed=sorted(keyed.values()),
        )
        # Checks run before the claim, with nothing open; a refusal is one short transaction.
        results = (
            await self.verifier.for_post(
                offer=offer, campaign=campaign, vertical=vertical, ping_id=ping["id"], lead=lead, consent=consent
            )
            if self.verifier is not None
            else []
        )
        if verify_rules.refusing(results):
            return await self.store.write(lambda tx: self._refuse(tx, valid, results))
        deliveries, post_failures = await self.store.write(lambda tx: self._claim(tx, snap, valid, results))
        return await self.deliver_and_record(
            ping=ping, deliveries=deliveries, lead=lead, consent=consent, post_failures=post_failures
        )

    @staticmethod
    def _check_ping(ping: Any, campaign: Campaign, ping_id: str, *, now: int | None = None) -> None:
        if ping is None:
            raise errors.NotFound("ping", ping_id)
        if ping["campaign_id"] != campaign.id:
            raise errors.Forbidden("this ping belongs to another campaign")
        if ping["channel"] != "form":
            raise errors.Unprocessable(
                "call pings are posted by the call platform",
                code="channel_mismatch",
                details={"channel": ping["channel"]},
            )
        if ping["post_state"] in ("posting", "posted"):
            raise errors.Conflict("this ping was already posted", code="already_posted")
        if ping["post_state"] == "closed":
            raise errors.Conflict("this ping has no bids to post", details={"status": ping["status"]})
        if now is not None and ping["expires_at"] <= now:  # decided by the store's clock only (the claim)
            raise errors.Gone("the ping expired", code="ping_expired", details={"ping_id": ping["id"]})

    @staticmethod
    def validate_lead(vertical: Vertical, ping: Any, raw: dict[str, Any]) -> dict[str, Any]:
        try:
            lead = validate_lead(vertical, raw, allow_pii=True, require=True)
        except LeadProblem as problem:
            raise errors.lead_problem_error(problem) from None
        pinged = orjson.loads(ping["lead"])
        changed = sorted(name for name, value in pinged.items() if lead.get(name) != value)
        if changed:
            raise errors.Unprocessable(
                "the post changes fields the ping sent", code="lead_mismatch", details={"fields": changed}
            )
        return lead

    async def _claim_or_explain(self, tx: Tx, post: _ValidPost) -> int:
        """Claim the ping (open and unexpired by the store's clock); raise why not. Answers the time."""
        # Expiry is decided by the store's clock (on PostgreSQL the database's): hosts whose clocks
        # disagree still agree on which reservations are live (docs/crash-safety.md).
        ping, campaign = post.ping, post.campaign
        now = await tx.now_ms()
        if not await post_repo.claim_ping(tx, ping_id=ping["id"], campaign_id=campaign.id, now=now):
            self._check_ping(await post_repo.load_ping(tx, ping["id"]), campaign, ping["id"], now=now)
            raise errors.Conflict("this ping was already posted", code="already_posted")
        return now

    async def _refuse(self, tx: Tx, post: _ValidPost, results: list[Result]) -> PostOut:
        """A post a `require` check refused, in one short transaction: every winning bid is
        `verification_failed` and its reservation released; the post is stored with the results;
        nothing is delivered or charged (docs/verification.md)."""
        now = await self._claim_or_explain(tx, post)
        ping, winners = post.ping, post.winners
        await auction_repo.lock_rows(
            tx, contract_ids=[b["contract_id"] for b in winners], buyer_ids=[b["buyer_id"] for b in winners]
        )
        failed = ",".join(dict.fromkeys(r.type for r in verify_rules.refusing(results)))
        updates: dict[str, dict[str, Any]] = {}
        for bid in winners:
            await post_repo.release_bid(tx, bid)
            updates[bid["contract_id"]] = {"post_outcome": PostOutcome.VERIFICATION_FAILED.value, "post_detail": failed}
        await self._store_post(tx, post, now=now, results=results)
        await post_repo.update_waterfall(tx, ping["id"], updates)
        await post_repo.add_event(tx, ping_id=ping["id"], at=now, type_="verification", detail=f"refused: {failed}")
        await post_repo.set_post_state(tx, ping["id"], post_state="posted", status="unsold")
        log.info("post_refused", ping_id=ping["id"], failed=failed, bids=len(winners))
        return PostOut(
            ping_id=ping["id"],
            status="unsold",
            sales=[],
            rejected=[RejectedOut(bid_id=b["bid_id"], reason=PostOutcome.VERIFICATION_FAILED.value) for b in winners],
            payout_total_cents=0,
        )

    async def _store_post(self, tx: Tx, post: _ValidPost, *, now: int, results: list[Result]) -> None:
        sealed = self.secret.encrypt(orjson.dumps({"lead": post.lead, "consent": post.consent}))
        await post_repo.insert_post(
            tx, ping_id=post.ping["id"], now=now, pii_ciphertext=sealed, verification=verification_json(results)
        )

    async def _claim(
        self, tx: Tx, snap: Snapshot, post: _ValidPost, results: list[Result]
    ) -> tuple[list[Delivery], dict[str, str]]:
        ping, winners, lead, consent, keyed = (post.ping, post.winners, post.lead, post.consent, post.keyed)
        now = await self._claim_or_explain(tx, post)
        test = bool(ping["test"])
        # The one lock order: counter rows (contracts, then buyers) before any reservation row. The
        # buyers' rows also serialise posts to one buyer, so the dedup re-check below is exact.
        await auction_repo.lock_rows(
            tx, contract_ids=[b["contract_id"] for b in winners], buyer_ids=[b["buyer_id"] for b in winners]
        )
        deliveries: list[Delivery] = []
        failures: dict[str, str] = {}
        updates: dict[str, dict[str, Any]] = {}
        suppressed = (
            await traffic_repo.suppressing_lists(tx, keyed) if snap.suppression_lists and keyed else NO_SUPPRESSION
        )
        for bid in winners:
            contract = snap.contracts[bid["contract_id"]]
            outcome, detail = self._recheck(contract, bid, post.chosen, with_source(lead, ping["source"]), consent)
            if outcome is None and suppressed and suppressed.applies(contract):
                outcome = PostOutcome.SUPPRESSED
            if (
                outcome is None
                and not test
                and await post_repo.recent_purchase(
                    tx, buyer_id=bid["buyer_id"], hashes=keyed, since=now - contract.dedup_days * 86_400_000
                )
                and contract.dedup_days > 0
            ):
                outcome = PostOutcome.DUPLICATE
            if outcome is not None:
                failures[bid["bid_id"]] = outcome.value
                updates[contract.id] = {"post_outcome": outcome.value, "post_detail": detail}
                await post_repo.release_bid(tx, bid)
                continue
            timeout_ms = int((contract.delivery or {}).get("timeout_ms") or 5000)
            if bid.get("reservation_id") and not await post_repo.move_to_posting(
                tx, bid["reservation_id"], expires_at=now + timeout_ms + self.grace_ms, now=now
            ):
                # The reservation lapsed (its slot and hold may already serve another ping): nothing is
                # delivered or charged for this bid.
                failures[bid["bid_id"]] = PostOutcome.NOT_POSTED.value
                updates[contract.id] = {"post_outcome": PostOutcome.NOT_POSTED.value, "post_detail": "bid_expired"}
                await post_repo.release_bid(tx, bid)
                continue
            if not test:
                await auction_repo.record_dedup(
                    tx,
                    buyer_id=bid["buyer_id"],
                    hashes=keyed,
                    sold_at=now,
                    sale_id=post_repo.pending_sale_id(bid["bid_id"]),
                )
            await post_repo.insert_delivery(tx, ping_id=ping["id"], bid=bid, now=now)
            updates[contract.id] = {"post_outcome": PostOutcome.POST_UNKNOWN.value, "post_detail": "delivering"}
            deliveries.append(Delivery(bid, contract))
        await self._store_post(tx, post, now=now, results=results)
        await post_repo.update_waterfall(tx, ping["id"], updates)
        await post_repo.add_event(
            tx,
            ping_id=ping["id"],
            at=now,
            type_="post",
            detail=f"{len(deliveries)} delivering, {len(failures)} not delivered",
        )
        return deliveries, failures

    @staticmethod
    def _recheck(
        contract: Contract, bid: dict[str, Any], chosen: set[str], lead: dict[str, Any], consent: dict[str, Any]
    ) -> tuple[PostOutcome | None, str | None]:
        if bid["bid_id"] not in chosen:
            return PostOutcome.NOT_POSTED, "not_accepted_by_partner"
        failing = first_failing_filter(contract, lead)
        if failing is not None:
            return PostOutcome.FILTER_MISMATCH, failing
        missing = missing_consent(contract.consent_required, consent)
        if missing:
            return PostOutcome.CONSENT_MISSING, ",".join(missing)
        if not contract.delivery:
            return PostOutcome.POST_ERROR, "no_delivery_endpoint"
        return None, None

    async def deliver_and_record(
        self,
        *,
        ping: Any,
        deliveries: list[Delivery],
        lead: dict[str, Any],
        consent: dict[str, Any],
        post_failures: dict[str, str],
    ) -> PostOut:
        """Deliver in parallel; record each result in its own transaction; answer the post."""
        verdicts = await asyncio.gather(*(self.deliver_one(ping, d, lead, consent) for d in deliveries))
        sales: list[SaleOut] = []
        rejected = [RejectedOut(bid_id=bid_id, reason=reason) for bid_id, reason in post_failures.items()]
        for delivery, (verdict, latency) in zip(deliveries, verdicts, strict=True):
            sale_id = await self.store.write(
                partial(self.record, ping=ping, delivery=delivery, verdict=verdict, latency_ms=latency)
            )
            if verdict.accepted:
                sales.append(
                    SaleOut(sale_id=sale_id, bid_id=delivery.bid["bid_id"], payout_cents=delivery.bid["payout_cents"])
                )
            else:
                rejected.append(RejectedOut(bid_id=delivery.bid["bid_id"], reason=verdict.outcome.value))
        status = "sold" if sales else "unsold"

        async def finish(tx: Tx) -> None:
            await post_repo.set_post_state(tx, ping["id"], post_state="posted", status=status)

        await self.store.write(finish)
        log.info("post_recorded", ping_id=ping["id"], status=status, sales=len(sales), rejected=len(rejected))
        return PostOut(
            ping_id=ping["id"],
            status=status,
            sales=sales,
            rejected=rejected,
            payout_total_cents=sum(s.payout_cents for s in sales),
        )

    async def deliver_one(
        self, ping: Any, d: Delivery, lead: dict[str, Any], consent: dict[str, Any]
    ) -> tuple[Verdict, int]:
        spec = d.contract.delivery or {}
        json_body, form_body = delivery_payload(ping=ping, bid=d.bid, contract=d.contract, lead=lead, consent=consent)
        result = await self.client.post(
            spec["url"],
            auth=spec.get("auth"),
            json_body=json_body,
            form_body=form_body,
            timeout_ms=int(spec.get("timeout_ms") or 5000),
        )
        verdict = judge(status=result.status, body=result.body, error=result.error, rule=spec.get("response"))
        DELIVERIES.labels(d.contract.id, verdict.outcome.value).inc()
        log.info(
            "delivery",
            ping_id=ping["id"],
            bid_id=d.bid["bid_id"],
            contract=d.contract.id,
            outcome=verdict.outcome.value,
            latency_ms=result.latency_ms,
        )
        return verdict, result.latency_ms

    async def record(self, tx: Tx, *, ping: Any, delivery: Delivery, verdict: Verdict, latency_ms: int) -> str | None:
        now = now_ms()
        bid = delivery.bid
        await auction_repo.lock_rows(tx, contract_ids=[bid["contract_id"]], buyer_ids=[bid["buyer_id"]])
        test = bool(ping["test"])
        if not await post_repo.finish_delivery(
            tx,
            bid_id=bid["bid_id"],
            state="accepted" if verdict.accepted else "rejected",
            outcome=verdict.outcome.value,
            detail=verdict.detail,
            latency_ms=latency_ms,
            buyer_lead_id=verdict.buyer_lead_id,
            now=now,
        ):
            return None  # settled already (reconciliation got there first)
        sale_id: str | None = None
        if verdict.accepted and not test:
            sale_id = await post_repo.record_sale(tx, ping=ping, bid=bid, now=now)
        elif not verdict.accepted:
            await post_repo.release_bid(tx, bid)
        await post_repo.update_waterfall(
            tx,
            ping["id"],
            {
                delivery.contract.id: {
                    "post_outcome": verdict.outcome.value,
                    "post_detail": verdict.detail,
                    "post_latency_ms": latency_ms,
                    "sale_id": sale_id,
                }
            },
        )
        await post_repo.add_event(
            tx, ping_id=ping["id"], at=now, type_="delivery", bid_id=bid["bid_id"], detail=verdict.outcome.value
        )
        await autopause.record_delivery(tx, delivery.contract, verdict.outcome.value)
        return sale_id

    async def recorded_answer(self, ping_id: str) -> PostOut:
        """The post answer rebuilt from recorded deliveries and sales (unfinished ones are post_unknown)."""

        async def unit(tx: Tx) -> PostOut:
            ping = await post_repo.load_ping(tx, ping_id)
            bids = {b["bid_id"]: b for b in orjson.loads(ping["bids"])}
            sales = await post_repo.sales_of_ping(tx, ping_id)
            delivered = await post_repo.deliveries_of_ping(tx, ping_id)
            waterfall = {w["bid_id"]: w for w in orjson.loads(ping["waterfall"]) if w.get("bid_id")}
            sold: list[SaleOut] = []
            rejected: list[RejectedOut] = []
            for bid_id, bid in bids.items():
                d = delivered.get(bid_id)
                if d is not None and d["state"] in ("accepted", "recorded"):
                    sold.append(SaleOut(sale_id=sales.get(bid_id), bid_id=bid_id, payout_cents=bid["payout_cents"]))
                elif d is not None:
                    reason = d["outcome"] if d["state"] == "rejected" else PostOutcome.POST_UNKNOWN.value
                    rejected.append(RejectedOut(bid_id=bid_id, reason=reason))
                elif (w := waterfall.get(bid_id)) is not None and w.get("post_outcome"):
                    rejected.append(RejectedOut(bid_id=bid_id, reason=w["post_outcome"]))
            return PostOut(
                ping_id=ping_id,
                status="sold" if sold else "unsold",
                sales=sold,
                rejected=rejected,
                payout_total_cents=sum(x.payout_cents for x in sold),
            )

        return await self.store.read(unit)
