"""Process leases in one process, on both stores (docs/scale-out.md): winners draw from a lease, the
counters equal what reservations and live leases account for, a sweep gives back what is unused, a
lease that ended is never drawn from again, and a post sells a drawn reservation like any other."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from pingpost.app import create_app
from pingpost.auction.leases import LeaseBook
from pingpost.config import Settings
from pingpost.db import auction_repo, leases_repo
from pingpost.db.store import Store, Tx
from tests.api.setup_data import LEAD
from tests.api.test_concurrency import CAP, FUNDED_SLOTS, setup_exchange_with
from tests.conftest import Api


@pytest.fixture
async def leased(settings: Settings, store: Store) -> Any:
    app = create_app(settings.model_copy(update={"leases": True, "lease_ttl_ms": 60_000}), store=store)
    async with app.router.lifespan_context(app):
        book = app.state.services.auction.leases
        assert isinstance(book, LeaseBook)
        book.stop_upkeep()  # the test sweeps
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield Api(client), book


async def counts(tx: Tx) -> dict[str, Any]:
    usage = {r["contract_id"]: int(r["day_used"]) for r in await tx.fetch("SELECT * FROM contract_usage")}
    holds = {r["buyer_id"]: int(r["holds_cents"]) for r in await tx.fetch("SELECT * FROM buyer_funds")}
    rows = await tx.fetch("SELECT contract_id, buyer_id, amount_cents, state, lease_id FROM reservations")
    leases = await tx.fetch("SELECT * FROM leases WHERE state = 'active'")
    return {"usage": usage, "holds": holds, "reservations": rows, "leases": leases}


def check_accounts(seen: dict[str, Any]) -> None:
    """used = sold/live reservations + active leases' unused slots; holds likewise in cents."""
    rows, leases = seen["reservations"], seen["leases"]
    for contract, used in seen["usage"].items():
        taken = sum(1 for r in rows if r["contract_id"] == contract and r["state"] in ("held", "posting", "sold"))
        out = sum(
            int(x["slots"]) - sum(1 for r in rows if r["lease_id"] == x["id"])
            for x in leases
            if x["contract_id"] == contract
        )
        assert used == taken + out, (contract, used, taken, out)
    for buyer, held in seen["holds"].items():
        live = sum(int(r["amount_cents"]) for r in rows if r["buyer_id"] == buyer and r["state"] in ("held", "posting"))
        out = sum(
            int(x["cents"]) - sum(int(r["amount_cents"]) for r in rows if r["lease_id"] == x["id"])
            for x in leases
            if x["buyer_id"] == buyer
        )
        assert held == live + out, (buyer, held, live, out)


async def test_winners_draw_from_leases_and_the_counters_stay_exact(
    leased: tuple[Api, LeaseBook], store: Store, tmp_path: Path
) -> None:
    api, book = leased
    key = await setup_exchange_in_process(api)
    for _ in range(12):
        answer = await api.ok("POST", "/v1/ping", json={"lead": LEAD}, token=key)
        assert len(answer["bids"]) == 2
    seen = await store.read(counts)
    check_accounts(seen)
    drawn = [r for r in seen["reservations"] if r["lease_id"]]
    assert seen["leases"] and len(drawn) >= 6, "winners did not draw from leases"

    # A post sells a drawn reservation like any other.
    answer = await api.ok("POST", "/v1/ping", json={"lead": LEAD}, token=key)
    full = {**LEAD, "first_name": "Ann", "phone": "3055551234"}
    await api.ok("POST", "/v1/post", json={"ping_id": answer["ping_id"], "lead": full}, token=key)
    check_accounts(await store.read(counts))

    # Retired leases end at the next sweep; their unused slots and cents go back.
    for lease in book.held():
        book.retire(lease)
    assert await book.sweep() >= 1
    seen = await store.read(counts)
    assert seen["leases"] == []
    check_accounts(seen)
    summary = {r["contract_id"]: r for r in await store.read(lambda tx: leases_repo.summary(tx, since=0))}
    assert summary["capped"]["active"] == 0 and summary["capped"]["used_slots"] >= 1
    assert summary["capped"]["stranded_slots"] == 0  # ended within their period


async def test_a_lease_ended_elsewhere_is_never_drawn_from_again(leased: tuple[Api, LeaseBook], store: Store) -> None:
    api, book = leased
    key = await setup_exchange_in_process(api)
    for _ in range(6):
        await api.ok("POST", "/v1/ping", json={"lead": LEAD}, token=key)
    held = book.held()
    assert held

    async def end_all(tx: Tx) -> list[dict[str, Any]]:  # as another process's sweep would
        return await leases_repo.end(tx, now=await tx.now_ms(), ids=[lease.id for lease in held])

    assert len(await store.write(end_all)) == len(held)
    answer = await api.ok("POST", "/v1/ping", json={"lead": LEAD}, token=key)
    assert len(answer["bids"]) == 2  # ran again the careful way
    seen = await store.read(counts)
    assert not any(r["lease_id"] in {lease.id for lease in held} for r in seen["reservations"][-2:])
    check_accounts(seen)


async def setup_exchange_in_process(api: Api) -> str:
    """The exchange of tests/api/test_concurrency.py (a capped and a funded contract), in process."""

    async def post(path: str, body: dict[str, Any]) -> Any:
        return await api.ok("POST", path, 201, json=body)

    return await setup_exchange_with(post)


@pytest.mark.parametrize("first_read", ["shared", "lapsed"])
async def test_concurrent_pings_share_one_state_read_and_sell_exactly(
    leased: tuple[Api, LeaseBook], store: Store, monkeypatch: pytest.MonkeyPatch, first_read: str
) -> None:
    """PostgreSQL: pings of the same contracts asking while a state read is on its way share it
    (docs/performance.md, "Scale-out"); a shared read that found a lapsed reservation (or failed) makes
    every ping read again on its own. Either way no cap or fund is passed and the accounts add up."""
    api, book = leased
    key = await setup_exchange_in_process(api)
    reads: list[int] = []
    real = auction_repo.read_counters

    async def counted(tx: Tx, contract_ids: Sequence[str], buyer_ids: Sequence[str]) -> auction_repo.SharedRead | None:
        reads.append(len(reads))
        read = await real(tx, contract_ids, buyer_ids)
        return None if first_read == "lapsed" and len(reads) == 1 else read

    monkeypatch.setattr(auction_repo, "read_counters", counted)
    pings = CAP + FUNDED_SLOTS + 10  # more than the capped contract and the funded buyer can take

    async def burst(n: int) -> int:
        answers = await asyncio.gather(
            *(api.ok("POST", "/v1/ping", json={"lead": {**LEAD, "zip": f"33{i:03d}"}}, token=key) for i in range(n))
        )
        return sum(len(a["bids"]) for a in answers)

    won = await burst(pings)
    if store.dialect == "postgresql":
        assert 0 < len(reads) < pings / 2, reads  # shared: far fewer reads than pings
    else:
        assert reads == []  # SQLite's write batch shares its reads its own way
    check_accounts(await store.read(counts))
    for _ in range(5):  # what leases hold unused goes back, and is sold to the next pings
        for lease in book.held():
            book.retire(lease)
        await book.sweep()
        more = await burst(pings)
        won += more
        if not more:
            break
    seen = await store.read(counts)
    check_accounts(seen)
    sold = {c: sum(1 for r in seen["reservations"] if r["contract_id"] == c) for c in ("capped", "funded")}
    assert sold == {"capped": CAP, "funded": FUNDED_SLOTS}
    assert won == CAP + FUNDED_SLOTS
