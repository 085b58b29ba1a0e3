"""SQL of the traffic controls (docs/protocol.md, Traffic controls): the duplicate-ping lookup,
suppression lists (keyed hashes only), contract auto-pause counters and buyer low-balance flags.
Spend caps are taken and given back with the count caps, in `auction_repo.py`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pingpost.db.store import Tx
from pingpost.domain.eligibility import NO_SUPPRESSION, Suppression


async def earlier_ping(tx: Tx, *, dup_key: str, since: int) -> Any:
    """The latest ping with this duplicate key received at or after `since` (one indexed lookup)."""
    return await tx.fetchrow(
        "SELECT id, status, post_state, expires_at, bids FROM pings WHERE dup_key = :k AND received_at >= :s "
        "ORDER BY received_at DESC LIMIT 1",
        {"k": dup_key, "s": since},
    )


# --- suppression lists: keyed hashes only, never a plain value -------------------------------


async def insert_suppression_list(tx: Tx, row: dict[str, Any]) -> bool:
    """A new list; False when the id is taken."""
    return (
        await tx.execute(
            "INSERT INTO suppression_lists (id, name, scope, buyer_id, created_at, updated_at) "
            "VALUES (:id, :name, :scope, :buyer_id, :created_at, :updated_at) ON CONFLICT (id) DO NOTHING",
            row,
        )
        == 1
    )


async def suppression_list(tx: Tx, list_id: str) -> Any:
    return await tx.fetchrow("SELECT * FROM suppression_lists WHERE id = :id", {"id": list_id})


async def suppression_lists_page(tx: Tx, *, cursor: str | None, limit: int) -> list[Any]:
    return list(
        await tx.fetch(
            "SELECT * FROM suppression_lists WHERE (CAST(:cursor AS TEXT) IS NULL OR id > :cursor) "
            "ORDER BY id LIMIT :lim",
            {"cursor": cursor, "lim": limit},
        )
    )


async def all_suppression_lists(tx: Tx) -> list[Any]:
    """Every list's id, scope and buyer (the configuration snapshot)."""
    return list(await tx.fetch("SELECT id, scope, buyer_id FROM suppression_lists"))


async def suppression_counts(tx: Tx, list_id: str) -> dict[str, int]:
    rows = await tx.fetch(
        "SELECT kind, COUNT(*) AS n FROM suppression_entries WHERE list_id = :l GROUP BY kind", {"l": list_id}
    )
    counts = {"phones": 0, "emails": 0}
    for r in rows:
        counts["phones" if r["kind"] == "phone" else "emails"] = int(r["n"])
    return counts


async def add_suppression_entries(tx: Tx, list_id: str, entries: Sequence[tuple[str, str]]) -> None:
    """(kind, keyed hash) pairs; an entry already on the list stays once."""
    if entries:
        await tx.executemany(
            "INSERT INTO suppression_entries (list_id, hash_hmac, kind) VALUES (:l, :h, :k) ON CONFLICT DO NOTHING",
            [{"l": list_id, "h": h, "k": k} for k, h in entries],
        )


async def remove_suppression_entries(tx: Tx, list_id: str, hashes: Sequence[str]) -> None:
    if hashes:
        await tx.execute(
            "DELETE FROM suppression_entries WHERE list_id = :l AND hash_hmac IN (:hs)",
            {"l": list_id, "hs": list(hashes)},
        )


async def touch_suppression_list(tx: Tx, list_id: str, now: int) -> None:
    await tx.execute("UPDATE suppression_lists SET updated_at = :t WHERE id = :id", {"t": now, "id": list_id})


async def suppressing_lists(tx: Tx, hashes: Sequence[str]) -> Suppression:
    """The lists any of these keyed consumer hashes is on (one indexed read)."""
    if not hashes:
        return NO_SUPPRESSION
    rows = await tx.fetch(
        "SELECT DISTINCT l.id, l.scope FROM suppression_entries e "
        "JOIN suppression_lists l ON l.id = e.list_id WHERE e.hash_hmac IN (:hs)",
        {"hs": list(hashes)},
    )
    return suppression_of(rows)


def suppression_of(rows: Sequence[Any]) -> Suppression:
    """The lists of rows (id, scope) that a consumer's keyed hashes are on."""
    if not rows:
        return NO_SUPPRESSION
    return Suppression(lists=frozenset(r[0] for r in rows), global_hit=any(r[1] == "global" for r in rows))


# --- auto-pause: consecutive RTB or delivery failures of a contract ---------------------------


async def add_failure(tx: Tx, contract_id: str) -> int:
    """One more consecutive failure; answers the count."""
    count = await tx.fetchval(
        "UPDATE contract_usage SET consecutive_failures = consecutive_failures + 1 WHERE contract_id = :c "
        "RETURNING consecutive_failures",
        {"c": contract_id},
    )
    return int(count or 0)


async def reset_failures(tx: Tx, contract_id: str) -> None:
    """A success (or a resume) ends the run of failures (writes nothing when there was none)."""
    await tx.execute(
        "UPDATE contract_usage SET consecutive_failures = 0 WHERE contract_id = :c AND consecutive_failures > 0",
        {"c": contract_id},
    )


async def failing_contracts(tx: Tx, contract_ids: Sequence[str]) -> dict[str, int]:
    """The contracts among these with a run of failures (usually none)."""
    rows = await tx.fetch(
        "SELECT contract_id, consecutive_failures FROM contract_usage WHERE contract_id IN (:cs) "
        "AND consecutive_failures > 0",
        {"cs": list(contract_ids)},
    )
    return {r["contract_id"]: int(r["consecutive_failures"]) for r in rows}


async def pause_active_contract(tx: Tx, contract_id: str, now: int) -> bool:
    """Pause the contract if it is active; False when it was paused already (by another process)."""
    return (
        await tx.execute(
            "UPDATE contracts SET status = 'paused', updated_at = :t WHERE id = :c AND status = 'active'",
            {"c": contract_id, "t": now},
        )
        == 1
    )


# --- low balance: one alert per crossing ---------------------------------------------------------


async def low_balance_crossed(tx: Tx, buyer_id: str) -> int | None:
    """Mark the buyer's funds as below its low-balance threshold if they just fell under it; answers
    the available cents when this is a new crossing (the flag is re-armed when funds come back)."""
    value = await tx.fetchval(
        "UPDATE buyer_funds SET low_balance_alerted = 1 WHERE buyer_id = :b AND low_balance_cents IS NOT NULL "
        "AND low_balance_alerted = 0 AND balance_cents + credit_limit_cents - holds_cents < low_balance_cents "
        "RETURNING balance_cents + credit_limit_cents - holds_cents",
        {"b": buyer_id},
    )
    return None if value is None else int(value)


async def pause_active_buyer(tx: Tx, buyer_id: str, now: int) -> bool:
    return (
        await tx.execute(
            "UPDATE buyers SET status = 'paused', updated_at = :t WHERE id = :b AND status = 'active'",
            {"b": buyer_id, "t": now},
        )
        == 1
    )


async def rename_suppression_list(tx: Tx, list_id: str, name: str, now: int) -> None:
    await tx.execute(
        "UPDATE suppression_lists SET name = :n, updated_at = :t WHERE id = :id", {"n": name, "t": now, "id": list_id}
    )
