"""Partner payouts through HTTP on both stores: the `payout` transaction, idempotency by reference,
the owed-balance check, and concurrent payouts that can never overdraw (docs/protocol.md, Money)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from pingpost.config import Settings
from tests.api.setup_data import VERTICAL
from tests.api.test_ledger import ledger_invariants
from tests.conftest import ADMIN_TOKEN
from tests.servers import admin_session, pingpost_server, sandbox_server
from tests.support.money import Market, open_market

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
async def market(settings: Settings) -> AsyncIterator[Market]:
    async with open_market(settings) as m:
        await m.contract("fl", "b1", state="FL", policy={"window_days": 7, "auto_approve": True})
        yield m


async def pay(m: Market, amount: int, reference: str, status: int = 201, partner: str = "acme") -> dict[str, Any]:
    result: dict[str, Any] = await m.api.ok(
        "POST", f"/v1/admin/partners/{partner}/payouts", status, json={"amount_cents": amount, "reference": reference}
    )
    return result


async def test_a_payout_pays_out_of_what_the_partner_is_owed(market: Market) -> None:
    m = market
    await m.sell()
    assert await m.balance("partner:acme") == 7000
    txn = await pay(m, 5000, "wire-1")
    assert txn["kind"] == "payout" and txn["reference"] == "wire-1" and txn["transaction_id"].startswith("txn_")
    assert sorted((e["account"], e["amount_cents"]) for e in txn["entries"]) == [
        ("house:cash", 5000),
        ("partner:acme", -5000),
    ]
    assert await m.balance("partner:acme") == 2000
    assert await pay(m, 5000, "wire-1") == txn  # the same request again: the first payout
    for amount, partner in ((4000, "acme"), (5000, "other")):
        await m.api.ok(
            "POST", "/v1/admin/partners", 201, json={"id": "other", "name": "Other"}
        ) if partner == "other" else None
        r = await m.api.request(
            "POST", f"/v1/admin/partners/{partner}/payouts", json={"amount_cents": amount, "reference": "wire-1"}
        )
        assert (r.status_code, r.json()["error"]["code"]) == (409, "conflict")
    r = await m.api.request("POST", "/v1/admin/partners/acme/payouts", json={"amount_cents": 2001, "reference": "w2"})
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["details"]) == (
        422,
        "insufficient_balance",
        {"owed_cents": 2000, "amount_cents": 2001},
    )
    await pay(m, 2000, "wire-2")  # exactly what is owed
    assert await m.balance("partner:acme") == 0
    assert [(e["type"], e["amount_cents"], e["reference"]) for e in await m.events("payout.")] == [
        ("payout.created", 5000, "wire-1"),
        ("payout.created", 2000, "wire-2"),
    ]
    ledger = await m.api.ok("GET", "/v1/admin/ledger", params={"account": "partner:acme"})
    assert [i["kind"] for i in ledger["items"]] == ["payout", "payout", "sale"]
    await ledger_invariants(m.store)


async def test_bad_payouts_change_nothing(market: Market) -> None:
    m = market
    await m.sell()
    r = await m.api.request("POST", "/v1/admin/partners/ghost/payouts", json={"amount_cents": 1, "reference": "r"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    for body in (
        {"amount_cents": 0, "reference": "r"},
        {"amount_cents": -1, "reference": "r"},
        {"amount_cents": 10.5, "reference": "r"},
        {"amount_cents": 100},
        {"amount_cents": 100, "reference": ""},
        {"amount_cents": 2**70, "reference": "r"},
        {"amount_cents": 100, "reference": "r", "to": "x"},
    ):
        r = await m.api.request("POST", "/v1/admin/partners/acme/payouts", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error"), body
    key = await m.buyer_key("b1")
    r = await m.api.request(
        "POST", "/v1/admin/partners/acme/payouts", token=key, json={"amount_cents": 1, "reference": "r"}
    )
    assert r.status_code == 401
    assert await m.balance("partner:acme") == 7000 and await m.events("payout.") == []


async def test_a_clawback_after_a_payout_leaves_the_partner_owing_and_payouts_stop(market: Market) -> None:
    m = market
    sale = await m.sell()
    await pay(m, 7000, "wire-1")
    await m.api.ok("POST", f"/v1/admin/sales/{sale['sale_id']}/returns", 201, json={"reason": "fraud"})
    assert await m.balance("partner:acme") == -7000  # clawed back after it was paid: the partner owes it
    r = await m.api.request("POST", "/v1/admin/partners/acme/payouts", json={"amount_cents": 1, "reference": "w2"})
    assert (r.status_code, r.json()["error"]["details"]["owed_cents"]) == (422, -7000)


async def test_concurrent_payouts_never_overdraw(market: Market) -> None:
    m = market
    await m.sell()  # owed 7,000
    answers = await asyncio.gather(
        *[
            m.api.request("POST", "/v1/admin/partners/acme/payouts", json={"amount_cents": 1000, "reference": f"w{i}"})
            for i in range(12)
        ]
    )
    assert sorted(r.status_code for r in answers) == [201] * 7 + [422] * 5
    assert await m.balance("partner:acme") == 0
    # One reference sent many times at once pays once.
    await m.sell()
    same = await asyncio.gather(
        *[
            m.api.request("POST", "/v1/admin/partners/acme/payouts", json={"amount_cents": 3000, "reference": "one"})
            for _ in range(6)
        ]
    )
    assert {r.status_code for r in same} == {201} and len({r.json()["transaction_id"] for r in same}) == 1
    assert await m.balance("partner:acme") == 4000
    # One reference for two partners at once: one payout, one 409 (never a failed unique insert).
    await m.api.ok("POST", "/v1/admin/partners", 201, json={"id": "other", "name": "Other"})
    other = await m.api.ok(
        "POST",
        "/v1/admin/campaigns",
        201,
        json={
            "id": "other-med",
            "name": "O",
            "partner": "other",
            "offer": "med",
            "payout": {"type": "fixed", "amount_cents": 100},
        },
    )
    await m.sell(posting_key=other["posting_key"])  # both partners are owed money
    for round_ in range(3):
        both = await asyncio.gather(
            *[
                m.api.request(
                    "POST", f"/v1/admin/partners/{p}/payouts", json={"amount_cents": 1, "reference": f"shared-{round_}"}
                )
                for p in ("acme", "other", "acme", "other")
            ]
        )
        assert sorted(r.status_code for r in both) == [201, 201, 409, 409], [r.text for r in both]
        paid = [r.json() for r in both if r.status_code == 201]
        assert paid[0] == paid[1]
    await ledger_invariants(m.store)


async def _owed_7000_then_pay_at_once(bases: list[str], sandbox: str) -> tuple[list[Any], list[int]]:
    """A sale through real server processes (partner owed 7,000), then one reference sent 6 times and
    16 payouts of 1,000, each batch spread over every process at once."""
    async with admin_session(bases[0]) as post:
        await post("/v1/admin/verticals", VERTICAL)
        await post("/v1/admin/offers", {"id": "med", "name": "M", "vertical": "medicare"})
        await post("/v1/admin/partners", {"id": "acme", "name": "Acme"})
        key = (
            await post(
                "/v1/admin/campaigns",
                {
                    "id": "c",
                    "name": "C",
                    "partner": "acme",
                    "offer": "med",
                    "payout": {"type": "revshare", "percent": 70},
                },
            )
        )["posting_key"]
        await post("/v1/admin/buyers", {"id": "b", "name": "B"})
        await post("/v1/admin/buyers/b/deposits", {"amount_cents": 100_000})
        await post(
            "/v1/admin/contracts",
            {
                "id": "k",
                "name": "K",
                "buyer": "b",
                "offer": "med",
                "price_cents": 10_000,
                "delivery": {"url": f"{sandbox}/deliver/b/accept"},
            },
        )
    async with httpx.AsyncClient(timeout=30) as c:
        partner = {"Authorization": f"Bearer {key}"}
        lead = {"state": "FL", "zip": "33109", "age": 67}
        pinged = (await c.post(f"{bases[0]}/v1/ping", json={"lead": lead}, headers=partner)).json()
        posted = await c.post(
            f"{bases[0]}/v1/post",
            headers=partner,
            json={"ping_id": pinged["ping_id"], "lead": {**lead, "first_name": "A", "phone": "3055550100"}},
        )
        assert posted.json()["status"] == "sold", posted.text

        async def payout(i: int, reference: str, amount: int) -> httpx.Response:
            return await c.post(
                f"{bases[i % len(bases)]}/v1/admin/partners/acme/payouts",
                headers=ADMIN,
                json={"amount_cents": amount, "reference": reference},
            )

        once = await asyncio.gather(*[payout(i, "same", 500) for i in range(6)])
        many = await asyncio.gather(*[payout(i, f"w{i}", 1000) for i in range(16)])
        ledger = await c.get(f"{bases[-1]}/v1/admin/ledger", params={"account": "partner:acme"}, headers=ADMIN)
        assert ledger.json()["balance_cents"] == 500, ledger.text
        return [(r.status_code, r.json().get("transaction_id")) for r in once], [r.status_code for r in many]


def test_payouts_from_several_processes_never_overdraw(tmp_path: Path, database_url: str) -> None:
    with sandbox_server(tmp_path) as sandbox, ExitStack() as servers:
        if database_url.startswith("sqlite"):
            bases = [servers.enter_context(pingpost_server(database_url, workers=2, workdir=tmp_path))]
        else:
            bases = [servers.enter_context(pingpost_server(database_url, workers=w, workdir=tmp_path)) for w in (2, 1)]
        once, many = asyncio.run(_owed_7000_then_pay_at_once(bases, sandbox))
    assert len(set(once)) == 1 and once[0][0] == 201  # one reference pays once, whoever answers
    assert sorted(many) == [201] * 6 + [422] * 10  # 6,500 left: six payouts of 1,000
