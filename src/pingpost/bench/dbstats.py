"""What the bench counts on PostgreSQL during the fixed-price ping peak (docs/performance.md).

- `db_statements_per_ping`: the servers' own count of round trips to PostgreSQL (every statement,
  BEGIN with its SET LOCAL, sent as one, and COMMIT), read from their `/metrics`
  (`pingpost_db_statements_total`) before and after the phase, over the pings answered in it. The
  count includes everything the servers did meanwhile (lease upkeep, background tasks), which is
  what a ping costs the database; pg_stat_statements would need a server restart to load.
- `lock_waits_per_ping`: PostgreSQL's `pg_locks` sampled every 5 ms from a connection of its own;
  each backend seen waiting for a row lock (an ungranted `transactionid` or `tuple` lock) counts
  once per wait however many samples see it. A wait shorter than the interval can be missed, so
  this is a lower bound; `lock_waiting_backends_mean` (backends waiting, averaged over the samples)
  is the time side of the same figure (Little's law: mean waiting x seconds = seconds spent waiting).
Both figures are absent on SQLite (one writer: nothing to wait for but the write lock).
"""

from __future__ import annotations

import asyncio
import re
from types import TracebackType
from typing import Any

import aiohttp

from pingpost.db import pgstats_repo
from pingpost.db.store import Store, open_store

_STATEMENTS = re.compile(r"^pingpost_db_statements_total(?:\{[^}]*\})? ([0-9.e+]+)$", re.MULTILINE)
_INTERVAL_S = 0.005


async def _statements(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(f"{base}/metrics") as r:
        text = await r.text()
    return sum(float(v) for v in _STATEMENTS.findall(text))


class DatabaseCounters:
    """`async with` around a measured phase; set `pings` inside it, read `figures()` after."""

    def __init__(self, session: aiohttp.ClientSession, base: str, database: str | None) -> None:
        self.session, self.base, self.database = session, base, database
        self.pings = 0
        self._store: Store | None = None
        self._task: asyncio.Task[None] | None = None
        self._waits: set[str] = set()
        self._samples = 0
        self._waiting = 0
        self._before = self._after = 0.0

    async def __aenter__(self) -> DatabaseCounters:
        if self.database is not None:
            self._store = await open_store(self.database, pool_size=1)
            self._before = await _statements(self.session, self.base)
            self._task = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        assert self._store is not None
        while True:
            keys = await self._store.read(pgstats_repo.row_lock_waiters)
            self._samples += 1
            self._waiting += len(keys)
            self._waits.update(keys)
            await asyncio.sleep(_INTERVAL_S)

    async def __aexit__(
        self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._after = await _statements(self.session, self.base)
        if self._store is not None:
            await self._store.close()

    def figures(self) -> dict[str, Any]:
        if self.database is None or not self.pings:
            return {}
        return {
            "db_statements_per_ping": (self._after - self._before) / self.pings,
            "lock_waits_per_ping": len(self._waits) / self.pings,
            "lock_waiting_backends_mean": self._waiting / max(self._samples, 1),
        }
