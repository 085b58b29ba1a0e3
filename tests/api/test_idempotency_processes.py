"""Idempotency-Key across processes: two servers at once, and a retry after the owner was killed."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from pingpost.db.store import Tx, open_store
from tests.api.setup_data import LEAD, VERTICAL
from tests.api.test_post import FULL
from tests.conftest import ADMIN_TOKEN
from tests.servers import admin_session, kill_server, pingpost_server, sandbox_server

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def setup(base: str, sandbox: str, *, behaviour: str, mode: str = "ping_post") -> str:
    async with admin_session(base) as post:
        await post("/v1/admin/verticals", VERTICAL)
        for offer, m in (("med", "ping_post"), ("direct", "direct_post")):
            await post("/v1/admin/offers", {"id": offer, "name": offer, "vertical": "medicare", "mode": m})
        await post("/v1/admin/partners", {"id": "acme", "name": "Acme"})
        keys = {}
        for offer in ("med", "direct"):
            keys[offer] = (
                await post(
                    "/v1/admin/campaigns",
                    {
                        "id": f"c-{offer}",
                        "name": "C",
                        "partner": "acme",
                        "offer": offer,
                        "payout": {"type": "revshare", "percent": 50},
                    },
                )
            )["posting_key"]
        await post("/v1/admin/buyers", {"id": "b", "name": "b"})
        await post("/v1/admin/buyers/b/deposits", {"amount_cents": 100_000})
        for offer in ("med", "direct"):
            await post(
                "/v1/admin/contracts",
                {
                    "id": f"k-{offer}",
                    "name": "k",
                    "buyer": "b",
                    "offer": offer,
                    "price_cents": 1000,
                    "dedup_days": 0,
                    "delivery": {"url": f"{sandbox}/deliver/b/{behaviour}", "timeout_ms": 1500},
                },
            )
        return str(keys["med"] if mode == "ping_post" else keys["direct"])


async def counts(url: str) -> dict[str, int]:
    store = await open_store(url)
    try:

        async def unit(tx: Tx) -> dict[str, int]:
            return {
                t: int(await tx.fetchval(f"SELECT COUNT(*) FROM {t}"))
                for t in ("pings", "reservations", "deliveries", "sales")
            }

        return await store.read(unit)
    finally:
        await store.close()


async def same_key_everywhere(bases: list[str], path: str, key: str, body: dict[str, Any], idem: str) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": idem}
    async with httpx.AsyncClient(timeout=30) as c:
        answers = await asyncio.gather(*(c.post(f"{b}{path}", json=body, headers=headers) for b in bases * 2))
        ok = [a.json() for a in answers if a.status_code == 200]
        assert all(a.json()["error"]["code"] == "idempotency_in_flight" for a in answers if a.status_code != 200)
        for _ in range(50):  # the in-flight one finishes; every later retry answers the same
            retried = [await c.post(f"{b}{path}", json=body, headers=headers) for b in bases]
            if all(r.status_code == 200 for r in retried):
                break
            await asyncio.sleep(0.1)
        final: list[dict[str, Any]] = [r.json() for r in retried]
        assert all(f == final[0] for f in final + ok)
        return final[0]


def test_two_processes_same_key_one_effect(database_url: str, tmp_path: Path) -> None:
    with (
        sandbox_server(tmp_path) as sandbox,
        pingpost_server(database_url, workdir=tmp_path) as a,
        pingpost_server(database_url, workdir=tmp_path) as b,
    ):
        key = asyncio.run(setup(a, sandbox, behaviour="slow"))
        answer = asyncio.run(same_key_everywhere([a, b], "/v1/ping", key, {"lead": LEAD}, "p-1"))
        assert asyncio.run(counts(database_url))["reservations"] == 1
        posted = asyncio.run(
            same_key_everywhere([a, b], "/v1/post", key, {"ping_id": answer["ping_id"], "lead": FULL}, "p-1")
        )
        assert posted["status"] == "sold"
        direct_key = asyncio.run(setup_direct_key(a))
        sold = asyncio.run(same_key_everywhere([a, b], "/v1/direct-post", direct_key, {"lead": FULL}, "d-1"))
        assert sold["status"] == "sold"
        assert asyncio.run(counts(database_url)) == {"pings": 2, "reservations": 2, "deliveries": 2, "sales": 2}
        assert len(httpx.get(f"{sandbox}/_received/b").json()) == 2


async def setup_direct_key(base: str) -> str:
    async with httpx.AsyncClient(base_url=base, headers=ADMIN) as c:
        r = await c.post(
            "/v1/admin/campaigns",
            json={
                "id": "c-direct-2",
                "name": "C",
                "partner": "acme",
                "offer": "direct",
                "payout": {"type": "fixed", "amount_cents": 100},
            },
        )
        return str(r.json()["posting_key"])


def test_retry_after_owner_killed_never_delivers_again(database_url: str, tmp_path: Path) -> None:
    env = {"PINGPOST_IDEMPOTENCY_LEASE_S": "1", "PINGPOST_DELIVERY_GRACE_MS": "200"}
    with sandbox_server(tmp_path) as sandbox:
        with pingpost_server(database_url, workdir=tmp_path, extra_env=env) as base:
            key = asyncio.run(setup(base, sandbox, behaviour="hang"))
            headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "crash-1"}
            ping_id = httpx.post(f"{base}/v1/ping", json={"lead": LEAD}, headers=headers).json()["ping_id"]

            async def post_until_delivering() -> None:
                async with httpx.AsyncClient(timeout=30) as c:
                    task = asyncio.create_task(
                        c.post(f"{base}/v1/post", json={"ping_id": ping_id, "lead": FULL}, headers=headers)
                    )
                    while not httpx.get(f"{sandbox}/_received/b").json():
                        await asyncio.sleep(0.05)
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

            asyncio.run(post_until_delivering())
            kill_server(base)
        with pingpost_server(database_url, workdir=tmp_path, extra_env=env) as base:
            time.sleep(1.1)  # the crashed owner's lease lapses
            r = httpx.post(f"{base}/v1/post", json={"ping_id": ping_id, "lead": FULL}, headers=headers)
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "unsold" and r.json()["rejected"][0]["reason"] == "post_unknown"
            again = httpx.post(f"{base}/v1/post", json={"ping_id": ping_id, "lead": FULL}, headers=headers)
            assert again.json() == r.json()
        assert len(httpx.get(f"{sandbox}/_received/b").json()) == 1  # never delivered a second time
