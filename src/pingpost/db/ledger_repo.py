"""SQL of the double-entry ledger: transactions, entries and the buyer balance cache beside them."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pingpost.db.store import Tx
from pingpost.domain.money import Entry, balanced
from pingpost.ids import new_id


async def record_transaction(
    tx: Tx, *, kind: str, entries: Sequence[Entry], now: int, reference: str | None = None, sale_id: str | None = None
) -> str:
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
        [
            {"id": new_id("ent"), "txn": txn_id, "account": e.account, "amount": e.amount_cents, "now": now}
            for e in entries
        ],
    )
    for e in sorted(entries, key=lambda e: e.account):  # buyers' rows in id order (docs/crash-safety.md)
        if e.account.startswith("buyer:"):
            await tx.execute(
                "UPDATE buyer_funds SET balance_cents = balance_cents + :amt, "
                # funds back at or above the buyer's low-balance threshold re-arm its alert (one per crossing)
                "low_balance_alerted = CASE WHEN low_balance_cents IS NOT NULL AND balance_cents + :amt "
                "+ credit_limit_cents - holds_cents >= low_balance_cents THEN 0 ELSE low_balance_alerted END "
                "WHERE buyer_id = :b",
                {"amt": e.amount_cents, "b": e.account[len("buyer:") :]},
            )
    return txn_id


async def transaction(tx: Tx, txn_id: str) -> tuple[Any, list[Any]] | None:
    """A transaction row and its entries (account, amount_cents), or None."""
    txn = await tx.fetchrow("SELECT * FROM ledger_transactions WHERE id = :id", {"id": txn_id})
    if txn is None:
        return None
    rows = await tx.fetch(
        "SELECT account, amount_cents FROM ledger_entries WHERE transaction_id = :id ORDER BY id", {"id": txn_id}
    )
    return txn, list(rows)


async def deposit_by_reference(tx: Tx, reference: str) -> str | None:
    txn_id: str | None = await tx.fetchval(
        "SELECT id FROM ledger_transactions WHERE kind = 'deposit' AND reference = :r", {"r": reference}
    )
    return txn_id


async def sale_entries_of(tx: Tx, sale_id: str) -> list[Entry]:
    """The entries of a sale's own `sale` transaction (what a reversal mirrors)."""
    rows = await tx.fetch(
        "SELECT e.account, e.amount_cents FROM ledger_entries e JOIN ledger_transactions t "
        "ON t.id = e.transaction_id WHERE t.kind = 'sale' AND t.sale_id = :s ORDER BY e.id",
        {"s": sale_id},
    )
    return [Entry(r["account"], int(r["amount_cents"])) for r in rows]


async def account_balance(tx: Tx, account: str) -> int:
    return int(
        await tx.fetchval(
            "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM ledger_entries WHERE account = :a",
            {"a": account},
        )
    )


async def account_entries(tx: Tx, account: str, *, cursor: str | None, limit: int) -> list[Any]:
    """An account's entries, newest first, `limit` of them after `cursor` (an entry id)."""
    return list(
        await tx.fetch(
            "SELECT e.id, e.transaction_id, e.amount_cents, e.created_at, t.kind, t.sale_id "
            "FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id "
            "WHERE e.account = :a AND (CAST(:cursor AS TEXT) IS NULL OR e.id < :cursor) "
            "ORDER BY e.id DESC LIMIT :lim",
            {"a": account, "cursor": cursor, "lim": limit},
        )
    )


async def transaction_by_reference(tx: Tx, kind: str, reference: str) -> str | None:
    """The id of the `kind` transaction recorded under `reference` (unique per kind), if any."""
    txn_id: str | None = await tx.fetchval(
        "SELECT id FROM ledger_transactions WHERE kind = :k AND reference = :r", {"k": kind, "r": reference}
    )
    return txn_id


async def lock_reference(tx: Tx, kind: str, reference: str) -> None:
    """On PostgreSQL, make requests carrying one reference take turns (a transaction-scoped advisory
    lock), so the second finds the first's transaction instead of failing on the unique reference."""
    if tx.dialect == "postgresql":
        await tx.fetchval("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))", {"key": f"{kind}:{reference}"})


async def lock_partner(tx: Tx, partner_id: str) -> bool:
    """Lock the partner's row (PostgreSQL) so its payouts take turns; False when there is no such partner."""
    suffix = " FOR UPDATE" if tx.dialect == "postgresql" else ""
    return await tx.fetchval(f"SELECT 1 FROM partners WHERE id = :id{suffix}", {"id": partner_id}) is not None


async def entries_for_sale(tx: Tx, sale_id: str, kind: str) -> list[Entry]:
    """The entries of every `kind` transaction of a sale (its `return`s, its `reversal`)."""
    rows = await tx.fetch(
        "SELECT e.account, e.amount_cents FROM ledger_entries e JOIN ledger_transactions t "
        "ON t.id = e.transaction_id WHERE t.kind = :k AND t.sale_id = :s ORDER BY e.id",
        {"k": kind, "s": sale_id},
    )
    return [Entry(r["account"], int(r["amount_cents"])) for r in rows]


async def balance_before(tx: Tx, account: str, before_ms: int) -> int:
    """The account's balance from every entry made before `before_ms`."""
    return int(
        await tx.fetchval(
            "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM ledger_entries "
            "WHERE account = :a AND created_at < :t",
            {"a": account, "t": before_ms},
        )
    )


async def lines_by_day_and_kind(tx: Tx, account: str, *, start_ms: int, end_ms: int) -> list[Any]:
    """(day: UTC day number, kind, n: entries, amount: their sum) of the account's entries in [start, end)."""
    return list(
        await tx.fetch(
            "SELECT CAST(e.created_at / 86400000 AS BIGINT) AS day, t.kind AS kind, COUNT(*) AS n, "
            "CAST(SUM(e.amount_cents) AS BIGINT) AS amount FROM ledger_entries e "
            "JOIN ledger_transactions t ON t.id = e.transaction_id "
            "WHERE e.account = :a AND e.created_at >= :s AND e.created_at < :e "
            "GROUP BY CAST(e.created_at / 86400000 AS BIGINT), t.kind",
            {"a": account, "s": start_ms, "e": end_ms},
        )
    )
