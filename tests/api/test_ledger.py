"""Deposits through the double-entry ledger: zero-sum transactions, derived balances."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pingpost.db.store import Store, Tx
from tests.api.setup_data import buyer
from tests.conftest import Api


async def ledger_invariants(store: Store) -> None:
    async def unit(tx: Tx) -> None:
        unbalanced = await tx.fetch(
            "SELECT transaction_id FROM ledger_entries GROUP BY transaction_id HAVING SUM(amount_cents) <> 0"
        )
        assert unbalanced == []
        for row in await tx.fetch("SELECT buyer_id, balance_cents FROM buyer_funds"):
            total = await tx.fetchval(
                "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM ledger_entries WHERE account = :a",
                {"a": f"buyer:{row['buyer_id']}"},
            )
            assert int(total) == int(row["balance_cents"])

    await store.read(unit)


async def test_deposits_balance_and_ledger(api: Api, store: Store) -> None:
    await buyer(api, "b", credit=1000)
    txn = await api.ok("POST", "/v1/admin/buyers/b/deposits", 201, json={"amount_cents": 2500, "reference": "w1"})
    assert txn["kind"] == "deposit" and txn["transaction_id"].startswith("txn_")
    assert sorted((e["account"], e["amount_cents"]) for e in txn["entries"]) == [
        ("buyer:b", 2500),
        ("house:cash", -2500),
    ]
    again = await api.ok("POST", "/v1/admin/buyers/b/deposits", 201, json={"amount_cents": 2500, "reference": "w1"})
    assert again["transaction_id"] == txn["transaction_id"]
    r = await api.request("POST", "/v1/admin/buyers/b/deposits", json={"amount_cents": 999, "reference": "w1"})
    assert r.status_code == 409
    await api.ok("POST", "/v1/admin/buyers/b/deposits", 201, json={"amount_cents": 500})
    b = await api.ok("GET", "/v1/admin/buyers/b")
    assert (b["balance_cents"], b["available_cents"]) == (3000, 4000)
    ledger = await api.ok("GET", "/v1/admin/ledger", params={"account": "buyer:b", "limit": 1})
    assert ledger["balance_cents"] == 3000 and len(ledger["items"]) == 1 and ledger["next_cursor"]
    rest = await api.ok("GET", "/v1/admin/ledger", params={"account": "buyer:b", "cursor": ledger["next_cursor"]})
    assert [i["amount_cents"] for i in ledger["items"] + rest["items"]] == [500, 2500]
    cash = await api.ok("GET", "/v1/admin/ledger", params={"account": "house:cash"})
    assert cash["balance_cents"] == -3000
    await ledger_invariants(store)


async def test_bad_deposits_change_nothing(api: Api, store: Store) -> None:
    await buyer(api, "b")
    for body in (
        {"amount_cents": 0},
        {"amount_cents": -5},
        {"amount_cents": 1.5},
        {"amount_cents": 2**70},
        {"amount_cents": "100"},
    ):
        r = await api.request("POST", "/v1/admin/buyers/b/deposits", json=body)
        assert r.status_code == 422, body
    r = await api.request("POST", "/v1/admin/buyers/ghost/deposits", json={"amount_cents": 5})
    assert r.status_code == 404
    r = await api.request("GET", "/v1/admin/ledger", params={"account": "bank:x"})
    assert r.status_code == 422
    assert (await api.ok("GET", "/v1/admin/ledger", params={"account": "house:cash"}))["items"] == []


@settings(max_examples=10, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(amounts=st.lists(st.integers(min_value=1, max_value=10**9), min_size=1, max_size=8))
async def test_any_deposits_sum_to_zero(api: Api, store: Store, amounts: list[int]) -> None:
    if (await api.request("GET", "/v1/admin/buyers/h")).status_code == 404:
        await buyer(api, "h")
    before = (await api.ok("GET", "/v1/admin/buyers/h"))["balance_cents"]
    for a in amounts:
        await api.ok("POST", "/v1/admin/buyers/h/deposits", 201, json={"amount_cents": a})
    after = (await api.ok("GET", "/v1/admin/buyers/h"))["balance_cents"]
    assert after - before == sum(amounts)
    await ledger_invariants(store)
