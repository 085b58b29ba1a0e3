"""The ping auction through HTTP on a real database (SPEC sections 2, 4, 5.1, 7)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from typing import Any, NoReturn

import pytest

from pingpost.config import Settings
from pingpost.db import auction_repo
from pingpost.db.store import Store, Tx
from pingpost.security import SecretKey
from tests.api.setup_data import LEAD, base_setup, buyer, campaign, contract, ping, waterfall
from tests.conftest import Api


async def three_buyers(api: Api, rule: str = "exclusive", max_winners: int = 3, **offer: Any) -> str:
    await base_setup(api, rule=rule, max_winners=max_winners, **offer)
    key = await campaign(api)
    for name, price in (("a", 8500), ("b", 7200), ("c", 9100)):
        await buyer(api, f"buyer-{name}", deposit=100_000)
        await contract(api, f"ctr-{name}", f"buyer-{name}", price)
    return key


async def reservations(store: Store) -> list[Any]:
    return await store.read(lambda tx: tx.fetch("SELECT * FROM reservations ORDER BY id"))


async def test_exclusive_highest_bid_wins(api: Api, store: Store) -> None:
    key = await three_buyers(api)
    answer = await ping(api, key, partner_lead_id="lead-1")
    assert answer["status"] == "bids" and answer["post_url"] == "/v1/post"
    assert answer["ping_id"].startswith("png_") and answer["expires_at"].endswith("Z")
    [bid] = answer["bids"]
    assert bid["payout_cents"] == 6370 and bid["sale_type"] == "exclusive" and bid["transfer"] is None
    assert set(bid) == {"bid_id", "payout_cents", "sale_type", "transfer"}  # no buyer, no price
    wf = await waterfall(api, answer["ping_id"])
    assert wf["ctr-c"]["outcome"] == "won" and wf["ctr-c"]["bid_cents"] == 9100
    assert wf["ctr-c"]["bid_id"] == bid["bid_id"] and wf["ctr-c"]["source"] == "fixed"
    assert wf["ctr-a"]["outcome"] == wf["ctr-b"]["outcome"] == "lost_to_higher_bid"
    [rsv] = await reservations(store)
    assert (rsv["contract_id"], rsv["amount_cents"], rsv["state"]) == ("ctr-c", 9100, "held")
    b = await api.ok("GET", "/v1/admin/buyers/buyer-c")
    assert (b["holds_cents"], b["available_cents"]) == (9100, 100_000 - 9100)
    record = await api.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")
    assert record["lead"] == LEAD and record["partner_lead_id"] == "lead-1" and record["status"] == "bids"
    assert [e["type"] for e in record["events"]] == ["ping", "bids"]
    listed = await api.ok("GET", "/v1/admin/pings", params={"partner_lead_id": "lead-1"})
    assert [p["ping_id"] for p in listed["items"]] == [answer["ping_id"]]
    by_winner = await api.ok("GET", "/v1/admin/pings", params={"buyer": "buyer-c"})
    assert [p["ping_id"] for p in by_winner["items"]] == [answer["ping_id"]]
    assert (await api.ok("GET", "/v1/admin/pings", params={"buyer": "buyer-a"}))["items"] == []


async def test_multisell_top_n_one_per_buyer(api: Api) -> None:
    key = await three_buyers(api, rule="multisell", max_winners=2)
    await contract(api, "ctr-c2", "buyer-c", 9900)  # buyer-c's best contract; only one per buyer wins
    answer = await ping(api, key)
    assert sorted(b["sale_type"] for b in answer["bids"]) == ["shared", "shared"]
    wf = await waterfall(api, answer["ping_id"])
    assert wf["ctr-c2"]["outcome"] == "won" and wf["ctr-a"]["outcome"] == "won"
    assert (wf["ctr-c"]["outcome"], wf["ctr-c"]["detail"]) == ("not_selected", "one_per_buyer")
    assert wf["ctr-b"]["outcome"] == "lost_to_higher_bid"


async def test_hybrid_branches(api: Api) -> None:
    await base_setup(api, rule="hybrid", max_winners=3)
    api_key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await buyer(api, "buyer-b", deposit=100_000)
    await contract(api, "ctr-a", "buyer-a", 5000, exclusive_price_cents=12000)
    await contract(api, "ctr-b", "buyer-b", 6000)
    await api.ok(
        "PATCH", "/v1/admin/offers/med", json={"distribution": {"rule": "hybrid", "hybrid_floor_cents": 10000}}
    )
    answer = await ping(api, api_key)
    assert [b["sale_type"] for b in answer["bids"]] == ["exclusive"]
    wf = await waterfall(api, answer["ping_id"])
    assert wf["ctr-a"]["outcome"] == "won" and wf["ctr-a"]["bid_cents"] == 12000
    await api.ok(
        "PATCH", "/v1/admin/offers/med", json={"distribution": {"rule": "hybrid", "hybrid_floor_cents": 15000}}
    )
    answer = await ping(api, api_key)
    assert sorted(b["sale_type"] for b in answer["bids"]) == ["shared", "shared"]
    wf = await waterfall(api, answer["ping_id"])
    assert {wf["ctr-a"]["bid_cents"], wf["ctr-b"]["bid_cents"]} == {5000, 6000}


async def test_priority_and_round_robin(api: Api) -> None:
    await base_setup(api, rule="priority", max_winners=1)
    key = await campaign(api)
    for name, price, prio in (("a", 5000, 2), ("b", 4000, 1), ("c", 9000, 3)):
        await buyer(api, f"buyer-{name}", deposit=1_000_000)
        await contract(api, f"ctr-{name}", f"buyer-{name}", price, priority=prio)
    wf = await waterfall(api, (await ping(api, key))["ping_id"])
    assert wf["ctr-b"]["outcome"] == "won" and wf["ctr-a"]["outcome"] == "not_selected"
    await api.ok("PATCH", "/v1/admin/offers/med", json={"distribution": {"rule": "round_robin", "max_winners": 1}})
    winners = []
    for _ in range(4):
        wf = await waterfall(api, (await ping(api, key))["ping_id"])
        winners += [c for c, w in wf.items() if w["outcome"] == "won"]
    assert winners == ["ctr-b", "ctr-a", "ctr-c", "ctr-b"]  # (priority, id) order, wrapping
    # a test ping does not move the pointer
    await ping(api, key, test=True)
    wf = await waterfall(api, (await ping(api, key))["ping_id"])
    assert [c for c, w in wf.items() if w["outcome"] == "won"] == ["ctr-a"]


async def test_weighted_picks_by_weight(api: Api) -> None:
    await base_setup(api, rule="weighted", max_winners=1)
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=10_000_000)
    await buyer(api, "buyer-b", deposit=10_000_000)
    await contract(api, "ctr-a", "buyer-a", 1000, weight=9)
    await contract(api, "ctr-b", "buyer-b", 1000, weight=1)
    wins = {"ctr-a": 0, "ctr-b": 0}
    for _ in range(40):
        wf = await waterfall(api, (await ping(api, key, test=True))["ping_id"])
        for c, w in wf.items():
            if w["outcome"] == "won":
                wins[c] += 1
            else:
                assert w["outcome"] == "not_selected"
    assert sum(wins.values()) == 40 and wins["ctr-a"] > wins["ctr-b"]


async def test_every_contract_gets_an_outcome_code(api: Api, store: Store) -> None:
    await base_setup(api, rule="multisell", max_winners=10, floor_cents=1000)
    key = await campaign(api, payout={"type": "fixed", "amount_cents": 3000})
    for b in "abcdefghijk":
        await buyer(api, f"b-{b}", deposit=100_000)
    await buyer(api, "b-poor", deposit=500)
    await contract(api, "paused", "b-a", 5000, status="paused")
    await api.ok("PATCH", "/v1/admin/buyers/b-b", json={"status": "paused"})
    await contract(api, "buyer-paused", "b-b", 5000)
    await contract(api, "filter", "b-c", 5000, filters=[{"field": "state", "op": "in", "value": ["TX"]}])
    await contract(
        api, "schedule", "b-d", 5000, schedule={"windows": [{"days": ["mon"], "start": "00:00", "end": "00:01"}]}
    )
    await contract(api, "cap", "b-e", 5000, caps={"daily": 0})
    await contract(api, "poor", "b-poor", 5000)
    await contract(api, "floor", "b-f", 900)
    await contract(api, "margin", "b-g", 2500)
    await contract(api, "winner", "b-h", 6000)
    await contract(
        api, "rtb-needs", "b-i", None, rtb={"url": "http://127.0.0.1:9/bid", "required_fields": ["coverage"]}
    )
    answer = await ping(api, key, min_payout_cents=0)
    wf = await waterfall(api, answer["ping_id"])
    assert {c: (w["outcome"], w["detail"]) for c, w in wf.items() if c != "schedule"} == {
        "paused": ("contract_paused", None),
        "buyer-paused": ("buyer_paused", None),
        "filter": ("filter_mismatch", "state"),
        "cap": ("cap_reached", "daily"),
        "poor": ("insufficient_balance", None),
        "floor": ("below_floor", None),
        "margin": ("negative_margin", None),
        "winner": ("won", None),
        "rtb-needs": ("missing_required_fields", "coverage"),
    }
    assert wf["schedule"]["outcome"] in ("outside_schedule", "won")
    answer = await ping(api, key, min_payout_cents=3001)
    wf = await waterfall(api, answer["ping_id"])
    assert wf["winner"]["outcome"] == "below_partner_minimum" and answer["status"] == "no_bids"


async def test_bad_pings_are_refused_and_store_nothing(api: Api, store: Store) -> None:
    key = await three_buyers(api)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"lead": {**LEAD, "phone": "3055550100"}}, 422, "pii_in_ping"),
        ({"lead": {**LEAD, "first_name": "Ada"}}, 422, "pii_in_ping"),
        ({"lead": {**LEAD, "shoe_size": 9}}, 422, "unknown_field"),
        ({"lead": {**LEAD, "age": "sixty"}}, 422, "validation_error"),
        ({"lead": {**LEAD, "zip": "3310"}}, 422, "validation_error"),
        ({"lead": {**LEAD, "state": "XX"}}, 422, "validation_error"),
        ({"lead": LEAD, "channel": "call"}, 422, "channel_mismatch"),
        ({"lead": LEAD, "consumer": {"phone_sha256": "abc"}}, 422, "validation_error"),
        ({"lead": LEAD, "surprise": 1}, 422, "validation_error"),
        ({"lead": LEAD, "min_payout_cents": -1}, 422, "validation_error"),
        ({"lead": "FL"}, 422, "validation_error"),
    ]
    for body, status, code in cases:
        r = await api.request("POST", "/v1/ping", token=key, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), (body, r.text)
        assert "3055550100" not in r.text and "Ada" not in r.text
    r = await api.request("POST", "/v1/ping", token=key, content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert (await api.request("POST", "/v1/ping", token="nope", json={"lead": LEAD})).status_code == 401
    assert (await api.request("POST", "/v1/ping", token=None, json={"lead": LEAD})).status_code == 401
    for path, ident in (("campaigns", "acme-med"), ("partners", "acme"), ("offers", "med")):
        await api.ok("PATCH", f"/v1/admin/{path}/{ident}", json={"status": "paused"})
        r = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD})
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden")
        await api.ok("PATCH", f"/v1/admin/{path}/{ident}", json={"status": "active"})
        r = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD, "test": True})
        assert r.status_code == 200, r.text  # active again at once
    assert await store.read(lambda tx: tx.fetch("SELECT id FROM pings WHERE test = 0")) == []
    assert await reservations(store) == []


async def test_direct_post_offer_refuses_pings(api: Api) -> None:
    await base_setup(api, mode="direct_post")
    key = await campaign(api)
    r = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "offer_mode_mismatch")


async def test_caps_are_exact_and_reservations_expire(api: Api, store: Store) -> None:
    await base_setup(api, ping_ttl_s=1)
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=1_000_000)
    await contract(api, "capped", "buyer-a", 1000, caps={"daily": 2})
    statuses = [(await ping(api, key))["status"] for _ in range(3)]
    assert statuses == ["bids", "bids", "no_bids"]
    b = await api.ok("GET", "/v1/admin/buyers/buyer-a")
    assert b["holds_cents"] == 2000
    await asyncio.sleep(1.1)
    # Expired reservations stop counting at expiry, before anything reclaims them.
    b = await api.ok("GET", "/v1/admin/buyers/buyer-a")
    assert b["holds_cents"] == 0
    assert (await ping(api, key))["status"] == "bids"
    states = sorted(r["state"] for r in await reservations(store))
    assert states == ["expired", "expired", "held"]
    usage = await store.read(lambda tx: tx.fetchrow("SELECT day_used FROM contract_usage WHERE contract_id = 'capped'"))
    assert usage is not None and usage["day_used"] == 1


async def test_test_pings_reserve_nothing(api: Api, store: Store) -> None:
    key = await three_buyers(api)
    answer = await ping(api, key, test=True)
    assert answer["status"] == "bids"
    assert await reservations(store) == []
    assert (await api.ok("GET", "/v1/admin/buyers/buyer-c"))["holds_cents"] == 0
    assert (await api.ok("GET", f"/v1/admin/pings/{answer['ping_id']}"))["test"] is True


async def test_funds_include_credit_and_holds(api: Api) -> None:
    await base_setup(api, rule="exclusive")
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=1000, credit=1500)
    await contract(api, "a", "buyer-a", 1000)
    assert [(await ping(api, key))["status"] for _ in range(3)] == ["bids", "bids", "no_bids"]
    b = await api.ok("GET", "/v1/admin/buyers/buyer-a")
    assert (b["balance_cents"], b["holds_cents"], b["available_cents"]) == (1000, 2000, 500)


@pytest.mark.parametrize("dedup_days", [30, 0])
async def test_dedup_by_keyed_hash(api: Api, store: Store, settings: Settings, dedup_days: int) -> None:
    await base_setup(api)
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(api, "a", "buyer-a", 1000, dedup_days=dedup_days)
    phone_hash = hashlib.sha256(b"3055550100").hexdigest()
    assert settings.secret_key is not None  # the fixture's settings carry one
    keyed = SecretKey.from_text(settings.secret_key).keyed(phone_hash)

    async def sold(tx: Tx) -> None:
        await auction_repo.record_dedup(tx, buyer_id="buyer-a", hashes=[keyed], sold_at=1, sale_id="sal_x")
        await tx.execute("UPDATE dedup_records SET sold_at = :t", {"t": __import__("time").time_ns() // 10**6})

    await store.write(sold)
    wf = await waterfall(api, (await ping(api, key, consumer={"phone_sha256": phone_hash}))["ping_id"])
    assert wf["a"]["outcome"] == ("duplicate" if dedup_days else "won")
    other = hashlib.sha256(b"3055550199").hexdigest()
    wf = await waterfall(api, (await ping(api, key, consumer={"phone_sha256": other}))["ping_id"])
    assert wf["a"]["outcome"] == "won"
    wf = await waterfall(api, (await ping(api, key))["ping_id"])  # a missing hash is never a duplicate
    assert wf["a"]["outcome"] == "won"
    # only the keyed hash is stored with the ping
    rows = await store.read(lambda tx: tx.fetch("SELECT consumer FROM pings"))
    assert all(phone_hash not in r["consumer"] for r in rows)


async def test_fallback_to_static_price(api: Api) -> None:
    await base_setup(api)
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await buyer(api, "buyer-b", deposit=100_000)
    await contract(api, "rtb-static", "buyer-a", 4500, rtb={"url": "http://127.0.0.1:9/bid"})
    await contract(api, "rtb-never", "buyer-b", 9000, rtb={"url": "http://127.0.0.1:9/bid", "fallback": "never"})
    wf = await waterfall(api, (await ping(api, key))["ping_id"])
    assert (wf["rtb-static"]["outcome"], wf["rtb-static"]["source"], wf["rtb-static"]["bid_cents"]) == (
        "won",
        "static_fallback",
        4500,
    )
    assert wf["rtb-never"]["outcome"] == "bid_error"


async def test_ping_entry_point_keeps_the_body_limit_error_shape_and_methods(
    api: Api, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """POST /v1/ping bypasses the middleware stack (docs/performance.md); what the stack gives every
    other route must hold for it too."""
    key = await three_buyers(api)
    big = b'{"lead": {"state": "' + b"x" * 300_000 + b'"}}'
    r = await api.request("POST", "/v1/ping", token=key, content=big, headers={"content-type": "application/json"})
    assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")

    async def chunked() -> AsyncIterator[bytes]:  # no Content-Length: the limit applies to what streams in
        for _ in range(40):
            yield b" " * 10_000

    r = await api.request(
        "POST", "/v1/ping", token=key, content=chunked(), headers={"content-type": "application/json"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large")
    assert (await api.request("GET", "/v1/ping", token=key)).status_code == 405
    assert await reservations(store) == []

    async def broken(*args: object, **kwargs: object) -> NoReturn:
        raise RuntimeError("secret detail 3055550100")

    monkeypatch.setattr("pingpost.auction.service.AuctionService.ping", broken)
    r = await api.request("POST", "/v1/ping", token=key, json={"lead": LEAD})
    assert (r.status_code, r.json()["error"]["code"]) == (500, "internal_error")
    assert "secret" not in r.text and "3055550100" not in r.text


async def test_integers_beyond_64_bits_are_refused_everywhere_a_lead_or_filter_goes(api: Api, store: Store) -> None:
    """Found by the fuzzer: such an integer could not be hashed or stored as JSON and answered 500."""
    key = await three_buyers(api)
    platform = (await api.ok("POST", "/v1/admin/api-keys", 201, json={"kind": "call_platform", "name": "t"}))["key"]
    huge = {**LEAD, "age": 2**64}
    for path, body, headers, token in (
        ("/v1/ping", {"lead": huge}, {}, key),
        ("/v1/ping", {"lead": {**LEAD, "extra": {"n": [-(2**63) - 1]}}}, {"Idempotency-Key": "k-1"}, key),
        ("/v1/post", {"ping_id": "png_x", "lead": huge}, {}, key),
        ("/v1/direct-post", {"lead": huge}, {}, key),
        ("/v1/calls/png_x/connected", {"bid_id": "bid_x", "lead": {"": -9223372036854775809}}, {}, platform),
    ):
        r = await api.request("POST", path, token=token, json=body, headers=headers)
        assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error"), (path, r.text)
        assert r.json()["error"]["details"]["errors"][0]["field"].startswith("lead"), r.text
    r = await api.request(
        "POST",
        "/v1/admin/contracts",
        json={
            "name": "x",
            "buyer": "buyer-a",
            "offer": "med",
            "price_cents": 100,
            "filters": [{"field": "age", "op": "gte", "value": 2**64}],
        },
    )
    assert r.status_code == 201 and r.json()["filters"][0]["value"] == float(2**64), r.text  # a number, kept
    assert (await api.ok("POST", "/v1/ping", token=key, json={"lead": LEAD}))["status"] == "bids"
    assert len(await reservations(store)) == 1  # only the last, valid ping reserved anything
