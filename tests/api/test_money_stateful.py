"""A Hypothesis state machine of deposits, pings, posts, rejections and expiries: the ledger stays
zero-sum, balances equal their entries, holds equal live reservations and caps count exactly."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

import httpx
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pingpost.app import create_app
from pingpost.config import Settings
from pingpost.db.migrate import migrate
from pingpost.db.store import Store, Tx, open_store
from pingpost.sandbox.app import start_sandbox
from tests.api.setup_data import VERTICAL
from tests.api.test_ledger import ledger_invariants
from tests.conftest import ADMIN_TOKEN

T = TypeVar("T")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BUYERS = {"acc": ("accept", 3000), "rej": ("reject", 2500), "acc2": ("accept", 2000)}


class Exchange(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp())
        self.open_pings: list[tuple[str, int]] = []
        self.sold = 0
        self.phone = 0

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    @initialize()
    def start(self) -> None:
        url = f"sqlite:///{self.tmp / 'pp.db'}"
        migrate(url)
        self.runner, sandbox = self.run(start_sandbox())
        self.store: Store = self.run(open_store(url))
        app = create_app(Settings(database_url=url, admin_token=ADMIN_TOKEN, secret_key="k",
                                  key_file=str(self.tmp / "k")), store=self.store)
        self.lifespan = app.router.lifespan_context(app)
        self.run(self.lifespan.__aenter__())
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30)

        async def setup() -> str:
            async def post(path: str, body: dict[str, Any]) -> Any:
                r = await self.client.post(path, json=body, headers=ADMIN)
                assert r.status_code == 201, r.text
                return r.json()

            await post("/v1/admin/verticals", VERTICAL)
            await post("/v1/admin/offers", {"id": "med", "name": "M", "vertical": "medicare",
                                            "distribution": {"rule": "multisell", "max_winners": 2}})
            await post("/v1/admin/partners", {"id": "p", "name": "P"})
            key = (await post("/v1/admin/campaigns", {"id": "c", "name": "C", "partner": "p", "offer": "med",
                                                      "payout": {"type": "revshare", "percent": 55.5}}))
            for name, (behaviour, price) in BUYERS.items():
                await post("/v1/admin/buyers", {"id": name, "name": name, "credit_limit_cents": 1000})
                await post(f"/v1/admin/buyers/{name}/deposits", {"amount_cents": 12_000})
                await post("/v1/admin/contracts", {"id": name, "name": name, "buyer": name, "offer": "med",
                                                   "price_cents": price, "caps": {"daily": 6},
                                                   "delivery": {"url": f"{sandbox}/deliver/{name}/{behaviour}"}})
            return str(key["posting_key"])

        self.key = self.run(setup())

    def teardown(self) -> None:
        if hasattr(self, "client"):
            self.run(self.client.aclose())
            self.run(self.lifespan.__aexit__(None, None, None))
            self.run(self.store.close())
            self.run(self.runner.cleanup())
        self.loop.close()

    @rule(buyer=st.sampled_from(sorted(BUYERS)), amount=st.integers(1, 8000))
    def deposit(self, buyer: str, amount: int) -> None:
        r = self.run(self.client.post(f"/v1/admin/buyers/{buyer}/deposits", json={"amount_cents": amount},
                                      headers=ADMIN))
        assert r.status_code == 201

    @rule(age=st.integers(60, 90))
    def ping(self, age: int) -> None:
        r = self.run(self.client.post("/v1/ping", json={"lead": {"state": "FL", "zip": "33109", "age": age}},
                                      headers={"Authorization": f"Bearer {self.key}"}))
        assert r.status_code == 200, r.text
        if r.json()["bids"]:
            self.open_pings.append((r.json()["ping_id"], age))

    @precondition(lambda self: bool(self.open_pings))
    @rule(data=st.data())
    def post(self, data: st.DataObject) -> None:
        ping_id, age = self.open_pings.pop(data.draw(st.integers(0, len(self.open_pings) - 1)))
        self.phone += 1
        lead = {"state": "FL", "zip": "33109", "age": age, "first_name": "T", "phone": f"30555{self.phone:05d}"}
        r = self.run(self.client.post("/v1/post", json={"ping_id": ping_id, "lead": lead},
                                      headers={"Authorization": f"Bearer {self.key}"}))
        assert r.status_code in (200, 410), r.text  # 410 only after time_passes
        if r.status_code == 200:
            assert all(s["bid_id"] for s in r.json()["sales"])
            assert all(x["reason"] == "post_rejected" for x in r.json()["rejected"])
            self.sold += len(r.json()["sales"])

    @rule()
    def time_passes(self) -> None:
        """Every open ping and live reservation lapses (as if their TTL had run out)."""

        async def unit(tx: Tx) -> None:
            await tx.execute("UPDATE pings SET expires_at = 0 WHERE post_state = 'open'")
            await tx.execute("UPDATE reservations SET expires_at = 0 WHERE state IN ('held', 'posting')")

        self.run(self.store.write(unit))

    @invariant()
    def money_and_caps_are_exact(self) -> None:
        if not hasattr(self, "client"):
            return
        self.run(ledger_invariants(self.store))

        async def unit(tx: Tx) -> None:
            for f in await tx.fetch("SELECT * FROM buyer_funds"):
                live = await tx.fetchval(
                    "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM reservations "
                    "WHERE buyer_id = :b AND state IN ('held', 'posting')", {"b": f["buyer_id"]})
                assert int(f["holds_cents"]) == int(live)
                assert int(f["balance_cents"]) + int(f["credit_limit_cents"]) - int(f["holds_cents"]) >= 0
            for u in await tx.fetch("SELECT * FROM contract_usage"):
                counted = await tx.fetchval(
                    "SELECT COUNT(*) FROM reservations WHERE contract_id = :c AND day_key = :d "
                    "AND state IN ('held', 'posting', 'sold')", {"c": u["contract_id"], "d": u["day_key"]})
                assert u["day_used"] == counted <= 6
            sales = await tx.fetchval("SELECT COUNT(*) FROM sales")
            assert sales == self.sold
            sale_txns = await tx.fetchval("SELECT COUNT(*) FROM ledger_transactions WHERE kind = 'sale'")
            assert sales == sale_txns
            assert await tx.fetchval("SELECT COUNT(*) FROM sales WHERE buyer_id = 'rej'") == 0

        self.run(self.store.read(unit))


Exchange.TestCase.settings = settings(max_examples=8, stateful_step_count=25, deadline=None)
test_exchange_money = Exchange.TestCase
