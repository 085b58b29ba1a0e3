"""Verification at post (docs/verification.md) through HTTP, against the sandbox's TrustedForm-like,
Jornaya-like and validator endpoints served on 127.0.0.1: pass, fail, a hanging vendor under the
deadline, a certificate URL off the allow-list (never requested), and a refused post that leaves money,
holds, reservations and cap counters as they were before the ping; on both stores."""

from __future__ import annotations

import base64
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from pingpost.app import create_app
from pingpost.config import Settings
from pingpost.db.store import Store, Tx
from tests.api.setup_data import LEAD, base_setup, buyer, campaign, contract, ping, waterfall
from tests.api.test_ledger import ledger_invariants
from tests.conftest import Api, Sandbox

TF_KEY = "tf-secret-api-key-0123456789"
JORNAYA_CODE = "lac-secret-code-98765"
FULL = {**LEAD, "first_name": "Ada", "last_name": "Lovelace", "phone": "(305) 867-5309", "email": "ada@lovelace.test"}
PII = ("Ada", "Lovelace", "3058675309", "867-5309", "ada@lovelace.test")
SECRETS = (TF_KEY, JORNAYA_CODE)


def leadid(prefix: str) -> str:
    """A 36-character LeadiD token; the sandbox decides by its prefix (pass, fail, hang, error)."""
    return (prefix + "-0000-4000-8000-000000000000" + "0" * 36)[:36]


@pytest.fixture
async def vapi(settings: Settings, store: Store, sandbox: Sandbox) -> AsyncIterator[Api]:
    configured = settings.model_copy(
        update={
            "trustedform_api_key": SecretStr(TF_KEY),
            "jornaya_base_url": f"{sandbox.base}/jornaya",
            "jornaya_account_code": SecretStr(JORNAYA_CODE),
        }
    )
    app = create_app(configured, store=store)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield Api(client)


async def setup(api: Api, sandbox: Sandbox, verification: list[dict[str, Any]], **offer: Any) -> str:
    """A multisell offer with two buyers (daily caps, 1,000.00 each) and the given checks."""
    await base_setup(api, rule="multisell", verification=verification, **offer)
    key = await campaign(api)
    for name, price in (("a", 9000), ("b", 8000)):
        await buyer(api, f"buyer-{name}", deposit=100_000)
        await contract(
            api, name, f"buyer-{name}", price, caps={"daily": 5}, delivery={"url": sandbox.deliver(name, "accept")}
        )
    return key


def trustedform(sandbox: Sandbox, **extra: Any) -> dict[str, Any]:
    return {"type": "trustedform", "allowed_hosts": [sandbox.base], **extra}


async def post(api: Api, key: str, ping_id: str, consent: dict[str, Any]) -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    answer = await api.ok("POST", "/v1/post", token=key, json={"ping_id": ping_id, "lead": FULL, "consent": consent})
    return answer, time.perf_counter() - started


async def money_and_caps(store: Store) -> dict[str, Any]:
    """Everything a refused post must leave as it was: balances, holds, ledger, cap counters."""

    async def unit(tx: Tx) -> dict[str, Any]:
        funds = await tx.fetch("SELECT buyer_id, balance_cents, holds_cents FROM buyer_funds ORDER BY buyer_id")
        usage = await tx.fetch("SELECT contract_id, day_used FROM contract_usage ORDER BY contract_id")
        return {
            "funds": [(r[0], int(r[1]), int(r[2])) for r in funds],
            "usage": [(r[0], int(r[1] or 0)) for r in usage],
            "ledger": int(await tx.fetchval("SELECT COUNT(*) FROM ledger_entries")),
            "sales": int(await tx.fetchval("SELECT COUNT(*) FROM sales")),
            "dedup": int(await tx.fetchval("SELECT COUNT(*) FROM dedup_records")),
        }

    return await store.read(unit)


async def test_every_check_passes_and_the_lead_is_sold(vapi: Api, store: Store, sandbox: Sandbox) -> None:
    key = await setup(
        vapi,
        sandbox,
        [trustedform(sandbox), {"type": "jornaya"}, {"type": "phone"}, {"type": "email", "mode": "flag"}],
    )
    answer = await ping(vapi, key)
    cert = f"{sandbox.base}/trustedform/pass0123456789abcdef"
    result, _ = await post(vapi, key, answer["ping_id"], {"trustedform_cert_url": cert, "jornaya_leadid": leadid("p")})
    assert result["status"] == "sold" and len(result["sales"]) == 2
    record = await vapi.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")
    assert [(v["type"], v["result"]) for v in record["verification"]] == [
        ("trustedform", "pass"),
        ("jornaya", "pass"),
        ("phone", "pass"),
        ("email", "pass"),
    ]
    assert record["verification"][0]["detail"] == "email_match,phone_match"
    assert all(isinstance(v["latency_ms"], int) for v in record["verification"])
    # TrustedForm v4: POST to the certificate URL, api-version 4.0, Basic API:<key>, match_lead and retain
    [claim] = await sandbox.received("trustedform")
    assert claim["path"] == "/trustedform/pass0123456789abcdef"
    assert claim["headers"]["api-version"] == "4.0"
    assert claim["headers"]["Authorization"] == "Basic " + base64.b64encode(f"API:{TF_KEY}".encode()).decode()
    assert claim["body"] == {
        "match_lead": {"email": "ada@lovelace.test", "phone": "3058675309"},
        "retain": {"reference": answer["ping_id"], "vendor": "acme"},
    }
    [auth] = await sandbox.received("jornaya")
    assert auth["path"] == "/jornaya/Authenticate"
    assert auth["query"] == {"lac": JORNAYA_CODE, "id": leadid("p")}
    assert len(await sandbox.received("a")) == 1 and len(await sandbox.received("b")) == 1
    await ledger_invariants(store)


async def test_a_failed_require_check_refuses_the_post_and_changes_no_money(
    vapi: Api, store: Store, sandbox: Sandbox
) -> None:
    key = await setup(vapi, sandbox, [trustedform(sandbox), {"type": "jornaya"}])
    before = await money_and_caps(store)
    answer = await ping(vapi, key)
    held = await money_and_caps(store)
    assert held["funds"] != before["funds"] and held["usage"] != before["usage"]  # the ping reserved
    cert = f"{sandbox.base}/trustedform/nomatch0123456789"
    result, _ = await post(vapi, key, answer["ping_id"], {"trustedform_cert_url": cert, "jornaya_leadid": leadid("p")})
    assert result["status"] == "unsold" and result["sales"] == [] and result["payout_total_cents"] == 0
    assert sorted(r["reason"] for r in result["rejected"]) == ["verification_failed"] * 2
    assert await sandbox.received("a") == [] and await sandbox.received("b") == []  # nothing delivered
    assert await money_and_caps(store) == before  # holds, balances, ledger, caps: as before the ping
    states = await store.read(lambda tx: tx.fetch("SELECT state FROM reservations"))
    assert sorted(r[0] for r in states) == ["released", "released"]
    wf = await waterfall(vapi, answer["ping_id"])
    assert {(w["post_outcome"], w["post_detail"]) for w in wf.values()} == {("verification_failed", "trustedform")}
    record = await vapi.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")
    assert record["status"] == "unsold"
    assert [(v["type"], v["result"], v["detail"]) for v in record["verification"]] == [
        ("trustedform", "fail", "no_match"),
        ("jornaya", "pass", "authentic"),
    ]
    assert "verification" in [e["type"] for e in record["events"]]
    assert not any(marker in str(record) for marker in PII)
    # the same post again is already posted; the refusal is final
    again = await vapi.request("POST", "/v1/post", token=key, json={"ping_id": answer["ping_id"], "lead": FULL})
    assert again.status_code == 409
    await ledger_invariants(store)


async def test_a_hanging_vendor_costs_the_post_at_most_the_deadline(vapi: Api, store: Store, sandbox: Sandbox) -> None:
    key = await setup(
        vapi,
        sandbox,
        [{"type": "jornaya"}, trustedform(sandbox, on_error="pass")],
        verification_timeout_ms=300,
    )
    before = await money_and_caps(store)
    answer = await ping(vapi, key)
    cert = f"{sandbox.base}/trustedform/hang0123"
    result, took = await post(
        vapi, key, answer["ping_id"], {"trustedform_cert_url": cert, "jornaya_leadid": leadid("hang")}
    )
    assert took < 0.3 + 1.5  # the deadline plus a generous margin for a shared machine
    assert result["status"] == "unsold"  # jornaya errored and its on_error is fail (the default)
    record = await vapi.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")
    assert [(v["type"], v["result"], v["detail"]) for v in record["verification"]] == [
        ("jornaya", "error", "timeout"),
        ("trustedform", "error", "timeout"),
    ]
    assert all(v["latency_ms"] < 1500 for v in record["verification"])
    assert await money_and_caps(store) == before


async def test_on_error_pass_sells_when_the_vendor_is_down(vapi: Api, sandbox: Sandbox) -> None:
    key = await setup(vapi, sandbox, [trustedform(sandbox, on_error="pass")], verification_timeout_ms=300)
    answer = await ping(vapi, key)
    result, _ = await post(vapi, key, answer["ping_id"], {"trustedform_cert_url": f"{sandbox.base}/trustedform/error1"})
    assert result["status"] == "sold"
    record = await vapi.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")
    assert [(v["result"], v["detail"]) for v in record["verification"]] == [("error", "http_500")]


async def test_a_certificate_url_off_the_allow_list_is_never_requested(vapi: Api, sandbox: Sandbox) -> None:
    port = sandbox.base.rsplit(":", 1)[1]
    key = await setup(
        vapi,
        sandbox,
        [
            {"type": "trustedform"},  # the default allow-list: cert.trustedform.com only
            {"type": "trustedform", "mode": "flag", "allowed_hosts": [f"127.0.0.1:{port}"]},  # HTTPS only
        ],
    )
    expected = {
        f"{sandbox.base}/trustedform/pass1": ["host_not_allowed", "https_required"],  # on list 2, not over HTTPS
        f"http://localhost:{port}/trustedform/pass1": ["host_not_allowed", "host_not_allowed"],  # another name
        f"https://cert.trustedform.com@127.0.0.1:{port}/trustedform/pass1": ["invalid_url", "invalid_url"],
    }
    for url, details in expected.items():
        answer = await ping(vapi, key)
        result, _ = await post(vapi, key, answer["ping_id"], {"trustedform_cert_url": url})
        assert result["status"] == "unsold"
        record = await vapi.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")
        assert [(v["result"], v["detail"]) for v in record["verification"]] == [("fail", d) for d in details]
    assert await sandbox.received("trustedform") == []  # nothing was ever requested


async def test_flag_only_records_and_local_checks(vapi: Api, sandbox: Sandbox) -> None:
    key = await setup(vapi, sandbox, [{"type": "phone", "mode": "flag"}, {"type": "email", "mode": "flag"}])
    answer = await ping(vapi, key)
    lead = {**FULL, "phone": "(305) 555-0123", "email": "someone@mailinator.com"}
    result = await vapi.ok("POST", "/v1/post", token=key, json={"ping_id": answer["ping_id"], "lead": lead})
    assert result["status"] == "sold"
    record = await vapi.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")
    assert [(v["type"], v["mode"], v["result"], v["detail"]) for v in record["verification"]] == [
        ("phone", "flag", "fail", "fictional_555"),
        ("email", "flag", "fail", "disposable_domain"),
    ]
    assert "mailinator" not in str(record["verification"]) and "0123" not in str(record["verification"])


async def test_the_campaign_list_replaces_the_offer_list(vapi: Api, sandbox: Sandbox) -> None:
    await setup(vapi, sandbox, [{"type": "phone"}])
    body = await vapi.ok(
        "POST",
        "/v1/admin/campaigns",
        201,
        json={
            "id": "acme-2",
            "name": "no checks",
            "partner": "acme",
            "offer": "med",
            "payout": {"type": "revshare", "percent": 70},
            "verification": [],
        },
    )
    answer = await ping(vapi, body["posting_key"])
    lead = {**FULL, "phone": "(305) 555-0123"}  # would fail the offer's phone check
    result = await vapi.ok(
        "POST", "/v1/post", token=body["posting_key"], json={"ping_id": answer["ping_id"], "lead": lead}
    )
    assert result["status"] == "sold"
    assert (await vapi.ok("GET", f"/v1/admin/pings/{answer['ping_id']}"))["verification"] == []


async def test_http_validator_secrets_and_pii_never_shown_or_logged(
    vapi: Api, sandbox: Sandbox, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    validator = {
        "type": "http",
        "url": f"{sandbox.base}/validate/fail",
        "auth": {"type": "bearer", "token": "validator-secret-token"},
    }
    key = await setup(vapi, sandbox, [validator, trustedform(sandbox), {"type": "jornaya"}])
    offer = await vapi.ok("GET", "/v1/admin/offers/med")
    assert offer["verification"][0]["auth"] == {"type": "bearer"}
    # a list re-sent without the validator's auth keeps the stored secret
    patched = await vapi.ok(
        "PATCH",
        "/v1/admin/offers/med",
        json={"verification": [{"type": "http", "url": validator["url"]}, trustedform(sandbox), {"type": "jornaya"}]},
    )
    assert patched["verification"][0]["auth"] == {"type": "bearer"}
    answer = await ping(vapi, key)
    consent = {"trustedform_cert_url": f"{sandbox.base}/trustedform/pass1", "jornaya_leadid": leadid("fail")}
    result, _ = await post(vapi, key, answer["ping_id"], consent)
    assert result["status"] == "unsold"
    [seen] = await sandbox.received("validator")
    assert seen["headers"]["Authorization"] == "Bearer validator-secret-token"
    assert seen["body"]["ping_id"] == answer["ping_id"] and seen["body"]["lead"]["first_name"] == "Ada"
    record = await vapi.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")
    assert [(v["type"], v["result"], v["detail"]) for v in record["verification"]] == [
        ("http", "fail", "invalid"),
        ("trustedform", "pass", "email_match,phone_match"),
        ("jornaya", "fail", "not_authentic"),
    ]
    assert {w["post_detail"] for w in record["waterfall"]} == {"http,jornaya"}
    logged = capsys.readouterr().err + "\n".join(r.getMessage() for r in caplog.records)
    assert "verification" in logged  # the checks were logged...
    for secret in (*SECRETS, "validator-secret-token", *PII):
        assert secret not in logged, secret  # ...without a secret or a value of the lead
        assert secret not in str(record) and secret not in str(offer)


async def test_direct_post_is_verified_before_any_attempt(vapi: Api, store: Store, sandbox: Sandbox) -> None:
    key = await setup(vapi, sandbox, [{"type": "jornaya"}], mode="direct_post")
    before = await money_and_caps(store)
    result = await vapi.ok(
        "POST", "/v1/direct-post", token=key, json={"lead": FULL, "consent": {"jornaya_leadid": leadid("fail")}}
    )
    assert result["status"] == "unsold" and result["sales"] == []
    assert await sandbox.received("a") == [] and await sandbox.received("b") == []
    assert await money_and_caps(store) == before
    wf = await waterfall(vapi, result["ping_id"])
    assert {(w["outcome"], w["post_outcome"]) for w in wf.values()} == {("not_selected", "verification_failed")}
    ok = await vapi.ok(
        "POST", "/v1/direct-post", token=key, json={"lead": FULL, "consent": {"jornaya_leadid": leadid("ok")}}
    )
    assert ok["status"] == "sold"
    record = await vapi.ok("GET", f"/v1/admin/pings/{ok['ping_id']}")
    assert [(v["type"], v["result"]) for v in record["verification"]] == [("jornaya", "pass")]
    await ledger_invariants(store)


BAD_CHECKS: list[dict[str, Any]] = [
    {"type": "carrier_lookup"},
    {"type": "phone", "mode": "maybe"},
    {"type": "trustedform", "allowed_hosts": ["evil.test/path"]},
    {"type": "trustedform", "allowed_hosts": []},
    {"type": "http"},
    {"type": "email", "on_error": "ignore"},
]


async def test_bad_checks_are_refused(api: Api) -> None:
    await base_setup(api)
    for check in BAD_CHECKS:
        response = await api.request("PATCH", "/v1/admin/offers/med", json={"verification": [check]})
        assert response.status_code == 422 and response.json()["error"]["code"] == "validation_error", check
    response = await api.request("PATCH", "/v1/admin/offers/med", json={"verification_timeout_ms": 50})
    assert response.status_code == 422
    assert (await api.ok("GET", "/v1/admin/offers/med"))["verification"] == []


async def test_apply_validates_checks_and_settings_hide_secrets(store: Store, settings: Settings) -> None:
    from pingpost.admin.apply import apply_setup
    from pingpost.admin.service import AdminService
    from pingpost.errors import PingpostError
    from pingpost.ledger.service import LedgerService

    admin, ledger = AdminService(store), LedgerService(store)
    vertical = {"id": "medicare", "name": "Medicare", "fields": [{"name": "state", "type": "state"}]}
    offer = {"id": "med", "name": "m", "vertical": "medicare", "verification": [{"type": "phone", "mode": "flag"}]}
    await apply_setup({"verticals": [vertical], "offers": [offer]}, admin, ledger)
    assert (await admin.get("offer", "med"))["verification"] == [{"type": "phone", "mode": "flag", "on_error": "fail"}]
    with pytest.raises(PingpostError) as refused:
        await apply_setup(
            {"offers": [{**offer, "verification": [{"type": "trustedform", "allowed_hosts": [""]}]}]}, admin, ledger
        )
    assert refused.value.code == "validation_error"
    configured = settings.model_copy(
        update={"trustedform_api_key": SecretStr(TF_KEY), "jornaya_account_code": SecretStr(JORNAYA_CODE)}
    )
    assert TF_KEY not in repr(configured) and JORNAYA_CODE not in str(configured.model_dump())
