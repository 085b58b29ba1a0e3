"""First-start duties: the admin token printed once, and the secret key pinned by its fingerprint."""

from __future__ import annotations

from pathlib import Path

import pytest

from pingpost.bootstrap import StartupError, check_fingerprint, ensure_admin_token, load_secret_key
from pingpost.config import Settings
from pingpost.db.migrate import migrate
from pingpost.db.store import open_store


async def test_first_start_creates_one_admin_token_and_pins_the_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrate(url)
    settings = Settings(database_url=url)  # no admin token, no secret key: both generated
    store = await open_store(url)
    try:
        token = await ensure_admin_token(store, settings)
        assert token and token.startswith("ppa_")
        assert await ensure_admin_token(store, settings) is None  # shown once, never again
        key = load_secret_key(settings)
        key_file = tmp_path / "pingpost.key"
        assert key_file.exists() and (key_file.stat().st_mode & 0o777) == 0o600
        await check_fingerprint(store, key)
        await check_fingerprint(store, load_secret_key(settings))  # the same file, the same key
        other = Settings(database_url=url, secret_key="a different key")
        with pytest.raises(StartupError):
            await check_fingerprint(store, load_secret_key(other))
        rows = await store.read(lambda tx: tx.fetch("SELECT value FROM meta"))
        assert key_file.read_text().strip() not in str([tuple(r) for r in rows])  # only a fingerprint
    finally:
        await store.close()
