"""Shared steps of the returns, payouts and statements tests: a market with two buyers on one offer
(contract `fl` takes Florida leads, `tx` Texas ones), a controlled clock, buyers that accept every
delivery, and a `sell` step that makes one sale."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson

from pingpost.app import create_app
from pingpost.clock import ManualClock, use_clock
from pingpost.config import Settings
from pingpost.db.store import Store, Tx, open_store
from tests.api import setup_data as sd
from tests.conftest import Api
from tests.support.buyers import FakeBuyerClient, accepts

DELIVER_URL = "http://buyer.test/deliver"
DAY_MS = 86_400_000
POLICY = {"window_days": 7}


def at(text: str) -> int:
    """Epoch milliseconds of an ISO time read as UTC."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


@dataclass
class Market:
    api: Api
    clock: ManualClock
    store: Store
    posting_key: str = ""
    buyer_keys: dict[str, str] = field(default_factory=dict)
    phones: int = 0
    client: FakeBuyerClient = field(default_factory=FakeBuyerClient)  # the buyers' side, by URL

    async def contract(
        self,
        ident: str,
        buyer_id: str,
        *,
        state: str,
        price: int = 10_000,
        policy: dict[str, Any] | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        return await sd.contract(
            self.api,
            ident,
            buyer_id,
            price,
            delivery={"url": DELIVER_URL},
            filters=[{"field": "state", "op": "eq", "value": state}],
            return_policy=POLICY if policy is None else policy,
            **extra,
        )

    async def sell(self, state: str = "FL", *, posting_key: str | None = None) -> dict[str, Any]:
        """Ping and post one lead (a new consumer each time) through acme's campaign (or the one of
        `posting_key`); answer the sale as the admin API shows it."""
        self.phones += 1
        lead = {"state": state, "zip": "33109", "age": 67}
        key = posting_key or self.posting_key
        answer = await sd.ping(self.api, key, lead)
        assert answer["bids"], answer
        result = await self.api.ok(
            "POST",
            "/v1/post",
            token=key,
            json={
                "ping_id": answer["ping_id"],
                "lead": {**lead, "first_name": "Ann", "phone": f"30555{self.phones:05d}"},
            },
        )
        [sold] = result["sales"]
        sale: dict[str, Any] = await self.api.ok("GET", f"/v1/admin/sales/{sold['sale_id']}")
        return sale

    async def buyer_key(self, buyer_id: str) -> str:
        if buyer_id not in self.buyer_keys:
            created = await self.api.ok(
                "POST", "/v1/admin/api-keys", 201, json={"kind": "buyer", "buyer": buyer_id, "name": buyer_id}
            )
            self.buyer_keys[buyer_id] = created["key"]
        return self.buyer_keys[buyer_id]

    async def balance(self, account: str) -> int:
        ledger = await self.api.ok("GET", "/v1/admin/ledger", params={"account": account, "limit": 1})
        return int(ledger["balance_cents"])

    async def events(self, type_prefix: str = "") -> list[dict[str, Any]]:
        async def unit(tx: Tx) -> list[Any]:
            return list(await tx.fetch("SELECT type, data FROM events ORDER BY id"))

        return [
            {"type": r["type"], **orjson.loads(r["data"])}
            for r in await self.store.read(unit)
            if r["type"].startswith(type_prefix)
        ]


@asynccontextmanager
async def open_market(
    settings: Settings, *, payout: dict[str, Any] | None = None, start: str = "2026-12-02T12:00:00"
) -> AsyncIterator[Market]:
    """The app on `settings`' database with a manual clock (also the store's shared clock), an
    exclusive offer, partner `acme` (campaign paying 70 % unless `payout`), buyers `b1` and `b2`."""
    clock = ManualClock(at(start))
    client = FakeBuyerClient(handlers={DELIVER_URL: accepts()})
    with use_clock(clock):
        store = await open_store(settings.database_url, shared_clock=clock)
        app = create_app(settings, store=store, client=client)
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                market = Market(Api(http), clock, store, client=client)
                await sd.base_setup(market.api)
                market.posting_key = await sd.campaign(market.api, payout=payout)
                for name in ("b1", "b2"):
                    await sd.buyer(market.api, name, deposit=1_000_000)
                yield market
        await store.close()


# What each sale status says its buyer got back (returns and reversal together), out of its price.
REFUNDED = {
    "charged": lambda refunded, price: refunded == 0,
    "pending": lambda refunded, price: refunded == 0,
    "void": lambda refunded, price: refunded == 0,
    "returned": lambda refunded, price: refunded == price,
    "reversed": lambda refunded, price: refunded == price,
    "partially_returned": lambda refunded, price: 0 < refunded < price,
}


async def refund_invariants(store: Store) -> dict[str, str]:
    """No sale is refunded more than its price, each status says what was refunded, a sale has at most
    one approved return and exactly one `return` transaction per approved return. Answers every sale's
    status (for a model to compare). For the state machine and the simulator alike."""

    async def unit(tx: Tx) -> dict[str, str]:
        # Four grouped reads, not three per sale: the simulator runs this after every step.
        refunded_of = {
            str(r["sale_id"]): int(r["refunded"])
            for r in await tx.fetch(
                "SELECT t.sale_id, CAST(SUM(e.amount_cents) AS BIGINT) AS refunded FROM ledger_transactions t "
                "JOIN ledger_entries e ON e.transaction_id = t.id WHERE t.kind IN ('return', 'reversal') "
                "AND e.account LIKE 'buyer:%' AND t.sale_id IS NOT NULL GROUP BY t.sale_id"
            )
        }
        approved_of = {
            str(r["sale_id"]): int(r["n"])
            for r in await tx.fetch(
                "SELECT sale_id, COUNT(*) AS n FROM returns WHERE status = 'approved' GROUP BY sale_id"
            )
        }
        returned_of = {
            str(r["sale_id"]): int(r["n"])
            for r in await tx.fetch(
                "SELECT sale_id, COUNT(*) AS n FROM ledger_transactions WHERE kind = 'return' "
                "AND sale_id IS NOT NULL GROUP BY sale_id"
            )
        }
        statuses = {}
        for sale in await tx.fetch("SELECT id, price_cents, status FROM sales"):
            ident = str(sale["id"])
            refunded = refunded_of.get(ident, 0)
            price, status = int(sale["price_cents"]), str(sale["status"])
            assert 0 <= refunded <= price and REFUNDED[status](refunded, price), (ident, status, refunded)
            approved, returned = approved_of.get(ident, 0), returned_of.get(ident, 0)
            assert approved <= 1 and returned == approved, (ident, approved, returned)
            statuses[ident] = status
        return statuses

    return await store.read(unit)
