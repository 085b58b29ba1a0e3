"""A Hypothesis state machine of deposits, pings, posts, rejections and expiries, returns (full and
partial, decided or auto-approved), reversals and partner payouts. After every step: the ledger stays
zero-sum, balances equal their entries, holds equal live reservations, caps count exactly, no sale
is refunded more than its price, sale statuses match their returns, and statements add up."""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pingpost.app import create_app
from pingpost.clock import now_ms
from pingpost.config import Settings
from pingpost.db.migrate import migrate
from pingpost.db.store import Store, Tx, open_store
from pingpost.sandbox.app import start_sandbox
from tests.api.setup_data import VERTICAL
from tests.api.test_ledger import ledger_invariants
from tests.conftest import ADMIN_TOKEN
from tests.support.money import refund_invariants

T = TypeVar("T")

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
BUYERS = {"acc": ("accept", 3000), "rej": ("reject", 2500), "acc2": ("accept", 2000)}
# acc: returns decided by the operator, partner clawed back; acc2: approved at once, no clawback, at
# most half of a month's sales returned.
POLICIES = {
    "acc": {"window_days": 30},
    "rej": {"window_days": 30},
    "acc2": {"window_days": 30, "auto_approve": True, "partner_clawback": False, "max_return_rate_pct": 50},
}
DAY_MS = 86_400_000


@dataclass
class SaleModel:
    contract: str
    price: int
    status: str = "charged"
    open_return: str | None = None  # the pending or approved return


@dataclass
class ReturnModel:
    sale_id: str
    amount: int
    status: str


class Exchange(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = Path(tempfile.mkdtemp())
        self.open_pings: list[tuple[str, int]] = []
        self.sold = 0
        self.phone = 0
        self.sales: dict[str, SaleModel] = {}
        self.returns: dict[str, ReturnModel] = {}
        self.payouts: list[tuple[str, int, str]] = []  # reference, amount, transaction id
        self.buyer_keys: dict[str, str] = {}

    def run(self, awaitable: Awaitable[T]) -> T:
        return self.loop.run_until_complete(awaitable)

    @initialize()
    def start(self) -> None:
        url = f"sqlite:///{self.tmp / 'pp.db'}"
        migrate(url)
        self.runner, sandbox = self.run(start_sandbox())
        self.store: Store = self.run(open_store(url))
        app = create_app(
            Settings(database_url=url, admin_token=ADMIN_TOKEN, secret_key="k", key_file=str(self.tmp / "k")),
            store=self.store,
        )
        self.lifespan = app.router.lifespan_context(app)
        self.run(self.lifespan.__aenter__())
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t", timeout=30)

        async def setup() -> str:
            async def post(path: str, body: dict[str, Any]) -> Any:
                r = await self.client.post(path, json=body, headers=ADMIN)
                assert r.status_code == 201, r.text
                return r.json()

            await post("/v1/admin/verticals", VERTICAL)
            await post(
                "/v1/admin/offers",
                {
                    "id": "med",
                    "name": "M",
                    "vertical": "medicare",
                    "distribution": {"rule": "multisell", "max_winners": 3},
                },
            )
            await post("/v1/admin/partners", {"id": "p", "name": "P"})
            key = await post(
                "/v1/admin/campaigns",
                {
                    "id": "c",
                    "name": "C",
                    "partner": "p",
                    "offer": "med",
                    "payout": {"type": "revshare", "percent": 55.5},
                },
            )
            for name, (behaviour, price) in BUYERS.items():
                await post("/v1/admin/buyers", {"id": name, "name": name, "credit_limit_cents": 1000})
                await post(f"/v1/admin/buyers/{name}/deposits", {"amount_cents": 12_000})
                await post(
                    "/v1/admin/contracts",
                    {
                        "id": name,
                        "name": name,
                        "buyer": name,
                        "offer": "med",
                        "price_cents": price,
                        "caps": {"daily": 6},
                        "return_policy": POLICIES[name],
                        "delivery": {"url": f"{sandbox}/deliver/{name}/{behaviour}"},
                    },
                )
                self.buyer_keys[name] = (
                    await post("/v1/admin/api-keys", {"kind": "buyer", "buyer": name, "name": name})
                )["key"]
            return str(key["posting_key"])

        self.key = self.run(setup())
        self.first_sales()

    def teardown(self) -> None:
        if hasattr(self, "client"):
            self.run(self.client.aclose())
            self.run(self.lifespan.__aexit__(None, None, None))
            self.run(self.store.close())
            self.run(self.runner.cleanup())
        self.loop.close()

    @rule(buyer=st.sampled_from(sorted(BUYERS)), amount=st.integers(1, 8000))
    def deposit(self, buyer: str, amount: int) -> None:
        r = self.run(
            self.client.post(f"/v1/admin/buyers/{buyer}/deposits", json={"amount_cents": amount}, headers=ADMIN)
        )
        assert r.status_code == 201

    def first_sales(self) -> None:
        """Two leads sold (each to acc and acc2; rej refuses them), so every run has sales to return."""
        for age in (65, 66):
            self.ping(age)
            self.post_ping(len(self.open_pings) - 1)

    @rule(age=st.integers(60, 90))
    def sell(self, age: int) -> None:
        """A ping posted at once."""
        self.ping(age)
        if self.open_pings:
            self.post_ping(len(self.open_pings) - 1)

    @rule(age=st.integers(60, 90))
    def ping(self, age: int) -> None:
        r = self.run(
            self.client.post(
                "/v1/ping",
                json={"lead": {"state": "FL", "zip": "33109", "age": age}},
                headers={"Authorization": f"Bearer {self.key}"},
            )
        )
        assert r.status_code == 200, r.text
        if r.json()["bids"]:
            self.open_pings.append((r.json()["ping_id"], age))

    @precondition(lambda self: bool(self.open_pings))
    @rule(data=st.data())
    def post(self, data: st.DataObject) -> None:
        self.post_ping(data.draw(st.integers(0, len(self.open_pings) - 1)))

    def post_ping(self, index: int) -> None:
        ping_id, age = self.open_pings.pop(index)
        self.phone += 1
        lead = {"state": "FL", "zip": "33109", "age": age, "first_name": "T", "phone": f"30555{self.phone:05d}"}
        r = self.run(
            self.client.post(
                "/v1/post", json={"ping_id": ping_id, "lead": lead}, headers={"Authorization": f"Bearer {self.key}"}
            )
        )
        assert r.status_code in (200, 410), r.text  # 410 only after time_passes
        if r.status_code == 200:
            assert all(s["bid_id"] for s in r.json()["sales"])
            assert all(x["reason"] == "post_rejected" for x in r.json()["rejected"])
            self.sold += len(r.json()["sales"])
            for sold in r.json()["sales"]:
                sale = self.admin_get(f"/v1/admin/sales/{sold['sale_id']}")
                self.sales[sale["sale_id"]] = SaleModel(sale["contract"], sale["price_cents"])

    @rule()
    def time_passes(self) -> None:
        """Every open ping and live reservation lapses (as if their TTL had run out)."""

        async def unit(tx: Tx) -> None:
            await tx.execute("UPDATE pings SET expires_at = 0 WHERE post_state = 'open'")
            await tx.execute("UPDATE reservations SET expires_at = 0 WHERE state IN ('held', 'posting')")

        self.run(self.store.write(unit))

    # --- returns, reversals and payouts ------------------------------------------------------------

    def admin_get(self, path: str, **params: Any) -> Any:
        r = self.run(self.client.get(path, params=params, headers=ADMIN))
        assert r.status_code == 200, r.text
        return r.json()

    def month_count(self, contract: str) -> tuple[int, int]:
        """(billed sales, pending and approved returns) of the contract: every sale here is made in
        this month (a run lasts seconds)."""
        sales = [s for s in self.sales.values() if s.contract == contract and s.status != "reversed"]
        returns = [
            r
            for r in self.returns.values()
            if self.sales[r.sale_id].contract == contract and r.status in ("pending", "approved")
        ]
        return len(sales), len(returns)

    @precondition(lambda self: bool(self.sales))
    @rule(
        data=st.data(),
        by=st.sampled_from(["admin", "own", "own", "other"]),
        amount=st.one_of(st.none(), st.integers(1, 3500)),
        reason=st.sampled_from(["fraud", "other", "fraud", "spam"]),
    )
    def open_return(self, data: st.DataObject, by: str, amount: int | None, reason: str) -> None:
        sale_id = data.draw(st.sampled_from(sorted(self.sales)))
        sale = self.sales[sale_id]
        if by == "admin":
            path, headers = f"/v1/admin/sales/{sale_id}/returns", ADMIN
        else:
            buyer = sale.contract if by == "own" else next(b for b in ("acc", "acc2") if b != sale.contract)
            path, headers = f"/v1/buyer/sales/{sale_id}/returns", {"Authorization": f"Bearer {self.buyer_keys[buyer]}"}
        body: dict[str, Any] = {"reason": reason, **({"amount_cents": amount} if amount is not None else {})}
        r = self.run(self.client.post(path, json=body, headers=headers))
        code = r.json()["error"]["code"] if r.status_code >= 400 else None
        sales, returns = self.month_count(sale.contract)
        limited = sale.contract == "acc2" and returns + 1 > sales * 50 // 100
        if by == "other":
            expected: tuple[int, str | None] = (404, "not_found")
        elif sale.open_return is not None:
            expected = (409, "already_returned")
        elif sale.status != "charged":
            expected = (409, "conflict")
        elif reason == "spam":
            expected = (422, "invalid_reason")
        elif amount is not None and amount > sale.price:
            expected = (422, "validation_error")
        elif limited:
            expected = (422, "return_limit_reached")
        else:
            expected = (201, None)
        assert (r.status_code, code) == expected, (r.text, sale)
        if r.status_code == 201:
            opened = r.json()
            assert opened["amount_cents"] == (amount or sale.price)
            self.returns[opened["id"]] = ReturnModel(sale_id, opened["amount_cents"], opened["status"])
            sale.open_return = opened["id"]
            assert opened["status"] == ("approved" if sale.contract == "acc2" else "pending")
            if opened["status"] == "approved":
                self.approved(sale, opened["amount_cents"])

    def approved(self, sale: SaleModel, amount: int) -> None:
        sale.status = "returned" if amount == sale.price else "partially_returned"

    @precondition(lambda self: bool(self.returns))
    @rule(data=st.data(), decision=st.sampled_from(["approve", "deny"]))
    def decide(self, data: st.DataObject, decision: str) -> None:
        return_id = data.draw(st.sampled_from(sorted(self.returns)))
        ret = self.returns[return_id]
        r = self.run(self.client.post(f"/v1/admin/returns/{return_id}/{decision}", json={}, headers=ADMIN))
        outcome = "approved" if decision == "approve" else "denied"
        if ret.status in ("pending", outcome):
            assert r.status_code == 200, r.text
            assert r.json()["status"] == outcome
            if ret.status == "pending":
                ret.status = outcome
                sale = self.sales[ret.sale_id]
                if outcome == "approved":
                    self.approved(sale, ret.amount)
                else:
                    sale.open_return = None
        else:
            assert (r.status_code, r.json()["error"]["code"]) == (409, "conflict"), r.text

    @precondition(lambda self: bool(self.sales))
    @rule(data=st.data())
    def reverse(self, data: st.DataObject) -> None:
        sale_id = data.draw(st.sampled_from(sorted(self.sales)))
        sale = self.sales[sale_id]
        r = self.run(self.client.post(f"/v1/admin/sales/{sale_id}/reverse", json={"reason": "r"}, headers=ADMIN))
        pending = sale.open_return is not None and self.returns[sale.open_return].status == "pending"
        if sale.status in ("charged", "partially_returned") and not pending:
            assert r.status_code == 200, r.text
            sale.status = "reversed"
        else:
            assert r.status_code == 409, r.text

    @rule(amount=st.integers(1, 4000), repeat=st.booleans())
    def payout(self, amount: int, repeat: bool) -> None:
        owed = self.admin_get("/v1/admin/ledger", account="partner:p", limit=1)["balance_cents"]
        if repeat and self.payouts:
            reference, amount, txn_id = self.payouts[-1]
            r = self.run(
                self.client.post(
                    "/v1/admin/partners/p/payouts", headers=ADMIN, json={"amount_cents": amount, "reference": reference}
                )
            )
            assert r.status_code == 201 and r.json()["transaction_id"] == txn_id, r.text
            assert self.admin_get("/v1/admin/ledger", account="partner:p", limit=1)["balance_cents"] == owed
            return
        reference = f"wire-{len(self.payouts)}-{amount}"
        r = self.run(
            self.client.post(
                "/v1/admin/partners/p/payouts", headers=ADMIN, json={"amount_cents": amount, "reference": reference}
            )
        )
        if amount <= owed:
            assert r.status_code == 201, r.text
            self.payouts.append((reference, amount, r.json()["transaction_id"]))
        else:
            assert (r.status_code, r.json()["error"]["code"]) == (422, "insufficient_balance"), r.text

    @rule(
        account=st.sampled_from(["buyer:acc", "buyer:acc2", "partner:p", "house:revenue", "house:cash"]),
        first=st.integers(-3, 1),
        length=st.integers(0, 3),
    )
    def statement(self, account: str, first: int, length: int) -> None:
        """Any range adds up: opening + lines = closing, each re-derived from the ledger."""
        today = now_ms() // DAY_MS
        start_day, end_day = today + first, today + first + length

        def day(n: int) -> str:
            return datetime.fromtimestamp(n * 86_400, UTC).date().isoformat()

        got = self.admin_get("/v1/admin/statements", account=account, **{"from": day(start_day), "to": day(end_day)})
        lines = sum(line["amount_cents"] for line in got["lines"])
        assert got["opening_balance_cents"] + lines == got["closing_balance_cents"]
        assert sum(got["totals"].values()) == lines

        async def sums(tx: Tx) -> tuple[int, int]:
            q = (
                "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM ledger_entries "
                "WHERE account = :a AND created_at < :t"
            )
            return (
                int(await tx.fetchval(q, {"a": account, "t": start_day * DAY_MS})),
                int(await tx.fetchval(q, {"a": account, "t": (end_day + 1) * DAY_MS})),
            )

        assert (got["opening_balance_cents"], got["closing_balance_cents"]) == self.run(self.store.read(sums))

    @invariant()
    def returns_never_refund_more_than_the_price(self) -> None:
        if not hasattr(self, "client"):
            return

        statuses = self.run(refund_invariants(self.store))
        assert statuses == {sale_id: sale.status for sale_id, sale in self.sales.items()}

        async def unit(tx: Tx) -> None:
            for ret in await tx.fetch("SELECT id, status FROM returns"):
                assert ret["status"] == self.returns[ret["id"]].status
            paid = int(
                await tx.fetchval(
                    "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM ledger_entries "
                    "WHERE account = 'partner:p' AND transaction_id IN (SELECT id FROM "
                    "ledger_transactions WHERE kind = 'payout')"
                )
            )
            assert -paid == sum(amount for _, amount, _ in self.payouts)

        self.run(self.store.read(unit))

    @invariant()
    def money_and_caps_are_exact(self) -> None:
        if not hasattr(self, "client"):
            return
        self.run(ledger_invariants(self.store))

        async def unit(tx: Tx) -> None:
            for f in await tx.fetch("SELECT * FROM buyer_funds"):
                live = await tx.fetchval(
                    "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM reservations "
                    "WHERE buyer_id = :b AND state IN ('held', 'posting')",
                    {"b": f["buyer_id"]},
                )
                assert int(f["holds_cents"]) == int(live)
                assert int(f["balance_cents"]) + int(f["credit_limit_cents"]) - int(f["holds_cents"]) >= 0
            for u in await tx.fetch("SELECT * FROM contract_usage"):
                counted = await tx.fetchval(
                    "SELECT COUNT(*) FROM reservations WHERE contract_id = :c AND day_key = :d "
                    "AND state IN ('held', 'posting', 'sold')",
                    {"c": u["contract_id"], "d": u["day_key"]},
                )
                assert u["day_used"] == counted <= 6
            sales = await tx.fetchval("SELECT COUNT(*) FROM sales")
            assert sales == self.sold
            sale_txns = await tx.fetchval("SELECT COUNT(*) FROM ledger_transactions WHERE kind = 'sale'")
            assert sales == sale_txns
            assert await tx.fetchval("SELECT COUNT(*) FROM sales WHERE buyer_id = 'rej'") == 0

        self.run(self.store.read(unit))


Exchange.TestCase.settings = settings(max_examples=25, stateful_step_count=50, deadline=None)
test_exchange_money = Exchange.TestCase
