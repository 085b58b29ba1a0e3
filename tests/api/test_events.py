"""The event outbox (docs/events.md): every event written with its change, listed oldest first, never
PII or consumer hashes; `delivery.unknown` for a delivery a crash left unfinished."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from pingpost import faults
from pingpost.config import Settings
from pingpost.events.sender import WebhookSender
from pingpost.outbound.fake import Sent
from tests.api.setup_data import ping
from tests.api.test_post import PHONE_HASH
from tests.conftest import Api, Sandbox
from tests.support.calls import CALL_LEAD, CALLER, call_setup, event
from tests.support.money import DELIVER_URL, Market, open_market

PII_MARKERS = ("Ann", "first_name", "30555", "phone", "email", "@")


@pytest.fixture
async def market(settings: Settings) -> AsyncIterator[Market]:
    async with open_market(settings) as m:
        yield m


async def all_events(api: Api, **params: Any) -> list[dict[str, Any]]:
    page: dict[str, Any] = await api.ok("GET", "/v1/admin/events", params={"limit": 500, **params})
    items: list[dict[str, Any]] = page["items"]
    return items


def assert_no_pii(events: list[dict[str, Any]], *secrets: str) -> None:
    raw = orjson.dumps(events).decode()
    for marker in (*PII_MARKERS, *secrets):
        assert marker not in raw, marker


async def test_sales_deposits_and_reversals_are_events_listed_oldest_first(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL")
    sale = await m.sell()
    await m.api.ok("POST", f"/v1/admin/sales/{sale['sale_id']}/reverse", json={"reason": "test"})
    events = await all_events(m.api)
    types = [e["type"] for e in events]
    assert types == ["deposit.created", "deposit.created", "sale.created", "sale.reversed"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    created = events[2]
    assert created["data"] == {
        "sale_id": sale["sale_id"],
        "ping_id": sale["ping_id"],
        "bid_id": created["data"]["bid_id"],
        "offer": "med",
        "campaign": "acme-med",
        "partner": "acme",
        "contract": sale["contract"],
        "buyer": sale["buyer"],
        "channel": "form",
        "sale_type": sale["sale_type"],
        "price_cents": sale["price_cents"],
        "payout_cents": sale["payout_cents"],
    }
    assert events[3]["data"]["refund_cents"] == sale["price_cents"]
    assert {"deposit.created"} == {e["type"] for e in await all_events(m.api, type="deposit.created")}
    page = await m.api.ok("GET", "/v1/admin/events", params={"limit": 2})
    assert [e["type"] for e in page["items"]] == types[:2]
    rest = await m.api.ok("GET", "/v1/admin/events", params={"after": page["next_after"]})
    assert [e["type"] for e in rest["items"]] == types[2:]
    assert_no_pii(events)


async def test_call_events(api: Api, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call", consumer={"phone_sha256": PHONE_HASH})
    [bid] = answer["bids"]
    await event(api, platform, answer["ping_id"], "connected", {"bid_id": bid["bid_id"], "lead": CALLER})
    await event(api, platform, answer["ping_id"], "completed", {"bid_id": bid["bid_id"], "duration_s": 30})
    events = [e for e in await all_events(api) if e["type"] != "deposit.created"]
    assert [e["type"] for e in events] == ["sale.created", "call.connected", "call.completed"]
    connected, completed = events[1]["data"], events[2]["data"]
    assert connected["ping_id"] == answer["ping_id"] and connected["billable"] is True
    assert completed["duration_s"] == 30 and completed["outcome"] == "call_billable"
    assert connected["sale_id"] == completed["sale_id"] == events[0]["data"]["sale_id"]
    assert_no_pii(events, PHONE_HASH)


async def test_a_delivery_a_crash_left_unfinished_is_told_once(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL")

    async def crash(_: Sent) -> tuple[int, Any]:
        raise faults.SimulatedCrash("mid-delivery")

    m.client.handlers[DELIVER_URL] = crash
    with pytest.raises(faults.SimulatedCrash):
        await m.sell()
    sender = WebhookSender(m.store, m.client)
    await sender.run_once()
    assert [e["type"] for e in await all_events(m.api, type="delivery.unknown")] == []  # still in flight
    m.clock.advance(10 * 60_000)
    await sender.run_once()
    await sender.run_once()
    [told] = await all_events(m.api, type="delivery.unknown")
    [pending] = (await m.api.ok("GET", "/v1/admin/reconciliation"))["items"]
    assert told["data"]["delivery_id"] == pending["delivery_id"] and told["data"]["buyer"] in ("b1", "b2")
