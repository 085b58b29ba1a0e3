"""Retention of post PII: stored leads and consent are deleted after the configured number of days."""

from __future__ import annotations

from pingpost.db import post_repo
from pingpost.db.store import Store
from pingpost.ids import now_ms


async def purge_post_pii(store: Store, *, older_than_days: int, now: int | None = None) -> int:
    """Delete the encrypted lead and consent of posts older than `older_than_days`; answer how many.

    Sales, the ledger, waterfalls and keyed dedup hashes stay: they hold no PII."""
    at = now if now is not None else now_ms()
    cutoff = at - older_than_days * 86_400_000

    return await store.write(lambda tx: post_repo.purge_pii(tx, before=cutoff, now=at))
