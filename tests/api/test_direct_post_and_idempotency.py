"""Direct post, Idempotency-Key, test mode, reversals and reports through HTTP (SPEC 2.8, 5.1, 5.4)."""

from __future__ import annotations

import asyncio
from typing import Any

from pingpost.db.store import Store, Tx
from tests.api.setup_data import LEAD, base_setup, buyer, campaign, contract, ping, waterfall
from tests.api.test_ledger import ledger_invariants
from tests.api.test_post import FULL, PHONE_HASH, post
from tests.conftest import Api, Sandbox


async def direct_setup(api: Api, sandbox: Sandbox, behaviours: dict[str, tuple[int, str]], attempts: int = 3) -> str:
    await base_setup(api, mode="direct_post", direct_post_attempts=attempts)
    key = await campaign(api, payout={"type": "revshare", "percent": 50})
    for name, (price, behaviour) in behaviours.items():
        await buyer(api, f"buyer-{name}", deposit=100_000)
        await contract(
            api, name, f"buyer-{name}", price, caps={"daily": 10}, delivery={"url": sandbox.deliver(name, behaviour)}
        )
    return key


async def test_direct_post_goes_to_best_then_next(api: Api, store: Store, sandbox: Sandbox) -> None:
    key = await direct_setup(api, sandbox, {"top": (9000, "reject"), "mid": (8000, "accept"), "low": (7000, "accept")})
    result = await api.ok("POST", "/v1/direct-post", token=key, json={"lead": FULL, "partner_lead_id": "d-1"})
    assert result["status"] == "sold" and result["ping_id"].startswith("png_")
    assert [s["payout_cents"] for s in result["sales"]] == [4000]
    assert [r["reason"] for r in result["rejected"]] == ["post_rejected"]
    assert len(await sandbox.received("top")) == 1 and len(await sandbox.received("mid")) == 1
    assert await sandbox.received("low") == []
    wf = await waterfall(api, result["ping_id"])
    assert (wf["top"]["outcome"], wf["top"]["post_outcome"]) == ("won", "post_rejected")
    assert (wf["mid"]["outcome"], wf["mid"]["post_outcome"]) == ("won", "post_accepted")
    assert wf["low"]["outcome"] == "lost_to_higher_bid"
    record = await api.ok("GET", f"/v1/admin/pings/{result['ping_id']}")
    assert record["mode"] == "direct_post" and record["status"] == "sold" and "first_name" not in record["lead"]
    usage = {
        r["contract_id"]: r["day_used"]
        for r in await store.read(lambda tx: tx.fetch("SELECT contract_id, day_used FROM contract_usage"))
    }
    assert usage == {"top": 0, "mid": 1, "low": 0}
    mid = await api.ok("GET", "/v1/admin/buyers/buyer-mid")
    assert (mid["balance_cents"], mid["holds_cents"]) == (92_000, 0)
    assert (await api.ok("GET", "/v1/admin/buyers/buyer-top"))["holds_cents"] == 0
    await ledger_invariants(store)


async def test_direct_post_attempts_limit_and_mode_mismatch(api: Api, sandbox: Sandbox) -> None:
    key = await direct_setup(
        api, sandbox, {"a": (9000, "reject"), "b": (8000, "reject"), "c": (7000, "accept")}, attempts=2
    )
    result = await api.ok("POST", "/v1/direct-post", token=key, json={"lead": FULL})
    assert result["status"] == "unsold" and len(result["rejected"]) == 2
    assert await sandbox.received("c") == []
    r = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "offer_mode_mismatch")
    r = await api.request("POST", "/v1/direct-post", token=key, json={"lead": LEAD})  # PII required fields missing
    assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error")


async def test_ping_post_offer_refuses_direct_posts(api: Api, sandbox: Sandbox) -> None:
    await base_setup(api)
    key = await campaign(api)
    r = await api.request("POST", "/v1/direct-post", token=key, json={"lead": FULL})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "offer_mode_mismatch")


async def counted(store: Store) -> dict[str, Any]:
    async def unit(tx: Tx) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for table in (
            "reservations",
            "sales",
            "ledger_entries",
            "dedup_records",
            "rr_pointer",
            "buyer_funds",
            "contract_usage",
            "report_counters",
        ):
            out[table] = sorted(tuple(r) for r in await tx.fetch(f"SELECT * FROM {table}"))
        return out

    return await store.read(unit)


async def test_test_mode_changes_no_counter_or_balance(api: Api, store: Store, sandbox: Sandbox) -> None:
    await base_setup(api, rule="round_robin", max_winners=1)
    key = await campaign(api)
    for name in ("a", "b"):
        await buyer(api, f"buyer-{name}", deposit=100_000)
        await contract(api, name, f"buyer-{name}", 5000, caps={"daily": 3}, delivery={"url": sandbox.deliver(name)})
    await api.client.get("/v1/admin/reports/summary", headers=api.admin)  # flush counters first
    before = await counted(store)
    for _ in range(3):
        answer = await ping(api, key, test=True, consumer={"phone_sha256": PHONE_HASH})
        await post(api, key, answer["ping_id"])
    await api.client.get("/v1/admin/reports/summary", headers=api.admin)
    assert await counted(store) == before
    received = await sandbox.received("a") + await sandbox.received("b")
    assert len(received) == 3 and all(r["body"]["test"] is True for r in received)


async def test_idempotent_ping_post_and_key_reuse(api: Api, store: Store, sandbox: Sandbox) -> None:
    await base_setup(api, rule="multisell")
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(api, "a", "buyer-a", 5000, delivery={"url": sandbox.deliver("a")})
    headers = {"Idempotency-Key": "ping-1"}
    first = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD}, headers=headers)
    again = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD}, headers=headers)
    assert first.status_code == again.status_code == 200 and first.json() == again.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    rows = await store.read(lambda tx: tx.fetch("SELECT id FROM reservations"))
    assert len(rows) == 1
    reused = await api.request("POST", "/v1/ping", token=key, json={"lead": {**LEAD, "age": 70}}, headers=headers)
    assert (reused.status_code, reused.json()["error"]["code"]) == (422, "idempotency_key_reused")
    # scoped to the endpoint: the same key on /v1/post is another key
    ping_id = first.json()["ping_id"]
    posts = [
        await api.request("POST", "/v1/post", token=key, json={"ping_id": ping_id, "lead": FULL}, headers=headers)
        for _ in range(2)
    ]
    assert [p.status_code for p in posts] == [200, 200] and posts[0].json() == posts[1].json()
    assert posts[0].json()["status"] == "sold"
    assert len(await sandbox.received("a")) == 1
    # a validation error is answered the same way on replay
    bad = [
        await api.request("POST", "/v1/ping", token=key, json={"lead": {"ssn": 1}}, headers={"Idempotency-Key": "bad"})
        for _ in range(2)
    ]
    assert [b.status_code for b in bad] == [422, 422] and bad[0].json() == bad[1].json()
    r = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD}, headers={"Idempotency-Key": "has space"})
    assert r.status_code == 422


async def test_concurrent_same_key_has_one_effect(api: Api, store: Store, sandbox: Sandbox) -> None:
    key = await direct_setup(api, sandbox, {"a": (9000, "slow")})
    send = [
        api.request("POST", "/v1/direct-post", token=key, json={"lead": FULL}, headers={"Idempotency-Key": "dp-1"})
        for _ in range(4)
    ]
    answers = await asyncio.gather(*send)
    ok = [a.json() for a in answers if a.status_code == 200]
    assert ok and all(o == ok[0] for o in ok)
    assert all(a.json()["error"]["code"] == "idempotency_in_flight" for a in answers if a.status_code != 200)
    retry = await api.request(
        "POST", "/v1/direct-post", token=key, json={"lead": FULL}, headers={"Idempotency-Key": "dp-1"}
    )
    assert retry.json() == ok[0]
    assert len(await sandbox.received("a")) == 1
    assert len(await store.read(lambda tx: tx.fetch("SELECT id FROM sales"))) == 1


async def test_reversal_and_reports(api: Api, store: Store, sandbox: Sandbox) -> None:
    await base_setup(api, rule="multisell", max_winners=2)
    key = await campaign(api)  # revshare 70 %
    for name, price in (("a", 9000), ("b", 6000)):
        await buyer(api, f"buyer-{name}", deposit=100_000)
        await contract(api, name, f"buyer-{name}", price, delivery={"url": sandbox.deliver(name)})
    sales = []
    for i in range(3):
        answer = await ping(api, key)
        result = await post(
            api, key, answer["ping_id"], lead={**FULL, "phone": f"305555020{i}", "email": f"r{i}@example.com"}
        )
        sales += result["sales"]
    await ping(api, key, test=True)
    assert len(sales) == 6
    target = sales[0]["sale_id"]
    reversed_ = await api.ok("POST", f"/v1/admin/sales/{target}/reverse", json={"reason": "consumer complaint"})
    assert reversed_["sale"]["status"] == "reversed" and reversed_["transaction"]["kind"] == "reversal"
    assert sum(e["amount_cents"] for e in reversed_["transaction"]["entries"]) == 0
    again = await api.request("POST", f"/v1/admin/sales/{target}/reverse", json={"reason": "again"})
    assert again.status_code == 409
    sale = await api.ok("GET", f"/v1/admin/sales/{target}")
    wf = await waterfall(api, sale["ping_id"])
    assert wf[sale["contract"]]["reversal"]["reason"] == "consumer complaint"
    await ledger_invariants(store)
    report = await api.ok("GET", "/v1/admin/reports/summary", params={"group_by": "buyer"})
    rows = {r["buyer"]: r for r in report["rows"]}
    assert {b: (r["pings"], r["bids"], r["wins"], r["posts"]) for b, r in rows.items()} == {
        "buyer-a": (3, 3, 3, 3),
        "buyer-b": (3, 3, 3, 3),
    }
    total_revenue = sum(r["revenue_cents"] for r in rows.values())
    total_payout = sum(r["payout_cents"] for r in rows.values())
    assert sum(r["sales"] for r in rows.values()) == 5 and sum(r["reversed"] for r in rows.values()) == 1
    charged = [s for s in (await api.ok("GET", "/v1/admin/sales"))["items"] if s["status"] == "charged"]
    assert total_revenue == sum(s["price_cents"] for s in charged)
    assert total_payout == sum(s["payout_cents"] for s in charged)
    house = await api.ok("GET", "/v1/admin/ledger", params={"account": "house:revenue"})
    partner = await api.ok("GET", "/v1/admin/ledger", params={"account": "partner:acme"})
    assert (partner["balance_cents"], house["balance_cents"]) == (total_payout, total_revenue - total_payout)
    by_offer = (await api.ok("GET", "/v1/admin/reports/summary", params={"group_by": "offer"}))["rows"]
    assert [(r["offer"], r["pings"], r["posts"], r["sales"]) for r in by_offer] == [("med", 3, 6, 5)]
    by_day = (await api.ok("GET", "/v1/admin/reports/summary", params={"group_by": "day"}))["rows"]
    assert len(by_day) == 1 and by_day[0]["margin_cents"] == total_revenue - total_payout
    r = await api.request("GET", "/v1/admin/reports/summary", params={"group_by": "planet"})
    assert r.status_code == 422
