"""Two `pingpost serve` processes over one PostgreSQL database, each running its webhook sender
(docs/events.md, "The sender"): events made through both are each sent exactly once to a real
receiver that checks every signature, none is lost, and when the lease holder stops the other
process takes the lease over and sends what comes next.

The lease lasts 60 s and is not a setting, so a SIGKILLed holder's takeover is not waited for here;
the two-sender takeover and the crash between send and record are tested in tests/api/test_webhooks.py
with a manual clock."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from pingpost.processes import stop
from tests.conftest import ADMIN_TOKEN, PG_URL
from tests.servers import PROCESSES, pingpost_server
from tests.support.receiver import Receiver, running_receiver

pytestmark = pytest.mark.skipif(not PG_URL, reason="PINGPOST_TEST_POSTGRES_URL is not set")

SECRET = "whsec_two_processes_0123456789"
SENDER = {"PINGPOST_WEBHOOK_SENDER": "true"}
EVENTS = 20  # deposits, alternating between the two processes
AFTER_HANDOVER = 4  # deposits through the remaining process once the lease holder has stopped
WAIT_S = 30.0


async def truncate(url: str) -> None:
    from tests.conftest import _truncate_pg

    await _truncate_pg(url)


async def lease_holder_pid(url: str) -> int | None:
    """The pid of the process holding the sender lease (the holder is `host:pid:random`), if live."""
    conn = await asyncpg.connect(url)
    try:
        row = await conn.fetchrow(
            "SELECT holder FROM sender_leases WHERE expires_at > (extract(epoch FROM clock_timestamp()) * 1000)::bigint"
        )
    finally:
        await conn.close()
    return int(str(row["holder"]).split(":")[1]) if row is not None and row["holder"] else None


def client(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)


async def created(c: httpx.AsyncClient, path: str, body: dict[str, Any]) -> Any:
    r = await c.post(path, json=body)
    assert r.status_code == 201, r.text
    return r.json()


async def deposit_event_ids(c: httpx.AsyncClient) -> set[str]:
    r = await c.get("/v1/admin/events", params={"type": "deposit.created", "limit": 500})
    assert r.status_code == 200, r.text
    return {e["id"] for e in r.json()["items"]}


async def settled(c: httpx.AsyncClient, hook_id: str, receiver: Receiver, want: int) -> list[dict[str, Any]]:
    """Poll the delivery log until `want` deliveries are all delivered (bounded by WAIT_S)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        r = await c.get(f"/v1/admin/webhooks/{hook_id}/deliveries", params={"limit": 500})
        assert r.status_code == 200, r.text
        items: list[dict[str, Any]] = r.json()["items"]
        if len(items) >= want and all(d["status"] == "delivered" for d in items):
            return items
        assert time.monotonic() < deadline, (len(items), [d["status"] for d in items], len(receiver.requests))
        await asyncio.sleep(0.3)


def assert_exactly_once(receiver: Receiver, deliveries: list[dict[str, Any]], expected: set[str]) -> None:
    received = [r["event_id"] for r in receiver.requests]
    counts = {event_id: received.count(event_id) for event_id in set(received)}
    assert receiver.bad_signatures == 0
    assert {e: n for e, n in counts.items() if n != 1} == {}, "an attempt was sent twice"
    assert receiver.duplicates == 0
    assert set(counts) == expected, "an event was lost, or one nobody made was sent"
    assert sorted(d["event_id"] for d in deliveries) == sorted(expected)  # one delivery per event
    assert {(d["status"], d["attempts"], d["last_status"]) for d in deliveries} == {("delivered", 1, 200)}


async def scenario(url: str, a: str, b: str) -> None:
    async with (
        running_receiver(secret=SECRET, now_s=lambda: int(time.time())) as receiver,
        client(a) as ca,
        client(b) as cb,
    ):
        await created(ca, "/v1/admin/buyers", {"id": "b1", "name": "Buyer"})
        hook = await created(ca, "/v1/admin/webhooks", {"url": receiver.url, "events": ["*"], "secret": SECRET})
        before = await deposit_event_ids(ca)  # none: the buyer's creation deposits nothing
        for i in range(EVENTS):
            await created(ca if i % 2 == 0 else cb, "/v1/admin/buyers/b1/deposits", {"amount_cents": 100 + i})
        made = await deposit_event_ids(cb) - before
        assert len(made) == EVENTS
        deliveries = await settled(ca, hook["id"], receiver, EVENTS)
        assert_exactly_once(receiver, deliveries, made)

        # Handover: the lease holder stops (releasing its lease); the other sends what comes next.
        holder = await lease_holder_pid(url)
        bases = {PROCESSES[a].pid: (a, cb), PROCESSES[b].pid: (b, ca)}
        assert holder in bases, (holder, list(bases))
        stopping, survivor = bases[holder]
        await asyncio.to_thread(stop, PROCESSES[stopping], grace_s=15)
        for i in range(AFTER_HANDOVER):
            await created(survivor, "/v1/admin/buyers/b1/deposits", {"amount_cents": 500 + i})
        made_after = await deposit_event_ids(survivor) - before
        assert len(made_after) == EVENTS + AFTER_HANDOVER
        deliveries = await settled(survivor, hook["id"], receiver, EVENTS + AFTER_HANDOVER)
        assert_exactly_once(receiver, deliveries, made_after)
        assert await lease_holder_pid(url) != holder


def test_two_server_processes_send_every_event_exactly_once(tmp_path: Path, pg_database: str) -> None:
    asyncio.run(truncate(pg_database))
    with (
        pingpost_server(pg_database, workdir=tmp_path, extra_env=SENDER) as a,
        pingpost_server(pg_database, workdir=tmp_path, extra_env=SENDER) as b,
    ):
        asyncio.run(scenario(pg_database, a, b))
