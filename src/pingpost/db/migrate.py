"""Apply Alembic migrations to SQLite or PostgreSQL (under an advisory lock on PostgreSQL); list what a
database holds; drop pingpost's tables (the benchmark's reset)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import create_async_engine

from pingpost.config import is_postgres, normalise_database_url, sqlite_path
from pingpost.db.tables import metadata

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
    engine = create_async_engine("postgresql+asyncpg://" + url[len("postgresql://") :])
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


# Every table, view or foreign table outside PostgreSQL's own schemas, whoever owns it.
_PG_TABLES = (
    "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND n.nspname NOT IN ('pg_catalog', 'information_schema') "
    "AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp\\_%' ORDER BY 1"
)


def existing_tables(url: str) -> list[str]:
    """Every table and view the database holds, pingpost's or not (`schema.name` on PostgreSQL).

    Only reads: a SQLite file that does not exist is not created, one that does is opened read-only."""
    url = normalise_database_url(url)
    if is_postgres(url):
        found: list[str] = []

        async def read() -> None:
            engine = create_async_engine("postgresql+asyncpg://" + url[len("postgresql://") :])
            try:
                async with engine.connect() as conn:
                    found.extend(str(name) for name in (await conn.execute(text(_PG_TABLES))).scalars())
            finally:
                await engine.dispose()

        _in_fresh_loop(read)
        return found
    path = Path(sqlite_path(url))
    if not path.exists():
        return []
    conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return [
            str(row[0])
            for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite\\_%' "
                "ESCAPE '\\' ORDER BY name"
            )
        ]
    finally:
        conn.close()


def drop_pingpost_tables(url: str) -> None:
    """Drop pingpost's tables and Alembic's version table, and with them their data (PostgreSQL: and
    what depends on them); any other table is left alone."""
    url = normalise_database_url(url)
    names = ["alembic_version", *(t.name for t in reversed(metadata.sorted_tables))]
    if is_postgres(url):

        async def drop() -> None:
            engine = create_async_engine("postgresql+asyncpg://" + url[len("postgresql://") :])
            try:
                async with engine.begin() as conn:
                    await conn.execute(text(f"DROP TABLE IF EXISTS {', '.join(names)} CASCADE"))
            finally:
                await engine.dispose()

        _in_fresh_loop(drop)
        return
    engine = create_engine(f"sqlite:///{sqlite_path(url)}")
    try:
        with engine.begin() as conn:
            for name in names:
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {name}")
    finally:
        engine.dispose()
