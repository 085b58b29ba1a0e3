"""The simulated deployment: one database, one true clock, fake buyers, and several app instances
(each its own services, snapshot cache and skewed clock) that crash and restart (docs/simulator.md)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg
import fastapi.dependencies.utils
import fastapi.routing
import httpx

from pingpost import faults, ids
from pingpost.app import create_app
from pingpost.clock import ManualClock, SkewedClock, use_clock
from pingpost.config import Settings
from pingpost.db.migrate import migrate
from pingpost.db.store import Store, open_store
from tests.sim.buyers import FakeBuyers
from tests.sim.injector import FaultInjector

ADMIN_TOKEN = "sim-admin-token"
LEASE_TTL_MS = 5000  # simulated: ticks of 50 ms to 20 s and leaps to just before midnight cross it
SECRET_KEY = "sim-secret-key"


class Databases:
    """Fresh databases from one migrated template: a file copy on SQLite, `CREATE DATABASE ...
    TEMPLATE` on PostgreSQL. Every database it made is dropped when it closes."""

    def __init__(self, kind: str, pg_url: str | None = None) -> None:
        if kind not in ("sqlite", "postgres"):
            raise ValueError(f"unknown store {kind}")
        if kind == "postgres" and not pg_url:
            raise ValueError("the postgres store needs PINGPOST_TEST_POSTGRES_URL")
        self.kind = kind
        self._pg_admin = (pg_url or "").replace("postgresql+asyncpg://", "postgresql://")
        self._dir = Path(tempfile.mkdtemp(prefix="pingpost-sim-"))
        self._template: str | None = None
        self._made: list[str] = []

    def workdir(self) -> Path:
        """A directory for one run's files (removed when this closes)."""
        return Path(tempfile.mkdtemp(dir=self._dir))

    def _pg_url(self, name: str) -> str:
        return self._pg_admin.rsplit("/", 1)[0] + f"/{name}"

    async def _pg(self, sql: str) -> None:
        conn = await asyncpg.connect(self._pg_admin)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def create(self) -> str:
        if self.kind == "sqlite":
            template = self._dir / "template.db"
            if self._template is None:
                await asyncio.to_thread(migrate, f"sqlite:///{template}")
                self._template = str(template)
            path = self._dir / f"sim-{uuid.uuid4().hex[:8]}.db"
            shutil.copy(template, path)
            return f"sqlite:///{path}"
        if self._template is None:
            name = f"pingpost_simtpl_{uuid.uuid4().hex[:8]}"
            await self._pg(f'CREATE DATABASE "{name}"')
            self._made.append(name)
            await asyncio.to_thread(migrate, self._pg_url(name))
            self._template = name
        name = f"pingpost_sim_{uuid.uuid4().hex[:8]}"
        await self._pg(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"')
        self._made.append(name)
        return self._pg_url(name)

    async def drop(self, url: str) -> None:
        if self.kind == "sqlite":
            path = Path(url[len("sqlite:///") :])
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)
            return
        name = url.rsplit("/", 1)[1]
        await self._pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._made.remove(name)

    async def close(self) -> None:
        for name in reversed(self._made):
            await self._pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self._made.clear()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextmanager
def fixed_ids(seed: int) -> Iterator[None]:
    """Generated ids are milliseconds + a process tag + a counter: fix the tag and the counter so a
    seed replays the same ids (the milliseconds come from the simulated clocks); restored after."""
    saved = ids._process_tag, ids._counter
    ids._process_tag = f"{seed & 0xFFFFFF:06x}"
    ids._counter = itertools.count(0)
    try:
        yield
    finally:
        ids._process_tag, ids._counter = saved


async def _inline(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return func(*args, **kwargs)


@contextmanager
def inline_threadpool() -> Iterator[None]:
    """FastAPI runs plain-function dependencies (the key checks' callers, pagination) on a thread pool;
    when a thread answers depends on the machine, so the interleaving of a step's requests would too.
    They only read the request, so the simulation runs them inline, on the event loop."""
    modules, name = (fastapi.dependencies.utils, fastapi.routing), "run_in_threadpool"
    saved = [getattr(m, name) for m in modules]
    for m in modules:
        setattr(m, name, _inline)
    try:
        yield
    finally:
        for m, original in zip(modules, saved, strict=True):
            setattr(m, name, original)


class Instance:
    """One app process: its own store connection(s), services, snapshot cache and clock."""

    def __init__(  # noqa: PLR0913 - one simulated instance and what it shares
        self,
        *,
        index: int,
        generation: int,
        skew_ms: int,
        clock: ManualClock,
        url: str,
        buyers: FakeBuyers,
        injector: FaultInjector,
        workdir: Path,
        leases: bool = False,
    ) -> None:
        self.leases = leases
        self.index = index
        self.generation = generation
        self.name = f"i{index}" if generation == 0 else f"i{index}.{generation}"
        self.skew_ms = skew_ms
        self.dead = False
        self.clock = SkewedClock(clock, skew_ms)
        self._shared = clock
        self._url = url
        self._buyers = buyers
        self._inject = injector.for_instance(self)
        self._workdir = workdir
        self.tasks: set[asyncio.Task[Any]] = set()
        self.store: Store | None = None
        self.http: httpx.AsyncClient | None = None
        self._lifespan: AbstractAsyncContextManager[Any] | None = None

    @contextmanager
    def context(self) -> Iterator[None]:
        """Everything this instance does runs on its own clock and its own fault injector."""
        with use_clock(self.clock), faults.inject(self._inject):
            yield

    async def start(self) -> None:
        self.store = await open_store(self._url, pool_size=3, shared_clock=self._shared)
        settings = Settings(
            database_url=self._url,
            admin_token=ADMIN_TOKEN,
            secret_key=SECRET_KEY,
            key_file=str(self._workdir / "pingpost.key"),
            log_level="critical",
            db_pool_size=3,
            leases=self.leases,
            lease_ttl_ms=LEASE_TTL_MS,
            lease_share=2,  # the simulated caps are small (1 to 20): lease them too
            lease_min_left=2,
        )
        app = create_app(settings, store=self.store, client=self._buyers)
        with self.context():
            self._lifespan = app.router.lifespan_context(app)
            await self._lifespan.__aenter__()
        # Report counters flush on a real-time timer; here they flush only at shutdown, so nothing
        # outside the seeded schedule touches the database.
        await app.state.services.counters.stop()
        if app.state.services.auction.leases is not None:  # swept by a seeded action instead
            app.state.services.auction.leases.stop_upkeep()
        self.app = app
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.http = httpx.AsyncClient(transport=transport, base_url="http://sim", timeout=None)

    async def stop(self) -> None:
        """A clean stop, or what is left to free after a crash (nothing more reaches the database:
        a dead instance's fault points all crash)."""
        if self.http is not None:
            await self.http.aclose()
        if self._lifespan is not None:
            with use_clock(self.clock), faults.inject(lambda point: None), contextlib.suppress(Exception):
                await self._lifespan.__aexit__(None, None, None)
        if self.store is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.store.close(), 10)

    def cancel_tasks(self, but: asyncio.Task[Any] | None = None) -> None:
        for task in self.tasks:
            if task is not but and not task.done():
                task.cancel()


@asynccontextmanager
async def checker_store(url: str, clock: ManualClock) -> AsyncIterator[Store]:
    store = await open_store(url, pool_size=2, shared_clock=clock)
    try:
        yield store
    finally:
        await store.close()
