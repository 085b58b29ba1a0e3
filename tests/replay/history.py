"""Histories made through the real app for the replay tests: a manual clock (also the store's shared
clock), buyers behind the fake transport, pings and posts over several days."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from pingpost.app import create_app
from pingpost.clock import ManualClock, use_clock
from pingpost.config import Settings
from pingpost.db.store import Store, Tx, open_store
from pingpost.outbound.fake import FakeBuyerClient, Sent
from pingpost.services import Services
from tests.api import setup_data as sd
from tests.conftest import Api
from tests.support.money import at

DELIVER = "http://buyer.test/deliver"
HOUR_MS = 3_600_000


async def _accepts(_: Sent) -> tuple[int, Any]:
    return 200, {"status": "accepted"}


async def _rejects_odd_ages(sent: Sent) -> tuple[int, Any]:
    age = int(sent.body["lead"]["age"])
    return 200, {"status": "rejected" if age % 2 else "accepted", "reason": "odd"}


async def _rtb_by_age(sent: Sent) -> tuple[int, Any]:
    """Bids 100 x age cents, but not for ages divisible by 5 (an explicit no-bid)."""
    age = int(sent.body["lead"]["age"])
    if age % 5 == 0:
        return 200, {"no_bid": True}
    return 200, {"bid_cents": age * 100, "exclusive_bid_cents": age * 130}


async def _rtb_flaky(sent: Sent) -> tuple[int, Any]:
    """Errors for ages divisible by 3 (static fallback may then bid), else bids 6,500."""
    age = int(sent.body["lead"]["age"])
    if age % 3 == 0:
        return 500, {"error": "down"}
    return 200, {"bid_cents": 6500}


@dataclass
class History:
    api: Api
    clock: ManualClock
    store: Store
    client: FakeBuyerClient
    app: Any = None
    key: str = ""

    async def settle(self) -> None:
        """Write the report counters the app keeps in memory (flushed each second otherwise)."""
        found: Services = self.app.state.services
        await found.counters.flush()

    async def ping_and_post(self, lead: dict[str, Any], phone: str, *, post: bool = True) -> dict[str, Any]:
        consumer = {"phone_sha256": hashlib.sha256(phone.encode()).hexdigest()}
        answer = await sd.ping(self.api, self.key, lead, consumer=consumer)
        if post and answer["bids"]:
            self.clock.advance(1500)
            await self.api.ok(
                "POST",
                "/v1/post",
                token=self.key,
                json={"ping_id": answer["ping_id"], "lead": {**lead, "first_name": "Ann", "phone": phone}},
            )
        return answer

    async def outcomes(self) -> set[str]:
        """Every auction outcome, post outcome and bid source the waterfalls show."""

        async def unit(tx: Tx) -> list[Any]:
            return list(await tx.fetch("SELECT waterfall FROM pings"))

        seen: set[str] = set()
        for row in await self.store.read(unit):
            for entry in orjson.loads(row["waterfall"]):
                seen.update(v for k in ("outcome", "post_outcome", "source") if (v := entry.get(k)))
        return seen

    async def real_winners(self) -> dict[str, list[str]]:
        async def unit(tx: Tx) -> list[Any]:
            return list(await tx.fetch("SELECT id, bids FROM pings WHERE test = 0 ORDER BY id"))

        return {
            r["id"]: [b["contract_id"] for b in orjson.loads(r["bids"]) if b["role"] == "winner"]
            for r in await self.store.read(unit)
        }


@asynccontextmanager
async def open_history(settings: Settings, *, start: str = "2026-11-02T06:00:00") -> AsyncIterator[History]:
    clock = ManualClock(at(start))
    client = FakeBuyerClient(handlers={DELIVER: _accepts})
    with use_clock(clock):
        store = await open_store(settings.database_url, shared_clock=clock)
        app = create_app(settings, store=store, client=client)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                yield History(Api(http), clock, store, client, app)
        await store.close()


async def rich_market(h: History) -> None:
    """A multisell offer (two winners) whose contracts exercise every state the replay keeps: a daily
    cap in New York time, a weekday schedule, a buyer whose funds run out, a state filter with dedup,
    two RTB buyers (one flaky, with a static fallback price), a buyer that rejects some deliveries."""
    api = h.api
    await sd.base_setup(api, rule="multisell", max_winners=2, ping_ttl_s=1800)
    h.key = await sd.campaign(api)
    for buyer, deposit in (("cap", 10**7), ("sched", 10**7), ("poor", 13_000), ("fl", 10**7), ("r1", 10**7)):
        await sd.buyer(api, buyer, deposit=deposit)
    await sd.buyer(api, "r2", deposit=10**7)
    delivery = {"url": DELIVER}
    await sd.contract(api, "cap", "cap", 5000, delivery=delivery, caps={"daily": 3}, timezone="America/New_York")
    await sd.contract(
        api,
        "sched",
        "sched",
        5500,
        delivery=delivery,
        schedule={"windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "15:00"}]},
    )
    await sd.contract(api, "poor", "poor", 6000, delivery={"url": "http://buyer.test/picky"})
    await sd.contract(
        api, "fl", "fl", 4800, delivery=delivery, filters=[{"field": "state", "op": "eq", "value": "FL"}], dedup_days=30
    )
    await sd.contract(api, "r1", "r1", None, delivery=delivery, rtb={"url": "http://buyer.test/r1", "timeout_ms": 500})
    await sd.contract(
        api,
        "r2",
        "r2",
        3000,
        delivery=delivery,
        rtb={"url": "http://buyer.test/r2", "timeout_ms": 500, "fallback": "on_failure"},
    )
    h.client.handlers["http://buyer.test/picky"] = _rejects_odd_ages
    h.client.handlers["http://buyer.test/r1"] = _rtb_by_age
    h.client.handlers["http://buyer.test/r2"] = _rtb_flaky


async def rich_traffic(h: History, *, days: int = 3, per_day: int = 14) -> None:
    """Pings over `days` days (every ~50 minutes from 06:00 UTC), most posted, phones from a small pool
    (so dedup bites), ages and states varied deterministically."""
    states = ("FL", "TX", "FL", "GA", "FL", "NY")
    serial = 0
    for day in range(days):
        h.clock.set(at("2026-11-02T06:00:00") + day * 24 * HOUR_MS)
        for _ in range(per_day):
            serial += 1
            lead = {"state": states[serial % len(states)], "zip": "33109", "age": 64 + (serial * 7) % 30}
            phone = f"30555{serial % 9:05d}"
            await h.ping_and_post(lead, phone, post=serial % 4 != 0)
            h.clock.advance(50 * 60_000)
