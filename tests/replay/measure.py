"""Measure the what-if replay's CPU per part over a history made by `pingpost seed-data`
(docs/performance.md, What-if replay):

    .venv/bin/pingpost seed-data --pings 1000000 --days 30 --database sqlite:////tmp/seed/r.db
    .venv/bin/python -m tests.replay.measure --database sqlite:////tmp/seed/r.db

The seeded configuration and deposits are dated a minute before the first ping, so the unchanged
configuration is replayed with the funds it had. CPU time (`time.process_time`), not wall time:
the machine is shared."""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from pingpost.db.store import open_store
from pingpost.replay import loader
from pingpost.replay.service import ReplayRequest, ReplayService, fewer_collections


def calibrate() -> float:
    """CPU seconds for 3,000,000 calls of a one-line function: how fast this machine is right now."""

    def one(x: int) -> int:
        return x + 1

    started = time.process_time()
    for i in range(3_000_000):
        one(i)
    return time.process_time() - started


async def measure(database: str, days: int, profile: str | None) -> dict[str, Any]:
    store = await open_store(database)
    try:
        today = datetime.now(UTC).date()
        request = ReplayRequest.parse((today - timedelta(days=days)).isoformat(), today.isoformat())
        service = ReplayService(store)
        started = time.process_time()
        prepared = await service.prepare(request)
        prepare_s = time.process_time() - started
        engine, load_s, engine_s, count = prepared.engine, 0.0, 0.0, 0
        profiler: Any = None
        if profile:
            import cProfile

            profiler = cProfile.Profile()
        batches = loader.batches(store, request.scope, with_waterfall=prepared.with_waterfall)
        collections = fewer_collections()  # as ReplayService.execute runs
        collections.__enter__()
        while True:
            started = time.process_time()
            batch = await anext(batches, None)
            load_s += time.process_time() - started
            if batch is None:
                break
            started = time.process_time()
            if profiler is not None:
                profiler.enable()
            for ping in batch:
                engine.step(ping)
            if profiler is not None:
                profiler.disable()
            engine_s += time.process_time() - started
            count += len(batch)
        started = time.process_time()
        tallies = engine.finish()
        engine_s += time.process_time() - started
        collections.__exit__(None, None, None)
        if profiler is not None:
            profiler.dump_stats(profile)
        actual, proposed = tallies["actual"].summary(), tallies["proposed"].summary()
        return {
            "pings": count,
            "prepare_s": round(prepare_s, 2),
            "load_s": round(load_s, 2),
            "engine_s": round(engine_s, 2),
            "load_per_s": int(count / load_s) if load_s else None,
            "engine_per_s": int(count / engine_s) if engine_s else None,
            "together_per_s": int(count / (prepare_s + load_s + engine_s)),
            "actual": {k: actual[k] for k in ("sold", "sales", "revenue_cents")},
            "proposed": {k: proposed[k] for k in ("sold", "sales", "revenue_cents")},
        }
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database", required=True)
    parser.add_argument("--days", type=int, default=31, help="UTC days back from today, today included")
    parser.add_argument("--profile", help="write cProfile stats of the engine to this file")
    args = parser.parse_args()
    print({"calibration_s": round(calibrate(), 2)})
    print(asyncio.run(measure(args.database, args.days, args.profile)))


if __name__ == "__main__":
    main()
