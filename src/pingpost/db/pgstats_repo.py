"""What `pingpost bench` samples from PostgreSQL's own views while it drives load (docs/performance.md)."""

from __future__ import annotations

from pingpost.db.store import Tx


async def row_lock_waiters(tx: Tx) -> list[str]:
    """One key per backend waiting right now for a row lock: the waiting pid and what it waits for.

    A backend that waits for another transaction's row lock shows as an ungranted `transactionid`
    lock (and sometimes a `tuple` lock first); the key names both, so one wait seen by several samples
    counts once (the bench keeps the set of keys)."""
    # Only this database's backends: a shared server runs other databases' transactions too.
    rows = await tx.fetch(
        "SELECT l.pid::text || ':' || l.locktype || ':' || COALESCE(l.transactionid::text, '') || ':' "
        "|| COALESCE(l.relation::text, '') || ':' || COALESCE(l.page::text, '') || ':' "
        "|| COALESCE(l.tuple::text, '') AS k FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE a.datname = current_database() AND NOT l.granted AND l.locktype IN ('transactionid', 'tuple')"
    )
    return [str(r["k"]) for r in rows]
