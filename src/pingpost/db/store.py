"""The Store seam: one async unit-of-work interface over stdlib sqlite3 and asyncpg.

Services write SQL once with `:name` parameters; a list/tuple parameter expands for `IN (:ids)`.
Every unit of work runs through `Store.write` (a short write transaction, retried on lock
contention) or `Store.read`; no unit may await anything but its transaction, so nothing is ever
held across an outbound call (docs/architecture.md).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from pingpost.clock import Clock

T = TypeVar("T")
Row = Any  # sqlite3.Row or asyncpg.Record: both support row["column"]
Params = Mapping[str, Any] | None

# PostgreSQL's clock in milliseconds: the time of shared decisions (docs/crash-safety.md).
DB_CLOCK_SQL = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"

_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_][A-Za-z0-9_]*)")


@lru_cache(maxsize=2048)
def _compile(sql: str, list_sizes: tuple[tuple[str, int], ...], dialect: str) -> tuple[str, tuple[str, ...]]:
    sizes = dict(list_sizes)
    order: list[str] = []

    def placeholder(name: str) -> str:
        if dialect == "sqlite":
            order.append(name)
            return "?"
        if name not in order:  # PostgreSQL reuses $n for a repeated name, so its type is inferred once
            order.append(name)
        return f"${order.index(name) + 1}"

    def repl(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in sizes:
            n = sizes[name]
            if n == 0:
                return "NULL"
            return ", ".join(placeholder(f"{name}\x00{i}") for i in range(n))
        return placeholder(name)

    return _PARAM.sub(repl, sql), tuple(order)


_LIST_PARAM = re.compile(r"\(:([A-Za-z_][A-Za-z0-9_]*)\)")


@lru_cache(maxsize=2048)
def _list_params(sql: str) -> tuple[str, ...]:
    """The names written `(:name)`, the only ones a list may be passed for (`IN (:ids)`)."""
    return tuple(sorted(set(_LIST_PARAM.findall(sql))))


def compile_sql(sql: str, params: Params, dialect: str) -> tuple[str, list[Any]]:
    """Turn `:name` SQL into the driver's placeholders and an ordered argument list.

    A list or tuple passed for a name written `(:name)` expands to one placeholder per item."""
    params = params or {}
    sizes = tuple((k, len(v)) for k in _list_params(sql) if isinstance(v := params.get(k), (list, tuple)))
    text, order = _compile(sql, sizes, dialect)
    if not sizes:  # the common case: scalars only
        return text, [int(v) if (v := params[name]).__class__ is bool else v for name in order]
    args: list[Any] = []
    for name in order:
        if "\x00" in name:
            base, idx = name.split("\x00")
            args.append(params[base][int(idx)])
        else:
            value = params[name]
            args.append(int(value) if isinstance(value, bool) else value)
    return text, args


class Tx(Protocol):
    """One open transaction (or read snapshot)."""

    dialect: str
    cache: dict[str, Any]  # see Store.write(batch_cache=...)
    # `fetchval_last` sent alone got no answer (a broken connection, a cancelled task): it may have
    # committed. Whatever it reserved must not be handed out again (docs/scale-out.md).
    in_doubt: bool

    async def fetch(self, sql: str, params: Params = None) -> list[Row]: ...

    async def fetchrow(self, sql: str, params: Params = None) -> Row | None: ...

    async def fetchval(self, sql: str, params: Params = None) -> Any: ...

    async def execute(self, sql: str, params: Params = None) -> int:
        """Run a statement; answer the number of rows it changed."""
        ...

    async def fetchrow_alone(self, sql: str, params: Params = None) -> Row | None:
        """`fetchrow` of a read that needs no lock kept after it. PostgreSQL, in a write unit that has
        opened no transaction yet: sent outside one (its own snapshot, as READ COMMITTED gives every
        statement), so the unit may still end with `fetchval_last` and no BEGIN or COMMIT."""
        ...

    async def fetchval_last(self, sql: str, params: Params = None) -> Any:
        """`fetchval` of the unit's last statement. PostgreSQL, in a ping decision (`durable=False`)
        that opened no transaction: sent alone, a transaction of its own that commits as it answers
        (docs/performance.md, "Scale-out"); the unit sends nothing after it."""
        ...

    async def executemany(self, sql: str, rows: Sequence[Mapping[str, Any]]) -> None: ...

    async def now_ms(self) -> int:
        """The time for decisions other processes share (expiry, cap periods), read once per
        transaction: on PostgreSQL the database's clock, on SQLite the host's (docs/crash-safety.md)."""
        ...

    def pending_now(self) -> bool:
        """Whether `now_ms()` would cost a round trip (PostgreSQL's clock, not read yet in this
        transaction): a statement may then read `DB_CLOCK_SQL` along with its own work and hand the
        value to `adopt_now`, one round trip fewer (docs/performance.md, "Scale-out")."""
        ...

    def adopt_now(self, ms: int) -> None:
        """The clock `DB_CLOCK_SQL` read in this transaction: what `now_ms()` answers from now on."""
        ...


class Store(Protocol):
    dialect: str
    url: str

    async def write(self, unit: Callable[[Tx], Awaitable[T]], *, batch_cache: bool = False, durable: bool = True) -> T:
        """Run `unit` in one short write transaction; retried whole on lock contention.

        With `batch_cache`, the unit may keep what it read in `tx.cache` for the next such unit of the
        same transaction (SQLite's group commit); it must keep that cache exact with its own writes.
        With `durable=False` (ping decisions only; never sales or the ledger) the commit does not wait
        for the disk: an OS crash or power loss may lose it whole (docs/performance.md)."""
        ...

    async def read(self, unit: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `unit` on a consistent read snapshot."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...


async def open_store(
    url: str, *, pool_size: int = 10, shared_clock: Clock | None = None, statement_cache_size: int = 100
) -> Store:
    """`shared_clock` replaces the database's clock for shared decisions (the simulator's one clock).
    `statement_cache_size` (PostgreSQL): asyncpg's prepared statements per connection; 0 behind
    PgBouncer in transaction mode before 1.21 (docs/deploy.md)."""
    from pingpost.config import is_postgres, normalise_database_url

    if is_postgres(url):
        from pingpost.db.postgres_store import PostgresStore

        return await PostgresStore.open(
            normalise_database_url(url),
            min_size=1,
            max_size=pool_size,
            shared_clock=shared_clock,
            statement_cache_size=statement_cache_size,
        )
    from pingpost.db.sqlite_store import SqliteStore

    return SqliteStore.open(url, shared_clock=shared_clock)
