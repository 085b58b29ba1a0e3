"""SQL of the traffic controls (docs/protocol.md, Traffic controls): the duplicate-ping lookup,
suppression lists (keyed hashes only), contract auto-pause counters and buyer low-balance flags.
Spend caps are taken and given back with the count caps, in `auction_repo.py`."""

from __future__ import annotations

from typing import Any

from pingpost.db.store import Tx


async def earlier_ping(tx: Tx, *, dup_key: str, since: int) -> Any:
    """The latest ping with this duplicate key received at or after `since` (one indexed lookup)."""
    return await tx.fetchrow(
        "SELECT id, status, post_state, expires_at, bids FROM pings WHERE dup_key = :k AND received_at >= :s "
        "ORDER BY received_at DESC LIMIT 1",
        {"k": dup_key, "s": since},
    )
