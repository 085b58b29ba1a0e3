"""Apply Alembic migrations to SQLite or PostgreSQL (under an advisory lock on PostgreSQL)."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from pingpost.config import is_postgres, normalise_database_url, sqlite_path

_MIGRATION_LOCK = 0x70696E67  # "ping"


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    return cfg


def _run(connection: Any, action: str, revision: str) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    if action == "upgrade":
        command.upgrade(cfg, revision)
    else:
        command.downgrade(cfg, revision)


async def _postgres(url: str, action: str, revision: str) -> None:
    engine = create_async_engine("postgresql+asyncpg://" + url[len("postgresql://"):])
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _MIGRATION_LOCK})
            await conn.commit()
            try:
                await conn.run_sync(_run, action, revision)
                await conn.commit()
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _MIGRATION_LOCK})
                await conn.commit()
    finally:
        await engine.dispose()


def _in_fresh_loop(coro_factory: Any) -> None:
    """asyncio.run, also when called from a thread that already runs a loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coro_factory())
        return
    errors: list[BaseException] = []

    def target() -> None:
        try:
            asyncio.run(coro_factory())
        except BaseException as exc:  # re-raised in the caller's thread
            errors.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def migrate(url: str, *, action: str = "upgrade", revision: str = "head") -> None:
    url = normalise_database_url(url)
    if is_postgres(url):
        _in_fresh_loop(lambda: _postgres(url, action, revision))
        return
    path = sqlite_path(url)
    engine = create_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("PRAGMA journal_mode=WAL")
            _run(conn, action, revision)
    finally:
        engine.dispose()
