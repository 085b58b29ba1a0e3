"""A ping's write sent alone on PostgreSQL (docs/scale-out.md) is its own commit: when its answer is
lost after the server committed (a connection reset, PostgreSQL stopped between commit and reply, a
cancelled task), the ping fails but its reservations exist. The slots and cents it drew from this
process's leases must not be handed out again: the leases are retired (the sweep counts what was
written), never given back to the book. Found by review; before the fix a lost answer put a
contract over its cap and a buyer over its funds."""

from __future__ import annotations

import contextlib
from typing import Any

import asyncpg
import pytest

from pingpost.auction.leases import LeaseBook
from pingpost.db import postgres_store
from pingpost.db.store import Store, Tx
from tests.api.setup_data import LEAD
from tests.api.test_concurrency import CAP, FUNDED_SLOTS, PRICE
from tests.api.test_leases import leased, setup_exchange_in_process  # noqa: F401 - the fixture
from tests.conftest import Api


async def _lease_rows(tx: Tx) -> list[Any]:
    return await tx.fetch(
        "SELECT l.id, l.contract_id, l.slots, l.cents, l.state, "
        "(SELECT COUNT(*) FROM reservations r WHERE r.lease_id = l.id) AS n FROM leases l ORDER BY l.id"
    )


async def test_a_lost_answer_after_the_alone_write_committed_never_overdraws(
    leased: tuple[Api, LeaseBook],  # noqa: F811
    store: Store,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if store.dialect != "postgresql":
        pytest.skip("the write sent alone exists on PostgreSQL only")
    api, book = leased
    key = await setup_exchange_in_process(api)
    for _ in range(8):  # leases taken, then drawn from
        await api.ok("POST", "/v1/ping", json={"lead": LEAD}, token=key)
    assert book.held(), "no lease taken"

    original = postgres_store._PgTx.fetchval_last
    armed = {"left": 1, "hit": 0}

    class _AnswerLost:
        """The connection, but the answer to a statement sent alone is lost after the server ran it."""

        def __init__(self, tx: Any, conn: Any) -> None:
            self.tx, self.conn = tx, conn

        def __getattr__(self, name: str) -> Any:
            return getattr(self.conn, name)

        async def fetchval(self, *args: Any, **kwargs: Any) -> Any:
            value = await self.conn.fetchval(*args, **kwargs)
            if not self.tx.open and armed["left"]:  # sent alone: it committed as it ran
                armed["left"] -= 1
                armed["hit"] += 1
                raise asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed in the middle of operation")
            return value

    async def reply_lost(self: Any, sql: str, params: Any = None) -> Any:
        conn = self._conn
        self._conn = _AnswerLost(self, conn)
        try:
            return await original(self, sql, params)
        finally:
            self._conn = conn

    monkeypatch.setattr(postgres_store._PgTx, "fetchval_last", reply_lost)
    for _ in range(20):
        if armed["hit"]:
            break
        with contextlib.suppress(Exception):  # the ASGI transport re-raises the app's error
            await api.request("POST", "/v1/ping", json={"lead": LEAD}, token=key)
    assert armed["hit"] == 1, "no ping took the alone (no BEGIN) path"
    monkeypatch.setattr(postgres_store._PgTx, "fetchval_last", original)

    # The book must agree with the database: slots left + reservations drawn == the lease's slots.
    rows = {r["id"]: r for r in await store.read(_lease_rows)}
    book_vs_db = [
        (lease.id, lease.slots_left, int(rows[lease.id]["n"]), int(rows[lease.id]["slots"]))
        for lease in book.held()
        if lease.id in rows
    ]

    # Keep selling until the capped contract and the funded buyer stop winning, then give every lease back.
    for _ in range(CAP + FUNDED_SLOTS + 20):
        await api.ok("POST", "/v1/ping", json={"lead": LEAD}, token=key)
    for lease in book.held():
        book.retire(lease)
    await book.sweep()

    async def totals(tx: Tx) -> dict[str, int]:
        capped = await tx.fetchval(
            "SELECT COUNT(*) FROM reservations WHERE contract_id = 'capped' AND state IN ('held', 'posting', 'sold')"
        )
        funded = await tx.fetchval(
            "SELECT COALESCE(SUM(amount_cents), 0) FROM reservations "
            "WHERE buyer_id = 'funded-buyer' AND state IN ('held', 'posting', 'sold')"
        )
        used = await tx.fetchval("SELECT day_used FROM contract_usage WHERE contract_id = 'capped'")
        holds = await tx.fetchval("SELECT holds_cents FROM buyer_funds WHERE buyer_id = 'funded-buyer'")
        return {"capped": int(capped), "funded_cents": int(funded), "day_used": int(used), "holds": int(holds)}

    seen = await store.read(totals)
    overdrawn = [(r["id"], int(r["n"]), int(r["slots"])) for r in await store.read(_lease_rows) if r["n"] > r["slots"]]
    assert seen["capped"] <= CAP and seen["day_used"] <= CAP, ("over the daily cap", seen)
    assert seen["funded_cents"] <= FUNDED_SLOTS * PRICE and seen["holds"] <= FUNDED_SLOTS * PRICE, (
        "over the buyer's funds",
        seen,
    )
    assert all(left + n == slots for _, left, n, slots in book_vs_db), ("book ahead of the database", book_vs_db)
    assert not overdrawn, ("lease with more reservations than slots", overdrawn)
