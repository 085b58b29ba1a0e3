"""Idempotency-Key records only final answers (SPEC 12): a temporary refusal releases the key, so the
retry with the same key and body runs afresh instead of replaying the refusal for 24 h."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel
from starlette.requests import Request

from pingpost import errors
from pingpost.clock import ManualClock, use_clock
from pingpost.db.store import Store
from pingpost.idempotency import Claim, Idempotency, KeyRef, run_idempotent
from tests.api.setup_data import LEAD, base_setup, buyer, campaign, contract, ping
from tests.api.test_post import FULL
from tests.conftest import Api


async def key_rows(store: Store) -> list[dict[str, Any]]:
    rows = await store.read(
        lambda tx: tx.fetch("SELECT endpoint, key, state, status FROM idempotency_keys ORDER BY endpoint, key")
    )
    return [dict(r) for r in rows]


async def one_buyer(api: Api, **campaign_fields: Any) -> str:
    await base_setup(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(api, "a", "buyer-a", 5000)
    created = await api.ok(
        "POST",
        "/v1/admin/campaigns",
        201,
        json={
            "id": "acme-med",
            "name": "c",
            "partner": "acme",
            "offer": "med",
            "payout": {"type": "revshare", "percent": 70},
            **campaign_fields,
        },
    )
    return str(created["posting_key"])


async def test_rate_limited_ping_releases_its_key(api: Api, store: Store) -> None:
    key = await one_buyer(api, rate_limit_per_s=1)
    clock = ManualClock(1_900_000_000_100)  # 100 ms into a one-second window
    headers = {"Idempotency-Key": "ping-429"}
    with use_clock(clock):
        await ping(api, key)  # the window's one ping
        for _ in range(2):
            r = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD}, headers=headers)
            assert (r.status_code, r.json()["error"]["code"]) == (429, "rate_limited")
            assert r.headers["Retry-After"] == "1" and "Idempotent-Replayed" not in r.headers
        assert await key_rows(store) == []
        clock.advance(1_000)  # the next window
        first = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD}, headers=headers)
        assert first.status_code == 200 and first.json()["status"] == "bids", first.text
        again = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD}, headers=headers)
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert await key_rows(store) == [{"endpoint": "ping", "key": "ping-429", "state": "done", "status": 200}]


async def test_ping_of_a_paused_campaign_releases_its_key(api: Api, store: Store) -> None:
    key = await one_buyer(api)
    await ping(api, key)  # this process's snapshot now knows the campaign as active
    headers = {"Idempotency-Key": "ping-403"}
    await api.ok("PATCH", "/v1/admin/campaigns/acme-med", json={"status": "paused"})
    r = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD}, headers=headers)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
    assert await key_rows(store) == []
    await api.ok("PATCH", "/v1/admin/campaigns/acme-med", json={"status": "active"})
    r = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD}, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "bids", r.text
    assert "Idempotent-Replayed" not in r.headers


async def test_post_of_another_campaigns_ping_releases_its_key(api: Api, store: Store) -> None:
    key = await one_buyer(api)
    other = await campaign(api, ident="other")
    ping_id = (await ping(api, key))["ping_id"]
    for _ in range(2):
        r = await api.request(
            "POST",
            "/v1/post",
            token=other,
            json={"ping_id": ping_id, "lead": FULL},
            headers={"Idempotency-Key": "post-403"},
        )
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
        assert "Idempotent-Replayed" not in r.headers
    assert await key_rows(store) == []


async def test_final_refusals_are_still_replayed(api: Api, store: Store) -> None:
    key = await one_buyer(api)
    ping_id = (await ping(api, key))["ping_id"]
    await api.ok("POST", "/v1/post", token=key, json={"ping_id": ping_id, "lead": FULL})
    answers = [
        await api.request(
            "POST",
            "/v1/post",
            token=key,
            json={"ping_id": ping_id, "lead": FULL},
            headers={"Idempotency-Key": "post-409"},
        )
        for _ in range(2)
    ]
    assert [(a.status_code, a.json()["error"]["code"]) for a in answers] == [(409, "already_posted")] * 2
    assert answers[1].headers["Idempotent-Replayed"] == "true"
    assert await key_rows(store) == [{"endpoint": "post", "key": "post-409", "state": "done", "status": 409}]


class Answer(BaseModel):
    ok: bool = True


def keyed_request(key: str) -> Request:
    return Request(
        {"type": "http", "method": "POST", "path": "/v1/post", "headers": [(b"idempotency-key", key.encode())]}
    )


FINAL = [
    errors.MalformedJson("x"),
    errors.NotFound("ping", "png_1"),
    errors.Conflict("x", code="already_posted"),
    errors.Gone("x"),
    errors.Gone("x", code="bid_expired"),
    errors.PayloadTooLarge("x"),
    errors.ValidationFailed.one("lead", "x"),
    errors.Unprocessable("x", code="lead_mismatch"),
]
TEMPORARY = [
    errors.Unauthorized("x"),
    errors.Forbidden("x"),
    errors.Conflict("x", code="idempotency_in_flight"),
    errors.Conflict("x"),
    errors.RateLimited("x", headers={"Retry-After": "1"}),
    errors.Overloaded("x"),
    errors.PingpostError("x", code="internal_error", status=500),
    errors.PingpostError("x", code="bad_gateway", status=502),
]


@pytest.mark.parametrize("endpoint", ["ping", "post", "direct-post"])
async def test_which_refusals_are_recorded(store: Store, endpoint: str) -> None:
    """The rule, status by status, for every endpoint that takes an Idempotency-Key."""
    idem = Idempotency(store, lease_ms=60_000)
    for n, exc in enumerate(FINAL + TEMPORARY):
        calls = 0

        async def refuse(_: KeyRef | None, __: Claim | None, exc: errors.PingpostError = exc) -> Answer:
            nonlocal calls
            calls += 1
            raise exc

        for _ in range(2):
            try:
                await run_idempotent(
                    keyed_request(f"k{n}"), idem=idem, campaign_id="c", endpoint=endpoint, body=Answer(), run=refuse
                )
            except errors.PingpostError as raised:
                assert raised is exc
            else:  # a replay answers the stored refusal instead of raising
                assert exc in FINAL
        assert calls == (1 if exc in FINAL else 2), (exc.status, exc.code)
    rows = await key_rows(store)
    assert [(r["key"], r["status"]) for r in rows] == sorted((f"k{n}", e.status) for n, e in enumerate(FINAL))
    assert all(r["state"] == "done" and r["endpoint"] == endpoint for r in rows)


async def test_an_owner_whose_lease_was_taken_over_changes_nothing(api: Api, store: Store) -> None:
    """The lease is a fencing token: the first owner finishing late neither records nor releases."""
    await one_buyer(api)
    idem = Idempotency(store, lease_ms=1_000)
    clock = ManualClock(1_900_000_000_000)
    with use_clock(clock):
        first = await idem.begin(KeyRef("acme-med", "post", "k1"), "sha")
        clock.advance(1_001)  # the first owner looks crashed
        second = await idem.begin(KeyRef("acme-med", "post", "k1"), "sha")
        assert second.took_over and second.ref.lease > first.ref.lease
        await idem.finish(first.ref, 200, b'{"late": true}')
        await idem.abandon(first.ref)
        assert await key_rows(store) == [{"endpoint": "post", "key": "k1", "state": "in_flight", "status": None}]
        await idem.finish(second.ref, 200, b'{"taker": true}')
        replay = await idem.begin(KeyRef("acme-med", "post", "k1"), "sha")
    assert replay.replay == (200, b'{"taker": true}')
