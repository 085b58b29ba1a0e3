"""Webhooks end to end against a real local receiver (docs/events.md): signatures, retries with growing
delays, at-least-once across a sender crash, one sender per database, redelivery, subscriptions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pingpost import faults
from pingpost.clock import use_clock
from pingpost.config import Settings
from pingpost.events.sender import WebhookSender
from pingpost.outbound.client import AiohttpBuyerClient
from pingpost.outbound.fake import FakeBuyerClient, answers
from pingpost.timefmt import parse_rfc3339
from tests.support.money import Market, open_market
from tests.support.receiver import running_receiver

SECRET = "whsec_test_0123456789abcdef"


@pytest.fixture
async def market(settings: Settings) -> AsyncIterator[Market]:
    async with open_market(settings) as m:
        with use_clock(m.clock):
            await m.contract("fl", "b1", state="FL")
            m.clock.advance(1_000)  # subscriptions made from here on hear nothing of the setup's deposits
            yield m


@pytest.fixture
async def http() -> AsyncIterator[AiohttpBuyerClient]:
    client = AiohttpBuyerClient()
    yield client
    await client.close()


async def subscribe(m: Market, url: str, events: list[str], **extra: Any) -> dict[str, Any]:
    body = {"url": url, "events": events, "secret": SECRET, **extra}
    hook: dict[str, Any] = await m.api.ok("POST", "/v1/admin/webhooks", 201, json=body)
    return hook


async def deliveries(m: Market, hook_id: str) -> list[dict[str, Any]]:
    page = await m.api.ok("GET", f"/v1/admin/webhooks/{hook_id}/deliveries")
    items: list[dict[str, Any]] = page["items"]
    return items


async def test_signed_delivery_retried_after_failures_then_redelivered(
    market: Market, http: AiohttpBuyerClient
) -> None:
    m = market
    async with running_receiver(secret=SECRET, now_s=lambda: m.clock.now_ms() // 1000, fail_first=2) as receiver:
        hook = await subscribe(m, receiver.url, ["sale.created"])
        sale = await m.sell()
        sender = WebhookSender(m.store, http)
        first = await sender.run_once()
        assert (first.leader, first.dispatched, first.attempted) == (True, 3, 1)  # two deposits and the sale
        [d] = await deliveries(m, hook["id"])
        assert (d["status"], d["attempts"], d["last_status"], d["event_type"]) == ("pending", 1, 500, "sale.created")
        assert (await sender.run_once()).attempted == 0  # not due for 10 s
        m.clock.advance(10_000)
        assert (await sender.run_once()).attempted == 1
        m.clock.advance(59_000)
        assert (await sender.run_once()).attempted == 0  # the second retry waits a minute
        m.clock.advance(1_000)
        assert (await sender.run_once()).delivered == 1
        [d] = await deliveries(m, hook["id"])
        assert (d["status"], d["attempts"], d["last_status"], d["next_attempt_at"]) == ("delivered", 3, 200, None)
        assert receiver.bad_signatures == 0 and len(receiver.requests) == 3
        [event] = receiver.processed.values()
        assert event["type"] == "sale.created" and event["data"]["sale_id"] == sale["sale_id"]
        # redelivery: a new delivery of the same event; the receiver dedups it by id
        redo = await m.api.ok("POST", f"/v1/admin/events/{event['id']}/redeliver", 202)
        assert len(redo["deliveries"]) == 1
        assert (await sender.run_once()).delivered == 1
        assert receiver.duplicates == 1 and len(receiver.processed) == 1
        assert len(await deliveries(m, hook["id"])) == 2
        r = await m.api.request("POST", "/v1/admin/events/evt_0000/redeliver")
        assert r.status_code == 404


async def test_retries_grow_then_fail_after_three_days(market: Market) -> None:
    m = market
    client = FakeBuyerClient(handlers={"http://hooks.test/down": answers(503, {})})
    hook = await subscribe(m, "http://hooks.test/down", ["deposit.created"])
    await m.api.ok("POST", "/v1/admin/buyers/b1/deposits", 201, json={"amount_cents": 500, "reference": "d-1"})
    sender = WebhookSender(m.store, client)
    started = m.clock.now_ms()
    gaps = []
    last = started
    for _ in range(40):
        await sender.run_once()
        [d] = await deliveries(m, hook["id"])
        if d["status"] != "pending":
            break
        due = parse_rfc3339(d["next_attempt_at"])
        gaps.append(due - last)
        last = due
        m.clock.set(due)
    assert d["status"] == "failed" and d["last_status"] == 503
    assert gaps[:6] == [10_000, 60_000, 300_000, 1_800_000, 7_200_000, 21_600_000]
    assert set(gaps[5:]) == {21_600_000}
    assert m.clock.now_ms() - started <= 3 * 86_400_000 and d["attempts"] == len(gaps) + 1


async def test_a_sender_crash_between_send_and_record_redelivers(market: Market, http: AiohttpBuyerClient) -> None:
    m = market
    async with running_receiver(secret=SECRET, now_s=lambda: m.clock.now_ms() // 1000) as receiver:
        hook = await subscribe(m, receiver.url, ["sale.created"])
        await m.sell()
        crashed = WebhookSender(m.store, http)

        def crash_after_send(point: str) -> None:
            if point == "webhook_attempt_sent":
                raise faults.SimulatedCrash(point)

        with faults.inject(crash_after_send), pytest.raises(faults.SimulatedCrash):
            await crashed.run_once()
        assert len(receiver.processed) == 1  # sent, but never recorded
        [d] = await deliveries(m, hook["id"])
        assert (d["status"], d["attempts"]) == ("pending", 1)
        successor = WebhookSender(m.store, http)
        assert not (await successor.run_once()).leader  # the dead sender's lease still runs
        m.clock.advance(60_000)
        result = await successor.run_once()
        assert result.leader and result.delivered == 1
        [d] = await deliveries(m, hook["id"])
        assert (d["status"], d["attempts"]) == ("delivered", 2)
        assert receiver.duplicates == 1 and len(receiver.processed) == 1  # at least once, never lost


async def test_two_senders_never_send_one_attempt_twice(market: Market, http: AiohttpBuyerClient) -> None:
    m = market
    async with running_receiver(secret=SECRET, now_s=lambda: m.clock.now_ms() // 1000) as receiver:
        older = {e["id"] for e in (await m.api.ok("GET", "/v1/admin/events"))["items"]}
        await subscribe(m, receiver.url, ["*"])
        senders = [WebhookSender(m.store, http, lease_ms=5_000, batch=4) for _ in range(2)]
        leaders = set()
        for i in range(12):
            await m.api.ok(
                "POST", "/v1/admin/buyers/b2/deposits", 201, json={"amount_cents": 100, "reference": f"r{i}"}
            )
            if i % 4 == 3:
                m.clock.advance(6_000)  # the leader stalls past its lease: the other one takes over
                follower = next(s for s in senders if s.token is None)
                assert (await follower.run_once()).leader
            passes = await asyncio.gather(*(s.run_once() for s in senders))
            leaders |= {s.holder for s, p in zip(senders, passes, strict=True) if p.leader}
            assert sum(p.leader for p in passes) <= 1
        for _ in range(6):
            await asyncio.gather(*(s.run_once() for s in senders))
        events = (await m.api.ok("GET", "/v1/admin/events", params={"limit": 500}))["items"]
        assert {e["id"] for e in events} - older == set(receiver.processed)
        assert receiver.duplicates == 0 and len(receiver.requests) == len(events) - len(older) == 12
        assert len(leaders) == 2


async def test_subscriptions_show_their_secret_once(market: Market) -> None:
    m = market
    made = await m.api.ok("POST", "/v1/admin/webhooks", 201, json={"url": "https://crm.example/hook", "events": ["*"]})
    assert made["secret"].startswith("whsec_") and made["status"] == "active"
    shown = await m.api.ok("GET", f"/v1/admin/webhooks/{made['id']}")
    listed = (await m.api.ok("GET", "/v1/admin/webhooks"))["items"]
    assert "secret" not in shown and all("secret" not in w for w in listed)
    assert made["secret"] not in str(await m.api.ok("GET", "/v1/admin/audit"))
    patched = await m.api.ok(
        "PATCH", f"/v1/admin/webhooks/{made['id']}", json={"status": "paused", "events": ["sale.created"]}
    )
    assert (patched["status"], patched["events"]) == ("paused", ["sale.created"])
    for bad in ({"url": "ftp://x.example/h", "events": ["*"]}, {"url": "https://x.example", "events": ["nope"]}):
        r = await m.api.request("POST", "/v1/admin/webhooks", json=bad)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error")
    r = await m.api.request("GET", "/v1/admin/webhooks/nope/deliveries")
    assert r.status_code == 404
