"""SQLite store: stdlib sqlite3 called inline, one connection per process (DESIGN.md section 8).

A unit of work runs synchronously inside `BEGIN IMMEDIATE ... COMMIT`: its awaits never
suspend, so the write lock is held for the fraction of a millisecond the SQL takes and never
across an event-loop hand-off.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from pingpost.config import sqlite_path
from pingpost.db.store import Params, Row, compile_sql

T = TypeVar("T")


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


class _SqliteTx:
    dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    async def fetch(self, sql: str, params: Params = None) -> list[Row]:
        text, args = compile_sql(sql, params, "sqlite")
        return self._conn.execute(text, args).fetchall()

    async def fetchrow(self, sql: str, params: Params = None) -> Row | None:
        text, args = compile_sql(sql, params, "sqlite")
        return self._conn.execute(text, args).fetchone()

    async def fetchval(self, sql: str, params: Params = None) -> Any:
        row = await self.fetchrow(sql, params)
        return None if row is None else row[0]

    async def execute(self, sql: str, params: Params = None) -> int:
        text, args = compile_sql(sql, params, "sqlite")
        return self._conn.execute(text, args).rowcount

    async def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None:
        if not rows:
            return
        text, _ = compile_sql(sql, rows[0], "sqlite")
        self._conn.executemany(text, [compile_sql(sql, r, "sqlite")[1] for r in rows])


class SqliteStore:
    dialect = "sqlite"

    def __init__(self, url: str, conn: sqlite3.Connection) -> None:
        self.url = url
        self._conn = conn
        self._lock = asyncio.Lock()
        self._tx = _SqliteTx(conn)

    @classmethod
    def open(cls, url: str) -> SqliteStore:
        return cls(url, connect(sqlite_path(url)))

    async def _run(self, unit: Callable[[_SqliteTx], Awaitable[T]], begin: str) -> T:
        async with self._lock:
            for attempt in range(50):
                try:
                    self._conn.execute(begin)
                except sqlite3.OperationalError as exc:
                    if "locked" in str(exc) or "busy" in str(exc):
                        time.sleep(0.002 * (attempt + 1))
                        continue
                    raise
                try:
                    result = await unit(self._tx)
                except sqlite3.OperationalError as exc:
                    self._conn.execute("ROLLBACK")
                    if "locked" in str(exc) or "busy" in str(exc):
                        time.sleep(0.002 * (attempt + 1))
                        continue
                    raise
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")
                return result
            raise sqlite3.OperationalError("database is locked (gave up after retries)")

    async def write(self, unit: Callable[[Any], Awaitable[T]]) -> T:
        return await self._run(unit, "BEGIN IMMEDIATE")

    async def read(self, unit: Callable[[Any], Awaitable[T]]) -> T:
        return await self._run(unit, "BEGIN")

    async def ping(self) -> bool:
        self._conn.execute("SELECT 1").fetchone()
        return True

    async def close(self) -> None:
        self._conn.close()
