"""The simulator on a time budget, on SQLite and (where PINGPOST_TEST_POSTGRES_URL is set) PostgreSQL
(docs/simulator.md). PINGPOST_SIM_SECONDS is the budget for both stores together (default 100);
seeds run from PINGPOST_SIM_FIRST_SEED (default 1) until a store's share is spent, at least
MIN_SEEDS each. A failure shows each failing seed's invariant, the tail of its trace and the command
that replays it."""

from __future__ import annotations

import itertools
import os

import pytest

from tests.conftest import BACKENDS
from tests.sim.__main__ import describe, run_seeds
from tests.sim.simulation import Options, Simulation
from tests.sim.world import Databases

STEPS = 200
MIN_SEEDS = 3


@pytest.mark.parametrize("store", BACKENDS)
async def test_simulated_exchange_keeps_every_invariant(store: str) -> None:
    budget = float(os.environ.get("PINGPOST_SIM_SECONDS", "100")) / 2
    first = int(os.environ.get("PINGPOST_SIM_FIRST_SEED", "1"))
    results = await run_seeds(store, itertools.count(first), steps=STEPS, budget_s=budget, min_seeds=MIN_SEEDS)
    failed = [r for r in results if not r.ok]
    if failed:
        pytest.fail(
            f"{len(failed)} of {len(results)} seeds failed on {store}:\n"
            + "\n".join(describe(r, steps=STEPS) for r in failed),
            pytrace=False,
        )


async def test_a_seed_replays_the_same_trace() -> None:
    """Same seed, same trace (SQLite: its units never yield, so one event loop schedules alike)."""
    databases = Databases("sqlite")
    traces = []
    try:
        for _ in range(2):
            url = await databases.create()
            result = await Simulation(Options(seed=7, steps=100, keep_going=True), url, databases.workdir()).run()
            traces.append(result.trace)
            await databases.drop(url)
    finally:
        await databases.close()
    assert traces[0] == traces[1]
