"""Direct post (docs/protocol.md, Partners): the full lead in one call, offered to the best eligible fixed-price
contracts in turn (price, then priority), up to the offer's `direct_post_attempts` deliveries.

Each attempt has the crash-safe shape of a post: a short transaction reserves the contract's cap
slot and hold and records a pending delivery, the delivery runs with nothing open, and its result
is recorded in its own transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from pingpost import errors
from pingpost.auction import autopause
from pingpost.auction.service import AuctionService, check_source
from pingpost.db import auction_repo, post_repo
from pingpost.db.store import Store, Tx
from pingpost.delivery.payload import consumer_hashes, missing_consent
from pingpost.delivery.schemas import Consent, DirectPostIn, PostOut, RejectedOut, SaleOut
from pingpost.delivery.service import Delivery, PostService, verification_json
from pingpost.domain import auction as rules
from pingpost.domain import verification
from pingpost.domain.auction import Line, Terms
from pingpost.domain.eligibility import local_minute, with_source
from pingpost.domain.leads import LeadProblem, validate_lead
from pingpost.domain.model import UTC, Buyer, Campaign, Offer, Snapshot, Vertical
from pingpost.domain.money import bid_payout_cents
from pingpost.domain.outcomes import Outcome, PostOutcome
from pingpost.domain.verification import Result
from pingpost.ids import new_id, now_ms

PingCreated = Callable[[Tx, str], Awaitable[None]]


@dataclass(frozen=True)
class VerifyArgs:
    offer: Offer
    campaign: Campaign
    vertical: Vertical
    ping_id: str
    lead: dict[str, Any]
    consent: dict[str, Any]


def _created_state(refused: str) -> str:
    """A refused direct post is over when its record is written; any other is then being delivered."""
    return "posted" if refused else "posting"


async def _record_refusal(tx: Tx, *, ping_id: str, now: int, refused: str) -> None:
    if refused:
        await post_repo.add_event(tx, ping_id=ping_id, at=now, type_="verification", detail=f"refused: {refused}")


def _entry(row: Line, refused: str, candidates: list[Line]) -> dict[str, Any]:
    """A line's waterfall entry; a candidate of a refused lead is offered to nobody: `not_selected`,
    post outcome `verification_failed` with the refusing checks (docs/verification.md)."""
    if not refused or row not in candidates:
        return row.entry()
    return {
        **row.entry(),
        "outcome": Outcome.NOT_SELECTED.value,
        "post_outcome": PostOutcome.VERIFICATION_FAILED.value,
        "post_detail": refused,
    }


class DirectPostService:
    def __init__(self, *, store: Store, auction: AuctionService, posts: PostService) -> None:
        self.store = store
        self.auction = auction
        self.posts = posts

    async def direct_post(
        self, *, snap: Snapshot, campaign: Campaign, body: DirectPostIn, on_ping_created: PingCreated | None = None
    ) -> PostOut:
        offer = snap.offers[campaign.offer_id]
        check_source(campaign, body.source)
        if offer.mode != "direct_post":
            raise errors.Unprocessable(
                "this offer takes pings, not direct posts",
                code="offer_mode_mismatch",
                details={"offer": offer.id, "mode": offer.mode},
            )
        if "form" not in offer.channels:
            raise errors.Unprocessable(
                "this offer does not take form leads", code="channel_mismatch", details={"channel": "form"}
            )
        vertical = snap.verticals[offer.vertical_id]
        try:
            lead = validate_lead(vertical, body.lead, allow_pii=True, require=True)
        except LeadProblem as problem:
            raise errors.lead_problem_error(problem) from None
        keyed = {n: self.posts.secret.keyed(h) for n, h in consumer_hashes(vertical, lead).items()}
        consent = (body.consent or Consent()).model_dump()
        received = now_ms()
        ping_id = new_id("png")
        rows = [Line(c) for c in snap.contracts_by_offer.get(offer.id, [])]
        keys = rules.pre_state_checks(snap, rows, with_source(lead, body.source), "form", received)
        open_rows = rules.open_lines(rows)
        state = await self.auction.read_state(open_rows, keyed, received, suppression=snap.suppression_lists > 0)
        rules.state_checks(open_rows, state, keys, "form", received)
        rules.direct_post_bids(rows)
        # A direct post sells the lead to one buyer at the contract's price.
        rules.price_checks(
            rows,
            state,
            Terms(
                offer=offer,
                payout=campaign.payout,
                channel="form",
                min_payout=0,
                kinds=("exclusive",),
                buyers=snap.buyers,
            ),
        )
        candidates = rules.direct_post_order(rows)
        # Verification (docs/verification.md) runs only when a contract could buy: a vendor claim costs.
        results = await self._verify(VerifyArgs(offer, campaign, vertical, ping_id, lead, consent), candidates)
        refused = ",".join(dict.fromkeys(r.type for r in verification.refusing(results)))
        entries = [_entry(r, refused, candidates) for r in rows]
        ping = {
            "id": ping_id,
            "offer_id": offer.id,
            "campaign_id": campaign.id,
            "partner_id": campaign.partner_id,
            "channel": "form",
            "test": int(body.test),
            "source": body.source,
            "subs": orjson.dumps(body.subs.given()).decode() if body.subs else None,
        }

        async def create(tx: Tx) -> None:
            now = now_ms()
            await auction_repo.insert_ping(
                tx,
                {
                    **ping,
                    "mode": "direct_post",
                    "status": "unsold",
                    "post_state": _created_state(refused),
                    "partner_lead_id": body.partner_lead_id,
                    "received_at": received,
                    "decided_at": now,
                    "expires_at": now,
                    "lead": orjson.dumps({k: v for k, v in lead.items() if not vertical.fields[k].pii}).decode(),
                    "consumer": orjson.dumps(keyed).decode(),
                    "bids": "[]",
                    "waterfall": orjson.dumps(entries).decode(),
                },
            )
            await post_repo.insert_post(
                tx,
                ping_id=ping_id,
                now=now,
                pii_ciphertext=self.posts.secret.encrypt(orjson.dumps({"lead": lead, "consent": consent})),
                verification=verification_json(results),
            )
            await _record_refusal(tx, ping_id=ping_id, now=now, refused=refused)
            if on_ping_created is not None:
                await on_ping_created(tx, ping_id)

        await self.store.write(create)
        if refused:  # nothing reserved, delivered or charged
            return PostOut(ping_id=ping_id, status="unsold", sales=[], rejected=[], payout_total_cents=0)
        sales: list[SaleOut] = []
        rejected: list[RejectedOut] = []
        attempts = 0
        for row in candidates:
            if sales or attempts >= offer.direct_post_attempts:
                break
            missing = missing_consent(row.contract.consent_required, consent)
            if missing or not row.contract.delivery:
                outcome = PostOutcome.CONSENT_MISSING if missing else PostOutcome.POST_ERROR
                detail = ",".join(missing) if missing else "no_delivery_endpoint"
                await self.store.write(
                    partial(
                        post_repo.update_waterfall,
                        ping_id=ping_id,
                        updates={
                            row.contract.id: {
                                "outcome": Outcome.NOT_SELECTED.value,
                                "post_outcome": outcome.value,
                                "post_detail": detail,
                            }
                        },
                    )
                )
                continue
            bid = await self.store.write(
                partial(
                    self._reserve,
                    ping=ping,
                    row=row,
                    keyed=keyed,
                    payout=campaign.payout,
                    buyer=snap.buyers.get(row.contract.buyer_id),
                )
            )
            if bid is None:
                continue  # lost a race for the cap or the funds: not an attempt
            attempts += 1
            row.bid_id = bid["bid_id"]
            delivery = Delivery(bid, row.contract)
            verdict, latency = await self.posts.deliver_one(ping, delivery, lead, consent)
            sale_id = await self.store.write(
                partial(self.posts.record, ping=ping, delivery=delivery, verdict=verdict, latency_ms=latency)
            )
            if verdict.accepted:
                sales.append(SaleOut(sale_id=sale_id, bid_id=bid["bid_id"], payout_cents=bid["payout_cents"]))
            else:
                rejected.append(RejectedOut(bid_id=bid["bid_id"], reason=verdict.outcome.value))
        status = "sold" if sales else "unsold"

        async def finish(tx: Tx) -> None:
            await post_repo.set_post_state(tx, ping_id, post_state="posted", status=status)

        await self.store.write(finish)
        if not body.test:
            won = {r.contract.id for r in candidates if r.bid_id}
            for row in rows:
                row.outcome = Outcome.WON.value if row.contract.id in won else row.outcome
            self.auction.count(received, campaign, rows, source=body.source)
        return PostOut(
            ping_id=ping_id,
            status=status,
            sales=sales,
            rejected=rejected,
            payout_total_cents=sum(s.payout_cents for s in sales),
        )

    async def _verify(self, args: VerifyArgs, candidates: list[Line]) -> list[Result]:
        if not candidates or self.posts.verifier is None:
            return []
        return await self.posts.verifier.for_post(
            offer=args.offer,
            campaign=args.campaign,
            vertical=args.vertical,
            ping_id=args.ping_id,
            lead=args.lead,
            consent=args.consent,
        )

    async def _reserve(
        self,
        tx: Tx,
        *,
        ping: dict[str, Any],
        row: Line,
        keyed: dict[str, str],
        payout: dict[str, Any],
        buyer: Buyer | None,
    ) -> dict[str, Any] | None:
        """Reserve one attempt (cap slot, hold, posting reservation, pending delivery); None if it lost a race.

        Dedup is checked again here, inside the write that reserves the attempt, as a post does: a
        concurrent direct post (or post) of the same consumer to this buyer is seen (docs/crash-safety.md).
        The cap periods and expiry come from the store's clock at this moment, not at arrival."""
        now = await tx.now_ms()
        c = row.contract
        buyer_tz = buyer.tz if buyer is not None else UTC
        price = int(row.exclusive_cents or 0)
        bid: dict[str, Any] = {
            "bid_id": new_id("bid"),
            "contract_id": c.id,
            "buyer_id": c.buyer_id,
            "price_cents": price,
            "payout_cents": bid_payout_cents(payout, price, contract_id=c.id, buyer_id=c.buyer_id),
            "sale_type": "exclusive",
            "source": "fixed",
            "bid_ref": None,
            "transfer": None,
            "role": "winner",
            "reservation_id": None,
        }
        update: dict[str, Any] = {
            "outcome": Outcome.WON.value,
            "bid_id": bid["bid_id"],
            "sale_type": "exclusive",
            "bid_cents": price,
            "post_outcome": PostOutcome.POST_UNKNOWN.value,
            "post_detail": "delivering",
        }
        if not ping["test"]:
            await auction_repo.lock_rows(tx, contract_ids=[c.id], buyer_ids=[c.buyer_id])
            await auction_repo.reclaim_expired(tx, contract_ids=[c.id], buyer_ids=[c.buyer_id], now=now)
            failure, detail = None, "reserved_concurrently"
            k = held = None
            if c.dedup_days > 0 and await post_repo.recent_purchase(
                tx, buyer_id=c.buyer_id, hashes=sorted(keyed.values()), since=now - c.dedup_days * 86_400_000
            ):
                failure, detail = Outcome.DUPLICATE, "sold_concurrently"
            elif (
                k := await auction_repo.take_cap_slot(
                    tx, contract_id=c.id, keys=local_minute(now, c.tz)[1], amount_cents=price
                )
            ) is None:
                failure = Outcome.CAP_REACHED
            elif (
                held := await auction_repo.take_hold(
                    tx, buyer_id=c.buyer_id, amount_cents=price, keys=local_minute(now, buyer_tz)[1]
                )
            ) is None:
                await auction_repo.return_cap_slot(tx, contract_id=c.id, keys=k, amount_cents=price)
                failure = Outcome.INSUFFICIENT_BALANCE
            if failure is not None or k is None or held is None:
                await post_repo.update_waterfall(
                    tx, ping["id"], {c.id: {"outcome": (failure or Outcome.CAP_REACHED).value, "detail": detail}}
                )
                return None
            if buyer is not None and buyer.low_balance_cents is not None:
                await autopause.check_low_balance(tx, [buyer])
            bid["reservation_id"] = new_id("rsv")
            timeout_ms = int((c.delivery or {}).get("timeout_ms") or 5000)
            await auction_repo.insert_reservation(
                tx,
                {
                    "id": bid["reservation_id"],
                    "bid_id": bid["bid_id"],
                    "ping_id": ping["id"],
                    "contract_id": c.id,
                    "buyer_id": c.buyer_id,
                    "amount_cents": price,
                    "day_key": k.day,
                    "week_key": k.week,
                    "month_key": k.month,
                    "buyer_day_key": held.day,
                    "buyer_week_key": held.week,
                    "buyer_month_key": held.month,
                    "live_call": 0,
                    "expires_at": now + timeout_ms + self.posts.grace_ms,
                    "created_at": now,
                },
            )
            await post_repo.move_to_posting(
                tx, bid["reservation_id"], expires_at=now + timeout_ms + self.posts.grace_ms, now=now
            )
            await auction_repo.record_dedup(
                tx,
                buyer_id=c.buyer_id,
                hashes=sorted(keyed.values()),
                sold_at=now,
                sale_id=post_repo.pending_sale_id(bid["bid_id"]),
            )
        await post_repo.insert_delivery(tx, ping_id=ping["id"], bid=bid, now=now)
        await post_repo.add_bid(tx, ping["id"], bid)
        await post_repo.update_waterfall(tx, ping["id"], {c.id: update})
        return bid
