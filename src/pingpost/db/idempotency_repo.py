"""SQL of Idempotency-Key rows: claim with a lease, take over a lapsed lease, record, release.

Every change after the claim names the lease it holds (`locked_until`, unique enough per claim), so
an owner that finishes after its lease was taken over changes nothing (docs/security.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pingpost.db.store import Tx

_WHERE = "campaign_id = :c AND endpoint = :e AND key = :k"


@dataclass(frozen=True, slots=True)
class Key:
    """One Idempotency-Key row: the campaign, the endpoint the key was sent to, the key."""

    campaign_id: str
    endpoint: str
    key: str

    def params(self) -> dict[str, Any]:
        return {"c": self.campaign_id, "e": self.endpoint, "k": self.key}


async def claim(tx: Tx, key: Key, *, sha: str, now: int, until: int) -> bool:
    """A new in-flight row owned until `until`; False when the key has a row."""
    return (
        await tx.execute(
            "INSERT INTO idempotency_keys (campaign_id, endpoint, key, request_sha256, state, locked_until, "
            "created_at) "
            "VALUES (:c, :e, :k, :h, 'in_flight', :until, :now) ON CONFLICT DO NOTHING",
            {**key.params(), "h": sha, "until": until, "now": now},
        )
        == 1
    )


async def find(tx: Tx, key: Key) -> Any:
    return await tx.fetchrow(f"SELECT * FROM idempotency_keys WHERE {_WHERE}", key.params())


async def forget(tx: Tx, key: Key) -> None:
    await tx.execute(f"DELETE FROM idempotency_keys WHERE {_WHERE}", key.params())


async def take_over(tx: Tx, key: Key, *, now: int, until: int) -> bool:
    """Take an in-flight row whose lease lapsed (its owner crashed)."""
    return (
        await tx.execute(
            f"UPDATE idempotency_keys SET locked_until = :until WHERE {_WHERE} AND state = 'in_flight' "
            "AND locked_until <= :now",
            {**key.params(), "until": until, "now": now},
        )
        == 1
    )


async def note_progress(tx: Tx, key: Key, *, lease: int, body: str) -> None:
    await tx.execute(
        f"UPDATE idempotency_keys SET body = :b WHERE {_WHERE} AND state = 'in_flight' AND locked_until = :lease",
        {**key.params(), "b": body, "lease": lease},
    )


async def record(tx: Tx, key: Key, *, lease: int, status: int, body: str) -> None:
    await tx.execute(
        f"UPDATE idempotency_keys SET state = 'done', status = :s, body = :b WHERE {_WHERE} "
        "AND state = 'in_flight' AND locked_until = :lease",
        {**key.params(), "s": status, "b": body, "lease": lease},
    )


async def release(tx: Tx, key: Key, *, lease: int) -> None:
    await tx.execute(
        f"DELETE FROM idempotency_keys WHERE {_WHERE} AND state = 'in_flight' AND locked_until = :lease",
        key.params() | {"lease": lease},
    )
