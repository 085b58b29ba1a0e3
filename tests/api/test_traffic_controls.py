"""Traffic controls through HTTP (SPEC 15): sources and subs, payout rules and margins, ranking factor."""

from __future__ import annotations

import asyncio
import hashlib
from functools import partial
from typing import Any

import orjson

from pingpost.db.store import Store, Tx
from tests.api.setup_data import LEAD, base_setup, buyer, campaign, contract, ping, waterfall
from tests.api.test_post import FULL, post
from tests.conftest import Api, Sandbox

SUBS = {"sub1": "banner-7", "sub3": "x" * 128}


async def test_source_and_subs_travel_from_ping_to_buyers_and_reports(api: Api, sandbox: Sandbox) -> None:
    await base_setup(api, rule="multisell")
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await buyer(api, "buyer-r", deposit=100_000)
    await contract(api, "fixed-a", "buyer-a", 5000, delivery={"url": sandbox.deliver("a")})
    await contract(api, "rtb-r", "buyer-r", None, rtb={"url": sandbox.bid("r", "fixed")})
    await contract(api, "only-fb", "buyer-r", 9000, filters=[{"field": "source", "op": "eq", "value": "fb.ads"}])
    answer = await ping(api, key, source="google:cpc-1", subs=SUBS)
    [rtb_request] = await sandbox.received("r")
    assert rtb_request["body"]["source"] == "google:cpc-1" and rtb_request["body"]["subs"] == SUBS
    wf = await waterfall(api, answer["ping_id"])
    assert (wf["only-fb"]["outcome"], wf["only-fb"]["detail"]) == ("filter_mismatch", "source")
    assert wf["fixed-a"]["source"] == "fixed"  # the waterfall's `source` keeps its meaning
    record = await api.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")
    assert record["source"] == "google:cpc-1" and record["subs"] == SUBS
    listed = await api.ok("GET", "/v1/admin/pings", params={"source": "google:cpc-1"})
    assert [p["ping_id"] for p in listed["items"]] == [answer["ping_id"]]
    assert (await api.ok("GET", "/v1/admin/pings", params={"source": "other"}))["items"] == []
    # the post must carry the ping's source unchanged
    bad = await post(api, key, answer["ping_id"], status=422, source="google:cpc-2")
    assert bad["error"]["code"] == "lead_mismatch" and bad["error"]["details"]["fields"] == ["source"]
    assert (await post(api, key, answer["ping_id"], status=422))["error"]["code"] == "lead_mismatch"
    sold = await post(api, key, answer["ping_id"], source="google:cpc-1")
    assert sold["status"] == "sold"
    [delivered] = await sandbox.received("a")
    assert delivered["body"]["source"] == "google:cpc-1" and delivered["body"]["subs"] == SUBS
    fb = await ping(api, key, source="fb.ads")
    assert (await waterfall(api, fb["ping_id"]))["only-fb"]["outcome"] == "won"
    rows = (await api.ok("GET", "/v1/admin/reports/summary", params={"group_by": "source"}))["rows"]
    by_source = {r["source"]: r for r in rows}
    assert by_source["google:cpc-1"]["pings"] == 1 and by_source["google:cpc-1"]["sales"] == 1
    assert by_source["fb.ads"]["pings"] == 1 and by_source["fb.ads"]["wins"] >= 1


async def test_source_validation_and_campaign_lists(api: Api) -> None:
    await base_setup(api)
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(api, "ctr-a", "buyer-a", 5000)
    for bad in ("", "x" * 65, "has space", "é", "a/b"):
        err = await ping(api, key, status=422, source=bad)
        assert err["error"]["code"] == "validation_error"
    assert (await ping(api, key, status=422, subs={"sub6": "x"}))["error"]["code"] == "validation_error"
    assert (await ping(api, key, status=422, subs={"sub1": "x" * 129}))["error"]["code"] == "validation_error"
    await api.ok("PATCH", "/v1/admin/campaigns/acme-med", json={"sources": {"allow": None, "block": ["bad.src"]}})
    refused = await ping(api, key, status=403, source="bad.src")
    assert refused["error"]["code"] == "source_blocked"
    assert (await ping(api, key, source="ok.src"))["status"] == "bids"
    assert (await ping(api, key))["status"] == "bids"  # no source, no allow list
    await api.ok("PATCH", "/v1/admin/campaigns/acme-med", json={"sources": {"allow": ["a1", "a2"], "block": ["a2"]}})
    assert (await ping(api, key, source="a1"))["status"] == "bids"
    for refused_source in ("a2", "ok.src", None):
        extra: dict[str, Any] = {"source": refused_source} if refused_source else {}
        assert (await ping(api, key, status=403, **extra))["error"]["code"] == "source_blocked"
    pings = await api.ok("GET", "/v1/admin/pings")
    assert len(pings["items"]) == 3  # refused pings store nothing


async def payout_setup(api: Api, payout: dict[str, Any], **offer: Any) -> str:
    await base_setup(api, **offer)
    key = await campaign(api, payout=payout)
    for name in ("a", "b"):
        await buyer(api, f"buyer-{name}", deposit=100_000)
    return key


async def test_margin_payouts_round_down_and_overrides_first_match(api: Api) -> None:
    payout = {
        "type": "margin_percent",
        "percent": "12.5",
        "overrides": [
            {"contract": "ctr-b2", "payout": {"type": "fixed", "amount_cents": 100}},
            {"buyer": "buyer-b", "payout": {"type": "margin", "amount_cents": 1500}},
            {"contract": "ctr-b", "payout": {"type": "fixed", "amount_cents": 1}},  # never reached
        ],
    }
    key = await payout_setup(api, payout, rule="multisell")
    await contract(api, "ctr-a", "buyer-a", 8001)
    await contract(api, "ctr-b", "buyer-b", 5000)
    answer = await ping(api, key)
    payouts = sorted(b["payout_cents"] for b in answer["bids"])
    # a: 8001 * 87.5% = 7000.875 -> 7000; b: 5000 - 1500 = 3500 (its buyer's override)
    assert payouts == [3500, 7000]
    await api.ok("PATCH", "/v1/admin/contracts/ctr-b", json={"price_cents": 1000})
    answer = await ping(api, key)
    assert sorted(b["payout_cents"] for b in answer["bids"]) == [0, 7000]  # margin payout is at least 0
    for bad in ({"type": "margin_percent", "percent": "12.345"}, {"type": "margin", "amount_cents": -1}):
        err = await api.ok("PATCH", "/v1/admin/campaigns/acme-med", 422, json={"payout": bad})
        assert err["error"]["code"] == "validation_error"
    both = {"type": "fixed", "amount_cents": 1, "overrides": [{"buyer": "x", "contract": "y", "payout": payout}]}
    assert (await api.ok("PATCH", "/v1/admin/campaigns/acme-med", 422, json={"payout": both}))["error"]


async def test_min_margin_after_negative_margin(api: Api) -> None:
    key = await payout_setup(api, {"type": "fixed", "amount_cents": 4000}, rule="multisell", min_margin_cents=500)
    await contract(api, "negative", "buyer-a", 3999)
    await contract(api, "thin", "buyer-b", 4499)
    await buyer(api, "buyer-c", deposit=100_000)
    await contract(api, "enough", "buyer-c", 4500)
    answer = await ping(api, key)
    wf = await waterfall(api, answer["ping_id"])
    assert wf["negative"]["outcome"] == "negative_margin"
    assert wf["thin"]["outcome"] == "below_min_margin" and wf["thin"]["bid_cents"] == 4499
    assert wf["enough"]["outcome"] == "won"


async def test_rank_factor_ranks_but_never_changes_the_charge(api: Api, sandbox: Sandbox) -> None:
    key = await payout_setup(api, {"type": "revshare", "percent": 50})
    await contract(api, "high", "buyer-a", 6000, delivery={"url": sandbox.deliver("a")})
    await contract(api, "boosted", "buyer-b", 5000, rank_factor_pct=130, delivery={"url": sandbox.deliver("b")})
    answer = await ping(api, key)
    wf = await waterfall(api, answer["ping_id"])
    assert wf["boosted"]["outcome"] == "won" and wf["boosted"]["bid_cents"] == 5000
    assert wf["high"]["outcome"] == "lost_to_higher_bid"
    assert [b["payout_cents"] for b in answer["bids"]] == [2500]
    sold = await post(api, key, answer["ping_id"], FULL)
    assert sold["status"] == "sold"
    [got] = await sandbox.received("b")
    assert got["body"]["price_cents"] == 5000
    b = await api.ok("GET", "/v1/admin/buyers/buyer-b")
    assert b["balance_cents"] == 100_000 - 5000
    for bad in (0, 201):
        await api.ok("PATCH", "/v1/admin/contracts/high", 422, json={"rank_factor_pct": bad})
    assert LEAD


async def test_duplicate_pings_answer_the_earlier_answer_without_an_auction(api: Api, store: Store) -> None:
    await base_setup(api, ping_ttl_s=1)
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(api, "ctr-a", "buyer-a", 5000)
    consumer = {"phone_sha256": "a" * 64}
    first = await ping(api, key, consumer=consumer, source="s1")
    assert first.get("duplicate_of") is None
    # window 0 (the default): the same ping runs its own auction
    second = await ping(api, key, consumer=consumer, source="s1")
    assert second["ping_id"] != first["ping_id"]
    await api.ok("PATCH", "/v1/admin/campaigns/acme-med", json={"duplicate_ping_window_s": 600})
    original = await ping(api, key, consumer=consumer, source="s1")
    again = await ping(api, key, consumer=consumer, source="s1")
    assert again["duplicate_of"] == original["ping_id"] == again["ping_id"]
    assert again["bids"] == original["bids"] and again["status"] == "bids"
    # a different source, lead, channel or consumer is another ping
    for extra in ({"source": "s2"}, {"consumer": {"phone_sha256": "b" * 64}, "source": "s1"}):
        other = await ping(api, key, **({"consumer": consumer} | extra))
        assert other.get("duplicate_of") is None
    other = await ping(api, key, {**LEAD, "age": 70}, consumer=consumer, source="s1")
    assert other.get("duplicate_of") is None
    rsv = await store.read(lambda tx: tx.fetchval("SELECT COUNT(*) FROM reservations"))
    pings = await store.read(lambda tx: tx.fetchval("SELECT COUNT(*) FROM pings"))
    assert (int(rsv), int(pings)) == (6, 6)  # the duplicate took no reservation and ran no auction
    await asyncio.sleep(1.1)  # the earlier bids expire
    late = await ping(api, key, consumer=consumer, source="s1")
    assert (late["status"], late["reason"], late["duplicate_of"]) == ("no_bids", "duplicate_ping", original["ping_id"])
    assert late["bids"] == []
    rows = (await api.ok("GET", "/v1/admin/reports/summary", params={"group_by": "campaign"}))["rows"]
    assert rows[0]["duplicate_pings"] == 2 and rows[0]["pings"] == 8
    by_source = {
        r["source"]: r
        for r in (await api.ok("GET", "/v1/admin/reports/summary", params={"group_by": "source"}))["rows"]
    }
    assert by_source["s1"]["duplicate_pings"] == 2


PHONE = "(305) 555-0100"
PHONE_SHA = hashlib.sha256(b"3055550100").hexdigest()
EMAIL_SHA = hashlib.sha256(b"ada@example.com").hexdigest()


async def test_suppression_lists_at_ping_and_post_store_only_keyed_hashes(
    api: Api, store: Store, sandbox: Sandbox
) -> None:
    await base_setup(api, rule="multisell")
    key = await campaign(api)
    for name in ("a", "b", "c"):
        await buyer(api, f"buyer-{name}", deposit=100_000)
    made = await api.ok(
        "POST",
        "/v1/admin/suppression-lists",
        201,
        json={"id": "dnc-b", "name": "B's DNC", "scope": "buyer", "buyer": "buyer-b"},
    )
    assert made["counts"] == {"phones": 0, "emails": 0}
    await api.ok(
        "POST",
        "/v1/admin/suppression-lists",
        201,
        json={"id": "mine", "name": "Mine", "scope": "buyer", "buyer": "buyer-c"},
    )
    bad = await api.ok("POST", "/v1/admin/suppression-lists", 422, json={"id": "x", "name": "X", "scope": "buyer"})
    assert bad["error"]["code"] == "validation_error"
    for name in ("a", "b", "c"):
        lists = {"b": ["dnc-b"], "c": ["mine"]}.get(name, [])
        extra: dict[str, Any] = {"suppression_lists": lists}
        await contract(api, f"ctr-{name}", f"buyer-{name}", 5000, delivery={"url": sandbox.deliver(name)}, **extra)
    refused = await api.ok(
        "POST",
        "/v1/admin/contracts",
        422,
        json={
            "id": "z",
            "name": "z",
            "buyer": "buyer-a",
            "offer": "med",
            "price_cents": 1,
            "suppression_lists": ["dnc-b"],
        },
    )
    assert refused["error"]["details"]["errors"][0]["field"] == "suppression_lists.0"
    added = await api.ok(
        "POST", "/v1/admin/suppression-lists/dnc-b/entries", json={"phones": [PHONE, "+1 305 555 0100"]}
    )
    assert added["counts"] == {"phones": 1, "emails": 0}  # one consumer, two spellings
    csv_body = "email\nADA@example.com \n\n3055550199\n"
    listed = await api.request(
        "POST", "/v1/admin/suppression-lists/mine/entries", content=csv_body, headers={"content-type": "text/csv"}
    )
    assert listed.status_code == 200 and listed.json()["counts"] == {"phones": 1, "emails": 1}
    wrong = await api.ok("POST", "/v1/admin/suppression-lists/mine/entries", 422, json={"phones": ["12345"]})
    assert "12345" not in str(wrong) and wrong["error"]["details"]["errors"][0]["field"] == "phones.0"
    # at the ping: the consumer's hashes meet the lists
    answer = await ping(api, key, consumer={"phone_sha256": PHONE_SHA})
    wf = await waterfall(api, answer["ping_id"])
    assert wf["ctr-b"]["outcome"] == "suppressed" and wf["ctr-a"]["outcome"] == "won"
    assert wf["ctr-c"]["outcome"] == "won"  # the phone is on B's list only
    # at the post: the email (not sent at the ping) is on c's list
    sold = await post(api, key, answer["ping_id"], FULL)
    assert [r["reason"] for r in sold["rejected"]] == ["suppressed"], sold
    assert sold["status"] == "sold"
    assert await sandbox.received("c") == [] and len(await sandbox.received("a")) == 1
    assert (await waterfall(api, answer["ping_id"]))["ctr-c"]["post_outcome"] == "suppressed"
    assert (await api.ok("GET", "/v1/admin/buyers/buyer-c"))["holds_cents"] == 0  # released, not charged
    # a global list applies to every contract
    await api.ok("POST", "/v1/admin/suppression-lists", 201, json={"id": "all", "name": "All", "scope": "global"})
    await api.ok("POST", "/v1/admin/suppression-lists/all/entries", json={"emails": ["ada@example.com"]})
    everyone = await ping(api, key, consumer={"email_sha256": EMAIL_SHA})
    assert everyone["status"] == "no_bids"
    outcomes = {c: w["outcome"] for c, w in (await waterfall(api, everyone["ping_id"])).items()}
    assert outcomes == {"ctr-a": "duplicate", "ctr-b": "suppressed", "ctr-c": "suppressed"}  # dedup comes first
    removed = await api.request(
        "DELETE", "/v1/admin/suppression-lists/all/entries", json={"emails": ["Ada@Example.com"]}
    )
    assert removed.json()["counts"] == {"phones": 0, "emails": 0}
    assert (await ping(api, key, consumer={"email_sha256": EMAIL_SHA}))["status"] == "bids"
    # nothing plain anywhere: no stored row and no answer holds a value or its plain SHA-256
    plain = ("3055550100", "555-0100", "ada@example.com", PHONE_SHA, EMAIL_SHA, "3055550199")
    for table in ("suppression_entries", "suppression_lists", "pings"):
        rows = await store.read(partial(_all_rows, table=table))
        dumped = str([dict(r) for r in rows]).lower()
        assert not any(p in dumped for p in plain), table
    lists = await api.ok("GET", "/v1/admin/suppression-lists")
    assert not any(p in str(lists).lower() for p in plain) and len(lists["items"]) == 3
    assert (await api.ok("GET", "/v1/admin/suppression-lists/nope", 404))["error"]["code"] == "not_found"


async def _all_rows(tx: Tx, *, table: str) -> list[Any]:
    return list(await tx.fetch(f"SELECT * FROM {table}"))


async def test_auto_pause_after_consecutive_rtb_failures_and_resume_resets(api: Api, sandbox: Sandbox) -> None:
    await base_setup(api)
    key = await campaign(api)
    await buyer(api, "buyer-r", deposit=100_000)
    await contract(
        api,
        "flaky",
        "buyer-r",
        None,
        rtb={"url": sandbox.bid("r", "error")},
        auto_pause={"max_consecutive_failures": 3},
    )
    await ping(api, key)
    await ping(api, key)
    # an answer (here a no-bid) ends the run
    await api.ok("PATCH", "/v1/admin/contracts/flaky", json={"rtb": {"url": sandbox.bid("r", "nobid")}})
    await ping(api, key)
    await api.ok("PATCH", "/v1/admin/contracts/flaky", json={"rtb": {"url": sandbox.bid("r", "error")}})
    for _ in range(2):
        await ping(api, key)
    assert (await api.ok("GET", "/v1/admin/contracts/flaky"))["status"] == "active"
    third = await ping(api, key)
    assert (await waterfall(api, third["ping_id"]))["flaky"]["outcome"] == "bid_error"
    paused = await api.ok("GET", "/v1/admin/contracts/flaky")
    assert paused["status"] == "paused" and "3 consecutive failures" in paused["paused_reason"]
    assert (await waterfall(api, (await ping(api, key))["ping_id"]))["flaky"]["outcome"] == "contract_paused"
    resumed = await api.ok("PATCH", "/v1/admin/contracts/flaky", json={"status": "active"})
    assert resumed["status"] == "active" and resumed["paused_reason"] is None
    for _ in range(2):  # the count started again
        await ping(api, key)
    assert (await api.ok("GET", "/v1/admin/contracts/flaky"))["status"] == "active"


async def test_auto_pause_after_delivery_failures_writes_one_event(api: Api, store: Store, sandbox: Sandbox) -> None:
    await base_setup(api)
    key = await campaign(api)
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(
        api,
        "down",
        "buyer-a",
        5000,
        delivery={"url": sandbox.deliver("a", "error")},
        auto_pause={"max_consecutive_failures": 2},
    )
    for _ in range(2):
        answer = await ping(api, key)
        assert (await post(api, key, answer["ping_id"], FULL))["rejected"][0]["reason"] == "post_error"
    contract_view = await api.ok("GET", "/v1/admin/contracts/down")
    assert contract_view["status"] == "paused" and "post_error" in contract_view["paused_reason"]
    rows = await store.read(partial(_all_rows, table="events"))
    paused = [orjson.loads(r["data"]) for r in rows if r["type"] == "contract.auto_paused"]
    assert len(paused) == 1 and paused[0]["contract_id"] == "down" and paused[0]["consecutive_failures"] == 2
