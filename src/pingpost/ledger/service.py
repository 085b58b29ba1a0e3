"""The double-entry ledger: every movement one zero-sum transaction; balances derive from entries."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from pingpost import errors
from pingpost.db.store import Store, Tx
from pingpost.domain.money import Entry, balanced, deposit_entries
from pingpost.ids import new_id, now_ms
from pingpost.timefmt import rfc3339

ACCOUNT = re.compile(r"^(buyer|partner):[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$|^house:(revenue|cash)$")


async def record_transaction(tx: Tx, *, kind: str, entries: Sequence[Entry], now: int,
                             reference: str | None = None, sale_id: str | None = None) -> str:
    """Write one balanced transaction and keep the buyer balance cache in the same transaction."""
    entries = balanced(entries)
    txn_id = new_id("txn")
    await tx.execute(
        "INSERT INTO ledger_transactions (id, kind, reference, sale_id, created_at) "
        "VALUES (:id, :kind, :ref, :sale, :now)",
        {"id": txn_id, "kind": kind, "ref": reference, "sale": sale_id, "now": now},
    )
    await tx.executemany(
        "INSERT INTO ledger_entries (id, transaction_id, account, amount_cents, created_at) "
        "VALUES (:id, :txn, :account, :amount, :now)",
        [{"id": new_id("ent"), "txn": txn_id, "account": e.account, "amount": e.amount_cents, "now": now}
         for e in entries],
    )
    for e in entries:
        if e.account.startswith("buyer:"):
            await tx.execute(
                "UPDATE buyer_funds SET balance_cents = balance_cents + :amt WHERE buyer_id = :b",
                {"amt": e.amount_cents, "b": e.account[len("buyer:"):]},
            )
    return txn_id


async def transaction_view(tx: Tx, txn_id: str) -> dict[str, Any]:
    txn = await tx.fetchrow("SELECT * FROM ledger_transactions WHERE id = :id", {"id": txn_id})
    if txn is None:
        raise errors.NotFound("transaction", txn_id)
    rows = await tx.fetch(
        "SELECT account, amount_cents FROM ledger_entries WHERE transaction_id = :id ORDER BY id", {"id": txn_id}
    )
    return {
        "transaction_id": txn["id"], "kind": txn["kind"], "reference": txn["reference"],
        "sale_id": txn["sale_id"], "created_at": rfc3339(txn["created_at"]),
        "entries": [{"account": r["account"], "amount_cents": int(r["amount_cents"])} for r in rows],
    }


class LedgerService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def deposit(self, buyer_id: str, amount_cents: int, reference: str | None) -> dict[str, Any]:
        """Credit a buyer's prepaid balance; a repeated `reference` answers the first deposit."""

        async def unit(tx: Tx) -> dict[str, Any]:
            if await tx.fetchval("SELECT 1 FROM buyers WHERE id = :id", {"id": buyer_id}) is None:
                raise errors.NotFound("buyer", buyer_id)
            if reference is not None:
                prior = await tx.fetchrow(
                    "SELECT id FROM ledger_transactions WHERE kind = 'deposit' AND reference = :r", {"r": reference}
                )
                if prior is not None:
                    view = await transaction_view(tx, prior["id"])
                    if {"account": f"buyer:{buyer_id}", "amount_cents": amount_cents} not in view["entries"]:
                        raise errors.Conflict("reference already used for another deposit",
                                              details={"reference": reference})
                    return view
            txn_id = await record_transaction(tx, kind="deposit", entries=deposit_entries(buyer_id, amount_cents),
                                              now=now_ms(), reference=reference)
            return await transaction_view(tx, txn_id)

        return await self.store.write(unit)

    async def account(self, account: str, *, limit: int, cursor: str | None) -> dict[str, Any]:
        if not ACCOUNT.match(account):
            raise errors.ValidationFailed.one(
                "account", "must be buyer:{id}, partner:{id}, house:revenue or house:cash")

        async def unit(tx: Tx) -> dict[str, Any]:
            balance = await tx.fetchval(
                "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM ledger_entries WHERE account = :a",
                {"a": account},
            )
            rows = await tx.fetch(
                "SELECT e.id, e.transaction_id, e.amount_cents, e.created_at, t.kind, t.sale_id "
                "FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id "
                "WHERE e.account = :a AND (CAST(:cursor AS TEXT) IS NULL OR e.id < :cursor) "
                "ORDER BY e.id DESC LIMIT :lim",
                {"a": account, "cursor": cursor, "lim": limit + 1},
            )
            items = [{"transaction_id": r["transaction_id"], "kind": r["kind"],
                      "amount_cents": int(r["amount_cents"]), "sale_id": r["sale_id"],
                      "created_at": rfc3339(r["created_at"])} for r in rows[:limit]]
            next_cursor = rows[limit - 1]["id"] if len(rows) > limit else None
            return {"account": account, "balance_cents": int(balance), "items": items, "next_cursor": next_cursor}

        return await self.store.read(unit)
