"""Calls and callbacks through HTTP with real local buyers (SPEC 2.9, 5.2)."""

from __future__ import annotations

import asyncio

from pingpost.db.store import Store
from tests.api.setup_data import ping, waterfall
from tests.api.test_ledger import ledger_invariants
from tests.api.test_post import PHONE_HASH, saw_pii
from tests.conftest import Api, Sandbox
from tests.support.calls import CALL_LEAD, CALLER, call_setup, event


async def test_call_auction_connect_and_bill(api: Api, store: Store, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call", consumer={"phone_sha256": PHONE_HASH})
    [bid] = answer["bids"]
    assert bid["transfer"] == {"phone": "+13055550111"} and bid["sale_type"] == "exclusive"
    wf = await waterfall(api, answer["ping_id"])
    assert {n: wf[n]["outcome"] for n in wf} == {
        "a": "won",
        "b": "standby",
        "c": "standby",
        "no-transfer": "missing_transfer",
    }
    for name in "abcx":  # nobody sees PII before the call connects
        assert not saw_pii(await sandbox.received(name))
    # the partner cannot post a call, nor send call events
    r = await api.request("POST", "/v1/post", token=key, json={"ping_id": answer["ping_id"], "lead": CALLER})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "channel_mismatch")
    r = await api.request(
        "POST", f"/v1/calls/{answer['ping_id']}/connected", token=key, json={"bid_id": bid["bid_id"], "lead": CALLER}
    )
    assert r.status_code == 401
    connected = await event(api, platform, answer["ping_id"], "connected", {"bid_id": bid["bid_id"], "lead": CALLER})
    assert connected["billable"] is True and connected["data_post"] == "post_accepted"
    assert saw_pii(await sandbox.received("a"))
    for name in "bcx":
        assert not saw_pii(await sandbox.received(name))
    for name in ("b", "c"):  # standbys released at connect
        assert (await api.ok("GET", f"/v1/admin/buyers/buyer-{name}"))["holds_cents"] == 0
    a = await api.ok("GET", "/v1/admin/buyers/buyer-a")
    assert (a["balance_cents"], a["holds_cents"]) == (91_000, 0)
    again = await event(api, platform, answer["ping_id"], "connected", {"bid_id": bid["bid_id"], "lead": CALLER})
    assert again == connected
    assert len([r for r in await sandbox.received("a") if r["path"].startswith("/deliver")]) == 1
    conflict = await api.request(
        "POST",
        f"/v1/calls/{answer['ping_id']}/connected",
        token=platform,
        json={"bid_id": bid["bid_id"], "lead": {**CALLER, "first_name": "Other"}},
    )
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "event_conflict")
    done = await event(api, platform, answer["ping_id"], "completed", {"bid_id": bid["bid_id"], "duration_s": 30})
    assert done == {"sale_id": connected["sale_id"], "billable": True}
    assert (await waterfall(api, answer["ping_id"]))["a"]["post_outcome"] == "call_billable"
    await ledger_invariants(store)
    # a form lead never carries a transfer destination, even from a buyer that answers with one
    await api.ok("PATCH", "/v1/admin/contracts/no-transfer", json={"status": "paused"})
    form = await ping(api, key, lead={**CALL_LEAD, "age": 71})
    assert form["bids"] and all(b["transfer"] is None for b in form["bids"])


async def test_ring_next_after_failed(api: Api, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call")
    first = answer["bids"][0]["bid_id"]
    nxt = await event(api, platform, answer["ping_id"], "failed", {"bid_id": first, "reason": "busy"})
    assert nxt["next_bid"]["transfer"] == {"sip": "sip:queue@b.example"}
    again = await event(api, platform, answer["ping_id"], "failed", {"bid_id": first, "reason": "busy"})
    assert again == nxt
    r = await api.request(
        "POST", f"/v1/calls/{answer['ping_id']}/failed", token=platform, json={"bid_id": first, "reason": "no_answer"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "event_conflict")
    assert (await api.ok("GET", "/v1/admin/buyers/buyer-a"))["holds_cents"] == 0
    second = nxt["next_bid"]["bid_id"]
    third = await event(api, platform, answer["ping_id"], "failed", {"bid_id": second, "reason": "no_answer"})
    assert third["next_bid"]["transfer"] == {"phone": "+13055550133"}
    last = await event(
        api, platform, answer["ping_id"], "failed", {"bid_id": third["next_bid"]["bid_id"], "reason": "rejected"}
    )
    assert last == {"next_bid": None}
    wf = await waterfall(api, answer["ping_id"])
    assert [wf[n]["post_outcome"] for n in "abc"] == ["call_failed"] * 3
    for name in "abc":
        assert not saw_pii(await sandbox.received(name))
        assert (await api.ok("GET", f"/v1/admin/buyers/buyer-{name}"))["holds_cents"] == 0


async def test_billable_threshold_pending_billable_void(api: Api, store: Store, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox, billable_after_s=90, ping_ttl_s=1)
    results = []
    for duration in (120, 30):
        answer = await ping(api, key, lead=CALL_LEAD, channel="call")
        bid = answer["bids"][0]["bid_id"]
        connected = await event(api, platform, answer["ping_id"], "connected", {"bid_id": bid, "lead": CALLER})
        assert connected["billable"] is None and connected["sale_id"]
        wf = await waterfall(api, answer["ping_id"])
        assert wf["a"]["post_outcome"] == "call_connected"
        a = await api.ok("GET", "/v1/admin/buyers/buyer-a")
        assert a["holds_cents"] == 9000  # the hold is kept while the sale is pending
        await asyncio.sleep(1.1)  # longer than ping_ttl_s: a connected call keeps its reservation
        results.append(
            await event(api, platform, answer["ping_id"], "completed", {"bid_id": bid, "duration_s": duration})
        )
    assert [r["billable"] for r in results] == [True, False]
    a = await api.ok("GET", "/v1/admin/buyers/buyer-a")
    assert (a["balance_cents"], a["holds_cents"]) == (91_000, 0)  # one charge, the void one nothing
    sales = (await api.ok("GET", "/v1/admin/sales", params={"buyer": "buyer-a"}))["items"]
    assert sorted(s["status"] for s in sales) == ["charged", "void"]
    partner = await api.ok("GET", "/v1/admin/ledger", params={"account": "partner:acme"})
    assert partner["balance_cents"] == 6300
    await ledger_invariants(store)


async def test_event_errors(api: Api, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox, ping_ttl_s=1)
    r = await api.request(
        "POST", "/v1/calls/png_nope/connected", token=platform, json={"bid_id": "bid_x", "lead": CALLER}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")
    answer = await ping(api, key, lead=CALL_LEAD, channel="call")
    bid = answer["bids"][0]["bid_id"]
    r = await api.request(
        "POST", f"/v1/calls/{answer['ping_id']}/completed", token=platform, json={"bid_id": bid, "duration_s": 10}
    )
    assert r.status_code == 409  # not connected
    await asyncio.sleep(1.1)
    for kind, body in (("connected", {"bid_id": bid, "lead": CALLER}), ("failed", {"bid_id": bid, "reason": "busy"})):
        r = await api.request("POST", f"/v1/calls/{answer['ping_id']}/{kind}", token=platform, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (410, "bid_expired"), r.text
    form = await ping(api, key)
    r = await api.request(
        "POST",
        f"/v1/calls/{form['ping_id']}/failed",
        token=platform,
        json={"bid_id": form["bids"][0]["bid_id"], "reason": "busy"},
    )
    assert (r.status_code, r.json()["error"]["code"]) == (422, "channel_mismatch")


async def test_callback_lives_for_callback_ttl(api: Api, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox, ping_ttl_s=1)
    await api.ok("PATCH", "/v1/admin/offers/med", json={"callback_ttl_s": 30})
    answer = await ping(api, key, lead=CALL_LEAD, channel="callback")
    await asyncio.sleep(1.1)
    bid = answer["bids"][0]["bid_id"]
    connected = await event(api, platform, answer["ping_id"], "connected", {"bid_id": bid, "lead": CALLER})
    assert connected["billable"] is True


async def test_concurrency_cap_on_live_calls(api: Api, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox, max_calls=1)
    first = await ping(api, key, lead=CALL_LEAD, channel="call")
    second = await ping(api, key, lead=CALL_LEAD, channel="call")
    wf = await waterfall(api, second["ping_id"])
    assert wf["a"]["outcome"] == "concurrency_cap_reached" and wf["b"]["outcome"] == "won"
    bid = first["bids"][0]["bid_id"]
    await event(api, platform, first["ping_id"], "connected", {"bid_id": bid, "lead": CALLER})
    third = await ping(api, key, lead=CALL_LEAD, channel="call")
    assert (await waterfall(api, third["ping_id"]))["a"]["outcome"] == "concurrency_cap_reached"
    await event(api, platform, first["ping_id"], "completed", {"bid_id": bid, "duration_s": 5})
    fourth = await ping(api, key, lead=CALL_LEAD, channel="call")
    assert (await waterfall(api, fourth["ping_id"]))["a"]["outcome"] == "won"
