"""`pingpost bench --database URL` never wipes a database that holds anything, unless told `--reset`."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner, Result

from pingpost.bench.run import DatabaseInUse, claim_database
from pingpost.bootstrap import prepare_database
from pingpost.cli import app
from pingpost.config import Settings
from pingpost.db.tables import metadata
from pingpost.security import key_hash
from tests.conftest import BACKENDS, PG_URL


def _pg(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


async def _pg_run(url: str, *statements: str) -> list[Any]:
    conn = await asyncpg.connect(_pg(url))
    try:
        out: list[Any] = []  # asyncpg records and status strings: asyncpg is untyped
        for sql in statements:
            out += await conn.fetch(sql) if sql.startswith("SELECT") else [await conn.execute(sql)]
        return out
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of its own, holding nothing (PostgreSQL: created for the test, dropped after)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'bench.db'}"
        return
    assert PG_URL
    name = f"pingpost_bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(_pg_run(PG_URL, f'CREATE DATABASE "{name}"'))
    try:
        yield _pg(PG_URL).rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(_pg_run(PG_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def execute(url: str, *statements: str) -> list[Any]:
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url[len("sqlite:///") :]) as conn:
            return [row for sql in statements for row in conn.execute(sql).fetchall()]
    return asyncio.run(_pg_run(url, *statements))


def contents(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every table of the database with all its rows."""
    if url.startswith("sqlite:///"):
        names = [r[0] for r in execute(url, "SELECT name FROM sqlite_master WHERE type = 'table'")]
    else:
        names = [
            r[0]
            for r in execute(
                url,
                "SELECT schemaname || '.' || tablename FROM pg_tables "
                "WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
            )
        ]
    return {name: sorted(tuple(r) for r in execute(url, f"SELECT * FROM {name}")) for name in sorted(names)}


def pingpost_data(url: str, tmp_path: Path) -> None:
    """A pingpost database in use: migrated, its secret key's fingerprint and an admin token stored."""
    prepare_database(
        Settings(
            database_url=url,
            admin_token="bench-admin",
            secret_key="bench-secret",
            key_file=str(tmp_path / "pingpost.key"),
        )
    )


def bench(*args: str) -> Result:
    return CliRunner().invoke(app, ["bench", "--duration", "0.1", "--scenario", "hang", *args])


def test_refuses_a_database_holding_pingpost_data(empty_database: str, tmp_path: Path) -> None:
    pingpost_data(empty_database, tmp_path)
    before = contents(empty_database)
    assert before and any(rows for rows in before.values())
    result = bench("--database", empty_database)
    assert result.exit_code != 0
    assert "--reset" in result.output and "not empty" in result.output, result.output
    assert contents(empty_database) == before


def test_refuses_a_database_holding_any_table(empty_database: str) -> None:
    execute(
        empty_database,
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)",
        "INSERT INTO customers VALUES (1, 'kept')",
    )
    before = contents(empty_database)
    result = bench("--database", empty_database)
    assert result.exit_code != 0 and "customers" in result.output, result.output
    assert contents(empty_database) == before
    with pytest.raises(DatabaseInUse):
        claim_database(empty_database, reset=False)
    assert contents(empty_database) == before


def test_reset_wipes_pingpost_data_and_migrates_again(empty_database: str, tmp_path: Path) -> None:
    pingpost_data(empty_database, tmp_path)
    claim_database(empty_database, reset=True)
    after = contents(empty_database)
    tables = {name.rpartition(".")[2]: rows for name, rows in after.items()}
    assert set(tables) == set(metadata.tables) | {"alembic_version"}
    assert all(rows == [] for name, rows in tables.items() if name not in ("alembic_version", "config_version"))


def test_an_empty_database_is_taken_as_it_is(empty_database: str) -> None:
    claim_database(empty_database, reset=False)
    assert contents(empty_database) == {}


def test_reset_through_the_cli_runs_the_bench_on_the_wiped_database(tmp_path: Path) -> None:
    """The flag end to end, on SQLite only: on PostgreSQL a bench run adds the 2,000-ping oversell check."""
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    pingpost_data(url, tmp_path)
    result = bench("--database", url, "--reset", "--json", "--rate", "5")
    assert result.exit_code == 0, result.output
    figures = json.loads(result.stdout)
    assert figures["database"] == "sqlite" and figures["hang"]["pings"] > 0
    tokens = [r[0] for r in execute(url, "SELECT key_sha256 FROM api_keys WHERE kind = 'admin'")]
    assert tokens and key_hash("bench-admin") not in tokens  # the first admin token went with the reset
