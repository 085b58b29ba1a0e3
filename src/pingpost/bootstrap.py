"""First-start duties run once per database: the secret key check and the first admin token."""

from __future__ import annotations

from pathlib import Path

from pingpost.config import Settings, is_postgres, sqlite_path
from pingpost.db.store import Store, Tx
from pingpost.ids import now_ms
from pingpost.security import SecretKey, key_hash, load_or_create_key_file, new_key


class StartupError(RuntimeError):
    pass


def key_file_path(settings: Settings) -> Path:
    if settings.key_file:
        return Path(settings.key_file)
    if is_postgres(settings.database_url):
        return Path("pingpost.key")
    return Path(sqlite_path(settings.database_url)).resolve().parent / "pingpost.key"


def load_secret_key(settings: Settings) -> SecretKey:
    text = settings.secret_key or load_or_create_key_file(key_file_path(settings))
    return SecretKey.from_text(text)


async def check_fingerprint(store: Store, key: SecretKey) -> None:
    """Record the key's fingerprint on first start; refuse to run with a different key later."""

    async def unit(tx: Tx) -> str | None:
        # Concurrent first starts (several hosts) race here: the first insert wins, all compare.
        await tx.execute("INSERT INTO meta (key, value) VALUES ('secret_key_fingerprint', :v) "
                         "ON CONFLICT (key) DO NOTHING", {"v": key.fingerprint})
        stored: str | None = await tx.fetchval("SELECT value FROM meta WHERE key = 'secret_key_fingerprint'")
        return stored

    stored = await store.write(unit)
    if stored is not None and stored != key.fingerprint:
        raise StartupError("PINGPOST_SECRET_KEY does not match the key this database was created with")


async def ensure_admin_token(store: Store, settings: Settings) -> str | None:
    """Make the configured admin token valid, or create one when no admin key exists.

    Answers the generated token (to be printed once by the caller), or None.
    """

    async def unit(tx: Tx) -> str | None:
        now = now_ms()
        if settings.admin_token:
            digest = key_hash(settings.admin_token)
            if await tx.fetchval("SELECT 1 FROM api_keys WHERE key_sha256 = :h", {"h": digest}) is None:
                await tx.execute("DELETE FROM api_keys WHERE id = 'env-admin'")
                await tx.execute(
                    "INSERT INTO api_keys (id, kind, buyer_id, name, status, key_sha256, created_at, updated_at) "
                    "VALUES ('env-admin', 'admin', NULL, 'PINGPOST_ADMIN_TOKEN', 'active', :h, :now, :now) "
                    "ON CONFLICT DO NOTHING", {"h": digest, "now": now})
            return None
        if await tx.fetchval("SELECT 1 FROM api_keys WHERE kind = 'admin' AND status = 'active'") is not None:
            return None
        token = new_key("ppa")
        inserted = await tx.execute(
            "INSERT INTO api_keys (id, kind, buyer_id, name, status, key_sha256, created_at, updated_at) "
            "VALUES ('first-admin', 'admin', NULL, 'created at first start', 'active', :h, :now, :now) "
            "ON CONFLICT DO NOTHING", {"h": key_hash(token), "now": now})
        return token if inserted else None

    return await store.write(unit)
