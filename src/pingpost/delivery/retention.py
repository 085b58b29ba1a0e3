"""Retention of post PII: stored leads and consent are deleted after the configured number of days."""

from __future__ import annotations

from pingpost.db.store import Store, Tx
from pingpost.ids import now_ms


async def purge_post_pii(store: Store, *, older_than_days: int, now: int | None = None) -> int:
    """Delete the encrypted lead and consent of posts older than `older_than_days`; answer how many.

    Sales, the ledger, waterfalls and keyed dedup hashes stay: they hold no PII."""
    at = now if now is not None else now_ms()
    cutoff = at - older_than_days * 86_400_000

    async def unit(tx: Tx) -> int:
        return await tx.execute(
            "UPDATE posts SET pii_ciphertext = NULL, purged_at = :now "
            "WHERE pii_ciphertext IS NOT NULL AND created_at < :cutoff", {"now": at, "cutoff": cutoff})

    return await store.write(unit)
