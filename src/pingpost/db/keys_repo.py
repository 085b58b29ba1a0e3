"""SQL of keys and first-start facts: API keys looked up by hash, the secret key's fingerprint."""

from __future__ import annotations

from typing import Any

from pingpost.db.store import Tx


async def api_key_by_hash(tx: Tx, digest: str) -> Any:
    return await tx.fetchrow(
        "SELECT id, kind, buyer_id, status, key_sha256 FROM api_keys WHERE key_sha256 = :h", {"h": digest}
    )


async def record_fingerprint(tx: Tx, fingerprint: str) -> str | None:
    """Store the secret key's fingerprint unless one is stored; answer the stored one. Concurrent first
    starts (several hosts) race here: the first insert wins, all compare."""
    await tx.execute(
        "INSERT INTO meta (key, value) VALUES ('secret_key_fingerprint', :v) ON CONFLICT (key) DO NOTHING",
        {"v": fingerprint},
    )
    stored: str | None = await tx.fetchval("SELECT value FROM meta WHERE key = 'secret_key_fingerprint'")
    return stored


async def key_exists(tx: Tx, digest: str) -> bool:
    return await tx.fetchval("SELECT 1 FROM api_keys WHERE key_sha256 = :h", {"h": digest}) is not None


async def active_admin_exists(tx: Tx) -> bool:
    return await tx.fetchval("SELECT 1 FROM api_keys WHERE kind = 'admin' AND status = 'active'") is not None


async def put_admin_key(tx: Tx, *, ident: str, name: str, digest: str, now: int, replace: bool) -> bool:
    """An active admin key with this id and hash; `replace` drops a key of the same id first."""
    if replace:
        await tx.execute("DELETE FROM api_keys WHERE id = :id", {"id": ident})
    return (
        await tx.execute(
            "INSERT INTO api_keys (id, kind, buyer_id, name, status, key_sha256, created_at, updated_at) "
            "VALUES (:id, 'admin', NULL, :name, 'active', :h, :now, :now) ON CONFLICT DO NOTHING",
            {"id": ident, "name": name, "h": digest, "now": now},
        )
        == 1
    )
