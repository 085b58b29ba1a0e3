"""Post, delivery and money through HTTP against real local buyer endpoints (SPEC 2.7, 5.1, 5.3, 8)."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

from pingpost.db.store import Row, Store
from tests.api.setup_data import LEAD, base_setup, buyer, campaign, contract, ping, waterfall
from tests.api.test_ledger import ledger_invariants
from tests.conftest import Api, Sandbox

FULL = {**LEAD, "first_name": "Ada", "last_name": "Lovelace", "phone": "(305) 555-0100", "email": "ada@example.com"}
PHONE_HASH = hashlib.sha256(b"3055550100").hexdigest()
PII_MARKERS = ("Ada", "Lovelace", "3055550100", "555-0100", "ada@example.com")


def saw_pii(requests: list[dict[str, Any]]) -> bool:
    return any(marker in r["raw"] for r in requests for marker in PII_MARKERS)


async def post(
    api: Api, key: str, ping_id: str, lead: dict[str, Any] | None = None, status: int = 200, **extra: Any
) -> dict[str, Any]:
    result: dict[str, Any] = await api.ok(
        "POST", "/v1/post", status, token=key, json={"ping_id": ping_id, "lead": lead or FULL, **extra}
    )
    return result


async def multisell(
    api: Api, sandbox: Sandbox, behaviours: dict[str, tuple[int, str]], max_winners: int = 3, **offer: Any
) -> str:
    await base_setup(api, rule="multisell", max_winners=max_winners, **offer)
    key = await campaign(api)
    for name, (price, behaviour) in behaviours.items():
        await buyer(api, f"buyer-{name}", deposit=100_000)
        await contract(api, name, f"buyer-{name}", price, delivery={"url": sandbox.deliver(name, behaviour)})
    return key


async def test_multisell_sale_rejection_and_pii_only_to_winners(api: Api, store: Store, sandbox: Sandbox) -> None:
    key = await multisell(
        api, sandbox, {"a": (9000, "accept"), "b": (8000, "reject"), "c": (7000, "accept"), "loser": (1000, "accept")}
    )
    answer = await ping(api, key, consumer={"phone_sha256": PHONE_HASH})
    assert len(answer["bids"]) == 3
    for name in ("a", "b", "c", "loser"):
        assert await sandbox.received(name) == []  # nobody sees anything at ping time
    result = await post(api, key, answer["ping_id"], consent={"tcpa": True, "text": "I agree"})
    assert result["status"] == "sold" and len(result["sales"]) == 2
    assert [r["reason"] for r in result["rejected"]] == ["post_rejected"]  # a code, never the buyer's text
    assert result["payout_total_cents"] == 6300 + 4900
    for name in ("a", "b", "c"):
        [got] = await sandbox.received(name)
        assert got["body"]["lead"]["first_name"] == "Ada" and got["body"]["lead"]["phone"] == "3055550100"
        assert got["body"]["sale_type"] == "shared" and got["body"]["consent"]["tcpa"] is True
    assert await sandbox.received("loser") == []
    wf = await waterfall(api, answer["ping_id"])
    assert wf["a"]["post_outcome"] == "post_accepted" and wf["a"]["sale_id"].startswith("sal_")
    assert (wf["b"]["post_outcome"], wf["b"]["post_detail"]) == ("post_rejected", "not interested")
    assert wf["loser"]["post_outcome"] is None
    a, b = [await api.ok("GET", f"/v1/admin/buyers/buyer-{n}") for n in "ab"]
    assert (a["balance_cents"], a["holds_cents"]) == (100_000 - 9000, 0)
    assert (b["balance_cents"], b["holds_cents"]) == (100_000, 0)
    partner = await api.ok("GET", "/v1/admin/ledger", params={"account": "partner:acme"})
    assert partner["balance_cents"] == 6300 + 4900
    house = await api.ok("GET", "/v1/admin/ledger", params={"account": "house:revenue"})
    assert house["balance_cents"] == (9000 - 6300) + (7000 - 4900)
    sales = await api.ok("GET", "/v1/admin/sales", params={"buyer": "buyer-a"})
    assert [s["price_cents"] for s in sales["items"]] == [9000]
    states = await store.read(lambda tx: tx.fetch("SELECT contract_id, state FROM reservations ORDER BY contract_id"))
    assert [(r[0], r[1]) for r in states] == [("a", "sold"), ("b", "released"), ("c", "sold")]
    record = await api.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")
    assert record["status"] == "sold" and "Ada" not in str(record)
    assert [e["type"] for e in record["events"]][:3] == ["ping", "bids", "post"]
    await ledger_invariants(store)
    # the post PII is stored encrypted
    raw = await store.read(lambda tx: tx.fetchval("SELECT pii_ciphertext FROM posts"))
    assert "Ada" not in raw and "3055550100" not in raw


async def test_partner_accepts_a_subset(api: Api, sandbox: Sandbox) -> None:
    key = await multisell(api, sandbox, {"a": (9000, "accept"), "b": (8000, "accept")})
    answer = await ping(api, key)
    chosen = answer["bids"][0]["bid_id"]
    result = await post(api, key, answer["ping_id"], bid_ids=[chosen])
    assert [s["bid_id"] for s in result["sales"]] == [chosen]
    wf = await waterfall(api, answer["ping_id"])
    skipped = [w for w in wf.values() if w["outcome"] == "won" and w["bid_id"] != chosen]
    assert skipped[0]["post_outcome"] == "not_posted"
    assert await sandbox.received("b") == []  # the bid the partner did not accept never sees PII
    assert (await api.ok("GET", "/v1/admin/buyers/buyer-b"))["holds_cents"] == 0


async def test_post_validation_changes_nothing(api: Api, store: Store, sandbox: Sandbox) -> None:
    key = await multisell(api, sandbox, {"a": (9000, "accept")})
    answer = await ping(api, key, consumer={"phone_sha256": PHONE_HASH})
    pid = answer["ping_id"]
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"ping_id": "png_nope", "lead": FULL}, 404, "not_found"),
        ({"ping_id": pid, "lead": {**FULL, "age": 70}}, 422, "lead_mismatch"),
        ({"ping_id": pid, "lead": {**FULL, "phone": "3055550199"}}, 422, "consumer_mismatch"),
        ({"ping_id": pid, "lead": {**FULL, "phone": "12"}}, 422, "validation_error"),
        ({"ping_id": pid, "lead": {k: v for k, v in FULL.items() if k != "first_name"}}, 422, "validation_error"),
        ({"ping_id": pid, "lead": FULL, "bid_ids": ["bid_other"]}, 422, "validation_error"),
        ({"ping_id": pid, "lead": {**FULL, "email": "nope"}}, 422, "validation_error"),
    ]
    for body, status, code in cases:
        r = await api.request("POST", "/v1/post", token=key, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
        assert not any(m in r.text for m in PII_MARKERS)
    assert await sandbox.received("a") == []
    other = await campaign(api, ident="other")
    r = await api.request("POST", "/v1/post", token=other, json={"ping_id": pid, "lead": FULL})
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    assert (await post(api, key, pid))["status"] == "sold"
    r = await api.request("POST", "/v1/post", token=key, json={"ping_id": pid, "lead": FULL})
    assert (r.status_code, r.json()["error"]["code"]) == (409, "already_posted")
    assert len(await sandbox.received("a")) == 1


async def test_expired_ping_is_gone(api: Api, sandbox: Sandbox) -> None:
    key = await multisell(api, sandbox, {"a": (9000, "accept")}, ping_ttl_s=1)
    answer = await ping(api, key)
    await asyncio.sleep(1.1)
    r = await api.request("POST", "/v1/post", token=key, json={"ping_id": answer["ping_id"], "lead": FULL})
    assert (r.status_code, r.json()["error"]["code"]) == (410, "ping_expired")
    assert await sandbox.received("a") == []
    assert (await api.ok("GET", "/v1/admin/buyers/buyer-a"))["holds_cents"] == 0


async def test_dedup_across_two_partners(api: Api, sandbox: Sandbox) -> None:
    key = await multisell(api, sandbox, {"a": (9000, "accept")})
    await api.ok("POST", "/v1/admin/partners", 201, json={"id": "beta", "name": "Beta"})
    key2 = (
        await api.ok(
            "POST",
            "/v1/admin/campaigns",
            201,
            json={
                "id": "beta-med",
                "name": "b",
                "partner": "beta",
                "offer": "med",
                "payout": {"type": "revshare", "percent": 50},
            },
        )
    )["posting_key"]
    first = await ping(api, key, consumer={"phone_sha256": PHONE_HASH})
    assert (await post(api, key, first["ping_id"]))["status"] == "sold"
    second = await ping(api, key2, consumer={"phone_sha256": PHONE_HASH})
    assert second["status"] == "no_bids"
    assert (await waterfall(api, second["ping_id"]))["a"]["outcome"] == "duplicate"
    # a ping without hashes passes the ping, but the post's own hashes catch the duplicate
    third = await ping(api, key2)
    result = await post(api, key2, third["ping_id"])
    assert result["status"] == "unsold" and result["rejected"][0]["reason"] == "duplicate"
    assert len(await sandbox.received("a")) == 1


async def test_filter_on_a_field_only_the_post_carries(api: Api, sandbox: Sandbox) -> None:
    await base_setup(api)
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(
        api,
        "a",
        "buyer-a",
        5000,
        delivery={"url": sandbox.deliver("a")},
        filters=[{"field": "coverage", "op": "exists", "value": False}],
    )
    answer = await ping(api, key)
    assert answer["status"] == "bids"
    result = await post(api, key, answer["ping_id"], lead={**FULL, "coverage": "advantage"})
    assert result["status"] == "unsold" and result["rejected"][0]["reason"] == "filter_mismatch"
    assert (await waterfall(api, answer["ping_id"]))["a"]["post_detail"] == "coverage"
    assert await sandbox.received("a") == []
    assert (await api.ok("GET", "/v1/admin/buyers/buyer-a"))["holds_cents"] == 0


async def test_consent_required(api: Api, sandbox: Sandbox) -> None:
    await base_setup(api)
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(
        api,
        "a",
        "buyer-a",
        5000,
        delivery={"url": sandbox.deliver("a")},
        consent_required=["tcpa", "trustedform_cert_url"],
    )
    answer = await ping(api, key)
    result = await post(api, key, answer["ping_id"], consent={"tcpa": True})
    assert result["rejected"][0]["reason"] == "consent_missing"
    answer = await ping(api, key)
    result = await post(
        api, key, answer["ping_id"], consent={"tcpa": True, "trustedform_cert_url": "https://cert.trustedform.com/abc"}
    )
    assert result["status"] == "sold"
    [got] = await sandbox.received("a")
    assert got["body"]["consent"]["trustedform_cert_url"] == "https://cert.trustedform.com/abc"


async def test_delivery_failures_are_told_apart(api: Api, sandbox: Sandbox) -> None:
    behaviours = {
        "hang": "post_timeout",
        "error": "post_error",
        "garbage": "post_error",
        "redirect": "post_error",
        "huge": "post_error",
    }
    await base_setup(api, rule="multisell", max_winners=10)
    key = await campaign(api)
    for name in behaviours:
        await buyer(api, f"buyer-{name}", deposit=100_000)
        await contract(
            api, name, f"buyer-{name}", 5000, delivery={"url": sandbox.deliver(name, name), "timeout_ms": 300}
        )
    answer = await ping(api, key)
    started = time.monotonic()
    result = await post(api, key, answer["ping_id"])
    elapsed = time.monotonic() - started
    assert elapsed < 3.0  # the hanging buyer costs its 300 ms deadline, not more (loosely; the bench is precise)
    assert result["status"] == "unsold"
    wf = await waterfall(api, answer["ping_id"])
    assert {n: (wf[n]["post_outcome"], wf[n]["post_detail"]) for n in behaviours} == {
        "hang": ("post_timeout", "timeout"),
        "error": ("post_error", "http_500"),
        "garbage": ("post_error", "unparsable"),
        "redirect": ("post_error", "http_302"),
        "huge": ("post_error", "too_large"),
    }
    for name in behaviours:
        assert (await api.ok("GET", f"/v1/admin/buyers/buyer-{name}"))["holds_cents"] == 0


async def test_custom_response_rules_auth_form_and_field_map(api: Api, sandbox: Sandbox) -> None:
    await base_setup(api, rule="multisell", max_winners=5)
    key = await campaign(api)
    for name in ("path", "regex", "unmatched", "form"):
        await buyer(api, f"buyer-{name}", deposit=100_000)
    await contract(
        api,
        "path",
        "buyer-path",
        5000,
        delivery={
            "url": sandbox.deliver("path", "custom"),
            "auth": {"type": "header", "name": "X-Api-Key", "value": "k-1"},
            "response": {"path": "result.code", "accepted": ["OK"], "buyer_lead_id_path": "result.id"},
        },
    )
    await contract(
        api,
        "regex",
        "buyer-regex",
        5000,
        delivery={
            "url": sandbox.deliver("regex", "text", "text=Lead%20matched"),
            "auth": {"type": "bearer", "token": "t-1"},
            "response": {"regex": "matched"},
        },
    )
    await contract(
        api,
        "unmatched",
        "buyer-unmatched",
        5000,
        delivery={
            "url": sandbox.deliver("unmatched", "text", "text=Lead%20unmatched"),
            "response": {"regex": "matched"},
        },
    )
    await contract(
        api,
        "form",
        "buyer-form",
        5000,
        delivery={
            "url": sandbox.deliver("form"),
            "format": "form",
            "field_map": {"first_name": "FirstName"},
            "static_fields": {"vendor_id": "V-9"},
            "auth": {"type": "basic", "username": "u", "password": "p"},
        },
    )
    answer = await ping(api, key)
    result = await post(api, key, answer["ping_id"], consent={"tcpa": True})
    wf = await waterfall(api, answer["ping_id"])
    assert {n: wf[n]["post_outcome"] for n in ("path", "regex", "unmatched", "form")} == {
        "path": "post_accepted",
        "regex": "post_accepted",
        "unmatched": "post_rejected",
        "form": "post_accepted",
    }
    assert len(result["sales"]) == 3
    [got] = await sandbox.received("path")
    assert got["headers"]["X-Api-Key"] == "k-1"
    [got] = await sandbox.received("regex")
    assert got["headers"]["Authorization"] == "Bearer t-1"
    [got] = await sandbox.received("form")
    assert got["headers"]["Authorization"].startswith("Basic ")
    assert got["body"]["FirstName"] == "Ada" and got["body"]["vendor_id"] == "V-9"
    assert got["body"]["price_cents"] == "5000" and got["body"]["consent_tcpa"] == "true"


async def test_test_ping_post_leaves_no_money_trace(api: Api, store: Store, sandbox: Sandbox) -> None:
    key = await multisell(api, sandbox, {"a": (9000, "accept")})
    answer = await ping(api, key, test=True, consumer={"phone_sha256": PHONE_HASH})
    result = await post(api, key, answer["ping_id"])
    assert result["status"] == "sold" and result["sales"][0]["sale_id"] is None
    [got] = await sandbox.received("a")
    assert got["body"]["test"] is True

    async def every_row(table: str) -> list[Row]:
        return await store.read(lambda tx: tx.fetch(f"SELECT * FROM {table} WHERE 1 = 1"))

    for table in ("sales", "ledger_transactions", "dedup_records", "reservations"):
        rows = await every_row(table)
        assert (table, [r for r in rows if table != "ledger_transactions" or r["kind"] != "deposit"]) == (table, [])
