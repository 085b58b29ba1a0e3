"""Returns through HTTP on both stores: the policy, every refusal, decisions, partial credits, the
`return` ledger transaction, sale statuses, reports, events and races (docs/protocol.md, Returns)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pingpost import errors
from pingpost.admin.apply import apply_setup
from pingpost.admin.service import AdminService
from pingpost.config import Settings
from pingpost.db.store import Tx
from pingpost.ledger.service import LedgerService
from tests.api.test_ledger import ledger_invariants
from tests.support.money import DAY_MS, Market, at, open_market


@pytest.fixture
async def market(settings: Settings) -> AsyncIterator[Market]:
    async with open_market(settings) as m:
        yield m


def entries(txn: dict[str, Any]) -> dict[str, int]:
    return {e["account"]: e["amount_cents"] for e in txn["entries"]}


async def transaction(m: Market, txn_id: str) -> dict[str, Any]:
    async def unit(tx: Tx) -> dict[str, int]:
        rows = await tx.fetch(
            "SELECT account, amount_cents FROM ledger_entries WHERE transaction_id = :t", {"t": txn_id}
        )
        return {r["account"]: int(r["amount_cents"]) for r in rows}

    return await m.store.read(unit)


async def open_return(
    m: Market, sale_id: str, status: int = 201, *, buyer: str | None = None, **body: Any
) -> dict[str, Any]:
    token = await m.buyer_key(buyer) if buyer else None
    path = f"/v1/buyer/sales/{sale_id}/returns" if buyer else f"/v1/admin/sales/{sale_id}/returns"
    kwargs: dict[str, Any] = {"token": token} if token else {}
    result: dict[str, Any] = await m.api.ok("POST", path, status, json={"reason": "wrong_number", **body}, **kwargs)
    return result


async def test_the_policy_defaults_to_no_returns_and_is_validated(market: Market) -> None:
    m = market
    created = await m.contract("fl", "b1", state="FL", policy={})
    assert created["return_policy"] == {
        "window_days": 0,
        "auto_approve": False,
        "partner_clawback": True,
        "max_return_rate_pct": None,
        "reasons": ["disconnected", "wrong_number", "duplicate", "not_interested", "fraud", "other"],
    }
    bad: dict[str, Any]
    for bad in (
        {"window_days": -1},
        {"window_days": 366},
        {"max_return_rate_pct": 100.5},
        {"max_return_rate_pct": 12.345},
        {"reasons": []},
        {"reasons": ["a", "a"]},
        {"reasons": ["no spaces"]},
        {"auto_approve": "yes"},
        {"refund_everything": True},
    ):
        r = await m.api.request("PATCH", "/v1/admin/contracts/fl", json={"return_policy": bad})
        assert r.status_code == 422, bad
        assert r.json()["error"]["code"] == "validation_error"
        assert r.json()["error"]["details"]["errors"][0]["field"].startswith("return_policy"), r.text
    patched = await m.api.ok(
        "PATCH",
        "/v1/admin/contracts/fl",
        json={
            "return_policy": {
                "window_days": 14,
                "reasons": ["bad_data"],
                "max_return_rate_pct": 12.5,
                "auto_approve": True,
            }
        },
    )
    assert patched["return_policy"] == {
        "window_days": 14,
        "reasons": ["bad_data"],
        "max_return_rate_pct": 12.5,
        "auto_approve": True,
        "partner_clawback": True,
    }
    sale = await m.sell()
    await open_return(m, sale["sale_id"], 422, reason="wrong_number")  # not this contract's reason any more


async def test_a_full_return_refunds_the_buyer_claws_back_the_partner_and_the_house_takes_the_rest(
    market: Market,
) -> None:
    m = market
    await m.contract("fl", "b1", state="FL")
    sale = await m.sell()
    assert (sale["price_cents"], sale["payout_cents"], sale["status"]) == (10_000, 7000, "charged")
    opened = await open_return(m, sale["sale_id"], buyer="b1", note="the number rings a fax machine")
    assert opened["id"].startswith("ret_") and opened["status"] == "pending"
    assert {k: opened[k] for k in ("sale_id", "buyer", "partner", "reason", "amount_cents", "decided_at")} == {
        "sale_id": sale["sale_id"],
        "buyer": "b1",
        "partner": "acme",
        "reason": "wrong_number",
        "amount_cents": 10_000,
        "decided_at": None,
    }
    assert "clawback_cents" not in opened  # a buyer does not see the partner's side
    assert await m.balance("buyer:b1") == 1_000_000 - 10_000  # nothing moves while pending
    approved = await m.api.ok("POST", f"/v1/admin/returns/{opened['id']}/approve", json={"note": "checked"})
    assert (approved["status"], approved["clawback_cents"], approved["decision_note"]) == ("approved", 7000, "checked")
    assert approved["decided_at"] is not None and approved["transaction_id"].startswith("txn_")
    assert await transaction(m, approved["transaction_id"]) == {
        "buyer:b1": 10_000,
        "partner:acme": -7000,
        "house:revenue": -3000,
    }
    assert (await m.api.ok("GET", f"/v1/admin/sales/{sale['sale_id']}"))["status"] == "returned"
    assert await m.balance("buyer:b1") == 1_000_000 and await m.balance("partner:acme") == 0
    assert await m.balance("house:revenue") == 0
    # Idempotent: approving again answers the same and moves nothing; denying now is a conflict.
    again = await m.api.ok("POST", f"/v1/admin/returns/{opened['id']}/approve")
    assert again == approved
    r = await m.api.request("POST", f"/v1/admin/returns/{opened['id']}/deny")
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["details"]) == (
        409,
        "conflict",
        {"status": "approved"},
    )
    r = await m.api.request("POST", f"/v1/admin/sales/{sale['sale_id']}/returns", json={"reason": "fraud"})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "already_returned")
    assert r.json()["error"]["details"] == {"return_id": opened["id"], "status": "approved"}
    r = await m.api.request("POST", f"/v1/admin/sales/{sale['sale_id']}/reverse", json={"reason": "x"})
    assert (r.status_code, r.json()["error"]["details"]) == (409, {"status": "returned"})
    record = await m.api.ok("GET", f"/v1/admin/pings/{sale['ping_id']}")
    [line] = [w for w in record["waterfall"] if w["contract_id"] == "fl"]
    assert line["return"]["transaction_id"] == approved["transaction_id"]
    assert "return" in [e["type"] for e in record["events"]]
    events = await m.events("return.")
    assert [e["type"] for e in events] == ["return.opened", "return.approved"]
    assert events[1]["clawback_cents"] == 7000 and events[1]["sale_status"] == "returned"
    assert all("note" not in e and "fax" not in str(e) for e in events)  # free text never goes into events
    await ledger_invariants(m.store)


async def test_a_partial_credit_claws_back_proportionally_rounded_down_and_a_reversal_refunds_the_rest(
    market: Market,
) -> None:
    m = market
    await m.contract("fl", "b1", state="FL", price=9999)
    sale = await m.sell()
    assert sale["payout_cents"] == 6999  # 70 % of 9999, rounded down
    opened = await open_return(m, sale["sale_id"], buyer="b1", reason="disconnected", amount_cents=3334)
    approved = await m.api.ok("POST", f"/v1/admin/returns/{opened['id']}/approve")
    # 6999 * 3334 / 9999 = 2333.67 -> 2333; the house gives back the rest of the 3334.
    assert approved["clawback_cents"] == 2333
    assert await transaction(m, approved["transaction_id"]) == {
        "buyer:b1": 3334,
        "partner:acme": -2333,
        "house:revenue": -1001,
    }
    assert (await m.api.ok("GET", f"/v1/admin/sales/{sale['sale_id']}"))["status"] == "partially_returned"
    reversed_ = await m.api.ok("POST", f"/v1/admin/sales/{sale['sale_id']}/reverse", json={"reason": "fraud ring"})
    assert reversed_["sale"]["status"] == "reversed"
    assert entries(reversed_["transaction"]) == {"buyer:b1": 6665, "partner:acme": -4666, "house:revenue": -1999}
    for account in ("partner:acme", "house:revenue"):
        assert await m.balance(account) == 0  # the sale, its return and its reversal net to nothing
    assert await m.balance("buyer:b1") == 1_000_000
    r = await m.api.request("POST", f"/v1/admin/sales/{sale['sale_id']}/reverse", json={"reason": "again"})
    assert r.status_code == 409
    await ledger_invariants(m.store)


async def test_without_clawback_the_house_pays_the_whole_refund(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL", policy={"window_days": 7, "partner_clawback": False})
    sale = await m.sell()
    opened = await open_return(m, sale["sale_id"], amount_cents=2500)
    assert opened["opened_by"] == "admin" and opened["clawback_cents"] is None
    approved = await m.api.ok("POST", f"/v1/admin/returns/{opened['id']}/approve")
    assert approved["clawback_cents"] == 0
    assert await transaction(m, approved["transaction_id"]) == {"buyer:b1": 2500, "house:revenue": -2500}
    assert await m.balance("partner:acme") == 7000


async def test_a_denied_return_moves_nothing_and_the_buyer_may_open_another(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL")
    sale = await m.sell()
    first = await open_return(m, sale["sale_id"], buyer="b1")
    denied = await m.api.ok("POST", f"/v1/admin/returns/{first['id']}/deny", json={"note": "number verified"})
    assert (denied["status"], denied["decision_note"], denied["transaction_id"]) == ("denied", "number verified", None)
    assert await m.api.ok("POST", f"/v1/admin/returns/{first['id']}/deny") == denied
    r = await m.api.request("POST", f"/v1/admin/returns/{first['id']}/approve")
    assert (r.status_code, r.json()["error"]["details"]) == (409, {"status": "denied"})
    assert await m.balance("buyer:b1") == 1_000_000 - 10_000
    assert (await m.api.ok("GET", f"/v1/admin/sales/{sale['sale_id']}"))["status"] == "charged"
    second = await open_return(m, sale["sale_id"], buyer="b1", reason="other")
    assert second["status"] == "pending" and second["id"] != first["id"]
    # While a return awaits a decision the sale cannot be reversed (decide the return first).
    r = await m.api.request("POST", f"/v1/admin/sales/{sale['sale_id']}/reverse", json={"reason": "x"})
    assert (r.status_code, r.json()["error"]["details"]["return_id"]) == (409, second["id"])
    assert [e["type"] for e in await m.events("return.")] == ["return.opened", "return.denied", "return.opened"]


async def test_the_window_counts_whole_days_from_the_sale(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL", policy={"window_days": 3})
    await m.contract("tx", "b2", state="TX", policy={})  # window 0: no returns at all
    sale = await m.sell()
    closed = await m.sell("TX")
    r = await m.api.request("POST", f"/v1/admin/sales/{closed['sale_id']}/returns", json={"reason": "other"})
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["details"]["window_days"]) == (
        422,
        "return_window_closed",
        0,
    )
    m.clock.advance(3 * DAY_MS - 1)
    early = await open_return(m, sale["sale_id"])
    await m.api.ok("POST", f"/v1/admin/returns/{early['id']}/deny")
    m.clock.advance(1)
    r = await m.api.request("POST", f"/v1/admin/sales/{sale['sale_id']}/returns", json={"reason": "other"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "return_window_closed")
    # A pending return opened in time may still be decided after the window closed.
    await m.api.ok("POST", f"/v1/admin/returns/{early['id']}/deny")


async def test_reasons_and_amounts_are_checked(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL", policy={"window_days": 7, "reasons": ["bad_phone", "fraud"]})
    sale = await m.sell()
    r = await m.api.request("POST", f"/v1/admin/sales/{sale['sale_id']}/returns", json={"reason": "other"})
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["details"]) == (
        422,
        "invalid_reason",
        {"reasons": ["bad_phone", "fraud"]},
    )
    for body, field in (
        ({"reason": "fraud", "amount_cents": 10_001}, "amount_cents"),
        ({"reason": "fraud", "amount_cents": 0}, "amount_cents"),
        ({"reason": "fraud", "amount_cents": -5}, "amount_cents"),
        ({"reason": "fraud", "amount_cents": 50.5}, "amount_cents"),
        ({"reason": "fraud", "amount_cents": "100"}, "amount_cents"),
        ({"reason": ""}, "reason"),
        ({}, "reason"),
        ({"reason": "fraud", "note": "x" * 2001}, "note"),
        ({"reason": "fraud", "refund": True}, "refund"),
    ):
        r = await m.api.request("POST", f"/v1/admin/sales/{sale['sale_id']}/returns", json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error"), body
        assert r.json()["error"]["details"]["errors"][0]["field"] == field, (body, r.text)
    r = await m.api.request("POST", f"/v1/admin/sales/{sale['sale_id']}/returns", content=b"[1")
    assert r.status_code == 400
    assert (await m.api.ok("GET", "/v1/admin/returns"))["items"] == []
    assert await m.events("return.") == []  # refusals write no event (deposits and sales do)


async def test_the_monthly_rate_limit_counts_pending_and_approved_returns_of_the_months_sales(market: Market) -> None:
    m = market
    # New York: a sale at 03:00 UTC on December 1st was made on November 30th there.
    m.clock.set(at("2026-11-30T12:00:00"))
    await m.contract(
        "fl", "b1", state="FL", timezone="America/New_York", policy={"window_days": 30, "max_return_rate_pct": 50}
    )
    november = [await m.sell() for _ in range(2)]
    m.clock.set(at("2026-12-01T03:00:00"))
    november.append(await m.sell())
    m.clock.set(at("2026-12-01T06:00:00"))
    december = [await m.sell() for _ in range(3)]
    # November: 3 sales -> limit 1 (50 % rounded down); December: 3 sales -> 1.
    first = await open_return(m, november[0]["sale_id"])
    r = await m.api.request("POST", f"/v1/admin/sales/{november[2]['sale_id']}/returns", json={"reason": "other"})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "return_limit_reached")
    assert r.json()["error"]["details"] == {"month": "2026-11", "returns": 1, "sales": 3, "limit": 1}
    await open_return(m, december[0]["sale_id"])  # another month, its own limit
    r = await m.api.request("POST", f"/v1/admin/sales/{december[1]['sale_id']}/returns", json={"reason": "other"})
    assert r.json()["error"]["details"]["month"] == "2026-12"
    # A denied return no longer counts; an approved one does.
    await m.api.ok("POST", f"/v1/admin/returns/{first['id']}/deny")
    second = await open_return(m, november[1]["sale_id"])
    await m.api.ok("POST", f"/v1/admin/returns/{second['id']}/approve")
    r = await m.api.request("POST", f"/v1/admin/sales/{november[2]['sale_id']}/returns", json={"reason": "other"})
    assert r.json()["error"]["code"] == "return_limit_reached"


async def test_auto_approve_answers_an_approved_return(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL", policy={"window_days": 7, "auto_approve": True})
    sale = await m.sell()
    opened = await open_return(m, sale["sale_id"], buyer="b1", amount_cents=4000)
    assert opened["status"] == "approved" and opened["decided_at"] is not None and opened["transaction_id"]
    assert await transaction(m, opened["transaction_id"]) == {
        "buyer:b1": 4000,
        "partner:acme": -2800,
        "house:revenue": -1200,
    }
    assert [e["type"] for e in await m.events("return.")] == ["return.opened", "return.approved"]
    assert (await m.api.ok("GET", f"/v1/admin/sales/{sale['sale_id']}"))["status"] == "partially_returned"


async def test_a_buyer_sees_and_returns_only_its_own_sales(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL")
    await m.contract("tx", "b2", state="TX")
    mine, theirs = await m.sell(), await m.sell("TX")
    key = await m.buyer_key("b1")
    r = await m.api.request("POST", f"/v1/buyer/sales/{theirs['sale_id']}/returns", token=key, json={"reason": "other"})
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    r = await m.api.request("POST", "/v1/buyer/sales/sal_nope/returns", token=key, json={"reason": "other"})
    assert r.status_code == 404
    own = await open_return(m, mine["sale_id"], buyer="b1")
    other = await open_return(m, theirs["sale_id"], buyer="b2")
    listed = await m.api.ok("GET", "/v1/buyer/returns", token=key)
    assert [x["id"] for x in listed["items"]] == [own["id"]] and listed["next_cursor"] is None
    assert (await m.api.ok("GET", f"/v1/buyer/returns/{own['id']}", token=key))["id"] == own["id"]
    assert (await m.api.request("GET", f"/v1/buyer/returns/{other['id']}", token=key)).status_code == 404
    # A buyer key opens nothing on admin routes and cannot decide; an admin token is not a buyer key.
    for method, path in (
        ("POST", f"/v1/admin/returns/{own['id']}/approve"),
        ("GET", "/v1/admin/returns"),
        ("POST", f"/v1/admin/sales/{mine['sale_id']}/returns"),
    ):
        assert (await m.api.request(method, path, token=key, json={"reason": "other"})).status_code == 401
    assert (await m.api.request("GET", "/v1/buyer/returns")).status_code == 401
    assert (
        await m.api.request("POST", f"/v1/buyer/sales/{mine['sale_id']}/returns", token=None, content=b"not json")
    ).status_code == 401


async def test_only_charged_sales_can_be_returned(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL")
    sale = await m.sell()
    await m.api.ok("POST", f"/v1/admin/sales/{sale['sale_id']}/reverse", json={"reason": "test lead"})
    r = await m.api.request("POST", f"/v1/admin/sales/{sale['sale_id']}/returns", json={"reason": "other"})
    assert (r.status_code, r.json()["error"]["code"], r.json()["error"]["details"]) == (
        409,
        "conflict",
        {"status": "reversed"},
    )
    for path in (
        "/v1/admin/returns/ret_nope/approve",
        "/v1/admin/returns/ret_nope/deny",
        "/v1/admin/returns/ret_nope",
        "/v1/admin/sales/sal_nope/returns",
    ):
        method = "GET" if path.endswith("ret_nope") else "POST"
        r = await m.api.request(method, path, json={"reason": "other"} if "sales" in path else None)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found"), path


async def test_lists_filter_and_page(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL")
    await m.contract("tx", "b2", state="TX")
    ids = []
    for state in ("FL", "TX", "FL"):
        sale = await m.sell(state)
        ids.append((await open_return(m, sale["sale_id"]))["id"])
        m.clock.advance(60_000)
    await m.api.ok("POST", f"/v1/admin/returns/{ids[0]}/approve")
    everything = await m.api.ok("GET", "/v1/admin/returns")
    assert [x["id"] for x in everything["items"]] == ids[::-1]
    assert [x["id"] for x in (await m.api.ok("GET", "/v1/admin/returns", params={"status": "pending"}))["items"]] == [
        ids[2],
        ids[1],
    ]
    assert [x["id"] for x in (await m.api.ok("GET", "/v1/admin/returns", params={"buyer": "b2"}))["items"]] == [ids[1]]
    assert len((await m.api.ok("GET", "/v1/admin/returns", params={"partner": "acme"}))["items"]) == 3
    assert [
        x["id"]
        for x in (
            await m.api.ok(
                "GET", "/v1/admin/returns", params={"from": "2026-12-02T12:01:00Z", "to": "2026-12-02T12:02:00Z"}
            )
        )["items"]
    ] == [ids[1]]
    walked, cursor = [], None
    while True:
        page = await m.api.ok("GET", "/v1/admin/returns", params={"limit": 1, **({"cursor": cursor} if cursor else {})})
        walked += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert walked == ids[::-1]
    r = await m.api.request("GET", "/v1/admin/returns", params={"status": "lost"})
    assert (r.status_code, r.json()["error"]["details"]["errors"][0]["field"]) == (422, "status")
    key = await m.buyer_key("b1")
    mine = await m.api.ok("GET", "/v1/buyer/returns", token=key, params={"status": "approved"})
    assert [x["id"] for x in mine["items"]] == [ids[0]]


async def test_reports_subtract_returns_from_revenue_and_payout(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL", policy={"window_days": 7, "auto_approve": True})
    first, second, _ = await m.sell(), await m.sell(), await m.sell()
    await open_return(m, first["sale_id"])  # the whole 10,000; 7,000 clawed back
    await open_return(m, second["sale_id"], amount_cents=2500)  # 1,750 clawed back
    report = await m.api.ok("GET", "/v1/admin/reports/summary", params={"group_by": "buyer"})
    [row] = report["rows"]
    assert (row["sales"], row["returned_cents"]) == (3, 12_500)
    assert (row["revenue_cents"], row["payout_cents"], row["margin_cents"]) == (
        30_000 - 12_500,
        21_000 - 8750,
        (30_000 - 12_500) - (21_000 - 8750),
    )
    # The report agrees with the ledger: revenue less payout is the house's share.
    assert row["margin_cents"] == await m.balance("house:revenue")
    [day] = (await m.api.ok("GET", "/v1/admin/reports/summary", params={"group_by": "day"}))["rows"]
    assert day["day"] == "2026-12-02" and day["returned_cents"] == 12_500


async def test_concurrent_decisions_and_openings_move_money_once(market: Market) -> None:
    m = market
    await m.contract("fl", "b1", state="FL", policy={"window_days": 7, "max_return_rate_pct": 60})
    sales = [await m.sell() for _ in range(5)]  # limit 3 this month
    opened = await open_return(m, sales[0]["sale_id"])
    answers = await asyncio.gather(
        *[m.api.request("POST", f"/v1/admin/returns/{opened['id']}/approve") for _ in range(6)]
    )
    assert {r.status_code for r in answers} == {200}
    assert len({r.json()["transaction_id"] for r in answers}) == 1
    same_sale = await asyncio.gather(
        *[
            m.api.request("POST", f"/v1/admin/sales/{sales[1]['sale_id']}/returns", json={"reason": "other"})
            for _ in range(4)
        ]
    )
    assert sorted(r.status_code for r in same_sale) == [201, 409, 409, 409]
    [created] = [r.json() for r in same_sale if r.status_code == 201]
    await m.api.ok("POST", f"/v1/admin/returns/{created['id']}/deny")
    # Openings of different sales at once never pass the monthly limit together: 3 of 5 sales may be
    # returned, one is, so 2 of these 4 openings pass.
    others = await asyncio.gather(
        *[m.api.request("POST", f"/v1/admin/sales/{s['sale_id']}/returns", json={"reason": "other"}) for s in sales[1:]]
    )
    assert sorted(r.status_code for r in others) == [201, 201, 422, 422], [r.text for r in others]

    async def count(tx: Tx) -> tuple[int, int]:
        return (
            int(await tx.fetchval("SELECT COUNT(*) FROM returns")),
            int(await tx.fetchval("SELECT COUNT(*) FROM ledger_transactions WHERE kind = 'return'")),
        )

    assert await m.store.read(count) == (4, 1)
    await ledger_invariants(m.store)


async def test_a_setup_file_applies_the_policy_through_the_same_schema(market: Market) -> None:
    admin, ledger = AdminService(market.store), LedgerService(market.store)
    contract = {
        "id": "yaml-fl",
        "name": "From YAML",
        "buyer": "b1",
        "offer": "med",
        "price_cents": 5000,
        "return_policy": {"window_days": 10, "reasons": ["bad_phone"], "max_return_rate_pct": 7.5},
    }
    result = await apply_setup({"contracts": [contract]}, admin, ledger)
    assert result.created == ["contract yaml-fl"]
    policy = (await admin.get("contract", "yaml-fl"))["return_policy"]
    assert policy == {
        "window_days": 10,
        "reasons": ["bad_phone"],
        "max_return_rate_pct": 7.5,
        "auto_approve": False,
        "partner_clawback": True,
    }
    assert (await apply_setup({"contracts": [contract]}, admin, ledger)).unchanged == ["contract yaml-fl"]
    with pytest.raises(errors.ValidationFailed) as refused:
        await apply_setup({"contracts": [{**contract, "return_policy": {"window_days": 400}}]}, admin, ledger)
    assert refused.value.details["errors"][0]["field"] == "return_policy.window_days"
