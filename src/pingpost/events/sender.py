"""The webhook and postback sender (docs/events.md): one per database, by a lease row with a fencing
token; every pass is a few short transactions of its own and never holds one across a send, so pings
and posts never wait for it.

A pass: take or renew the lease; make the deliveries of events not yet dispatched (and write
`delivery.unknown` for buyer deliveries nothing can finish any more); then, for each due delivery,
take its attempt (recorded as in flight, under the live lease, before anything is sent), send it,
and record the answer. A sender that dies between sending and recording leaves the attempt in
flight: it comes due again `IN_FLIGHT_MS` later and is sent again (at least once; receivers dedup by
`Pingpost-Event-Id`)."""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

import orjson

from pingpost import faults
from pingpost.clock import now_ms
from pingpost.db import events_repo, webhooks_repo
from pingpost.db.store import Store, Tx
from pingpost.domain.webhooks import (
    ATTEMPT_TIMEOUT_MS,
    IN_FLIGHT_MS,
    POSTBACK_STATUS,
    dollars,
    fill_postback,
    retry_at,
    signature_header,
    subscribed,
)
from pingpost.events.service import event_view
from pingpost.ids import new_id
from pingpost.outbound.client import HttpResult, WebhookClient

log = logging.getLogger("pingpost.events.sender")


@dataclass
class SenderPass:
    """What one pass did (tests and the simulator read it)."""

    leader: bool = False
    dispatched: int = 0
    attempted: int = 0
    delivered: int = 0
    failed: int = 0


class WebhookSender:
    def __init__(
        self,
        store: Store,
        client: WebhookClient,
        *,
        holder: str | None = None,
        lease_ms: int = 60_000,
        batch: int = 16,
        interval_s: float = 1.0,
    ) -> None:
        self.store = store
        self.client = client
        self.holder = holder or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.lease_ms = lease_ms
        self.batch = batch
        self.interval_s = interval_s
        self.token: int | None = None
        self._task: asyncio.Task[None] | None = None

    # --- the loop ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run_forever(), name="pingpost-webhook-sender")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self.token is not None:
            token = self.token
            self.token = None
            with suppress(Exception):
                await self.store.write(lambda tx: webhooks_repo.release_lease(tx, holder=self.holder, token=token))

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the next pass tries again; nothing here holds a transaction
                log.warning("webhook sender pass failed: %s", type(exc).__name__)
            await asyncio.sleep(self.interval_s)

    async def run_once(self) -> SenderPass:
        """One pass; does nothing but one read while idle and not holding the lease."""
        result = SenderPass()
        if self.token is None and not await self.store.read(_has_work):
            return result
        self.token = await self.store.write(self._lease)
        if self.token is None:
            return result
        result.leader = True
        result.dispatched = await self.store.write(self._dispatch)
        await self.store.write(_sweep_unknown_deliveries)
        due = await self.store.read(self._due)
        outcomes = await asyncio.gather(*(self._attempt(d) for d in due))
        for outcome in outcomes:
            if outcome is not None:
                result.attempted += 1
                result.delivered += outcome == "delivered"
                result.failed += outcome == "failed"
        return result

    # --- the units -----------------------------------------------------------------------------

    async def _lease(self, tx: Tx) -> int | None:
        return await webhooks_repo.take_lease(tx, holder=self.holder, now=await tx.now_ms(), ttl_ms=self.lease_ms)

    async def _due(self, tx: Tx) -> list[str]:
        rows = await webhooks_repo.due_deliveries(tx, now=await tx.now_ms(), limit=self.batch)
        return [r["id"] for r in rows]

    async def _dispatch(self, tx: Tx) -> int:
        """One delivery per (active subscribed webhook, event) and per campaign postback asked for."""
        events = await events_repo.undispatched(tx, limit=200)
        if not events:
            return 0
        now = await tx.now_ms()
        mine = set(await events_repo.mark_dispatched(tx, [e["id"] for e in events], now=now))
        hooks = [(h["id"], orjson.loads(h["events"]), h["created_at"]) for h in await webhooks_repo.active_webhooks(tx)]
        rows: list[dict[str, Any]] = []
        for event in events:
            if event["id"] not in mine:
                continue  # another sender dispatched it
            base = {"event_id": event["id"], "event_type": event["type"], "next_attempt_at": now, "created_at": now}
            for hook_id, types, since in hooks:
                # as Stripe: a subscription hears of events from its creation on, not of older ones
                if subscribed(types, event["type"]) and since <= event["created_at"]:
                    rows.append(
                        {
                            **base,
                            "id": new_id("whd"),
                            "target": "webhook",
                            "webhook_id": hook_id,
                            "campaign_id": None,
                            "url": None,
                        }
                    )
            if event["type"] in POSTBACK_STATUS:
                postback = await _postback(tx, event)
                if postback is not None:
                    rows.append({**base, "id": new_id("whd"), "target": "postback", "webhook_id": None, **postback})
        await webhooks_repo.insert_deliveries(tx, rows)
        return len(mine)

    async def _attempt(self, delivery_id: str) -> str | None:
        token = self.token
        if token is None:
            return None

        async def claim(tx: Tx) -> Any:
            return await webhooks_repo.claim_attempt(
                tx, delivery_id=delivery_id, token=token, now=await tx.now_ms(), in_flight_ms=IN_FLIGHT_MS
            )

        row = await self.store.write(claim)
        if row is None:
            return None  # not due any more, or the lease moved on: someone else's attempt
        faults.hit("webhook_attempt_taken")
        answer = await self._send(row)
        faults.hit("webhook_attempt_sent")  # a crash here: the attempt comes due again, sent again
        ok = answer.status is not None and 200 <= answer.status < 300
        attempts = int(row["attempts"])

        async def record(tx: Tx) -> str:
            now = await tx.now_ms()
            due = None if ok else retry_at(attempts=attempts, created_at=int(row["created_at"]), now=now)
            status = "delivered" if ok else ("failed" if due is None else "pending")
            await webhooks_repo.record_attempt(
                tx,
                delivery_id=delivery_id,
                token=token,
                attempts=attempts,
                status=status,
                last_status=answer.status,
                last_error=answer.error,
                next_attempt_at=due if due is not None else now,
                now=now,
            )
            return status

        return await self.store.write(record)

    async def _send(self, row: Any) -> HttpResult:
        if row["target"] == "postback":
            return await self.client.request("GET", row["url"], headers={}, body=None, timeout_ms=ATTEMPT_TIMEOUT_MS)
        if row["webhook_url"] is None:
            return HttpResult(None, b"", 0, "webhook_deleted")
        body = orjson.dumps(
            event_view(
                {
                    "id": row["event_id"],
                    "type": row["event_type"],
                    "created_at": row["event_created_at"],
                    "data": row["event_data"],
                }
            )
        )
        headers = {
            "Content-Type": "application/json",
            "Pingpost-Event-Id": row["event_id"],
            "Pingpost-Signature": signature_header(
                secret=row["webhook_secret"], body=body, timestamp_s=now_ms() // 1000
            ),
        }
        return await self.client.request(
            "POST", row["webhook_url"], headers=headers, body=body, timeout_ms=ATTEMPT_TIMEOUT_MS
        )


async def _has_work(tx: Tx) -> bool:
    return await webhooks_repo.has_work(tx, now=await tx.now_ms())


async def _sweep_unknown_deliveries(tx: Tx) -> int:
    """`delivery.unknown` once for each buyer delivery nothing can finish any more (a crash mid-delivery):
    the event is written in the transaction that marks the delivery as told (docs/events.md)."""
    told = 0
    for row in await webhooks_repo.untold_unknown_deliveries(tx, now=await tx.now_ms(), limit=50):
        event_id = new_id("evt")
        if await webhooks_repo.mark_unknown_told(tx, delivery_id=row["id"], event_id=event_id):
            await events_repo.record_event(
                tx,
                "delivery.unknown",
                {
                    "delivery_id": row["id"],
                    "ping_id": row["ping_id"],
                    "bid_id": row["bid_id"],
                    "contract": row["contract_id"],
                    "buyer": row["buyer_id"],
                },
                event_id=event_id,
            )
            told += 1
    return told


async def _postback(tx: Tx, event: Any) -> dict[str, Any] | None:
    """The campaign and filled URL of the postback an event asks for, or None (no postback, or its
    campaign did not ask for this status)."""
    data = orjson.loads(event["data"])
    sale_id = data.get("sale_id")
    if not sale_id:
        return None
    found = await webhooks_repo.sale_and_ping(tx, sale_id)
    if found is None:
        return None
    sale, ping = found
    raw = await webhooks_repo.campaign_body(tx, sale["campaign_id"])
    postback = (orjson.loads(raw) if raw else {}).get("postback")
    status = POSTBACK_STATUS[event["type"]]
    if not postback or status not in postback.get("events", []):
        return None
    subs = ping.get("subs")
    subs = orjson.loads(subs) if isinstance(subs, str) else (subs or {})
    payout = int(sale["payout_cents"])
    values = {
        "ping_id": sale["ping_id"],
        "partner_lead_id": ping.get("partner_lead_id"),
        "sale_id": sale_id,
        "payout_cents": payout,
        "payout": dollars(payout),
        "status": status,
        "source": ping.get("source"),
        **{f"sub{i}": subs.get(f"sub{i}") for i in range(1, 6)},
    }
    return {"campaign_id": sale["campaign_id"], "url": fill_postback(postback["url"], values)}
