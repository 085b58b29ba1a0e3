"""The audit log (docs/events.md): every admin write operation the OpenAPI document lists leaves an
entry with its actor, action, object, before and after, secrets redacted; the CLI's `apply` and the
console's actions are recorded with their `via`; nothing changes or deletes an entry."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
import pytest

from pingpost import faults
from pingpost.admin.apply import apply_setup
from pingpost.admin.service import AdminService
from pingpost.clock import use_clock
from pingpost.config import Settings
from pingpost.ledger.service import LedgerService
from pingpost.outbound.fake import Sent
from tests.api.setup_data import VERTICAL
from tests.support.console import csrf_of, sign_in
from tests.support.money import DELIVER_URL, Market, open_market
from tests.support.receiver import running_receiver

Step = Callable[[Market, dict[str, Any]], Awaitable[tuple[str, str, str]]]
BEARER = "s3cret-bearer-token-value"


@pytest.fixture
async def market(settings: Settings) -> AsyncIterator[Market]:
    async with open_market(settings) as m:
        with use_clock(m.clock):
            await m.contract("fl", "b1", state="FL", policy={"window_days": 7})
            yield m


async def crashed_delivery(m: Market) -> str:
    """A post whose delivery a crash left unfinished, past its reservation: awaiting reconciliation."""
    kept = m.client.handlers[DELIVER_URL]

    async def crash(_: Sent) -> tuple[int, Any]:
        raise faults.SimulatedCrash("mid-delivery")

    m.client.handlers[DELIVER_URL] = crash
    with pytest.raises(faults.SimulatedCrash):
        await m.sell()
    m.client.handlers[DELIVER_URL] = kept
    m.clock.advance(60_000)
    items = (await m.api.ok("GET", "/v1/admin/reconciliation"))["items"]
    return str(items[-1]["delivery_id"])


async def created(m: Market, path: str, body: dict[str, Any], kind: str) -> tuple[str, str, str]:
    made = await m.api.ok("POST", f"/v1/admin/{path}", 201, json=body)
    return kind, made["id"], "create"


async def patched(m: Market, path: str, ident: str, body: dict[str, Any], kind: str) -> tuple[str, str, str]:
    await m.api.ok("PATCH", f"/v1/admin/{path}/{ident}", json=body)
    return kind, ident, "update"


async def posted(
    m: Market, url: str, body: dict[str, Any], status: int, kind: str, ident: str, action: str
) -> tuple[str, str, str]:
    await m.api.ok("POST", url, status, json=body)
    return kind, ident, action


async def open_return(m: Market, ctx: dict[str, Any], key: str) -> tuple[str, str, str]:
    sale = await m.sell()
    made = await m.api.ok("POST", f"/v1/admin/sales/{sale['sale_id']}/returns", 201, json={"reason": "fraud"})
    ctx[key] = made["id"]
    return "return", made["id"], "create"


async def redeliver(m: Market, ctx: dict[str, Any]) -> tuple[str, str, str]:
    event = (await m.api.ok("GET", "/v1/admin/events", params={"limit": 1}))["items"][0]
    return await posted(m, f"/v1/admin/events/{event['id']}/redeliver", {}, 202, "event", event["id"], "redeliver")


# One step per admin write operation; a new operation needs its line here (the test checks the list).
STEPS: dict[tuple[str, str], Step] = {
    ("POST", "/v1/admin/verticals"): lambda m, c: created(m, "verticals", {**VERTICAL, "id": "v2"}, "vertical"),
    ("PATCH", "/v1/admin/verticals/{ident}"): lambda m, c: patched(m, "verticals", "v2", {"name": "V2"}, "vertical"),
    ("POST", "/v1/admin/offers"): lambda m, c: created(
        m, "offers", {"id": "o2", "name": "O2", "vertical": "v2", "distribution": {"rule": "exclusive"}}, "offer"
    ),
    ("PATCH", "/v1/admin/offers/{ident}"): lambda m, c: patched(m, "offers", "o2", {"name": "O two"}, "offer"),
    ("POST", "/v1/admin/partners"): lambda m, c: created(m, "partners", {"id": "p2", "name": "P2"}, "partner"),
    ("PATCH", "/v1/admin/partners/{ident}"): lambda m, c: patched(m, "partners", "p2", {"name": "P two"}, "partner"),
    ("POST", "/v1/admin/campaigns"): lambda m, c: created(
        m,
        "campaigns",
        {"id": "c2", "name": "C2", "partner": "p2", "offer": "o2", "payout": {"type": "revshare", "percent": 50}},
        "campaign",
    ),
    ("PATCH", "/v1/admin/campaigns/{ident}"): lambda m, c: patched(
        m, "campaigns", "c2", {"status": "paused"}, "campaign"
    ),
    ("POST", "/v1/admin/buyers"): lambda m, c: created(m, "buyers", {"id": "b3", "name": "B3"}, "buyer"),
    ("PATCH", "/v1/admin/buyers/{ident}"): lambda m, c: patched(
        m, "buyers", "b3", {"credit_limit_cents": 500}, "buyer"
    ),
    ("POST", "/v1/admin/contracts"): lambda m, c: created(
        m,
        "contracts",
        {
            "id": "k2",
            "name": "K2",
            "buyer": "b3",
            "offer": "o2",
            "price_cents": 100,
            "delivery": {"url": "https://b3.example/d", "auth": {"type": "bearer", "token": BEARER}},
        },
        "contract",
    ),
    ("PATCH", "/v1/admin/contracts/{ident}"): lambda m, c: patched(
        m, "contracts", "k2", {"price_cents": 200}, "contract"
    ),
    ("POST", "/v1/admin/api-keys"): lambda m, c: created(
        m, "api-keys", {"id": "k-ops", "kind": "admin", "name": "ops"}, "api_key"
    ),
    ("PATCH", "/v1/admin/api-keys/{ident}"): lambda m, c: patched(
        m, "api-keys", "k-ops", {"status": "revoked"}, "api_key"
    ),
    ("POST", "/v1/admin/buyers/{ident}/deposits"): lambda m, c: posted(
        m, "/v1/admin/buyers/b3/deposits", {"amount_cents": 700}, 201, "buyer", "b3", "deposit"
    ),
    ("POST", "/v1/admin/reconciliation/{ident}/record-sale"): lambda m, c: settle(m, "record-sale"),
    ("POST", "/v1/admin/reconciliation/{ident}/void"): lambda m, c: settle(m, "void"),
    ("POST", "/v1/admin/sales/{ident}/reverse"): lambda m, c: reverse(m),
    ("POST", "/v1/admin/sales/{ident}/returns"): lambda m, c: open_return(m, c, "ret"),
    ("POST", "/v1/admin/returns/{ident}/approve"): lambda m, c: posted(
        m, f"/v1/admin/returns/{c['ret']}/approve", {}, 200, "return", c["ret"], "approve"
    ),
    ("POST", "/v1/admin/returns/{ident}/deny"): lambda m, c: deny(m, c),
    ("POST", "/v1/admin/partners/{ident}/payouts"): lambda m, c: posted(
        m,
        "/v1/admin/partners/acme/payouts",
        {"amount_cents": 100, "reference": "po-1"},
        201,
        "partner",
        "acme",
        "payout",
    ),
    ("POST", "/v1/admin/events/{ident}/redeliver"): lambda m, c: redeliver(m, c),
    ("POST", "/v1/admin/suppression-lists"): lambda m, c: created(
        m, "suppression-lists", {"id": "sup-1", "name": "DNC", "scope": "global"}, "suppression_list"
    ),
    ("POST", "/v1/admin/suppression-lists/{ident}/entries"): lambda m, c: posted(
        m,
        "/v1/admin/suppression-lists/sup-1/entries",
        {"phones": ["3055550123"], "emails": ["ann@example.com"]},
        200,
        "suppression_list",
        "sup-1",
        "add_entries",
    ),
    ("DELETE", "/v1/admin/suppression-lists/{ident}/entries"): lambda m, c: deleted_entries(m),
    ("POST", "/v1/admin/replays"): lambda m, c: replay(m),
    ("POST", "/v1/admin/webhooks"): lambda m, c: created(
        m, "webhooks", {"id": "wh-1", "url": "https://crm.example/h", "events": ["*"], "secret": BEARER}, "webhook"
    ),
    ("PATCH", "/v1/admin/webhooks/{ident}"): lambda m, c: patched(
        m, "webhooks", "wh-1", {"status": "paused"}, "webhook"
    ),
}


async def settle(m: Market, action: str) -> tuple[str, str, str]:
    delivery_id = await crashed_delivery(m)
    await m.api.ok("POST", f"/v1/admin/reconciliation/{delivery_id}/{action}")
    return "delivery", delivery_id, action


async def reverse(m: Market) -> tuple[str, str, str]:
    sale = await m.sell()
    await m.api.ok("POST", f"/v1/admin/sales/{sale['sale_id']}/reverse", json={"reason": "chargeback"})
    return "sale", sale["sale_id"], "reverse"


async def deny(m: Market, ctx: dict[str, Any]) -> tuple[str, str, str]:
    await open_return(m, ctx, "ret2")
    return await posted(m, f"/v1/admin/returns/{ctx['ret2']}/deny", {}, 200, "return", ctx["ret2"], "deny")


async def replay(m: Market) -> tuple[str, str, str]:
    job = await m.api.ok("POST", "/v1/admin/replays", 202, json={"from": "2026-01-01", "to": "2026-01-02"})
    return "replay", job["id"], "create"


async def deleted_entries(m: Market) -> tuple[str, str, str]:
    body = {"emails": ["ann@example.com"]}
    await m.api.ok("DELETE", "/v1/admin/suppression-lists/sup-1/entries", json=body)
    return "suppression_list", "sup-1", "delete_entries"


async def entries(m: Market, **filters: str) -> list[dict[str, Any]]:
    page = await m.api.ok("GET", "/v1/admin/audit", params={"limit": 500, **filters})
    items: list[dict[str, Any]] = page["items"]
    return items


async def test_every_admin_write_operation_leaves_an_entry(market: Market) -> None:
    m = market
    document = await m.api.ok("GET", "/openapi.json", token=None)
    writes = {
        (method.upper(), path)
        for path, operations in document["paths"].items()
        if path.startswith("/v1/admin")
        for method in operations
        if method in ("post", "patch", "put", "delete")
    }
    assert writes == set(STEPS), "each admin write operation needs its step here"
    ctx: dict[str, Any] = {}
    for (method, path), step in STEPS.items():
        kind, ident, action = await step(m, ctx)
        found = await entries(m, object_type=kind, object_id=ident)
        mine = [e for e in found if e["action"] == action]
        assert mine, (method, path, kind, ident, action, found)
        assert mine[0]["actor"] == {"key_id": "env-admin", "kind": "admin", "via": "api"}, mine[0]
    everything = orjson.dumps(await entries(m)).decode()
    for secret in (BEARER, m.posting_key, "Ann", "30555", "ann@example.com", "3055550123"):
        assert secret not in everything
    update = (await entries(m, object_type="contract", object_id="k2", actor="env-admin"))[0]
    assert (update["before"]["price_cents"], update["after"]["price_cents"]) == (100, 200)
    assert update["after"]["delivery"]["auth"] == {"type": "bearer"}
    r = await m.api.request("DELETE", f"/v1/admin/audit/{update['id']}")
    assert r.status_code in (404, 405)


async def test_apply_and_the_console_say_how_they_wrote(market: Market) -> None:
    m = market
    await apply_setup(
        {"buyers": [{"id": "b9", "name": "Nine"}], "deposits": [{"buyer": "b9", "amount_cents": 5, "reference": "x"}]},
        AdminService(m.store),
        LedgerService(m.store),
    )
    cli = await entries(m, object_id="b9")
    assert {e["action"] for e in cli} == {"create", "deposit"}
    assert all(e["actor"] == {"key_id": None, "kind": "cli", "via": "cli"} for e in cli)
    assert {e["object"]["id"] for e in await entries(m, actor="cli")} == {"b9"}
    csrf = await sign_in(m.api.client, "test-admin-token")
    page = await m.api.client.get("/console/buyers/b9")
    r = await m.api.client.post(
        "/console/buyers/b9/status", data={"status": "paused", "csrf": csrf_of(page.text) or csrf}
    )
    assert r.status_code == 303, r.text[:300]
    [console] = [e for e in await entries(m, object_id="b9") if e["action"] == "update"]
    assert console["actor"] == {"key_id": "env-admin", "kind": "admin", "via": "console"}
    assert (console["before"]["status"], console["after"]["status"]) == ("active", "paused")
    window = await entries(m, object_id="b9", **{"from": "2026-12-02T11:00:00Z", "to": "2026-12-02T11:30:00Z"})
    assert window == []


async def test_webhook_secrets_never_reach_the_audit_log(market: Market) -> None:
    m = market
    async with running_receiver() as receiver:
        made = await m.api.ok("POST", "/v1/admin/webhooks", 201, json={"url": receiver.url, "events": ["*"]})
    [entry] = await entries(m, object_type="webhook")
    assert made["secret"] not in orjson.dumps(entry).decode() and entry["after"]["secret"] == "[redacted]"
