"""Hostile input, faulty buyers, limits, PII and secrets (SPEC section 9)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from pingpost.app import create_app
from pingpost.config import Settings
from pingpost.db.store import Store
from pingpost.delivery.retention import purge_post_pii
from tests.api.setup_data import LEAD, base_setup, buyer, campaign, contract, ping, waterfall
from tests.api.test_post import FULL, PHONE_HASH, PII_MARKERS, post
from tests.conftest import Api, Sandbox
from tests.support.calls import CALL_LEAD, CALLER, call_setup, event


async def test_faulty_buyers_get_their_outcome_within_deadline(api: Api, sandbox: Sandbox) -> None:
    behaviours = {
        "drip": ("post_timeout", "timeout"),
        "badutf8": ("post_error", "unparsable"),
        "reset": ("post_error", "connection_error"),
        "fifty": ("post_error", "too_large"),
        "redirect": ("post_error", "http_302"),
        "hang": ("post_timeout", "timeout"),
    }
    await base_setup(api, rule="multisell", max_winners=10)
    key = await campaign(api)
    for name in behaviours:
        url = sandbox.deliver(name, "huge", "bytes=52428800") if name == "fifty" else sandbox.deliver(name, name)
        await buyer(api, f"buyer-{name}", deposit=100_000)
        await contract(api, name, f"buyer-{name}", 5000, delivery={"url": url, "timeout_ms": 500})
    answer = await ping(api, key)
    started = time.monotonic()
    await post(api, key, answer["ping_id"])
    assert time.monotonic() - started < 3.0  # every delivery is cut at its 500 ms deadline (loosely)
    wf = await waterfall(api, answer["ping_id"])
    assert {n: (wf[n]["post_outcome"], wf[n]["post_detail"]) for n in behaviours} == behaviours


async def test_faulty_bidders_never_leak_into_other_outcomes(api: Api, sandbox: Sandbox) -> None:
    await base_setup(api, rule="multisell", max_winners=10)
    key = await campaign(api)
    for name, behaviour in (("garbage", "garbage"), ("err", "error"), ("ok", "fixed")):
        await buyer(api, f"buyer-{name}", deposit=100_000)
        await contract(
            api, name, f"buyer-{name}", None, rtb={"url": sandbox.bid(name, behaviour, "cents=3000"), "timeout_ms": 300}
        )
    await buyer(api, "buyer-reset", deposit=100_000)
    await contract(api, "reset", "buyer-reset", None, rtb={"url": sandbox.deliver("reset", "reset"), "timeout_ms": 300})
    wf = await waterfall(api, (await ping(api, key))["ping_id"])
    assert {n: wf[n]["outcome"] for n in wf} == {
        "garbage": "bid_invalid",
        "err": "bid_error",
        "ok": "won",
        "reset": "bid_error",
    }


@pytest.fixture
async def limited_api(settings: Settings, store: Store) -> AsyncIterator[Api]:
    settings.max_in_flight_pings = 1
    app = create_app(settings, store=store)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield Api(c)


async def test_rate_limit_and_in_flight_limit(limited_api: Api, sandbox: Sandbox) -> None:
    api = limited_api
    await base_setup(api)
    key = (
        await api.ok(
            "POST",
            "/v1/admin/campaigns",
            201,
            json={
                "id": "limited",
                "name": "l",
                "partner": "acme",
                "offer": "med",
                "rate_limit_per_s": 3,
                "payout": {"type": "revshare", "percent": 50},
            },
        )
    )["posting_key"]
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(api, "a", "buyer-a", 1000)
    started = time.time()
    answers = [await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD}) for _ in range(10)]
    seconds = int(time.time()) - int(started) + 1
    ok = [a for a in answers if a.status_code == 200]
    limited = [a for a in answers if a.status_code == 429]
    assert len(ok) + len(limited) == 10 and len(ok) <= 3 * seconds and limited
    assert limited[0].json()["error"]["code"] == "rate_limited" and limited[0].headers["Retry-After"] == "1"
    # a slow auction holds the process's only in-flight slot: a second ping is refused at once
    await contract(api, "slow", "buyer-a", None, rtb={"url": sandbox.bid("s", "slow", "ms=600"), "timeout_ms": 1000})
    other = await campaign(api, ident="other")
    first = asyncio.create_task(api.request("POST", "/v1/ping", token=other, json={"lead": LEAD}))
    await asyncio.sleep(0.2)
    started_second = time.monotonic()
    second = await api.request("POST", "/v1/ping", token=other, json={"lead": LEAD})
    assert (second.status_code, second.json()["error"]["code"]) == (503, "overloaded")
    assert time.monotonic() - started_second < 0.3
    assert (await first).status_code == 200


async def test_pii_never_in_logs_metrics_errors_waterfalls_or_bid_requests(
    api: Api, sandbox: Sandbox, capfd: pytest.CaptureFixture[str]
) -> None:
    key, platform = await call_setup(api, sandbox)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call", consumer={"phone_sha256": PHONE_HASH})
    await event(api, platform, answer["ping_id"], "connected", {"bid_id": answer["bids"][0]["bid_id"], "lead": CALLER})
    form = await ping(api, key)
    bodies = [
        (
            await api.request(
                "POST", "/v1/post", token=key, json={"ping_id": form["ping_id"], "lead": {**FULL, "age": 71}}
            )
        ).text,
        (
            await api.request(
                "POST", "/v1/ping", token=key, json={"lead": {**LEAD, "phone": "3055550100", "first_name": "Ada"}}
            )
        ).text,
    ]
    await post(api, key, form["ping_id"])
    seen = "\n".join(
        [
            capfd.readouterr().err,
            (await api.client.get("/metrics")).text,
            *bodies,
            str(await api.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")),
            str(await api.ok("GET", f"/v1/admin/pings/{form['ping_id']}")),
            str(await api.ok("GET", "/v1/admin/pings")),
            str([r for name in "abcx" for r in await sandbox.received(name) if r["path"].startswith("/bid")]),
        ]
    )
    assert "ping_decided" in seen and "delivery" in seen  # the logs were captured
    for marker in PII_MARKERS:
        assert marker not in seen, marker


async def test_buyer_keys_see_only_their_own(api: Api, sandbox: Sandbox) -> None:
    await base_setup(api, rule="multisell")
    key = await campaign(api)
    for name in ("a", "b"):
        await buyer(api, f"buyer-{name}", deposit=100_000)
        await contract(
            api, name, f"buyer-{name}", 5000 if name == "a" else 4000, delivery={"url": sandbox.deliver(name)}
        )
    await post(api, key, (await ping(api, key))["ping_id"])
    key_a = await api.ok("POST", "/v1/admin/api-keys", 201, json={"kind": "buyer", "buyer": "buyer-a", "name": "a"})
    key_b = await api.ok("POST", "/v1/admin/api-keys", 201, json={"kind": "buyer", "buyer": "buyer-b", "name": "b"})
    mine = await api.ok("GET", "/v1/buyer/sales", token=key_a["key"])
    assert [s["buyer"] for s in mine["items"]] == ["buyer-a"] and mine["items"][0]["price_cents"] == 5000
    theirs = await api.ok("GET", "/v1/buyer/sales", token=key_b["key"])
    assert [s["buyer"] for s in theirs["items"]] == ["buyer-b"]
    balance = await api.ok("GET", "/v1/buyer/balance", token=key_a["key"])
    assert (balance["id"], balance["balance_cents"]) == ("buyer-a", 95_000)
    for path in ("/v1/admin/sales", "/v1/admin/buyers/buyer-b"):
        assert (await api.request("GET", path, token=key_a["key"])).status_code == 401
    assert (await api.request("GET", "/v1/buyer/sales", token=key)).status_code == 401  # a posting key
    await api.ok("PATCH", f"/v1/admin/api-keys/{key_a['id']}", json={"status": "revoked"})
    assert (await api.request("GET", "/v1/buyer/sales", token=key_a["key"])).status_code == 401


async def test_purge_deletes_post_pii_only(api: Api, store: Store, sandbox: Sandbox, tmp_path: Path) -> None:
    await base_setup(api)
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(api, "a", "buyer-a", 5000, delivery={"url": sandbox.deliver("a")})
    await post(api, key, (await ping(api, key))["ping_id"])
    assert await purge_post_pii(store, older_than_days=30) == 0
    assert await purge_post_pii(store, older_than_days=0, now=int(time.time() * 1000) + 1) == 1
    rows = await store.read(lambda tx: tx.fetch("SELECT pii_ciphertext, purged_at FROM posts"))
    assert rows[0]["pii_ciphertext"] is None and rows[0]["purged_at"]
    assert len((await api.ok("GET", "/v1/admin/sales"))["items"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        b'{"lead": {"state": "FL\\u0000"}}',
        b'{"lead": {"age": 99999999999999999999999}}',
        b"[]",
        b'"x"',
        b'{"lead": {}, "min_payout_cents": 1e30}',
        b'{"lead": {"state": "FL"}, "channel": "fax"}',
        b"\xff\xfe",
    ],
)
async def test_hostile_pings_are_4xx_and_change_nothing(api: Api, store: Store, body: bytes) -> None:
    await base_setup(api)
    key = await campaign(api)
    r = await api.request("POST", "/v1/ping", token=key, content=body, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, r.text
    assert set(r.json()["error"]) == {"code", "message", "details"}
    assert await store.read(lambda tx: tx.fetch("SELECT id FROM pings")) == []
