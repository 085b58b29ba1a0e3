"""SQLite store: stdlib sqlite3 called inline, one connection per process (docs/performance.md).

Units of work never suspend (their only awaits are this store's inline calls), so each is driven
to completion synchronously: no event-loop hand-off ever happens while SQLite's write lock is held.
Writes use group commit: every unit queued during one turn of the event loop runs in one
`BEGIN IMMEDIATE ... COMMIT`, each inside its own SAVEPOINT so a failing unit rolls back alone,
and each caller gets its own result only after the shared COMMIT. One durable commit then covers
a whole batch of pings instead of one each.

A batch whose units were all written with `durable=False` (ping decisions) commits with
`synchronous=NORMAL`: in WAL mode that survives a crash of the process, and an OS crash or power
loss may lose the last such commits whole (pings with their reservations and idempotency answers,
which only frees slots early), as `synchronous_commit = off` does on PostgreSQL (docs/performance.md). Any
durable unit in the batch (a sale, the ledger, configuration) makes its COMMIT `synchronous=FULL`,
which also syncs every earlier frame of the WAL, and so does the first batch `sync_interval_s`
(50 ms) after the last such sync: what such an OS crash can lose is bounded, like PostgreSQL's WAL
writer bounds it, and a WAL checkpoint never has seconds of unsynced WAL to flush inside a request
(measured: p99 at 300 pings/s 6.5-8 ms without this bound, 4-5 ms with it).

Units written with `batch_cache=True` share `tx.cache`, a dict that lives for one batch: while the
batch holds SQLite's write lock no other connection can change anything, so what one such unit
read (and kept up to date with its own writes) is still exact for the next. Any other unit, and
any unit that fails, empties it first (docs/performance.md).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from pingpost import clock, faults
from pingpost.config import sqlite_path
from pingpost.db.store import Params, Row, compile_sql

T = TypeVar("T")
_BUSY = ("locked", "busy")


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def run_inline(coro: Coroutine[Any, Any, T]) -> T:
    """Drive a coroutine that never suspends; a unit that awaits anything else is a bug."""
    try:
        coro.send(None)
    except StopIteration as stop:
        result: T = stop.value
        return result
    coro.close()
    raise RuntimeError("a store unit awaited something other than the store (it must not suspend)")


class _SqliteTx:
    dialect = "sqlite"
    in_doubt = False  # every statement runs in the batch's transaction: its outcome is known

    def __init__(self, conn: sqlite3.Connection, shared_clock: clock.Clock | None = None) -> None:
        self._conn = conn
        self.cache: dict[str, Any] = {}
        self._shared_clock = shared_clock
        self._now: int | None = None

    async def now_ms(self) -> int:
        # One host's processes share its clock (the simulator passes its one clock explicitly); read
        # once per unit so one decision uses one instant.
        if self._now is None:
            self._now = (self._shared_clock or clock.current()).now_ms()
        return self._now

    def pending_now(self) -> bool:
        return False  # the host's clock costs no round trip

    def adopt_now(self, ms: int) -> None:
        if self._now is None:
            self._now = ms

    async def fetch(self, sql: str, params: Params = None) -> list[Row]:
        text, args = compile_sql(sql, params, "sqlite")
        return self._conn.execute(text, args).fetchall()

    async def fetchrow(self, sql: str, params: Params = None) -> Row | None:
        text, args = compile_sql(sql, params, "sqlite")
        return self._conn.execute(text, args).fetchone()

    async def fetchval(self, sql: str, params: Params = None) -> Any:
        row = await self.fetchrow(sql, params)
        return None if row is None else row[0]

    async def fetchrow_alone(self, sql: str, params: Params = None) -> Row | None:
        return await self.fetchrow(sql, params)  # one writer: the batch's transaction is no cost

    async def fetchval_last(self, sql: str, params: Params = None) -> Any:
        return await self.fetchval(sql, params)

    async def execute(self, sql: str, params: Params = None) -> int:
        text, args = compile_sql(sql, params, "sqlite")
        return self._conn.execute(text, args).rowcount

    async def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        text, _ = compile_sql(sql, rows[0], "sqlite")
        self._conn.executemany(text, [compile_sql(sql, r, "sqlite")[1] for r in rows])


Unit = Callable[[Any], Awaitable[Any]]


class SqliteStore:
    dialect = "sqlite"

    def __init__(
        self,
        url: str,
        conn: sqlite3.Connection,
        *,
        sync_interval_s: float = 0.05,
        shared_clock: clock.Clock | None = None,
    ) -> None:
        self.url = url
        self.sync_interval_s = sync_interval_s
        self._conn = conn
        self._tx = _SqliteTx(conn, shared_clock)
        self._queue: list[tuple[Unit, asyncio.Future[Any], bool, bool]] = []
        self._synchronous = "FULL"
        self._synced_at = float("-inf")  # monotonic time of the last COMMIT with synchronous=FULL
        self._flush_scheduled = False

    @classmethod
    def open(cls, url: str, *, shared_clock: clock.Clock | None = None) -> SqliteStore:
        # SQLite's own WAL auto-checkpoint stays on: a checkpoint thread beside the writer was measured
        # worse here (p99 at 300 pings/s 12-47 ms against 4.5-8.5 ms), see docs/performance.md.
        return cls(url, connect(sqlite_path(url)), shared_clock=shared_clock)

    def _begin(self, statement: str) -> None:
        for attempt in range(100):
            try:
                self._conn.execute(statement)
                return
            except sqlite3.OperationalError as exc:
                if not any(word in str(exc) for word in _BUSY):
                    raise
                time.sleep(0.002 * (attempt + 1))
        raise sqlite3.OperationalError("database is locked (gave up after retries)")

    async def write(self, unit: Callable[[Any], Awaitable[T]], *, batch_cache: bool = False, durable: bool = True) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.append((unit, future, batch_cache, durable))
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        """Run every queued unit in one transaction, each in a savepoint; answer after COMMIT."""
        self._flush_scheduled = False
        batch, self._queue = self._queue, []
        outcomes: list[tuple[asyncio.Future[Any], bool, Any]] = []
        cache = self._tx.cache
        cache.clear()
        try:
            started = time.monotonic()
            synchronous = (
                "FULL"
                if started - self._synced_at >= self.sync_interval_s or any(entry[3] for entry in batch)
                else "NORMAL"
            )
            if synchronous != self._synchronous:
                self._conn.execute(f"PRAGMA synchronous={synchronous}")
                self._synchronous = synchronous
            self._begin("BEGIN IMMEDIATE")
            for unit, future, shares_cache, _ in batch:
                if future.cancelled():
                    continue
                if not shares_cache:
                    cache.clear()
                ok, value = self._run_unit(unit, cache)
                outcomes.append((future, ok, value))
            self._conn.execute("COMMIT")
            if synchronous == "FULL":
                self._synced_at = started
            cache.clear()
        except BaseException as exc:
            cache.clear()
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            for _, future, _, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for future, ok, value in outcomes:
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    def _run_unit(self, unit: Unit, cache: dict[str, Any]) -> tuple[bool, Any]:
        """One unit in its own savepoint; an injected conflict (the simulator's deadlock) reruns it whole."""
        for attempt in range(20):
            self._conn.execute("SAVEPOINT unit")
            self._tx._now = None
            try:
                value: Any = run_inline(unit(self._tx))  # type: ignore[arg-type]
                faults.hit("before_commit")
            except faults.InjectedConflict:
                cache.clear()
                self._conn.execute("ROLLBACK TO unit")
                self._conn.execute("RELEASE unit")
                if attempt < 19:
                    continue
                return False, faults.InjectedConflict("gave up after retries")
            except BaseException as exc:  # the unit's failure is its caller's alone
                cache.clear()
                self._conn.execute("ROLLBACK TO unit")
                self._conn.execute("RELEASE unit")
                return False, exc
            self._conn.execute("RELEASE unit")
            return True, value
        raise RuntimeError("unreachable")

    async def read(self, unit: Callable[[Any], Awaitable[T]]) -> T:
        self._tx.cache.clear()
        self._tx._now = None
        self._begin("BEGIN")
        try:
            return run_inline(unit(self._tx))  # type: ignore[arg-type]
        finally:
            self._conn.execute("COMMIT")

    async def ping(self) -> bool:
        self._conn.execute("SELECT 1").fetchone()
        return True

    async def close(self) -> None:
        self._conn.close()
