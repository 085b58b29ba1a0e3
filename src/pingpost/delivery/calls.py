"""Call events from the operator's telephony platform: `connected`, `failed`, `completed`; over
450 lines because the three events share one claim, record and standby flow (one state machine).

`connected` posts the caller record to that buyer only and starts billing (at once, or pending on
`billable_after_s`); `failed` releases the bid and promotes the best standby; `completed` settles
a pending sale. Each event is a row with UNIQUE(ping_id, bid_id, type) and its stored answer, so a
repeat answers the same and changes nothing, and a different payload is 409 event_conflict.

`failed` and `completed` are one transaction each. `connected` calls the buyer, so it has three
phases like a post: the claim (one transaction, the event row holding what it decided), the data
post with nothing open, the record (the data post's result and the answer). A crash between them
leaves the event claimed but unanswered, and its retry finishes the last two phases
(docs/crash-safety.md, "Call events").
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel

from pingpost import errors, faults
from pingpost.auction.schemas import BidOut
from pingpost.db import auction_repo, call_repo, post_repo
from pingpost.db.store import Store, Tx
from pingpost.delivery.call_events import EventTurns, check_same_event, connected_state
from pingpost.delivery.call_schemas import (
    Completed,
    CompletedOut,
    Connected,
    ConnectedClaim,
    ConnectedOut,
    Failed,
    FailedOut,
)
from pingpost.delivery.payload import consumer_hashes
from pingpost.delivery.schemas import Consent
from pingpost.delivery.service import Delivery, PostService
from pingpost.domain.delivery_rules import Verdict
from pingpost.domain.model import Snapshot
from pingpost.domain.outcomes import Outcome, PostOutcome
from pingpost.idempotency import request_sha256
from pingpost.ids import now_ms

Out = TypeVar("Out", bound=BaseModel)


@dataclass(frozen=True)
class _Caller:
    """The `connected` event's caller record, validated: the full lead, its keyed consumer hashes and
    the consent."""

    lead: dict[str, Any]
    keyed: dict[str, str]
    consent: dict[str, Any]


def _bids(ping: Any) -> list[dict[str, Any]]:
    bids: list[dict[str, Any]] = orjson.loads(ping["bids"])
    return bids


async def _save_bids(tx: Tx, ping_id: str, bids: list[dict[str, Any]]) -> None:
    await post_repo.set_bids(tx, ping_id, bids)


def _settled_data_post(delivery: Any) -> str:
    """The data post's result when this attempt sends nothing: no delivery configured, or settled by an
    operator from the reconciliation list."""
    if delivery is not None and delivery["state"] in ("accepted", "rejected"):
        return str(delivery["outcome"])
    if delivery is not None and delivery["state"] == "recorded":
        return PostOutcome.POST_ACCEPTED.value  # the buyer confirmed it has the record
    return PostOutcome.POST_ERROR.value


class CallService:
    def __init__(self, *, store: Store, posts: PostService) -> None:
        self.store = store
        self.posts = posts
        self._connected_turns = EventTurns()

    # --- shared -----------------------------------------------------------------------------

    async def _load(self, tx: Tx, ping_id: str, bid_id: str) -> tuple[Any, list[dict[str, Any]], dict[str, Any]]:
        ping = await post_repo.load_ping(tx, ping_id)
        if ping is None:
            raise errors.NotFound("ping", ping_id)
        if ping["channel"] not in ("call", "callback"):
            raise errors.Unprocessable(
                "call events are only for call and callback pings",
                code="channel_mismatch",
                details={"channel": ping["channel"]},
            )
        bids = _bids(ping)
        bid = next((b for b in bids if b["bid_id"] == bid_id), None)
        if bid is None:
            raise errors.NotFound("bid", bid_id)
        return ping, bids, bid

    @staticmethod
    async def _live(tx: Tx, ping: Any, bid: dict[str, Any], now: int) -> Any:
        """The bid's reservation if it is still live; 410 bid_expired otherwise."""
        if ping["test"]:
            if ping["expires_at"] <= now:
                raise errors.Gone("the bid expired", code="bid_expired", details={"bid_id": bid["bid_id"]})
            return None
        row = await post_repo.reservation(tx, bid["reservation_id"])
        if row is None or row["state"] not in ("held", "posting") or row["expires_at"] <= now:
            raise errors.Gone("the bid expired", code="bid_expired", details={"bid_id": bid["bid_id"]})
        return row

    async def _replay(self, ping_id: str, bid_id: str, kind: str, sha: str, out: type[Out]) -> Out | None:
        row = await self.store.read(lambda tx: call_repo.find_event(tx, ping_id=ping_id, bid_id=bid_id, type_=kind))
        if row is None:
            return None
        check_same_event(row, kind, sha)
        return out.model_validate_json(row["answer"])

    @staticmethod
    async def _claim_event(tx: Tx, ping_id: str, bid_id: str, kind: str, sha: str, now: int) -> str | None:
        """Take the event for this unit: None when taken, else the stored answer of the same event that a
        duplicate request recorded first (409 event_conflict for a different one)."""
        if await call_repo.insert_event(tx, ping_id=ping_id, bid_id=bid_id, type_=kind, sha=sha, now=now):
            return None
        row = await call_repo.find_event(tx, ping_id=ping_id, bid_id=bid_id, type_=kind)
        check_same_event(row, kind, sha)
        return str(row["answer"])

    async def _once(
        self,
        ping_id: str,
        bid_id: str,
        kind: str,
        payload: BaseModel,
        out: type[Out],
        run: Callable[[str], Awaitable[Out]],
    ) -> Out:
        sha = request_sha256(payload.model_dump(mode="json"))
        replay = await self._replay(ping_id, bid_id, kind, sha, out)
        return replay if replay is not None else await run(sha)

    # --- connected --------------------------------------------------------------------------

    async def connected(self, *, snap: Snapshot, ping_id: str, body: Connected) -> ConnectedOut:
        """Claim the bid (sale, live-call slot), post the caller record, record the answer.

        A retry of an event whose claim committed but whose answer did not (a crash in between) skips
        the claim and finishes the rest: it answers the claim's sale and billing, charging nothing more."""
        async with self._connected_turns.turn((ping_id, body.bid_id)):
            return await self._connected(snap, ping_id=ping_id, body=body)

    async def _connected(self, snap: Snapshot, *, ping_id: str, body: Connected) -> ConnectedOut:
        sha = request_sha256(body.model_dump(mode="json"))
        row = await self.store.read(
            lambda tx: call_repo.find_event(tx, ping_id=ping_id, bid_id=body.bid_id, type_="connected")
        )
        state: ConnectedOut | ConnectedClaim | None = None
        if row is not None:
            check_same_event(row, "connected", sha)
            state = connected_state(row["answer"])
            if isinstance(state, ConnectedOut):
                return state
        ping = await self.store.read(lambda tx: post_repo.load_ping(tx, ping_id))
        if ping is None:
            raise errors.NotFound("ping", ping_id)
        caller = self._caller_record(snap, ping, body)
        if row is None:
            state = await self.store.write(
                lambda tx: self._claim_connected(tx, snap, ping_id=ping_id, body=body, sha=sha, caller=caller)
            )
        if isinstance(state, ConnectedOut):
            return state  # a duplicate of this event claimed it and answered first
        bid = next(b for b in _bids(ping) if b["bid_id"] == body.bid_id)  # the claim found it
        if state is None:
            state = await self._claim_of_old_version(snap, bid)
        faults.hit("call_connected_after_claim")
        return await self._post_and_record(snap, ping=ping, bid=bid, caller=caller, claim=state)

    def _caller_record(self, snap: Snapshot, ping: Any, body: Connected) -> _Caller:
        """The validated caller record, its keyed consumer hashes and the consent (422 when they do not
        match the ping's hashes)."""
        offer = snap.offers[ping["offer_id"]]
        vertical = snap.verticals[offer.vertical_id]
        lead = PostService.validate_lead(vertical, ping, body.lead)
        keyed = {n: self.posts.secret.keyed(h) for n, h in consumer_hashes(vertical, lead).items()}
        mismatched = [n for n, v in orjson.loads(ping["consumer"]).items() if keyed.get(n) != v]
        if mismatched:
            raise errors.Unprocessable(
                "the caller record does not match the consumer hashes of the ping",
                code="consumer_mismatch",
                details={"fields": mismatched},
            )
        return _Caller(lead=lead, keyed=keyed, consent=(body.consent or Consent()).model_dump())

    async def _claim_connected(
        self, tx: Tx, snap: Snapshot, *, ping_id: str, body: Connected, sha: str, caller: _Caller
    ) -> ConnectedOut | ConnectedClaim | None:
        """The claim transaction: standbys released, the reservation kept for the call, the sale (charged,
        or pending on `billable_after_s`), the post and a pending delivery, the event row holding the
        claim. Answers the claim, or what a duplicate of this event stored first."""
        now = await tx.now_ms()  # expiry by the store's clock (docs/crash-safety.md)
        ping, bids, bid = await self._load(tx, ping_id, body.bid_id)
        if (stored := await self._claim_event(tx, ping_id, body.bid_id, "connected", sha, now)) is not None:
            return connected_state(stored)
        if bid["role"] != "winner":
            raise errors.Conflict("this bid is not the active bid of the call", details={"role": bid["role"]})
        reservation = await self._live(tx, ping, bid, now)
        offer = snap.offers[ping["offer_id"]]
        contract = snap.contracts[bid["contract_id"]]
        test = bool(ping["test"])
        if reservation is not None and not reservation["live_call"]:
            await self._take_live_slot(tx, contract_id=contract.id, bid_id=bid["bid_id"], now=now)
        for other in bids:
            if other["role"] == "standby":
                await post_repo.release_bid(tx, other)
                other["role"] = "released"
        bid["role"] = "connected"
        await _save_bids(tx, ping_id, bids)
        if reservation is not None:
            await call_repo.start_call(tx, reservation["id"], expires_at=now + offer.max_call_duration_s * 1000)
            await auction_repo.record_dedup(
                tx,
                buyer_id=bid["buyer_id"],
                hashes=sorted(caller.keyed.values()),
                sold_at=now,
                sale_id=post_repo.pending_sale_id(bid["bid_id"]),
            )
        billable: bool | None = True if contract.billable_after_s == 0 else None
        sale_id = None
        if not test:
            if billable:
                sale_id = await post_repo.record_sale(tx, ping=ping, bid=bid, now=now)
            else:
                sale_id = await post_repo.insert_sale(tx, ping=ping, bid=bid, status="pending", now=now)
        faults.hit("call_connected_in_claim")
        outcome = PostOutcome.CALL_BILLABLE if billable else PostOutcome.CALL_CONNECTED
        await post_repo.update_waterfall(
            tx, ping_id, {contract.id: {"post_outcome": outcome.value, "sale_id": sale_id}}
        )
        await post_repo.insert_post(
            tx,
            ping_id=ping_id,
            now=now,
            once=True,
            pii_ciphertext=self.posts.secret.encrypt(orjson.dumps({"lead": caller.lead, "consent": caller.consent})),
        )
        if contract.delivery:
            await post_repo.insert_delivery(tx, ping_id=ping_id, bid=bid, now=now)
        await post_repo.set_post_state(
            tx, ping_id, post_state="posted", status="sold" if sale_id or test else "connected"
        )
        await post_repo.add_event(tx, ping_id=ping_id, at=now, type_="connected", bid_id=bid["bid_id"])
        await call_repo.record_call_event(
            tx, "call.connected", ping=ping, bid=bid, sale_id=sale_id, billable=billable, test=test
        )
        claim = ConnectedClaim(sale_id=sale_id, billable=billable)
        await call_repo.store_answer(
            tx,
            ping_id=ping_id,
            bid_id=bid["bid_id"],
            type_="connected",
            answer=orjson.dumps({"claimed": claim.model_dump()}).decode(),
        )
        return claim

    @staticmethod
    async def _take_live_slot(tx: Tx, *, contract_id: str, bid_id: str, now: int) -> None:
        """The live-call slot of a bid that holds none yet (a callback: it takes its slot when the call
        is up). At `max_concurrent_calls` this is 409 concurrency_cap_reached and the claim rolls back
        whole, so nothing changes; the platform then reports `failed` (reason `rejected`) to ring the
        next bid (docs/crash-safety.md, "Call events")."""
        if await auction_repo.take_live_slot(tx, contract_id=contract_id):
            return
        # The count may still hold calls that lapsed without `completed`: free those, then ask again.
        if await auction_repo.reclaim_expired(
            tx, contract_ids=[contract_id], buyer_ids=[], now=now, calls=True
        ) and await auction_repo.take_live_slot(tx, contract_id=contract_id):
            return
        raise errors.Conflict(
            "the buyer's contract is at its max_concurrent_calls",
            code="concurrency_cap_reached",
            details={"bid_id": bid_id},
        )

    async def _claim_of_old_version(self, snap: Snapshot, bid: dict[str, Any]) -> ConnectedClaim:
        """The claim of an event claimed by a version that did not store it (its answer is empty):
        rebuilt from its sale and the contract's billing rule."""
        sale = await self.store.read(lambda tx: call_repo.find_sale(tx, bid["bid_id"]))
        contract = snap.contracts[bid["contract_id"]]
        return ConnectedClaim(
            sale_id=sale["id"] if sale is not None else None, billable=True if contract.billable_after_s == 0 else None
        )

    async def _post_and_record(
        self, snap: Snapshot, *, ping: Any, bid: dict[str, Any], caller: _Caller, claim: ConnectedClaim
    ) -> ConnectedOut:
        """Post the caller record (unless its result is recorded already), then store the answer once."""
        contract = snap.contracts[bid["contract_id"]]
        delivery = await self.store.read(lambda tx: call_repo.find_delivery(tx, bid["bid_id"]))
        verdict: Verdict | None = None
        latency = 0
        if delivery is not None and delivery["state"] == "pending" and contract.delivery:
            # Informational: the data post's result is recorded but never changes billing. After a crash
            # that lost its result the retry sends it again (same ping_id): at least once, never billed.
            verdict, latency = await self.posts.deliver_one(ping, Delivery(bid, contract), caller.lead, caller.consent)
            data_post = verdict.outcome.value
        else:
            data_post = _settled_data_post(delivery)
        faults.hit("call_connected_before_record")
        answer = ConnectedOut(sale_id=claim.sale_id, billable=claim.billable, data_post=data_post)

        async def record(tx: Tx) -> ConnectedOut:
            now = now_ms()
            row = await call_repo.find_event(tx, ping_id=ping["id"], bid_id=bid["bid_id"], type_="connected", lock=True)
            if isinstance(stored := connected_state(row["answer"]), ConnectedOut):
                return stored  # a duplicate of this event recorded its answer first
            if verdict is not None:
                await post_repo.finish_delivery(
                    tx,
                    bid_id=bid["bid_id"],
                    state="accepted" if verdict.accepted else "rejected",
                    outcome=verdict.outcome.value,
                    detail=verdict.detail,
                    latency_ms=latency,
                    buyer_lead_id=verdict.buyer_lead_id,
                    now=now,
                )
            await post_repo.add_event(
                tx, ping_id=ping["id"], at=now, type_="data_post", bid_id=bid["bid_id"], detail=data_post
            )
            faults.hit("call_connected_in_record")
            await call_repo.store_answer(
                tx, ping_id=ping["id"], bid_id=bid["bid_id"], type_="connected", answer=answer.model_dump_json()
            )
            return answer

        answer = await self.store.write(record)
        faults.hit("call_connected_after_record")
        return answer

    # --- failed -----------------------------------------------------------------------------

    async def failed(self, *, snap: Snapshot, ping_id: str, body: Failed) -> FailedOut:
        async def run(sha: str) -> FailedOut:
            answer = await self.store.write(lambda tx: self._failed(tx, snap, ping_id, body, sha))
            faults.hit("call_failed_after_commit")
            return answer

        return await self._once(ping_id, body.bid_id, "failed", body, FailedOut, run)

    async def _failed(self, tx: Tx, snap: Snapshot, ping_id: str, body: Failed, sha: str) -> FailedOut:
        now = await tx.now_ms()
        ping, bids, bid = await self._load(tx, ping_id, body.bid_id)
        if (stored := await self._claim_event(tx, ping_id, body.bid_id, "failed", sha, now)) is not None:
            return FailedOut.model_validate_json(stored)  # a duplicate of this event answered first
        if bid["role"] != "winner":
            raise errors.Conflict("this bid is not the active bid of the call", details={"role": bid["role"]})
        await self._live(tx, ping, bid, now)
        await post_repo.release_bid(tx, bid)
        bid["role"] = "failed"
        faults.hit("call_failed_after_release")
        updates: dict[str, dict[str, Any]] = {
            bid["contract_id"]: {"post_outcome": PostOutcome.CALL_FAILED.value, "post_detail": body.reason}
        }
        next_bid = None
        for standby in bids:
            if standby["role"] != "standby":
                continue
            if not ping["test"]:
                row = await post_repo.reservation(tx, standby["reservation_id"])
                if row is None or row["state"] != "held" or row["expires_at"] <= now:
                    continue
                if ping["channel"] == "call":
                    if not await auction_repo.take_live_slot(tx, contract_id=standby["contract_id"]):
                        updates[standby["contract_id"]] = {"detail": Outcome.CONCURRENCY_CAP_REACHED.value}
                        continue
                    await call_repo.mark_live(tx, row["id"])
            standby["role"] = "winner"
            updates[standby["contract_id"]] = {"outcome": Outcome.WON.value, "detail": "promoted"}
            next_bid = BidOut(
                bid_id=standby["bid_id"],
                payout_cents=standby["payout_cents"],
                sale_type=standby["sale_type"],
                transfer=standby["transfer"] or None,
            )
            break
        await _save_bids(tx, ping_id, bids)
        await post_repo.update_waterfall(tx, ping_id, updates)
        await post_repo.add_event(tx, ping_id=ping_id, at=now, type_="failed", bid_id=bid["bid_id"], detail=body.reason)
        if next_bid is not None:
            await post_repo.add_event(tx, ping_id=ping_id, at=now, type_="promoted", bid_id=next_bid.bid_id)
        answer = FailedOut(next_bid=next_bid)
        await call_repo.store_answer(
            tx, ping_id=ping_id, bid_id=body.bid_id, type_="failed", answer=answer.model_dump_json()
        )
        return answer

    # --- completed --------------------------------------------------------------------------

    async def completed(self, *, snap: Snapshot, ping_id: str, body: Completed) -> CompletedOut:
        async def run(sha: str) -> CompletedOut:
            answer = await self.store.write(lambda tx: self._completed(tx, snap, ping_id, body, sha))
            faults.hit("call_completed_after_commit")
            return answer

        return await self._once(ping_id, body.bid_id, "completed", body, CompletedOut, run)

    async def _completed(self, tx: Tx, snap: Snapshot, ping_id: str, body: Completed, sha: str) -> CompletedOut:
        now = await tx.now_ms()
        ping, bids, bid = await self._load(tx, ping_id, body.bid_id)
        if (stored := await self._claim_event(tx, ping_id, body.bid_id, "completed", sha, now)) is not None:
            return CompletedOut.model_validate_json(stored)  # a duplicate of this event answered first
        if bid["role"] != "connected":
            raise errors.Conflict("`completed` needs a connected bid", details={"role": bid["role"]})
        contract = snap.contracts[bid["contract_id"]]
        billable = body.duration_s >= contract.billable_after_s
        sale = await call_repo.find_sale(tx, bid["bid_id"])
        sale_id = sale["id"] if sale is not None else None
        if sale is not None and sale["status"] == "charged":
            billable = True  # billed at connect
        elif sale is not None and sale["status"] == "pending":
            if billable:
                await post_repo.settle_reservation(tx, bid)
                await post_repo.charge_sale(tx, ping=ping, bid=bid, sale_id=sale["id"], now=now)
            else:
                await post_repo.set_sale_status(tx, sale["id"], "void")
                await post_repo.release_bid(tx, bid)  # nothing charged, nothing paid, the slot given back
        faults.hit("call_completed_after_settle")
        if bid.get("reservation_id"):
            await auction_repo.end_live_call(tx, bid["reservation_id"])
        bid["role"] = "completed"
        await _save_bids(tx, ping_id, bids)
        outcome = PostOutcome.CALL_BILLABLE if billable else PostOutcome.CALL_VOID
        await post_repo.update_waterfall(
            tx, ping_id, {contract.id: {"post_outcome": outcome.value, "post_detail": f"{body.duration_s}s"}}
        )
        if not billable:
            await post_repo.set_ping_status(tx, ping_id, "unsold")
        await post_repo.add_event(
            tx,
            ping_id=ping_id,
            at=now,
            type_="completed",
            bid_id=bid["bid_id"],
            detail=f"{body.duration_s}s {'billable' if billable else 'void'}",
        )
        await call_repo.record_call_event(
            tx,
            "call.completed",
            ping=ping,
            bid=bid,
            sale_id=sale_id,
            billable=billable,
            duration_s=body.duration_s,
            outcome=outcome.value,
        )
        answer = CompletedOut(sale_id=sale_id, billable=billable)
        await call_repo.store_answer(
            tx, ping_id=ping_id, bid_id=body.bid_id, type_="completed", answer=answer.model_dump_json()
        )
        return answer
