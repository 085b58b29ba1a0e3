"""Migrations upgrade an empty database to the schema tables.py defines, on both databases."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import create_engine, inspect

from pingpost.db.migrate import migrate
from pingpost.db.tables import metadata
from tests.conftest import PG_URL


def test_sqlite_upgrade_from_empty_and_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    migrate(url)
    engine = create_engine(url)
    try:
        assert set(inspect(engine).get_table_names()) == set(metadata.tables) | {"alembic_version"}
        migrate(url)  # a second upgrade is a no-op
        migrate(url, action="downgrade", revision="base")
        assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    finally:
        engine.dispose()


@pytest.mark.skipif(not PG_URL, reason="PINGPOST_TEST_POSTGRES_URL is not set")
def test_postgres_upgrade_from_empty() -> None:
    assert PG_URL
    base = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    name = f"pingpost_mig_{uuid.uuid4().hex[:8]}"

    async def run(sql: str, url: str = base) -> list[str]:
        conn = await asyncpg.connect(url)
        try:
            if sql.startswith("SELECT"):
                return [r[0] for r in await conn.fetch(sql)]
            await conn.execute(sql)
            return []
        finally:
            await conn.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        url = base.rsplit("/", 1)[0] + f"/{name}"
        migrate(url)
        migrate(url)
        tables = asyncio.run(run("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", url))
        assert set(tables) == set(metadata.tables) | {"alembic_version"}
        kinds = asyncio.run(
            run("SELECT data_type FROM information_schema.columns WHERE column_name LIKE '%_cents'", url)
        )
        assert set(kinds) == {"bigint"}
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
