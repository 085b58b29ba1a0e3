"""Spend caps and low balance (SPEC 15): money caps on contracts and buyers, atomic like count caps
(a reservation holds its price against them until released or sold), on both stores and under
concurrent pings from several processes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
import pytest

from pingpost.db.store import Store
from tests.api.setup_data import LEAD, VERTICAL, base_setup, buyer, campaign, contract, ping, waterfall
from tests.conftest import ADMIN_TOKEN, PG_URL, Api, Sandbox
from tests.servers import admin_session, pingpost_server

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_contract_and_buyer_spend_caps(api: Api, store: Store, sandbox: Sandbox) -> None:
    await base_setup(api, rule="multisell", ping_ttl_s=1)
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(api, "ctr-a", "buyer-a", 5000, caps={"spend_daily_cents": 12_000})
    await api.ok(
        "POST",
        "/v1/admin/buyers",
        201,
        json={
            "id": "buyer-b",
            "name": "B",
            "timezone": "America/New_York",
            "caps": {"spend_weekly_cents": 7000},
        },
    )
    await api.ok("POST", "/v1/admin/buyers/buyer-b/deposits", 201, json={"amount_cents": 100_000})
    await contract(api, "ctr-b", "buyer-b", 3000)
    await contract(api, "ctr-b-rtb", "buyer-b", None, rtb={"url": sandbox.bid("b", "fixed", "cents=2000")})
    first = await waterfall(api, (await ping(api, key))["ping_id"])
    assert first["ctr-a"]["outcome"] == "won" and first["ctr-b"]["outcome"] == "won"
    second = await waterfall(api, (await ping(api, key))["ping_id"])
    assert second["ctr-a"]["outcome"] == "won"  # 10,000 held of 12,000
    # buyer-b has 4,000 left this week: its 3,000 contract still fits, then only 1,000 is left
    assert second["ctr-b"]["outcome"] == "won"
    third = await waterfall(api, (await ping(api, key))["ping_id"])
    assert (third["ctr-a"]["outcome"], third["ctr-a"]["detail"]) == ("cap_reached", "spend_daily")
    assert (third["ctr-b"]["outcome"], third["ctr-b"]["detail"]) == ("cap_reached", "spend_weekly")
    assert (third["ctr-b-rtb"]["outcome"], third["ctr-b-rtb"]["detail"]) == ("cap_reached", "spend_weekly")
    await asyncio.sleep(1.1)  # the holds lapse: their spend is given back
    again = await waterfall(api, (await ping(api, key))["ping_id"])
    assert again["ctr-a"]["outcome"] == "won" and again["ctr-b"]["outcome"] == "won"
    usage = await store.read(
        lambda tx: tx.fetchrow("SELECT day_spent_cents FROM contract_usage WHERE contract_id = 'ctr-a'")
    )
    assert usage is not None and int(usage["day_spent_cents"]) == 5000
    funds = await store.read(lambda tx: tx.fetchrow("SELECT * FROM buyer_funds WHERE buyer_id = 'buyer-b'"))
    assert funds is not None and int(funds["week_spent_cents"]) == 3000 and funds["spend_week_key"]
    shown = await api.ok("GET", "/v1/admin/buyers/buyer-b")
    assert shown["caps"]["spend_weekly_cents"] == 7000 and shown["timezone"] == "America/New_York"


PRICE = 1000
CONTRACT_SPEND = 30 * PRICE
BUYER_SPEND = 20 * PRICE


async def setup_exchange(base: str) -> str:
    async with admin_session(base) as post:
        await post("/v1/admin/verticals", VERTICAL)
        await post(
            "/v1/admin/offers",
            {"id": "med", "name": "M", "vertical": "medicare", "distribution": {"rule": "multisell", "max_winners": 2}},
        )
        await post("/v1/admin/partners", {"id": "acme", "name": "Acme"})
        payout = {"type": "revshare", "percent": 50}
        body = {"id": "cmp", "name": "C", "partner": "acme", "offer": "med", "payout": payout}
        key = (await post("/v1/admin/campaigns", body))["posting_key"]
        await post("/v1/admin/buyers", {"id": "contract-capped", "name": "A"})
        await post(
            "/v1/admin/buyers",
            {"id": "buyer-capped", "name": "B", "timezone": "Asia/Tokyo", "caps": {"spend_daily_cents": BUYER_SPEND}},
        )
        for ident in ("contract-capped", "buyer-capped"):
            await post(f"/v1/admin/buyers/{ident}/deposits", {"amount_cents": 10**9})
        capped = {"spend_daily_cents": CONTRACT_SPEND, "spend_monthly_cents": 10 * CONTRACT_SPEND}
        contract_body = {"name": "c", "offer": "med", "price_cents": PRICE}
        await post("/v1/admin/contracts", {**contract_body, "id": "a", "buyer": "contract-capped", "caps": capped})
        await post("/v1/admin/contracts", {**contract_body, "id": "b", "buyer": "buyer-capped"})
        return str(key)


async def fire(bases: list[str], key: str, n: int) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(i: int) -> dict[str, Any]:
            r = await client.post(
                f"{bases[i % len(bases)]}/v1/ping", json={"lead": LEAD}, headers={"Authorization": f"Bearer {key}"}
            )
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def check(base: str, answers: list[dict[str, Any]]) -> None:
    wins = {"a": 0, "b": 0}
    async with httpx.AsyncClient(base_url=base, headers=ADMIN, timeout=30) as c:
        for a in answers:
            if a["bids"]:
                for w in (await c.get(f"/v1/admin/pings/{a['ping_id']}")).json()["waterfall"]:
                    if w["outcome"] == "won":
                        wins[w["contract_id"]] += 1
                    else:
                        assert w["outcome"] == "cap_reached", w
        assert wins == {"a": CONTRACT_SPEND // PRICE, "b": BUYER_SPEND // PRICE}
        for ident, held in (("contract-capped", CONTRACT_SPEND), ("buyer-capped", BUYER_SPEND)):
            assert (await c.get(f"/v1/admin/buyers/{ident}")).json()["holds_cents"] == held


def test_sqlite_two_workers_never_pass_a_spend_cap(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pp.db'}"
    with pingpost_server(url, workers=2, workdir=tmp_path) as base:
        key = asyncio.run(setup_exchange(base))
        answers = asyncio.run(fire([base], key, 120))
        asyncio.run(check(base, answers))


@pytest.mark.skipif(not PG_URL, reason="PINGPOST_TEST_POSTGRES_URL is not set")
def test_postgres_several_processes_never_pass_a_spend_cap(tmp_path: Path, pg_database: str) -> None:
    async def truncate() -> None:
        from tests.conftest import _truncate_pg

        await _truncate_pg(pg_database)

    asyncio.run(truncate())
    with (
        pingpost_server(pg_database, workers=2, workdir=tmp_path) as first,
        pingpost_server(pg_database, workers=1, workdir=tmp_path) as second,
    ):
        key = asyncio.run(setup_exchange(first))
        answers = asyncio.run(fire([first, second], key, 150))
        asyncio.run(check(first, answers))

    async def spent() -> tuple[int, int]:
        conn = await asyncpg.connect(pg_database)
        try:
            a = await conn.fetchval("SELECT day_spent_cents FROM contract_usage WHERE contract_id = 'a'")
            b = await conn.fetchval("SELECT day_spent_cents FROM buyer_funds WHERE buyer_id = 'buyer-capped'")
            return int(a), int(b)
        finally:
            await conn.close()

    assert asyncio.run(spent()) == (CONTRACT_SPEND, BUYER_SPEND)


async def test_low_balance_event_once_per_crossing_and_optional_pause(api: Api, store: Store) -> None:
    await base_setup(api, ping_ttl_s=1)
    key = await campaign(api)
    await api.ok(
        "POST",
        "/v1/admin/buyers",
        201,
        json={"id": "buyer-a", "name": "A", "low_balance_cents": 8000},
    )
    await api.ok("POST", "/v1/admin/buyers/buyer-a/deposits", 201, json={"amount_cents": 20_000})
    await contract(api, "ctr-a", "buyer-a", 5000)

    async def low_events() -> list[dict[str, Any]]:
        rows = await store.read(lambda tx: tx.fetch("SELECT data FROM events WHERE type = 'buyer.low_balance'"))
        return [orjson.loads(r["data"]) for r in rows]

    await ping(api, key)  # 15,000 available
    await ping(api, key)  # 10,000
    assert await low_events() == []
    await ping(api, key)  # 5,000: crossed
    await ping(api, key)  # still below (no funds for a 4th hold): no second event
    [event] = await low_events()
    assert event["buyer_id"] == "buyer-a" and event["available_cents"] == 5000 and event["paused"] is False
    await asyncio.sleep(1.1)  # the holds lapse: back above, re-armed when they are given back
    await api.ok("PATCH", "/v1/admin/buyers/buyer-a", json={"pause_on_low_balance": True})
    for _ in range(3):
        await ping(api, key)
    events = await low_events()
    assert len(events) == 2 and events[1]["paused"] is True
    paused = await api.ok("GET", "/v1/admin/buyers/buyer-a")
    assert paused["status"] == "paused" and paused["paused_reason"] == "low_balance"
    assert (await waterfall(api, (await ping(api, key))["ping_id"]))["ctr-a"]["outcome"] == "buyer_paused"
