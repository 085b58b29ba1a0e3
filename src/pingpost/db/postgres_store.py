"""PostgreSQL store over asyncpg: native async, a pool sized to the process's concurrency.

Round trips are what a ping costs here (docs/performance.md, "Scale-out"): a transaction opens with
one message (`BEGIN` and, for a ping decision, `SET LOCAL synchronous_commit = off`, sent together
as one simple query) at the unit's first statement that needs it, a fixed-price ping drawing from
its process's leases needs none (one read, then one statement that writes and commits: `_PgTx`),
and a connection goes back to the pool without asyncpg's reset query (nothing of pingpost's lives
in a session: its advisory locks are transaction-scoped, it never LISTENs nor SETs a session
variable; an open transaction is still rolled back by the pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import asyncpg

from pingpost import faults
from pingpost.clock import Clock
from pingpost.db.store import DB_CLOCK_SQL, Params, Row, compile_sql
from pingpost.metrics import DB_STATEMENTS

T = TypeVar("T")
_RETRY_SQLSTATES = {"40001", "40P01"}  # serialization failure, deadlock
_BEGIN = {  # (readonly, durable) -> what opens the transaction, one round trip
    (True, True): "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    (False, True): "BEGIN ISOLATION LEVEL READ COMMITTED",
    (False, False): "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = off",
}


async def _keep_session(conn: Any) -> None:
    """The pool's reset on release: nothing to reset (see the module's docstring)."""


class _PgTx:
    """One unit's connection. The transaction opens at the unit's first statement that needs one (a
    unit that sends nothing sends no BEGIN either); `fetchrow_alone` and `fetchval_last` let a ping
    decision run as two statements with no BEGIN or COMMIT at all (see them)."""

    dialect = "postgresql"

    def __init__(
        self, conn: Any, shared_clock: Clock | None, *, begin: str, readonly: bool, durable: bool, alone: bool = True
    ) -> None:
        self._conn = conn
        self.cache: dict[str, Any] = {}  # one transaction's (batch_cache units share nothing here)
        self._shared_clock = shared_clock
        self._now: int | None = None
        self._begin = begin
        self._alone = alone and not readonly  # statements may go outside a transaction (PostgresStore)
        self._durable = durable
        self.open = False  # BEGIN sent, COMMIT or ROLLBACK due
        self.committed = False  # the last statement was sent alone and committed as it answered
        # the last statement was sent alone and no answer came back (the connection broke, the task
        # was cancelled): the server may have committed it
        self.in_doubt = False
        self.statements = 0  # round trips sent (metrics.DB_STATEMENTS)

    async def _opened(self) -> Any:
        if self.committed:
            raise RuntimeError("a statement after the unit's last one (fetchval_last)")
        if not self.open:
            self.statements += 1
            await self._conn.execute(self._begin)
            self.open = True
        return self._conn

    async def now_ms(self) -> int:
        """The database's clock, read once in this transaction: every host decides expiry and cap
        periods by the same time, however far apart their own clocks are (docs/crash-safety.md)."""
        if self._now is None:
            if self._shared_clock is not None:
                self._now = self._shared_clock.now_ms()
            else:
                self.statements += 1
                conn = self._conn if not self.committed else await self._opened()
                self._now = int(await conn.fetchval(f"SELECT {DB_CLOCK_SQL}"))
        return self._now

    def pending_now(self) -> bool:
        return self._now is None and self._shared_clock is None

    def adopt_now(self, ms: int) -> None:
        if self._now is None:
            self._now = ms

    async def fetchrow_alone(self, sql: str, params: Params = None) -> Row | None:
        """A read that keeps no lock, in a write unit (READ COMMITTED: each statement reads a snapshot
        of its own anyway): sent outside a transaction while the unit has opened none."""
        if self.open or not self._alone:
            return await self.fetchrow(sql, params)
        if self.committed:
            raise RuntimeError("a statement after the unit's last one (fetchval_last)")
        self.statements += 1
        text, args = compile_sql(sql, params, "postgresql")
        return await self._conn.fetchrow(text, *args)

    async def fetchval_last(self, sql: str, params: Params = None) -> Any:
        """The unit's last statement. In a ping decision (`durable=False`) that opened no transaction,
        it is sent alone and commits as it answers (the statement must itself turn synchronous commit
        off, `set_config('synchronous_commit', 'off', true)`; the `before_commit` fault point is
        reported before it is sent). Nothing may be sent after it."""
        if self.open or self._durable or not self._alone:
            value = await self.fetchval(sql, params)
        else:
            if self.committed:
                raise RuntimeError("a statement after the unit's last one (fetchval_last)")
            faults.hit("before_commit")
            self.statements += 1
            text, args = compile_sql(sql, params, "postgresql")
            self.in_doubt = True
            try:
                value = await self._conn.fetchval(text, *args)
            except asyncpg.PostgresError as exc:
                # the server refused the statement: nothing committed. Not so a lost connection
                # (class 08) or a server stopping (class 57): the commit may have happened first.
                self.in_doubt = str(getattr(exc, "sqlstate", "") or "")[:2] in ("08", "57", "")
                raise
            self.in_doubt = False
        self.committed = not self.open
        return value

    async def fetch(self, sql: str, params: Params = None) -> list[Row]:
        conn = await self._opened()
        self.statements += 1
        text, args = compile_sql(sql, params, "postgresql")
        return list(await conn.fetch(text, *args))

    async def fetchrow(self, sql: str, params: Params = None) -> Row | None:
        conn = await self._opened()
        self.statements += 1
        text, args = compile_sql(sql, params, "postgresql")
        return await conn.fetchrow(text, *args)

    async def fetchval(self, sql: str, params: Params = None) -> Any:
        conn = await self._opened()
        self.statements += 1
        text, args = compile_sql(sql, params, "postgresql")
        return await conn.fetchval(text, *args)

    async def execute(self, sql: str, params: Params = None) -> int:
        conn = await self._opened()
        self.statements += 1
        text, args = compile_sql(sql, params, "postgresql")
        status: str = await conn.execute(text, *args)
        tail = status.rsplit(" ", 1)[-1]
        return int(tail) if tail.isdigit() else 0

    async def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        conn = await self._opened()
        self.statements += len(rows)
        text, _ = compile_sql(sql, rows[0], "postgresql")
        await conn.executemany(text, [compile_sql(sql, r, "postgresql")[1] for r in rows])


class PostgresStore:
    dialect = "postgresql"

    def __init__(self, url: str, pool: Any, *, shared_clock: Clock | None = None, alone: bool = True) -> None:
        """`alone`: a ping's read and write may go as statements of their own (`_PgTx`). Not without
        asyncpg's statement cache (PgBouncer before 1.21, docs/deploy.md): an unnamed statement is
        prepared and run in two messages, which transaction pooling may send to two server connections
        unless a transaction holds one."""
        self.url = url
        self._pool = pool
        self._shared_clock = shared_clock
        self._alone = alone

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        min_size: int = 2,
        max_size: int = 20,
        shared_clock: Clock | None = None,
        statement_cache_size: int = 100,
    ) -> PostgresStore:
        pool = await asyncpg.create_pool(
            url, min_size=min_size, max_size=max_size, statement_cache_size=statement_cache_size, reset=_keep_session
        )
        return cls(url, pool, shared_clock=shared_clock, alone=statement_cache_size > 0)

    async def _run(self, unit: Callable[[_PgTx], Awaitable[T]], *, readonly: bool, durable: bool = True) -> T:
        begin = _BEGIN[(readonly, durable or readonly)]
        for attempt in range(20):
            try:
                async with self._pool.acquire() as conn:
                    tx = _PgTx(
                        conn, self._shared_clock, begin=begin, readonly=readonly, durable=durable, alone=self._alone
                    )
                    try:
                        result = await unit(tx)
                        if not readonly and not tx.committed:
                            faults.hit("before_commit")
                    except BaseException:
                        DB_STATEMENTS.inc(tx.statements + tx.open)  # and the ROLLBACK
                        if tx.open:
                            with contextlib.suppress(Exception):  # a broken connection: the pool drops it
                                await conn.execute("ROLLBACK")
                        raise
                    DB_STATEMENTS.inc(tx.statements + tx.open)  # and the COMMIT
                    if tx.open:
                        await conn.execute("COMMIT")
                    return result
            except faults.InjectedConflict:
                if attempt < 19:
                    continue
                raise
            except asyncpg.PostgresError as exc:
                if getattr(exc, "sqlstate", None) in _RETRY_SQLSTATES and attempt < 19:
                    await asyncio.sleep(random.uniform(0.001, 0.01) * (attempt + 1))
                    continue
                raise
        raise RuntimeError("unreachable")

    async def write(self, unit: Callable[[Any], Awaitable[T]], *, batch_cache: bool = False, durable: bool = True) -> T:
        return await self._run(unit, readonly=False, durable=durable)

    async def read(self, unit: Callable[[Any], Awaitable[T]]) -> T:
        return await self._run(unit, readonly=True)

    async def ping(self) -> bool:
        async with self._pool.acquire() as conn:
            await conn.fetchval("SELECT 1")
        return True

    async def close(self) -> None:
        await self._pool.close()
