"""Process leases of cap slots and funds (docs/scale-out.md) on PostgreSQL with 4 `pingpost serve`
processes: caps and funds never exceeded while leases are out, the counters always equal what the
reservations and the live leases account for, a SIGKILLed process's leases are given back by the
others once expired, and what leases leave unfilled is filled once they are given back."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.api.test_concurrency import CAP, FUNDED_SLOTS, fire, setup_exchange
from tests.conftest import PG_URL
from tests.servers import kill_server, pingpost_server

pytestmark = pytest.mark.skipif(not PG_URL, reason="PINGPOST_TEST_POSTGRES_URL is not set")

TTL_MS = 1200
LEASES = {"PINGPOST_LEASES": "true", "PINGPOST_LEASE_TTL_MS": str(TTL_MS), "PINGPOST_LEASE_MAX_SLOTS": "50"}
VICTIM_TTL_MS = 3000  # long enough that it surely holds a lease when it is killed, on a slow machine too
VICTIM = {**LEASES, "PINGPOST_LEASE_TTL_MS": str(VICTIM_TTL_MS)}


async def accounts(url: str) -> dict[str, Any]:
    """Counters against what reservations and active leases account for (the invariant of
    docs/scale-out.md): used = live or sold reservations + active leases' unused slots;
    holds = live reservations' amounts + active leases' unused cents."""
    conn = await asyncpg.connect(url)
    try:
        usage = {
            r["contract_id"]: r
            for r in await conn.fetch("SELECT contract_id, day_key, day_used, month_used FROM contract_usage")
        }
        holds = {r["buyer_id"]: int(r["holds_cents"]) for r in await conn.fetch("SELECT * FROM buyer_funds")}
        taken = {
            r["contract_id"]: int(r["n"])
            for r in await conn.fetch(
                "SELECT contract_id, COUNT(*) AS n FROM reservations WHERE state IN ('held', 'posting', 'sold') "
                "GROUP BY contract_id"
            )
        }
        live_cents = {
            r["buyer_id"]: int(r["a"])
            for r in await conn.fetch(
                "SELECT buyer_id, SUM(amount_cents) AS a FROM reservations WHERE state IN ('held', 'posting') "
                "GROUP BY buyer_id"
            )
        }
        leases = await conn.fetch(
            "SELECT l.contract_id, l.buyer_id, l.slots, l.cents, l.expires_at, "
            "(SELECT COUNT(*) FROM reservations r WHERE r.lease_id = l.id) AS n, "
            "(SELECT COALESCE(SUM(amount_cents), 0) FROM reservations r WHERE r.lease_id = l.id) AS a "
            "FROM leases l WHERE l.state = 'active'"
        )
        ever = int(await conn.fetchval("SELECT COUNT(*) FROM leases"))
        now = int(await conn.fetchval("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"))
    finally:
        await conn.close()
    leased_slots: dict[str, int] = {}
    leased_cents: dict[str, int] = {}
    for lease in leases:
        leased_slots[lease["contract_id"]] = leased_slots.get(lease["contract_id"], 0) + lease["slots"] - lease["n"]
        leased_cents[lease["buyer_id"]] = leased_cents.get(lease["buyer_id"], 0) + lease["cents"] - int(lease["a"])
    for contract_id, u in usage.items():
        expected = taken.get(contract_id, 0) + leased_slots.get(contract_id, 0)
        assert u["day_used"] == expected, (contract_id, u["day_used"], expected)
    for buyer_id, held in holds.items():
        assert held == live_cents.get(buyer_id, 0) + leased_cents.get(buyer_id, 0), buyer_id
    return {
        "capped": taken.get("capped", 0),
        "funded": taken.get("funded", 0),
        "active_leases": len(leases),
        "leases_ever": ever,
        "oldest_expiry_past_ms": max((now - int(lease["expires_at"]) for lease in leases), default=0),
        "used": {c: u["day_used"] for c, u in usage.items()},
    }


async def truncate(url: str) -> None:
    from tests.conftest import _truncate_pg

    await _truncate_pg(url)


def won(answers: list[dict[str, Any]]) -> int:
    return sum(len(a["bids"]) for a in answers)


def test_four_processes_never_oversell_and_a_killed_one_strands_nothing_past_expiry(
    tmp_path: Path, pg_database: str
) -> None:
    asyncio.run(truncate(pg_database))
    with (
        pingpost_server(pg_database, workdir=tmp_path, extra_env=LEASES) as a,
        pingpost_server(pg_database, workdir=tmp_path, extra_env=LEASES) as b,
        pingpost_server(pg_database, workdir=tmp_path, extra_env=LEASES) as c,
        pingpost_server(pg_database, workdir=tmp_path, extra_env=VICTIM) as victim,
    ):
        key = asyncio.run(setup_exchange(a))
        # The victim alone first: the leases out are its own. Then it dies holding them.
        total = 0
        for _ in range(4):  # until it holds a lease (a used-up one is ended by its next sweep)
            total += won(asyncio.run(fire([victim], key, 10)))
            held = asyncio.run(accounts(pg_database))
            if held["active_leases"]:
                break
        assert held["active_leases"] > 0, held
        assert held["capped"] <= CAP and held["funded"] <= FUNDED_SLOTS, held
        kill_server(victim)
        time.sleep(VICTIM_TTL_MS / 1000 + 0.6)  # its leases expire; a live process's sweep (every TTL / 8) ends them
        after = asyncio.run(accounts(pg_database))
        assert after["active_leases"] == 0, after  # ended by the others; the counters add up (accounts)
        bases = [a, b, c]
        for _ in range(6):  # rounds: leases out in one are given back (expiry, used up) before the next
            total += won(asyncio.run(fire(bases, key, 120)))
            seen = asyncio.run(accounts(pg_database))
            assert seen["capped"] <= CAP and seen["funded"] <= FUNDED_SLOTS, seen
            assert seen["used"]["capped"] <= CAP, seen
            if seen["capped"] == CAP and seen["funded"] == FUNDED_SLOTS:
                break
            time.sleep(TTL_MS / 1000)
        assert seen["leases_ever"] > 0, "the processes never leased"
        assert (seen["capped"], seen["funded"]) == (CAP, FUNDED_SLOTS), seen
        assert total == CAP + FUNDED_SLOTS
    final = asyncio.run(accounts(pg_database))  # stopped cleanly: every lease given back
    assert final["active_leases"] == 0, final
    assert final["used"]["capped"] == CAP
