"""Caps and holds stay exact under hundreds of concurrent pings on several worker processes."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from tests.api.setup_data import LEAD, VERTICAL
from tests.conftest import ADMIN_TOKEN, PG_URL
from tests.servers import Create, admin_session, pingpost_server

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
PRICE = 1000
CAP = 50
FUNDED_SLOTS = 20


async def setup_exchange(base: str) -> str:
    async with admin_session(base) as post:
        return await setup_exchange_with(post)


async def setup_exchange_with(post: Create) -> str:
    """A capped contract and a contract whose buyer has funds for FUNDED_SLOTS sales."""
    await post("/v1/admin/verticals", VERTICAL)
    await post(
        "/v1/admin/offers",
        {"id": "med", "name": "M", "vertical": "medicare", "distribution": {"rule": "multisell", "max_winners": 2}},
    )
    await post("/v1/admin/partners", {"id": "acme", "name": "Acme"})
    key = (
        await post(
            "/v1/admin/campaigns",
            {
                "id": "cmp",
                "name": "C",
                "partner": "acme",
                "offer": "med",
                "payout": {"type": "revshare", "percent": 50},
            },
        )
    )["posting_key"]
    for ident in ("capped-buyer", "funded-buyer"):
        await post("/v1/admin/buyers", {"id": ident, "name": ident})
    await post("/v1/admin/buyers/capped-buyer/deposits", {"amount_cents": 10**9})
    await post("/v1/admin/buyers/funded-buyer/deposits", {"amount_cents": FUNDED_SLOTS * PRICE})
    await post(
        "/v1/admin/contracts",
        {
            "id": "capped",
            "name": "capped",
            "buyer": "capped-buyer",
            "offer": "med",
            "price_cents": PRICE,
            "caps": {"daily": CAP, "monthly": 10 * CAP},
        },
    )
    await post(
        "/v1/admin/contracts",
        {"id": "funded", "name": "funded", "buyer": "funded-buyer", "offer": "med", "price_cents": PRICE},
    )
    return str(key)


async def fire(bases: list[str], key: str, n: int) -> list[dict[str, Any]]:
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(i: int) -> dict[str, Any]:
            r = await client.post(
                f"{bases[i % len(bases)]}/v1/ping", json={"lead": LEAD}, headers={"Authorization": f"Bearer {key}"}
            )
            assert r.status_code == 200, r.text
            body: dict[str, Any] = r.json()
            return body

        return list(await asyncio.gather(*(one(i) for i in range(n))))


async def check(bases: list[str], answers: list[dict[str, Any]]) -> None:
    wins: dict[str, int] = {"capped": 0, "funded": 0}
    async with httpx.AsyncClient(base_url=bases[0], headers=ADMIN, timeout=30) as c:
        for a in answers:
            if a["bids"]:
                record = (await c.get(f"/v1/admin/pings/{a['ping_id']}")).json()
                for w in record["waterfall"]:
                    if w["outcome"] == "won":
                        wins[w["contract_id"]] += 1
                    else:
                        assert w["outcome"] in ("cap_reached", "insufficient_balance"), w
        assert wins == {"capped": CAP, "funded": FUNDED_SLOTS}
        funded = (await c.get("/v1/admin/buyers/funded-buyer")).json()
        assert (funded["holds_cents"], funded["available_cents"]) == (FUNDED_SLOTS * PRICE, 0)
        capped = (await c.get("/v1/admin/buyers/capped-buyer")).json()
        assert capped["holds_cents"] == CAP * PRICE


def test_sqlite_two_workers_never_oversell(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pp.db'}"
    with pingpost_server(url, workers=2, workdir=tmp_path) as base:
        key = asyncio.run(setup_exchange(base))
        answers = asyncio.run(fire([base], key, 300))
        asyncio.run(check([base], answers))


@pytest.mark.skipif(not PG_URL, reason="PINGPOST_TEST_POSTGRES_URL is not set")
def test_postgres_several_processes_never_oversell(tmp_path: Path, pg_database: str) -> None:
    async def truncate() -> None:
        from tests.conftest import _truncate_pg

        await _truncate_pg(pg_database)

    asyncio.run(truncate())
    with (
        pingpost_server(pg_database, workers=2, workdir=tmp_path) as first,
        pingpost_server(pg_database, workers=1, workdir=tmp_path) as second,
    ):
        key = asyncio.run(setup_exchange(first))
        answers = asyncio.run(fire([first, second], key, 400))
        asyncio.run(check([first, second], answers))

    async def count() -> int:
        conn = await asyncpg.connect(pg_database)
        try:
            return int(await conn.fetchval("SELECT COUNT(*) FROM reservations WHERE contract_id = 'capped'"))
        finally:
            await conn.close()

    assert asyncio.run(count()) == CAP


MAX_CALLS = 3


async def setup_calls(base: str) -> tuple[str, str]:
    async with admin_session(base) as post:
        await post("/v1/admin/verticals", VERTICAL)
        await post(
            "/v1/admin/offers",
            {"id": "calls", "name": "Calls", "vertical": "medicare", "channels": ["call"], "call_standby": 0},
        )
        await post("/v1/admin/partners", {"id": "acme", "name": "Acme"})
        key = (
            await post(
                "/v1/admin/campaigns",
                {
                    "id": "cmp",
                    "name": "C",
                    "partner": "acme",
                    "offer": "calls",
                    "payout": {"type": "revshare", "percent": 50},
                },
            )
        )["posting_key"]
        await post("/v1/admin/buyers", {"id": "agency", "name": "Agency"})
        await post("/v1/admin/buyers/agency/deposits", {"amount_cents": 10**9})
        await post(
            "/v1/admin/contracts",
            {
                "id": "agents",
                "name": "agents",
                "buyer": "agency",
                "offer": "calls",
                "price_cents": PRICE,
                "transfer": {"phone": "+13055550100"},
                "caps": {"max_concurrent_calls": MAX_CALLS},
            },
        )
        return str(key), "agents"


@pytest.mark.skipif(not PG_URL, reason="PINGPOST_TEST_POSTGRES_URL is not set")
def test_live_call_slots_across_processes(tmp_path: Path, pg_database: str) -> None:
    async def truncate() -> None:
        from tests.conftest import _truncate_pg

        await _truncate_pg(pg_database)

    asyncio.run(truncate())
    with (
        pingpost_server(pg_database, workers=2, workdir=tmp_path) as first,
        pingpost_server(pg_database, workers=1, workdir=tmp_path) as second,
    ):
        key, _ = asyncio.run(setup_calls(first))

        async def fire_calls() -> list[dict[str, Any]]:
            async with httpx.AsyncClient(timeout=60) as client:

                async def one(i: int) -> dict[str, Any]:
                    r = await client.post(
                        f"{(first, second)[i % 2]}/v1/ping",
                        json={"lead": LEAD, "channel": "call"},
                        headers={"Authorization": f"Bearer {key}"},
                    )
                    assert r.status_code == 200, r.text
                    body: dict[str, Any] = r.json()
                    return body

                return list(await asyncio.gather(*(one(i) for i in range(120))))

        answers = asyncio.run(fire_calls())
        assert sum(1 for a in answers if a["bids"]) == MAX_CALLS

    async def live() -> int:
        conn = await asyncpg.connect(pg_database)
        try:
            return int(await conn.fetchval("SELECT live_calls FROM contract_usage WHERE contract_id = 'agents'"))
        finally:
            await conn.close()

    assert asyncio.run(live()) == MAX_CALLS
