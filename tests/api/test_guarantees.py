"""The guarantees of docs/crash-safety.md under time, races and faults, one defect each.

Each test drives the real app on a controlled clock (`pingpost.clock`), with buyers answered by a
fake client and faults injected at the store's `before_commit` point."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from pingpost import faults
from pingpost.app import create_app
from pingpost.clock import ManualClock, SkewedClock, use_clock
from pingpost.config import Settings
from pingpost.db.store import Store, Tx, open_store
from pingpost.outbound.fake import Sent
from tests.api import setup_data as sd
from tests.conftest import Api
from tests.support.buyers import FakeBuyerClient, accepts, bids

BID_URL = "http://buyer.test/bid"
DELIVER_URL = "http://buyer.test/deliver"


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@dataclass
class World:
    api: Api
    clock: ManualClock
    buyers: FakeBuyerClient
    store: Store


@pytest.fixture
async def world(settings: Settings) -> AsyncIterator[World]:
    clock = ManualClock(at("2026-12-02T12:00:00"))
    buyers = FakeBuyerClient()
    with use_clock(clock):
        store = await open_store(settings.database_url, shared_clock=clock)
        app = create_app(settings, store=store, client=buyers)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                yield World(Api(client), clock, buyers, store)
        await store.close()


async def count(store: Store, sql: str, params: dict[str, Any] | None = None) -> int:
    async def unit(tx: Tx) -> int:
        return int(await tx.fetchval(sql, params))

    return await store.read(unit)


async def test_a_ping_waiting_across_midnight_counts_in_the_new_day(world: World) -> None:
    """Defect 1: the period is decided when the slot is taken; a counter never moves back."""
    api, clock = world.api, world.clock
    await sd.base_setup(api)
    await sd.buyer(api, "alpha", deposit=100_000)
    key = await sd.campaign(api)
    await sd.contract(api, "alpha-rtb", "alpha", None, rtb={"url": BID_URL, "timeout_ms": 5000}, caps={"daily": 2})
    clock.set(at("2026-12-02T23:59:58"))
    new_day_pings: list[dict[str, Any]] = []

    async def slow_bid(_: Sent) -> tuple[int, Any]:
        if not new_day_pings:  # the first ping waits for its buyer across midnight ...
            clock.set(at("2026-12-03T00:00:04"))
            new_day_pings.append({})  # ... while two pings of the new day take both slots
            new_day_pings.extend([await sd.ping(api, key), await sd.ping(api, key)])
        return 200, {"bid_cents": 5000}

    world.buyers.handlers[BID_URL] = slow_bid
    late = await sd.ping(api, key)
    assert [p["status"] for p in new_day_pings[1:]] == ["bids", "bids"]
    assert late["status"] == "no_bids"
    assert (await sd.waterfall(api, late["ping_id"]))["alpha-rtb"]["outcome"] == "cap_reached"
    after = await sd.ping(api, key)
    assert after["status"] == "no_bids"
    assert await count(world.store, "SELECT count(*) FROM reservations WHERE day_key = '2026-12-03'") == 2
    assert await count(world.store, "SELECT count(*) FROM reservations WHERE day_key = '2026-12-02'") == 0


async def test_direct_posts_of_one_consumer_never_sell_it_twice_to_one_buyer(world: World) -> None:
    """Defect 2: dedup is re-checked inside the write that reserves each attempt."""
    api = world.api
    await sd.base_setup(api)
    await api.ok(
        "POST",
        "/v1/admin/offers",
        201,
        json={"id": "direct", "name": "Direct", "vertical": "medicare", "mode": "direct_post"},
    )
    await sd.buyer(api, "alpha", deposit=100_000)
    key = await sd.campaign(api, ident="acme-direct", offer="direct")
    await api.ok(
        "POST",
        "/v1/admin/contracts",
        201,
        json={
            "id": "alpha-direct",
            "name": "a",
            "buyer": "alpha",
            "offer": "direct",
            "price_cents": 4000,
            "dedup_days": 30,
            "delivery": {"url": DELIVER_URL},
        },
    )
    gate = asyncio.Event()

    async def slow_accept(_: Sent) -> tuple[int, Any]:
        await gate.wait()
        return 200, {"status": "accepted"}

    world.buyers.handlers[DELIVER_URL] = slow_accept
    lead = {**sd.LEAD, "first_name": "Ada", "phone": "305-555-0100", "email": "ada@example.com"}

    async def direct_post() -> httpx.Response:
        return await api.request("POST", "/v1/direct-post", token=key, json={"lead": lead})

    first = asyncio.create_task(direct_post())
    second = asyncio.create_task(direct_post())
    for _ in range(50):
        await asyncio.sleep(0)
    gate.set()
    answers = [(await first).json(), (await second).json()]
    assert sorted(a["status"] for a in answers) == ["sold", "unsold"]
    later = (await direct_post()).json()
    assert later["status"] == "unsold"
    assert await count(world.store, "SELECT count(*) FROM sales WHERE buyer_id = 'alpha'") == 1
    assert len(world.buyers.to(DELIVER_URL)) == 1


@pytest.mark.parametrize("fixed", [True, False], ids=["fixed_price", "rtb"])
async def test_a_retried_unit_decides_afresh(world: World, fixed: bool) -> None:
    """Defect 3: after a deadlock or serialization failure the ping's decision is made again."""
    api = world.api
    await sd.base_setup(api, rule="multisell", max_winners=2)
    await sd.buyer(api, "alpha", deposit=100_000)
    await sd.buyer(api, "bravo", deposit=100_000)
    key = await sd.campaign(api)
    if fixed:
        await sd.contract(api, "alpha-c", "alpha", 4000)
        await sd.contract(api, "bravo-c", "bravo", 3000)
    else:
        world.buyers.handlers[BID_URL] = bids(4500)
        await sd.contract(api, "alpha-c", "alpha", None, rtb={"url": BID_URL})
        await sd.contract(api, "bravo-c", "bravo", 3000)
    conflicts = [2]

    def deadlock_twice(point: str) -> None:
        if point == "before_commit" and conflicts[0] > 0:
            conflicts[0] -= 1
            raise faults.InjectedConflict

    with faults.inject(deadlock_twice):
        answer = await sd.ping(api, key)
    assert conflicts == [0]
    assert answer["status"] == "bids" and len(answer["bids"]) == 2
    lines = await sd.waterfall(api, answer["ping_id"])
    reserved = await world.store.read(lambda tx: tx.fetch("SELECT bid_id FROM reservations WHERE state = 'held'"))
    assert {line["bid_id"] for line in lines.values() if line["outcome"] == "won"} == {r["bid_id"] for r in reserved}
    assert {b["bid_id"] for b in answer["bids"]} == {r["bid_id"] for r in reserved}


async def test_a_post_never_charges_a_lapsed_reservation_whatever_the_hosts_clocks(
    world: World, settings: Settings
) -> None:
    """Defect 4: expiry is decided by the store's clock; a lapsed bid is `not_posted` (bid_expired)."""
    api, clock = world.api, world.clock
    await sd.base_setup(api, ping_ttl_s=60)
    await sd.buyer(api, "alpha", deposit=5000)
    key = await sd.campaign(api)
    await sd.contract(api, "alpha-c", "alpha", 5000, delivery={"url": DELIVER_URL}, dedup_days=0)
    world.buyers.handlers[DELIVER_URL] = accepts()
    first = await sd.ping(api, key)
    clock.advance(65_000)  # lapsed by the one clock ...
    second = await sd.ping(api, key, lead={**sd.LEAD, "zip": "33110"})
    assert second["status"] == "bids"  # ... so its hold was reclaimed for this ping
    lead = {**sd.LEAD, "first_name": "Ada", "phone": "305-555-0100"}
    # Another host whose clock runs 12 s behind the database's (it still sees 7 s left) posts the first.
    with use_clock(SkewedClock(clock, -12_000)):
        other = create_app(settings, store=world.store, client=world.buyers)
        async with (
            other.router.lifespan_context(other),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://b") as c,
        ):
            r = await Api(c).request("POST", "/v1/post", token=key, json={"ping_id": first["ping_id"], "lead": lead})
    assert r.status_code == 410, r.text
    posted = await api.ok(
        "POST", "/v1/post", token=key, json={"ping_id": second["ping_id"], "lead": {**lead, "zip": "33110"}}
    )
    assert posted["status"] == "sold"
    funds = await api.ok("GET", "/v1/admin/buyers/alpha")
    assert funds["balance_cents"] == 0 and funds["holds_cents"] == 0
    assert await count(world.store, "SELECT count(*) FROM sales") == 1


async def test_a_lapsed_reservation_of_a_live_ping_is_not_posted(world: World) -> None:
    """Defect 4, the claim itself: a bid whose reservation lapsed is refused even if the ping is open."""
    api = world.api
    await sd.base_setup(api, ping_ttl_s=60)
    await sd.buyer(api, "alpha", deposit=5000)
    key = await sd.campaign(api)
    await sd.contract(api, "alpha-c", "alpha", 5000, delivery={"url": DELIVER_URL}, dedup_days=0)
    world.buyers.handlers[DELIVER_URL] = accepts()
    first = await sd.ping(api, key)

    async def lapse(tx: Tx) -> None:
        await tx.execute("UPDATE reservations SET expires_at = :t", {"t": world.clock.now_ms() - 1})

    await world.store.write(lapse)
    lead = {**sd.LEAD, "first_name": "Ada", "phone": "305-555-0100"}
    posted = await api.ok("POST", "/v1/post", token=key, json={"ping_id": first["ping_id"], "lead": lead})
    assert posted["status"] == "unsold"
    assert posted["rejected"] == [{"bid_id": first["bids"][0]["bid_id"], "reason": "not_posted"}]
    line = (await sd.waterfall(api, first["ping_id"]))["alpha-c"]
    assert (line["post_outcome"], line["post_detail"]) == ("not_posted", "bid_expired")
    assert not world.buyers.to(DELIVER_URL)
    funds = await api.ok("GET", "/v1/admin/buyers/alpha")
    assert funds["balance_cents"] == 5000 and funds["holds_cents"] == 0


async def test_a_static_fallback_bid_that_lost_shows_its_price(world: World) -> None:
    """Defect 8: the waterfall shows every price, a losing fallback bid's too."""
    api = world.api
    await sd.base_setup(api)
    await sd.buyer(api, "alpha", deposit=100_000)
    await sd.buyer(api, "bravo", deposit=100_000)
    key = await sd.campaign(api)
    await sd.contract(api, "alpha-c", "alpha", 4500, rtb={"url": BID_URL, "fallback": "always"})
    await sd.contract(api, "bravo-c", "bravo", 4200, rtb={"url": BID_URL + "/b", "fallback": "always"})
    answer = await sd.ping(api, key)  # neither buyer answers: both bid their static price
    lines = await sd.waterfall(api, answer["ping_id"])
    assert (lines["alpha-c"]["outcome"], lines["alpha-c"]["bid_cents"]) == ("won", 4500)
    assert lines["bravo-c"]["outcome"] == "lost_to_higher_bid"
    assert (lines["bravo-c"]["source"], lines["bravo-c"]["bid_cents"]) == ("static_fallback", 4200)


async def test_postgres_decides_shared_time_by_its_own_clock(settings: Settings) -> None:
    """Without a shared clock given, a PostgreSQL transaction reads the database's clock, whatever the
    host's says; once per transaction."""
    if not settings.database_url.startswith("postgres"):
        pytest.skip("PostgreSQL only")
    store = await open_store(settings.database_url)
    try:
        with use_clock(ManualClock(at("2001-01-01T00:00:00"))):

            async def unit(tx: Tx) -> tuple[int, int, int]:
                first = await tx.now_ms()
                db = int(await tx.fetchval("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"))
                return first, await tx.now_ms(), db

            first, again, db = await store.write(unit)
    finally:
        await store.close()
    assert first == again
    assert 0 <= db - first < 60_000
