"""PostgreSQL, several processes: pings, posts and lapsing reservations meet the same counter rows
without a deadlock (the one lock order of docs/crash-safety.md), and no answer is false."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson

from tests.api.setup_data import LEAD, VERTICAL
from tests.servers import admin_session, pingpost_server, sandbox_server

BUYERS = ("b1", "b2", "b3", "b4")


async def setup(base: str, sandbox: str) -> str:
    async with admin_session(base) as post:
        await post("/v1/admin/verticals", VERTICAL)
        await post(
            "/v1/admin/offers",
            {
                "id": "med",
                "name": "M",
                "vertical": "medicare",
                "ping_ttl_s": 1,
                "distribution": {"rule": "multisell", "max_winners": 3},
            },
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
        for b in BUYERS:
            await post("/v1/admin/buyers", {"id": b, "name": b})
            await post(f"/v1/admin/buyers/{b}/deposits", {"amount_cents": 10**8})
        for i in range(8):
            b = BUYERS[i % len(BUYERS)]
            await post(
                "/v1/admin/contracts",
                {
                    "id": f"c{i}",
                    "name": f"c{i}",
                    "buyer": b,
                    "offer": "med",
                    "price_cents": 1000 + 10 * i,
                    "dedup_days": 0,
                    "caps": {"daily": 10**6},
                    "delivery": {"url": f"{sandbox}/deliver/{b}/accept"},
                },
            )
        return str(key)


async def traffic(bases: list[str], key: str, n: int) -> list[tuple[dict[str, Any], int | None]]:
    rng = random.Random(7)
    auth = {"Authorization": f"Bearer {key}"}
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=60, limits=limits) as client:

        async def one(i: int) -> tuple[dict[str, Any], int | None]:
            base = bases[i % len(bases)]
            r = await client.post(f"{base}/v1/ping", json={"lead": LEAD}, headers=auth)
            assert r.status_code == 200, r.text
            answer: dict[str, Any] = r.json()
            status = None
            if answer["bids"] and rng.random() < 0.4:
                await asyncio.sleep(rng.uniform(0.5, 1.3))  # some posts race their reservations' expiry
                p = await client.post(
                    f"{base}/v1/post",
                    headers=auth,
                    json={"ping_id": answer["ping_id"], "lead": {**LEAD, "first_name": "Ada", "phone": "305-555-0100"}},
                )
                status = p.status_code
                assert status in (200, 410), p.text
            return answer, status

        sem = asyncio.Semaphore(60)

        async def limited(i: int) -> tuple[dict[str, Any], int | None]:
            async with sem:
                return await one(i)

        return list(await asyncio.gather(*(limited(i) for i in range(n))))


def test_postgres_pings_posts_and_expiry_meet_without_deadlocks(tmp_path: Path, pg_database: str) -> None:
    async def truncate() -> None:
        from tests.conftest import _truncate_pg

        await _truncate_pg(pg_database)

    async def deadlocks() -> int:
        conn = await asyncpg.connect(pg_database)
        try:
            await conn.execute("SELECT pg_stat_clear_snapshot()")
            return int(await conn.fetchval("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"))
        finally:
            await conn.close()

    asyncio.run(truncate())
    before = asyncio.run(deadlocks())
    with (
        sandbox_server(tmp_path) as sandbox,
        pingpost_server(pg_database, workers=2, workdir=tmp_path) as first,
        pingpost_server(pg_database, workers=1, workdir=tmp_path) as second,
    ):
        key = asyncio.run(setup(first, sandbox))
        results = asyncio.run(traffic([first, second], key, 600))

        async def check() -> None:
            conn = await asyncpg.connect(pg_database)
            try:
                rows = await conn.fetch("SELECT id, status, waterfall FROM pings")
                reserved = {r["bid_id"] for r in await conn.fetch("SELECT bid_id FROM reservations")}
            finally:
                await conn.close()

            for row in rows:
                lines = orjson.loads(row["waterfall"])
                won = [w for w in lines if w["outcome"] == "won"]
                assert row["status"] != "no_bids" and len(won) == 3, (row["id"], row["status"], lines)
                assert all(w["bid_id"] in reserved for w in won), lines

        asyncio.run(check())
    assert all(a["status"] == "bids" for a, _ in results)
    assert any(s == 200 for _, s in results)
    asyncio.run(asyncio.sleep(1))
    assert asyncio.run(deadlocks()) == before
