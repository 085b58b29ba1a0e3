"""`pingpost bench`: the benchmark of docs/performance.md, driven from this process against a pingpost
server started as its own process(es), loopback only, bounded in time and requests."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from pingpost.bench.dbstats import DatabaseCounters
from pingpost.bench.setup import FIXED, LEAD, admin_call, admin_session, setup_scenario
from pingpost.config import is_postgres
from pingpost.db.migrate import drop_pingpost_tables, existing_tables, migrate
from pingpost.processes import free_port, pingpost_process
from pingpost.security import new_key


@contextmanager
def _process(args: list[str], env: dict[str, str], ready_url: str, log: Path) -> Iterator[None]:
    with pingpost_process(args, env=env, log=log, ready_url=ready_url):
        yield


def _pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


class Driver:
    """An aiohttp load generator: closed loop at max, or open loop at a fixed rate."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def closed_loop(self, call: Callable[[], Awaitable[int]], *, seconds: float, concurrency: int) -> float:
        done = 0
        errors = 0
        stop = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done, errors
            while time.perf_counter() < stop:
                status = await call()
                if status == 200:
                    done += 1
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)

    async def open_loop(
        self, call: Callable[[], Awaitable[int]], *, rate: float, seconds: float
    ) -> tuple[list[float], int]:
        """Latencies (ms) measured from each request's scheduled start, so queueing counts."""
        latencies: list[float] = []
        errors = 0
        n = int(rate * seconds)
        start = time.perf_counter() + 0.05

        async def one(i: int) -> None:
            nonlocal errors
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            status = await call()
            if status == 200:
                latencies.append((time.perf_counter() - scheduled) * 1000)
            else:
                errors += 1

        await asyncio.gather(*(one(i) for i in range(n)))
        return latencies, errors


async def _measure(  # noqa: PLR0913 - a scenario's settings
    base: str,
    key: str,
    *,
    scenario: str,
    duration: float,
    rate: float,
    out: dict[str, Any],
    database: str | None = None,
) -> None:
    connector = aiohttp.TCPConnector(limit=512, limit_per_host=0)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:
        driver = Driver(session)
        auth = {"Authorization": f"Bearer {key}"}
        payload: dict[str, Any] = {"lead": LEAD}
        fixed = scenario in FIXED
        numbers = itertools.count()

        def body() -> dict[str, Any]:
            if scenario == "fixed":
                return payload
            # fixed_hashes / fixed_controls: a source and a consumer hash of its own on every ping (so no
            # ping is a duplicate of another, and every ping reads dedup and suppression)
            digest = hashlib.sha256(f"bench-{next(numbers)}".encode()).hexdigest()
            return {"lead": LEAD, "source": "bench.src", "consumer": {"phone_sha256": digest}}

        async def ping() -> int:
            try:
                async with session.post(f"{base}/v1/ping", json=body(), headers=auth) as r:
                    await r.read()
                    return r.status
            except (aiohttp.ClientError, TimeoutError):  # an overloaded machine: an error, not the end of the run
                return 0

        async def healthz() -> int:
            try:
                async with session.get(f"{base}/healthz") as r:
                    await r.read()
                    return r.status
            except (aiohttp.ClientError, TimeoutError):
                return 0

        await driver.closed_loop(ping, seconds=1.0, concurrency=16)  # warm up
        if fixed:
            out["healthz_peak_rps"] = await driver.closed_loop(healthz, seconds=duration, concurrency=32)
            async with DatabaseCounters(session, base, database) as counted:
                out["ping_peak_rps"] = await driver.closed_loop(ping, seconds=duration, concurrency=32)
                counted.pings = round(out["ping_peak_rps"] * duration)
            out["ratio_ping_healthz"] = out["ping_peak_rps"] / out["healthz_peak_rps"]
            out.update(counted.figures())
        latencies, errors = await driver.open_loop(ping, rate=rate, seconds=duration)
        out.update(
            rate=rate,
            pings=len(latencies),
            errors=errors,
            p50_ms=_pct(latencies, 50),
            p95_ms=_pct(latencies, 95),
            p99_ms=_pct(latencies, 99),
            mean_ms=statistics.fmean(latencies) if latencies else float("nan"),
        )
        if scenario == "fixed":
            post_latencies = []
            for i in range(20):
                answer: dict[str, Any] = {}
                for _ in range(3):  # a keep-alive connection the server dropped: ask again
                    try:
                        async with session.post(f"{base}/v1/ping", json=payload, headers=auth) as r:
                            answer = await r.json()
                        break
                    except (aiohttp.ClientError, TimeoutError):
                        continue
                if "ping_id" not in answer:
                    continue
                lead = {**LEAD, "first_name": "Bench", "phone": f"305555{1000 + i}"}
                started = time.perf_counter()
                try:
                    async with session.post(
                        f"{base}/v1/post", json={"ping_id": answer["ping_id"], "lead": lead}, headers=auth
                    ) as r:
                        await r.read()
                except (aiohttp.ClientError, TimeoutError):
                    continue
                post_latencies.append((time.perf_counter() - started) * 1000)
            out["post_p50_ms"] = _pct(post_latencies, 50)
            out["post_p99_ms"] = _pct(post_latencies, 99)


class DatabaseInUse(Exception):
    """The database given to the bench already holds tables, and no reset was asked for."""

    def __init__(self, tables: list[str]) -> None:
        shown = ", ".join(tables[:8]) + (f" and {len(tables) - 8} more" if len(tables) > 8 else "")
        super().__init__(
            f"the database is not empty ({len(tables)} table(s): {shown}). The bench drops pingpost's tables "
            "and creates them again before each scenario: give it an empty database, or pass --reset to let "
            "it delete pingpost's tables and data in this one (other tables are left alone)."
        )
        self.tables = tables


def claim_database(url: str, *, reset: bool) -> None:
    """Take the database at `url` for the bench: an empty one as it is; one that holds any table only
    with `reset`, which drops pingpost's tables (with their data) and migrates again.

    Raises DatabaseInUse, having touched nothing, for a database that holds a table without `reset`."""
    if reset:
        reset_database(url)
        return
    tables = existing_tables(url)
    if tables:
        raise DatabaseInUse(tables)


def reset_database(url: str) -> None:
    """pingpost's tables dropped and migrated again: the next scenario starts from nothing."""
    drop_pingpost_tables(url)
    migrate(url)


def run_bench(  # noqa: PLR0913 - one keyword a bench option
    *,
    database: str | None,
    workers: int,
    duration: float,
    rate: float,
    scenarios: tuple[str, ...] = ("fixed", "rtb", "hang"),
    reset: bool = False,
    compare_sqlite: bool = False,
    leases: bool = True,
) -> dict[str, Any]:
    """Run each scenario on a fresh server (fresh SQLite, or the given database) and answer the figures.

    A given database must hold no table unless `reset` (see `claim_database`; raises DatabaseInUse)."""
    if database:
        claim_database(database, reset=reset)
    workdir = Path(tempfile.mkdtemp(prefix="pingpost-bench-"))
    token = new_key("ppa")
    sandbox_port = free_port()
    sandbox = f"http://127.0.0.1:{sandbox_port}"
    env = {
        **os.environ,
        "PINGPOST_ADMIN_TOKEN": token,
        "PINGPOST_KEY_FILE": str(workdir / "pingpost.key"),
        "PINGPOST_LOG_LEVEL": "warning",
    }
    postgres = database is not None and is_postgres(database)
    if postgres:  # process leases of cap slots and funds (docs/scale-out.md): PostgreSQL only
        env["PINGPOST_LEASES"] = "true" if leases else "false"
    results: dict[str, Any] = {
        "workers": workers,
        "database": "postgresql" if postgres else "sqlite",
        "leases": postgres and leases,
        "duration_s": duration,
    }
    with _process(
        ["sandbox-buyers", "--port", str(sandbox_port)], env, f"{sandbox}/_received/x", workdir / "sandbox.log"
    ):
        if compare_sqlite and postgres:
            # the scale-out target is a ratio to SQLite's 1-worker peak measured in the same run (docs/scale-out.md)
            sqlite = f"sqlite:///{workdir / 'fixed-sqlite.db'}"
            sqlite_env = {**env, "PINGPOST_LEASES": "false"}
            results["sqlite_1_worker"] = _scenario(
                sqlite, None, 1, "fixed", sqlite_env, workdir, sandbox, token, duration, rate
            )
        for scenario in scenarios:
            url = database or f"sqlite:///{workdir / f'{scenario}.db'}"
            if database:
                reset_database(database)
            pg = database if postgres else None
            results[scenario] = _scenario(url, pg, workers, scenario, env, workdir, sandbox, token, duration, rate)
        if "sqlite_1_worker" in results and "fixed" in results:
            results["pg_peak_over_sqlite_1_worker"] = (
                results["fixed"]["ping_peak_rps"] / results["sqlite_1_worker"]["ping_peak_rps"]
            )
        if database and postgres:
            results["no_oversell"] = _oversell(database, env, workdir, sandbox, token, workers)
    return results


def _scenario(  # noqa: PLR0913 - one scenario's whole context
    url: str,
    postgres: str | None,
    workers: int,
    scenario: str,
    env: dict[str, str],
    workdir: Path,
    sandbox: str,
    token: str,
    duration: float,
    rate: float,
) -> dict[str, Any]:
    """One scenario on a fresh server over `url` (`postgres`: the same URL, to sample PostgreSQL)."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    name = f"{scenario}-{'pg' if postgres else 'sqlite'}-{workers}"
    with _process(
        ["serve", "--port", str(port), "--workers", str(workers), "--database", url],
        env,
        f"{base}/readyz",
        workdir / f"server-{name}.log",
    ):
        key = asyncio.run(setup_scenario(base, token, sandbox, scenario))
        figures: dict[str, Any] = {}
        scenario_rate = rate if scenario in FIXED else 50.0
        asyncio.run(
            _measure(
                base, key, scenario=scenario, duration=duration, rate=scenario_rate, out=figures, database=postgres
            )
        )
    if scenario == "rtb":
        figures["rtb_overhead_p50_ms"] = figures["p50_ms"] - 50
        figures["rtb_overhead_p99_ms"] = figures["p99_ms"] - 50
    if scenario == "hang":
        figures["hang_cost_over_timeout_p99_ms"] = figures["p99_ms"] - 300
    return figures


def _oversell(
    database: str, env: dict[str, str], workdir: Path, sandbox: str, token: str, workers: int
) -> dict[str, Any]:
    """2,000 concurrent pings against a cap of 50 from two server processes sharing PostgreSQL."""
    reset_database(database)
    ports = [free_port(), free_port()]
    bases = [f"http://127.0.0.1:{p}" for p in ports]
    with (
        _process(
            ["serve", "--port", str(ports[0]), "--workers", str(workers), "--database", database],
            env,
            f"{bases[0]}/readyz",
            workdir / "oversell-a.log",
        ),
        _process(
            ["serve", "--port", str(ports[1]), "--workers", str(workers), "--database", database],
            env,
            f"{bases[1]}/readyz",
            workdir / "oversell-b.log",
        ),
    ):
        key = asyncio.run(setup_scenario(bases[0], token, sandbox, "hang"))

        async def cap_one_contract() -> None:
            async with admin_session(bases[0], token) as c:
                await admin_call(c, "PATCH", "/v1/admin/contracts/k01", {"caps": {"daily": 50}}, 200)
                await admin_call(c, "PATCH", "/v1/admin/contracts/k00", {"status": "paused"}, 200)

        asyncio.run(cap_one_contract())

        async def fire() -> int:
            connector = aiohttp.TCPConnector(limit=400, limit_per_host=0)
            async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as s:

                async def one(i: int) -> bool:
                    async with s.post(
                        f"{bases[i % 2]}/v1/ping", json={"lead": LEAD}, headers={"Authorization": f"Bearer {key}"}
                    ) as r:
                        return bool((await r.json()).get("bids"))

                return sum(await asyncio.gather(*(one(i) for i in range(2000))))

        won = asyncio.run(fire())

    async def reserved() -> int:
        from pingpost.db import auction_repo
        from pingpost.db.store import open_store

        store = await open_store(database, pool_size=1)
        try:
            return await store.read(lambda tx: auction_repo.count_reservations(tx, "k01"))
        finally:
            await store.close()

    count = asyncio.run(reserved())
    return {"pings": 2000, "cap": 50, "bids_answered": won, "reservations": count, "exact": count == 50 == won}
