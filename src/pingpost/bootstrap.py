"""First-start duties run once per database: the secret key check and the first admin token."""

from __future__ import annotations

import asyncio
from pathlib import Path

from pingpost.config import Settings, is_postgres, sqlite_path
from pingpost.db import keys_repo
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

    stored = await store.write(lambda tx: keys_repo.record_fingerprint(tx, key.fingerprint))
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
            if not await keys_repo.key_exists(tx, digest):
                await keys_repo.put_admin_key(
                    tx, ident="env-admin", name="PINGPOST_ADMIN_TOKEN", digest=digest, now=now, replace=True
                )
            return None
        if await keys_repo.active_admin_exists(tx):
            return None
        token = new_key("ppa")
        inserted = await keys_repo.put_admin_key(
            tx, ident="first-admin", name="created at first start", digest=key_hash(token), now=now, replace=False
        )
        return token if inserted else None

    return await store.write(unit)


async def _first_start(settings: Settings) -> str | None:
    """Fingerprint check and first admin token, in the parent before any worker starts."""
    from pingpost.db.store import open_store

    store = await open_store(settings.database_url)
    try:
        await check_fingerprint(store, load_secret_key(settings))
        return await ensure_admin_token(store, settings)
    finally:
        await store.close()


def prepare_database(settings: Settings) -> str | None:
    """Run migrations and first-start duties once; answer a newly created admin token."""
    from pingpost.db.migrate import migrate

    migrate(settings.database_url)
    return asyncio.run(_first_start(settings))
