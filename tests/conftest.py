"""Fixtures: a migrated database per test on SQLite and (where configured) PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from hypothesis import settings as hypothesis_settings

from pingpost.app import create_app
from pingpost.clock import CONTEXT
from pingpost.config import Settings
from pingpost.db.migrate import migrate
from pingpost.db.store import Store, open_store
from pingpost.db.tables import metadata

hypothesis_settings.register_profile("ci", max_examples=40, deadline=None)
hypothesis_settings.register_profile("dev", max_examples=100, deadline=None)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "dev"))

PG_URL = os.environ.get("PINGPOST_TEST_POSTGRES_URL")
ADMIN_TOKEN = "test-admin-token"
BACKENDS = ["sqlite"] + (["postgres"] if PG_URL else [])


def _pg_admin_url() -> str:
    assert PG_URL
    return PG_URL.replace("postgresql+asyncpg://", "postgresql://")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for the session, migrated once; dropped at the end."""
    if not PG_URL:
        pytest.skip("PINGPOST_TEST_POSTGRES_URL is not set")
    base = _pg_admin_url()
    name = f"pingpost_test_{uuid.uuid4().hex[:10]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(base)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + f"/{name}"
    migrate(url)
    yield url
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_pg(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        names = ", ".join(t.name for t in metadata.sorted_tables if t.name != "config_version")
        await conn.execute(f"TRUNCATE {names}")
        await conn.execute("UPDATE config_version SET version = 1")
    finally:
        await conn.close()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "pingpost.db"
        shutil.copy(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("pg_database")
    asyncio.run(_truncate_pg(url))
    return url


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        database_url=database_url,
        admin_token=ADMIN_TOKEN,
        secret_key="test-secret-key",
        key_file=str(tmp_path / "pingpost.key"),
        json_logs=True,
        webhook_sender=False,  # tests of the sender run their own (tests/api/test_webhooks.py)
    )


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[Store]:
    # Shared decisions follow the test's clock (`use_clock`) on PostgreSQL too, not the database's.
    s = await open_store(settings.database_url, shared_clock=CONTEXT)
    yield s
    await s.close()


class Api:
    """An httpx client on the real ASGI app, with the admin token by default."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def request(self, method: str, url: str, *, token: str | None = ADMIN_TOKEN, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        return await self.client.request(method, url, headers=headers, **kwargs)

    async def ok(self, method: str, url: str, status: int = 200, **kwargs: Any) -> Any:
        r = await self.request(method, url, **kwargs)
        assert r.status_code == status, (r.status_code, r.text)
        return r.json()


@pytest.fixture
async def api(settings: Settings, store: Store) -> AsyncIterator[Api]:
    app = create_app(settings, store=store)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield Api(client)


class Sandbox:
    """The sandbox buyers app on a local port, with what each buyer received."""

    def __init__(self, base: str) -> None:
        self.base = base

    def deliver(self, buyer: str, behaviour: str = "accept", query: str = "") -> str:
        return f"{self.base}/deliver/{buyer}/{behaviour}" + (f"?{query}" if query else "")

    def bid(self, buyer: str, behaviour: str = "fixed", query: str = "") -> str:
        return f"{self.base}/bid/{buyer}/{behaviour}" + (f"?{query}" if query else "")

    async def received(self, buyer: str) -> list[dict[str, Any]]:
        async with httpx.AsyncClient() as c:
            result: list[dict[str, Any]] = (await c.get(f"{self.base}/_received/{buyer}")).json()
            return result


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    from pingpost.sandbox.app import start_sandbox

    runner, base = await start_sandbox()
    yield Sandbox(base)
    await runner.shutdown()
    await runner.cleanup()
