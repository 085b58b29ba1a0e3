"""Admin API through HTTP on a real database: CRUD, validation, secrets, error shapes."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.setup_data import VERTICAL, base_setup, buyer
from tests.conftest import Api


def assert_error(body: Any, code: str) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str)
    assert isinstance(body["error"]["details"], dict)


async def test_crud_every_resource(api: Api) -> None:
    await base_setup(api)
    await buyer(api, "buyer-a", credit=5000)
    campaign = await api.ok(
        "POST",
        "/v1/admin/campaigns",
        201,
        json={
            "id": "acme-med",
            "name": "Acme",
            "partner": "acme",
            "offer": "med",
            "payout": {"type": "revshare", "percent": 62.5},
        },
    )
    assert campaign["posting_key"].startswith("pp_live_")
    contract = await api.ok(
        "POST",
        "/v1/admin/contracts",
        201,
        json={
            "id": "c1",
            "name": "C1",
            "buyer": "buyer-a",
            "offer": "med",
            "price_cents": 5000,
            "filters": [{"field": "state", "op": "in", "value": ["FL", "GA"]}],
            "caps": {"daily": 10},
            "timezone": "America/New_York",
            "schedule": {"windows": [{"days": ["mon", "fri"], "start": "09:00", "end": "17:30"}]},
        },
    )
    assert contract["caps"] == {
        "daily": 10,
        "weekly": None,
        "monthly": None,
        "max_concurrent_calls": None,
        "spend_daily_cents": None,
        "spend_weekly_cents": None,
        "spend_monthly_cents": None,
    }
    key = await api.ok("POST", "/v1/admin/api-keys", 201, json={"kind": "buyer", "buyer": "buyer-a", "name": "portal"})
    assert key["key"] and key["id"].startswith("key_")

    for path, ident in [
        ("verticals", "medicare"),
        ("offers", "med"),
        ("partners", "acme"),
        ("campaigns", "acme-med"),
        ("buyers", "buyer-a"),
        ("contracts", "c1"),
        ("api-keys", key["id"]),
    ]:
        one = await api.ok("GET", f"/v1/admin/{path}/{ident}")
        assert one["id"] == ident
        assert one["created_at"].endswith("Z")
        listed = await api.ok("GET", f"/v1/admin/{path}")
        assert ident in [item["id"] for item in listed["items"]]
        assert listed["next_cursor"] is None

    paused = await api.ok("PATCH", "/v1/admin/contracts/c1", json={"status": "paused"})
    assert paused["status"] == "paused" and paused["price_cents"] == 5000
    assert (await api.ok("GET", "/v1/admin/contracts/c1"))["status"] == "paused"
    revoked = await api.ok("PATCH", f"/v1/admin/api-keys/{key['id']}", json={"status": "revoked"})
    assert revoked["status"] == "revoked" and "key" not in revoked
    b = await api.ok("GET", "/v1/admin/buyers/buyer-a")
    assert (b["balance_cents"], b["holds_cents"], b["available_cents"]) == (0, 0, 5000)


async def test_generated_ids_and_pagination(api: Api) -> None:
    made = [(await api.ok("POST", "/v1/admin/partners", 201, json={"name": f"P{i}"}))["id"] for i in range(5)]
    assert all(m.startswith("prt_") for m in made)
    seen: list[str] = []
    cursor = None
    while True:
        page = await api.ok("GET", "/v1/admin/partners", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
        assert len(page["items"]) <= 2
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(made)
    r = await api.request("GET", "/v1/admin/partners", params={"limit": 501})
    assert r.status_code == 422


async def test_error_shapes(api: Api) -> None:
    r = await api.request(
        "POST", "/v1/admin/partners", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 400
    assert_error(r.json(), "malformed_json")
    r = await api.request("GET", "/v1/admin/partners", token=None)
    assert r.status_code == 401
    assert_error(r.json(), "unauthorized")
    r = await api.request("GET", "/v1/admin/partners", token="wrong")
    assert r.status_code == 401
    r = await api.request("GET", "/v1/admin/partners/nope")
    assert r.status_code == 404
    assert_error(r.json(), "not_found")
    await api.ok("POST", "/v1/admin/partners", 201, json={"id": "p1", "name": "P"})
    r = await api.request("POST", "/v1/admin/partners", json={"id": "p1", "name": "Again"})
    assert r.status_code == 409
    assert_error(r.json(), "conflict")
    r = await api.request("POST", "/v1/admin/partners", json={"id": "p2"})
    assert r.status_code == 422
    assert_error(r.json(), "validation_error")
    assert r.json()["error"]["details"]["errors"][0]["field"] == "name"
    r = await api.request("GET", "/v1/nowhere")
    assert r.status_code == 404
    assert_error(r.json(), "not_found")


async def test_partner_key_and_call_platform_key_are_not_admin(api: Api) -> None:
    await base_setup(api)
    campaign = await api.ok(
        "POST",
        "/v1/admin/campaigns",
        201,
        json={
            "id": "cmp",
            "name": "C",
            "partner": "acme",
            "offer": "med",
            "payout": {"type": "fixed", "amount_cents": 100},
        },
    )
    cp = await api.ok("POST", "/v1/admin/api-keys", 201, json={"kind": "call_platform", "name": "twilio"})
    for token in (campaign["posting_key"], cp["key"]):
        r = await api.request("GET", "/v1/admin/partners", token=token)
        assert r.status_code == 401
    admin2 = await api.ok("POST", "/v1/admin/api-keys", 201, json={"kind": "admin", "name": "ops"})
    assert (await api.request("GET", "/v1/admin/partners", token=admin2["key"])).status_code == 200
    await api.ok("PATCH", f"/v1/admin/api-keys/{admin2['id']}", json={"status": "revoked"})
    assert (await api.request("GET", "/v1/admin/partners", token=admin2["key"])).status_code == 401


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"filters": [{"field": "age", "op": "between", "value": [80, 65]}]}, "filters.0"),
        ({"filters": [{"field": "age", "op": "in", "value": 5}]}, "filters.0"),
        ({"filters": [{"field": "phone", "op": "exists", "value": True}]}, "filters.0.field"),
        ({"filters": [{"field": "nope", "op": "eq", "value": 1}]}, "filters.0.field"),
        ({"filters": [{"field": "age", "op": "regex", "value": 1}]}, "filters.0.op"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"schedule": {"windows": [{"days": ["mon"], "start": "25:00", "end": "17:00"}]}}, "schedule.windows.0.start"),
        (
            {"schedule": {"windows": [{"days": ["someday"], "start": "09:00", "end": "17:00"}]}},
            "schedule.windows.0.days.0",
        ),
        ({"price_cents": -1}, "price_cents"),
        ({"price_cents": 10**15}, "price_cents"),
        ({"caps": {"daily": -3}}, "caps.daily"),
        ({"rtb": {"url": "ftp://x", "timeout_ms": 500}}, "rtb.url"),
        ({"rtb": {"url": "http://b.example/bid", "timeout_ms": 50}}, "rtb.timeout_ms"),
        ({"transfer": {"phone": "305-555-0100"}}, "transfer"),
        ({"channels": ["call"]}, "channels.0"),
        ({"name": "bad\u0000name"}, "name"),
        ({"weight": 0}, "weight"),
    ],
)
async def test_contract_validation(api: Api, patch: dict[str, Any], field: str) -> None:
    await base_setup(api)
    await buyer(api, "b")
    body = {"id": "c", "name": "C", "buyer": "b", "offer": "med", "price_cents": 100, **patch}
    r = await api.request("POST", "/v1/admin/contracts", json=body)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_error"
    fields = [e["field"] for e in error["details"]["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    assert (await api.request("GET", "/v1/admin/contracts/c")).status_code == 404


async def test_references_and_immutables(api: Api) -> None:
    await base_setup(api)
    r = await api.request(
        "POST", "/v1/admin/contracts", json={"name": "C", "buyer": "ghost", "offer": "med", "price_cents": 1}
    )
    assert r.status_code == 422 and r.json()["error"]["details"]["errors"][0]["field"] == "buyer"
    r = await api.request("POST", "/v1/admin/offers", json={"name": "O", "vertical": "ghost"})
    assert r.status_code == 422
    await buyer(api, "b")
    await buyer(api, "b2")
    await api.ok(
        "POST",
        "/v1/admin/contracts",
        201,
        json={"id": "c", "name": "C", "buyer": "b", "offer": "med", "price_cents": 1},
    )
    r = await api.request("PATCH", "/v1/admin/contracts/c", json={"buyer": "b2"})
    assert r.status_code == 422
    r = await api.request("PATCH", "/v1/admin/contracts/c", json={"price_cents": -5})
    assert r.status_code == 422
    assert (await api.ok("GET", "/v1/admin/contracts/c"))["price_cents"] == 1
    r = await api.request(
        "POST",
        "/v1/admin/campaigns",
        json={"name": "x", "partner": "acme", "offer": "med", "payout": {"type": "revshare", "percent": 50.123}},
    )
    assert r.status_code == 422
    r = await api.request(
        "POST", "/v1/admin/verticals", json={**VERTICAL, "id": "v2", "fields": [{"name": "x", "type": "enum"}]}
    )
    assert r.status_code == 422


async def test_secrets_never_returned(api: Api) -> None:
    await base_setup(api)
    await buyer(api, "b")
    body = {
        "id": "c",
        "name": "C",
        "buyer": "b",
        "offer": "med",
        "price_cents": 100,
        "rtb": {
            "url": "http://127.0.0.1:1/bid",
            "auth": {"type": "header", "name": "X-Api-Key", "value": "rtb-secret-value"},
        },
        "delivery": {
            "url": "http://127.0.0.1:1/post",
            "auth": {"type": "basic", "username": "user-secret", "password": "pass-secret"},
        },
    }
    created = await api.request("POST", "/v1/admin/contracts", json=body)
    got = await api.request("GET", "/v1/admin/contracts/c")
    listed = await api.request("GET", "/v1/admin/contracts")
    for r in (created, got, listed):
        assert r.status_code in (200, 201)
        for secret in ("rtb-secret-value", "user-secret", "pass-secret"):
            assert secret not in r.text
    assert got.json()["rtb"]["auth"] == {"type": "header", "name": "X-Api-Key"}
    assert got.json()["delivery"]["auth"] == {"type": "basic"}
    # Changing the URL without re-sending auth keeps the stored secret.
    patched = await api.ok("PATCH", "/v1/admin/contracts/c", json={"delivery": {"url": "http://127.0.0.1:2/post"}})
    assert patched["delivery"]["auth"] == {"type": "basic"}
    campaign = await api.ok(
        "POST",
        "/v1/admin/campaigns",
        201,
        json={
            "id": "cmp",
            "name": "C",
            "partner": "acme",
            "offer": "med",
            "payout": {"type": "fixed", "amount_cents": 1},
        },
    )
    again = await api.request("GET", "/v1/admin/campaigns/cmp")
    assert campaign["posting_key"] not in again.text and "posting_key" not in again.json()


async def test_fixed_payout_multisell_warns(api: Api) -> None:
    await base_setup(api, rule="multisell", max_winners=3)
    c = await api.ok(
        "POST",
        "/v1/admin/campaigns",
        201,
        json={"name": "C", "partner": "acme", "offer": "med", "payout": {"type": "fixed", "amount_cents": 100}},
    )
    assert c["warnings"]
    c = await api.ok(
        "POST",
        "/v1/admin/campaigns",
        201,
        json={"name": "C", "partner": "acme", "offer": "med", "payout": {"type": "revshare", "percent": 50}},
    )
    assert c["warnings"] == []


async def test_request_body_limit(api: Api) -> None:
    r = await api.request(
        "POST", "/v1/admin/partners", content=b"x" * 300_000, headers={"content-type": "application/json"}
    )
    assert r.status_code == 413
    assert_error(r.json(), "payload_too_large")


async def test_health_and_openapi(api: Api) -> None:
    assert (await api.ok("GET", "/healthz", token=None)) == {"status": "ok"}
    assert (await api.ok("GET", "/readyz", token=None)) == {"status": "ready"}
    spec = await api.ok("GET", "/openapi.json", token=None)
    assert "/v1/admin/contracts/{ident}" in spec["paths"]
    assert (await api.request("GET", "/docs", token=None)).status_code == 200
