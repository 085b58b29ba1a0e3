"""A pingpost process killed with SIGKILL mid-delivery leaves caps and money exact (DESIGN.md 3)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx

from pingpost.db.store import open_store
from tests.api.setup_data import LEAD, VERTICAL
from tests.api.test_ledger import ledger_invariants
from tests.api.test_post import FULL
from tests.conftest import ADMIN_TOKEN
from tests.servers import admin_session, kill_server, pingpost_server, sandbox_server

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
DELIVERY_TIMEOUT_MS = 1500
GRACE_MS = 300


async def setup(base: str, sandbox: str) -> str:
    async with admin_session(base) as post:
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
                    "payout": {"type": "revshare", "percent": 60},
                },
            )
        )["posting_key"]
        for name, price in (("x", 4000), ("y", 3000)):
            await post("/v1/admin/buyers", {"id": name, "name": name})
            await post(f"/v1/admin/buyers/{name}/deposits", {"amount_cents": 100_000})
            await post(
                "/v1/admin/contracts",
                {
                    "id": name,
                    "name": name,
                    "buyer": name,
                    "offer": "med",
                    "price_cents": price,
                    "caps": {"daily": 5},
                    "delivery": {"url": f"{sandbox}/deliver/{name}/hang", "timeout_ms": DELIVERY_TIMEOUT_MS},
                },
            )
        return str(key)


async def ping_and_post_until_delivering(base: str, sandbox: str, key: str, n: int) -> list[str]:
    """Answer the ping ids once every buyer is holding its delivery (the posts still in flight)."""
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as c:
        pings = [(await c.post("/v1/ping", json={"lead": LEAD}, headers=auth)).json()["ping_id"] for _ in range(n)]
        # distinct consumers: the same consumer twice would be an in-flight duplicate for the same buyers
        leads = [{**FULL, "phone": f"305555010{i}", "email": f"c{i}@example.com"} for i in range(n)]
        posts = [
            asyncio.create_task(c.post("/v1/post", json={"ping_id": p, "lead": lead}, headers=auth))
            for p, lead in zip(pings, leads, strict=True)
        ]
        async with httpx.AsyncClient(base_url=sandbox) as s:
            deadline = time.monotonic() + 10
            while True:
                counts = [len((await s.get(f"/_received/{b}")).json()) for b in "xy"]
                if sum(counts) >= 2 * n:
                    break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.05)
        for task in posts:
            task.cancel()
        await asyncio.gather(*posts, return_exceptions=True)
        return pings


async def db_state(url: str) -> dict[str, Any]:
    store = await open_store(url)
    try:
        await ledger_invariants(store)

        async def unit(tx: Any) -> dict[str, Any]:
            return {
                "sales": await tx.fetchval("SELECT COUNT(*) FROM sales"),
                "pending": await tx.fetchval("SELECT COUNT(*) FROM deliveries WHERE state = 'pending'"),
                "sale_txns": await tx.fetchval("SELECT COUNT(*) FROM ledger_transactions WHERE kind = 'sale'"),
                "posting": await tx.fetchval("SELECT COUNT(*) FROM reservations WHERE state = 'posting'"),
                "usage": {r["contract_id"]: r["day_used"] for r in await tx.fetch("SELECT * FROM contract_usage")},
            }

        return await store.read(unit)
    finally:
        await store.close()


def test_sigkill_mid_delivery_leaves_caps_and_money_exact(database_url: str, tmp_path: Path) -> None:
    env = {"PINGPOST_DELIVERY_GRACE_MS": str(GRACE_MS)}
    with sandbox_server(tmp_path) as sandbox:
        with pingpost_server(database_url, workdir=tmp_path, extra_env=env) as base:
            key = asyncio.run(setup(base, sandbox))
            asyncio.run(ping_and_post_until_delivering(base, sandbox, key, 2))
            kill_server(base)
        state = asyncio.run(db_state(database_url))
        assert (state["sales"], state["sale_txns"], state["pending"], state["posting"]) == (0, 0, 4, 4)
        assert state["usage"] == {"x": 2, "y": 2}  # held by live reservations until they lapse
        time.sleep((DELIVERY_TIMEOUT_MS + GRACE_MS) / 1000 + 0.3)
        with pingpost_server(database_url, workdir=tmp_path, extra_env=env) as base:
            c = httpx.Client(base_url=base, headers=ADMIN, timeout=30)
            with c:
                for b in ("x", "y"):  # lapsed reservations stop counting at once, also across a restart
                    funds = c.get(f"/v1/admin/buyers/{b}").json()
                    assert (funds["balance_cents"], funds["holds_cents"]) == (100_000, 0)
                unknown = c.get("/v1/admin/reconciliation").json()["items"]
                assert len(unknown) == 4 and {u["post_outcome"] for u in unknown} == {"post_unknown"}
                record = next(u for u in unknown if u["buyer_id"] == "x")
                settled = c.post(f"/v1/admin/reconciliation/{record['delivery_id']}/record-sale").json()
                assert settled["sale_id"].startswith("sal_")
                for other in unknown:
                    if other is not record:
                        assert c.post(f"/v1/admin/reconciliation/{other['delivery_id']}/void").status_code == 200
                again = c.post(f"/v1/admin/reconciliation/{record['delivery_id']}/void")
                assert again.status_code == 409
                assert c.get("/v1/admin/reconciliation").json()["items"] == []
                x = c.get("/v1/admin/buyers/x").json()
                assert (x["balance_cents"], x["holds_cents"]) == (100_000 - 4000, 0)
                assert c.get("/v1/admin/ledger", params={"account": "partner:acme"}).json()["balance_cents"] == 2400
        state = asyncio.run(db_state(database_url))
        assert (state["sales"], state["sale_txns"], state["pending"], state["posting"]) == (1, 1, 0, 0)
        assert state["usage"] == {"x": 1, "y": 0}
