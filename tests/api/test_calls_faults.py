"""Call events under crashes and concurrency (SPEC 12; docs/crash-safety.md, "Call events").

A crash is `faults.SimulatedCrash` raised at a named point of the handler: it propagates out of the
request, and the transaction in progress rolls back, as if the process died there. The platform then
retries the same event through HTTP; the retry must finish the work and answer what the first call
would have, with money charged exactly once.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pingpost import faults
from pingpost.clock import ManualClock, use_clock
from pingpost.db.store import Row, Store
from pingpost.ids import now_ms
from tests.api.setup_data import ping, waterfall
from tests.api.test_ledger import ledger_invariants
from tests.api.test_post import saw_pii
from tests.conftest import Api, Sandbox
from tests.support.calls import CALL_LEAD, CALLER, call_setup, event

CONNECTED_POINTS = [
    "call_connected_in_claim",
    "call_connected_after_claim",
    "call_connected_before_record",
    "call_connected_in_record",
    "call_connected_after_record",
]


class CrashAt:
    """An injector that kills the handler at `point` (once) and remembers every point reached."""

    def __init__(self, point: str) -> None:
        self.point = point
        self.reached: list[str] = []

    def __call__(self, point: str) -> None:
        self.reached.append(point)
        if point == self.point:
            raise faults.SimulatedCrash(point)


async def crash(api: Api, platform: str, ping_id: str, kind: str, body: dict[str, Any], point: str) -> None:
    """Send the event and die at `point`; fails unless the handler reached it."""
    injector = CrashAt(point)
    with faults.inject(injector), pytest.raises(faults.SimulatedCrash):
        await api.request("POST", f"/v1/calls/{ping_id}/{kind}", token=platform, json=body)
    assert point in injector.reached, injector.reached


async def fetch(store: Store, sql: str, params: dict[str, Any] | None = None) -> list[Row]:
    return await store.read(lambda tx: tx.fetch(sql, params))


async def buyer_money(api: Api, name: str) -> tuple[int, int]:
    view = await api.ok("GET", f"/v1/admin/buyers/{name}")
    return int(view["balance_cents"]), int(view["holds_cents"])


async def live_calls(store: Store, contract_id: str) -> int:
    [row] = await fetch(store, "SELECT live_calls FROM contract_usage WHERE contract_id = :c", {"c": contract_id})
    return int(row["live_calls"])


async def data_posts(sandbox: Sandbox, buyer: str) -> int:
    return len([r for r in await sandbox.received(buyer) if r["path"].startswith("/deliver")])


@pytest.mark.parametrize("billable_after_s", [0, 90])
@pytest.mark.parametrize("point", CONNECTED_POINTS)
async def test_connected_retry_after_a_crash_finishes_the_work(
    api: Api, store: Store, sandbox: Sandbox, point: str, billable_after_s: int
) -> None:
    key, platform = await call_setup(api, sandbox, billable_after_s=billable_after_s)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call")
    ping_id, bid = answer["ping_id"], answer["bids"][0]["bid_id"]
    body = {"bid_id": bid, "lead": CALLER}
    await crash(api, platform, ping_id, "connected", body, point)

    retry = await event(api, platform, ping_id, "connected", body)
    [sale] = await fetch(store, "SELECT * FROM sales WHERE ping_id = :p", {"p": ping_id})
    billed_now = billable_after_s == 0
    assert retry == {"sale_id": sale["id"], "billable": True if billed_now else None, "data_post": "post_accepted"}
    assert await event(api, platform, ping_id, "connected", body) == retry  # and it stays answered
    assert sale["bid_id"] == bid and sale["status"] == ("charged" if billed_now else "pending")
    charges = await fetch(
        store, "SELECT id FROM ledger_transactions WHERE kind = 'sale' AND sale_id = :s", {"s": sale["id"]}
    )
    assert len(charges) == (1 if billed_now else 0)
    assert await buyer_money(api, "buyer-a") == ((91_000, 0) if billed_now else (100_000, 9000))
    for name in ("buyer-b", "buyer-c"):  # the standbys were released exactly once
        assert await buyer_money(api, name) == (100_000, 0)
    [reservation] = await fetch(store, "SELECT * FROM reservations WHERE bid_id = :b", {"b": bid})
    assert reservation["state"] == ("sold" if billed_now else "posting") and reservation["live_call"]
    assert await live_calls(store, "a") == 1
    [delivery] = await fetch(store, "SELECT * FROM deliveries WHERE bid_id = :b", {"b": bid})
    assert delivery["state"] == "accepted"
    # the caller record is sent again only when a crash lost the first data post's result
    resent = point in ("call_connected_before_record", "call_connected_in_record")
    assert await data_posts(sandbox, "a") == (2 if resent else 1)
    assert saw_pii(await sandbox.received("a")) and not saw_pii(await sandbox.received("b"))
    wf = await waterfall(api, ping_id)
    assert wf["a"]["post_outcome"] == ("call_billable" if billed_now else "call_connected")
    assert wf["a"]["sale_id"] == sale["id"]
    events = [e["type"] for e in (await api.ok("GET", f"/v1/admin/pings/{ping_id}"))["events"]]
    assert events.count("connected") == 1 and events.count("data_post") == 1
    assert (await api.ok("GET", "/v1/admin/reconciliation"))["items"] == []

    done = await event(api, platform, ping_id, "completed", {"bid_id": bid, "duration_s": 120})
    assert done == {"sale_id": sale["id"], "billable": True}
    assert await buyer_money(api, "buyer-a") == (91_000, 0)
    assert await live_calls(store, "a") == 0
    await ledger_invariants(store)


async def test_connected_survives_a_crash_in_every_retry(api: Api, store: Store, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call")
    ping_id, bid = answer["ping_id"], answer["bids"][0]["bid_id"]
    body = {"bid_id": bid, "lead": CALLER}
    for point in CONNECTED_POINTS[1:]:  # each retry gets one step further before it dies
        await crash(api, platform, ping_id, "connected", body, point)
    retry = await event(api, platform, ping_id, "connected", body)
    [sale] = await fetch(store, "SELECT * FROM sales WHERE ping_id = :p", {"p": ping_id})
    assert retry == {"sale_id": sale["id"], "billable": True, "data_post": "post_accepted"}
    assert await buyer_money(api, "buyer-a") == (91_000, 0)
    assert len(await fetch(store, "SELECT id FROM ledger_transactions WHERE kind = 'sale'")) == 1
    conflict = await api.request(
        "POST",
        f"/v1/calls/{ping_id}/connected",
        token=platform,
        json={"bid_id": bid, "lead": {**CALLER, "first_name": "Other"}},
    )
    assert (conflict.status_code, conflict.json()["error"]["code"]) == (409, "event_conflict")
    await ledger_invariants(store)


async def test_connected_claimed_by_an_older_version_is_finished(api: Api, store: Store, sandbox: Sandbox) -> None:
    """Before claims were stored, a crash left the event row with an empty answer: its retry finishes too."""
    key, platform = await call_setup(api, sandbox)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call")
    ping_id, bid = answer["ping_id"], answer["bids"][0]["bid_id"]
    body = {"bid_id": bid, "lead": CALLER}
    await crash(api, platform, ping_id, "connected", body, "call_connected_after_claim")
    await store.write(lambda tx: tx.execute("UPDATE call_events SET answer = '' WHERE ping_id = :p", {"p": ping_id}))
    retry = await event(api, platform, ping_id, "connected", body)
    [sale] = await fetch(store, "SELECT * FROM sales WHERE ping_id = :p", {"p": ping_id})
    assert retry == {"sale_id": sale["id"], "billable": True, "data_post": "post_accepted"}
    assert await buyer_money(api, "buyer-a") == (91_000, 0)
    await ledger_invariants(store)


async def test_duplicate_events_at_once_answer_the_same(api: Api, store: Store, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call")
    ping_id, bid = answer["ping_id"], answer["bids"][0]["bid_id"]
    for kind, body in (("connected", {"bid_id": bid, "lead": CALLER}), ("completed", {"bid_id": bid, "duration_s": 5})):
        first, second = await asyncio.gather(
            *(api.request("POST", f"/v1/calls/{ping_id}/{kind}", token=platform, json=body) for _ in range(2))
        )
        assert (first.status_code, second.status_code) == (200, 200), (first.text, second.text)
        assert first.json() == second.json()
    assert len(await fetch(store, "SELECT id FROM sales WHERE ping_id = :p", {"p": ping_id})) == 1
    assert await data_posts(sandbox, "a") == 1  # the duplicate waited for the first, then replayed it
    assert await buyer_money(api, "buyer-a") == (91_000, 0)
    assert await live_calls(store, "a") == 0
    await ledger_invariants(store)


async def test_reconciliation_never_voids_a_billed_call(api: Api, store: Store, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call")
    ping_id, bid = answer["ping_id"], answer["bids"][0]["bid_id"]
    body = {"bid_id": bid, "lead": CALLER}
    await crash(api, platform, ping_id, "connected", body, "call_connected_after_claim")
    [sale] = await fetch(store, "SELECT * FROM sales WHERE ping_id = :p", {"p": ping_id})
    [unknown] = (await api.ok("GET", "/v1/admin/reconciliation"))["items"]
    assert unknown["bid_id"] == bid and unknown["post_outcome"] == "post_unknown"

    r = await api.request("POST", f"/v1/admin/reconciliation/{unknown['delivery_id']}/void")
    assert (r.status_code, r.json()["error"]["code"]) == (409, "sale_exists"), r.text
    assert r.json()["error"]["details"] == {"sale_id": sale["id"], "status": "charged"}
    [after] = await fetch(store, "SELECT status FROM sales WHERE ping_id = :p", {"p": ping_id})
    assert after["status"] == "charged"
    wf = await waterfall(api, ping_id)
    assert (wf["a"]["post_outcome"], wf["a"]["sale_id"]) == ("call_billable", sale["id"])
    assert await buyer_money(api, "buyer-a") == (91_000, 0)

    # recording it says the buyer has the caller record: the call's sale stands, nothing more is charged
    recorded = await api.ok("POST", f"/v1/admin/reconciliation/{unknown['delivery_id']}/record-sale")
    assert recorded == {"delivery_id": unknown["delivery_id"], "state": "recorded", "sale_id": sale["id"]}
    wf = await waterfall(api, ping_id)
    assert (wf["a"]["post_outcome"], wf["a"]["sale_id"]) == ("call_billable", sale["id"])
    retry = await event(api, platform, ping_id, "connected", body)
    assert retry == {"sale_id": sale["id"], "billable": True, "data_post": "post_accepted"}
    assert await data_posts(sandbox, "a") == 0  # settled by the operator: never sent afterwards
    assert await buyer_money(api, "buyer-a") == (91_000, 0)
    assert len(await fetch(store, "SELECT id FROM ledger_transactions WHERE kind = 'sale'")) == 1
    await ledger_invariants(store)


async def test_void_of_a_call_delivery_after_its_sale_is_reversed(api: Api, store: Store, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call")
    ping_id, bid = answer["ping_id"], answer["bids"][0]["bid_id"]
    await crash(api, platform, ping_id, "connected", {"bid_id": bid, "lead": CALLER}, "call_connected_after_claim")
    [sale] = await fetch(store, "SELECT * FROM sales WHERE ping_id = :p", {"p": ping_id})
    await api.ok("POST", f"/v1/admin/sales/{sale['id']}/reverse", json={"reason": "caller hung up at once"})
    [unknown] = (await api.ok("GET", "/v1/admin/reconciliation"))["items"]
    voided = await api.ok("POST", f"/v1/admin/reconciliation/{unknown['delivery_id']}/void")
    assert voided == {"delivery_id": unknown["delivery_id"], "state": "voided", "sale_id": None}
    assert await buyer_money(api, "buyer-a") == (100_000, 0)
    wf = await waterfall(api, ping_id)
    assert wf["a"]["sale_id"] == sale["id"] and wf["a"]["reversal"]["reason"] == "caller hung up at once"
    await ledger_invariants(store)


@pytest.mark.parametrize("point", ["call_failed_after_release", "call_failed_after_commit"])
async def test_failed_retry_after_a_crash(api: Api, store: Store, sandbox: Sandbox, point: str) -> None:
    key, platform = await call_setup(api, sandbox, max_calls=1)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call")
    ping_id, bid = answer["ping_id"], answer["bids"][0]["bid_id"]
    body = {"bid_id": bid, "reason": "busy"}
    await crash(api, platform, ping_id, "failed", body, point)
    retry = await event(api, platform, ping_id, "failed", body)
    assert retry["next_bid"]["transfer"] == {"sip": "sip:queue@b.example"}
    assert await event(api, platform, ping_id, "failed", body) == retry
    assert await buyer_money(api, "buyer-a") == (100_000, 0)
    assert await buyer_money(api, "buyer-b") == (100_000, 8000)
    assert await live_calls(store, "a") == 0  # given back once (it never goes below zero, so count up)
    states = {
        r["contract_id"]: r["state"]
        for r in await fetch(store, "SELECT contract_id, state FROM reservations WHERE ping_id = :p", {"p": ping_id})
    }
    assert states == {"a": "released", "b": "held", "c": "held"}
    # the slot freed by `failed` is free exactly once: one new call takes it, the next finds it full
    again = await ping(api, key, lead=CALL_LEAD, channel="call")
    assert (await waterfall(api, again["ping_id"]))["a"]["outcome"] == "won"
    full = await ping(api, key, lead=CALL_LEAD, channel="call")
    assert (await waterfall(api, full["ping_id"]))["a"]["outcome"] == "concurrency_cap_reached"
    await ledger_invariants(store)


@pytest.mark.parametrize("billable_after_s", [0, 90])
@pytest.mark.parametrize("point", ["call_completed_after_settle", "call_completed_after_commit"])
async def test_completed_retry_after_a_crash(
    api: Api, store: Store, sandbox: Sandbox, point: str, billable_after_s: int
) -> None:
    key, platform = await call_setup(api, sandbox, billable_after_s=billable_after_s, max_calls=1)
    answer = await ping(api, key, lead=CALL_LEAD, channel="call")
    ping_id, bid = answer["ping_id"], answer["bids"][0]["bid_id"]
    connected = await event(api, platform, ping_id, "connected", {"bid_id": bid, "lead": CALLER})
    body = {"bid_id": bid, "duration_s": 120}
    await crash(api, platform, ping_id, "completed", body, point)
    retry = await event(api, platform, ping_id, "completed", body)
    assert retry == {"sale_id": connected["sale_id"], "billable": True}
    assert await event(api, platform, ping_id, "completed", body) == retry
    assert await buyer_money(api, "buyer-a") == (91_000, 0)
    assert len(await fetch(store, "SELECT id FROM ledger_transactions WHERE kind = 'sale'")) == 1
    assert await live_calls(store, "a") == 0
    [reservation] = await fetch(store, "SELECT * FROM reservations WHERE bid_id = :b", {"b": bid})
    assert reservation["state"] == "sold" and not reservation["live_call"]
    await ledger_invariants(store)


async def test_callbacks_respect_max_concurrent_calls(api: Api, store: Store, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox, max_calls=1)
    first = await ping(api, key, lead=CALL_LEAD, channel="callback")
    second = await ping(api, key, lead=CALL_LEAD, channel="callback")
    for answer in (first, second):  # a callback takes its live slot at `connected`, not at the win
        assert (await waterfall(api, answer["ping_id"]))["a"]["outcome"] == "won"
    bid1, bid2 = first["bids"][0]["bid_id"], second["bids"][0]["bid_id"]
    await event(api, platform, first["ping_id"], "connected", {"bid_id": bid1, "lead": CALLER})
    assert await live_calls(store, "a") == 1

    before = await fetch(
        store,
        "SELECT bid_id, state, live_call, expires_at FROM reservations WHERE ping_id = :p ORDER BY bid_id",
        {"p": second["ping_id"]},
    )
    r = await api.request(
        "POST", f"/v1/calls/{second['ping_id']}/connected", token=platform, json={"bid_id": bid2, "lead": CALLER}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (409, "concurrency_cap_reached"), r.text
    # ... and changes nothing: no slot, no sale, no data post, the standbys still held
    assert await live_calls(store, "a") == 1
    assert (
        await fetch(
            store,
            "SELECT bid_id, state, live_call, expires_at FROM reservations WHERE ping_id = :p ORDER BY bid_id",
            {"p": second["ping_id"]},
        )
        == before
    )
    assert await fetch(store, "SELECT id FROM sales WHERE ping_id = :p", {"p": second["ping_id"]}) == []
    assert await data_posts(sandbox, "a") == 1
    assert (await waterfall(api, second["ping_id"]))["a"].get("post_outcome") is None

    await event(api, platform, first["ping_id"], "completed", {"bid_id": bid1, "duration_s": 30})
    assert await live_calls(store, "a") == 0
    connected = await event(api, platform, second["ping_id"], "connected", {"bid_id": bid2, "lead": CALLER})
    assert connected["billable"] is True and connected["data_post"] == "post_accepted"
    assert await live_calls(store, "a") == 1
    await event(api, platform, second["ping_id"], "completed", {"bid_id": bid2, "duration_s": 30})
    await event(api, platform, second["ping_id"], "completed", {"bid_id": bid2, "duration_s": 30})
    assert await live_calls(store, "a") == 0
    assert await buyer_money(api, "buyer-a") == (82_000, 0)
    await ledger_invariants(store)


async def test_callback_at_the_cap_rings_the_next_bid(api: Api, store: Store, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox, max_calls=1)
    first = await ping(api, key, lead=CALL_LEAD, channel="callback")
    second = await ping(api, key, lead=CALL_LEAD, channel="callback")
    bid1, bid2 = first["bids"][0]["bid_id"], second["bids"][0]["bid_id"]
    await event(api, platform, first["ping_id"], "connected", {"bid_id": bid1, "lead": CALLER})
    r = await api.request(
        "POST", f"/v1/calls/{second['ping_id']}/connected", token=platform, json={"bid_id": bid2, "lead": CALLER}
    )
    assert r.status_code == 409
    nxt = await event(api, platform, second["ping_id"], "failed", {"bid_id": bid2, "reason": "rejected"})
    assert nxt["next_bid"]["transfer"] == {"sip": "sip:queue@b.example"}
    assert await live_calls(store, "a") == 1  # `failed` gave back no slot the callback never took
    connected = await event(
        api, platform, second["ping_id"], "connected", {"bid_id": nxt["next_bid"]["bid_id"], "lead": CALLER}
    )
    assert connected["billable"] is True
    assert (await live_calls(store, "a"), await live_calls(store, "b")) == (1, 1)
    await ledger_invariants(store)


async def test_a_lapsed_pending_call_gives_its_live_slot_back_once(api: Api, store: Store, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox, billable_after_s=90, max_calls=1)
    await api.ok("PATCH", "/v1/admin/offers/med", json={"max_call_duration_s": 60})
    with use_clock(ManualClock(now_ms())) as clock:
        first = await ping(api, key, lead=CALL_LEAD, channel="call")
        bid1 = first["bids"][0]["bid_id"]
        await event(api, platform, first["ping_id"], "connected", {"bid_id": bid1, "lead": CALLER})
        clock.advance(61_000)  # the call outlives max_call_duration_s: its reservation lapses
        second = await ping(api, key, lead=CALL_LEAD, channel="call")
        assert (await waterfall(api, second["ping_id"]))["a"]["outcome"] == "won"
        assert await live_calls(store, "a") == 1  # the lapsed call's slot went to the new call
        done = await event(api, platform, first["ping_id"], "completed", {"bid_id": bid1, "duration_s": 120})
        assert done["billable"] is True
        assert await live_calls(store, "a") == 1  # the second call is still live
        third = await ping(api, key, lead=CALL_LEAD, channel="call")
        assert (await waterfall(api, third["ping_id"]))["a"]["outcome"] == "concurrency_cap_reached"
    await ledger_invariants(store)


async def test_a_callback_may_take_the_slot_of_a_call_that_lapsed(api: Api, store: Store, sandbox: Sandbox) -> None:
    key, platform = await call_setup(api, sandbox, max_calls=1)
    await api.ok("PATCH", "/v1/admin/offers/med", json={"max_call_duration_s": 60})
    with use_clock(ManualClock(now_ms())) as clock:
        first = await ping(api, key, lead=CALL_LEAD, channel="callback")
        second = await ping(api, key, lead=CALL_LEAD, channel="callback")
        bid1, bid2 = first["bids"][0]["bid_id"], second["bids"][0]["bid_id"]
        await event(api, platform, first["ping_id"], "connected", {"bid_id": bid1, "lead": CALLER})
        clock.advance(61_000)  # the platform never reported `completed`: the first call lapsed
        connected = await event(api, platform, second["ping_id"], "connected", {"bid_id": bid2, "lead": CALLER})
        assert connected["billable"] is True
        assert await live_calls(store, "a") == 1
        await event(api, platform, first["ping_id"], "completed", {"bid_id": bid1, "duration_s": 61})
        assert await live_calls(store, "a") == 1  # the lapsed call's slot is not given back twice
    await ledger_invariants(store)
