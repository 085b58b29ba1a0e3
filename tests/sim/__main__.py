"""`python -m tests.sim --seeds N --store sqlite|postgres --steps K [--seed S]` (docs/simulator.md)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict

import orjson

from tests.sim.injector import FaultRates
from tests.sim.simulation import Options, Result, run_seed
from tests.sim.world import Databases

TRACE_STEPS = 30


def trace_tail(trace: list[str], steps: int) -> list[str]:
    """The trace's last `steps` steps (with the run's header line)."""
    starts = [i for i, line in enumerate(trace) if line.startswith("step ")]
    first = starts[-steps] if len(starts) > steps else 0
    return trace[:1] + trace[max(first, 1) :] if first else trace


def describe(result: Result, *, steps: int, tail: int = TRACE_STEPS) -> str:
    """One line for a passing seed; for a failing one the seed, the invariant, the trace's last steps
    and the command that replays it."""
    head = f"seed {result.seed:>6} {result.store:<8} "
    if result.failure is None:
        found = "".join(
            f"\n  found {f.invariant} at step {f.step} ({f.seconds:.1f}s): {f.detail}" for f in result.findings
        )
        return head + f"{'ok   ' if not found else 'FOUND'} {result.steps} steps {result.seconds:6.1f}s" + found
    f = result.failure
    lines = [
        head + f"FAIL  at step {f.step} after {result.seconds:.1f}s",
        f"  invariant: {f.invariant}",
        f"  {f.detail}",
        f"  the last {tail} steps of the trace:",
    ]
    lines += [f"    {line}" for line in trace_tail(result.trace, tail)]
    lines.append(f"  replay: python -m tests.sim --store {result.store} --steps {steps} --seed {result.seed}")
    return "\n".join(lines)


def parse_faults(spec: str, rates: FaultRates) -> FaultRates:
    """`conflict=0,crash=0.01,call_connected_after_claim:crash=0.2`: rates for every point, or (with
    `point:`) for one point, whose other rates stay the general ones."""
    per_point: dict[str, dict[str, float]] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, value = item.partition("=")
        point, _, kind = name.rpartition(":")
        if kind not in ("conflict", "crash", "error"):
            raise SystemExit(f"--faults: unknown fault kind {kind!r} (conflict, crash, error)")
        if point:
            per_point.setdefault(point, {})[kind] = float(value)
        else:
            setattr(rates, kind, float(value))
    rates.per_point = {
        point: FaultRates(
            changed.get("conflict", rates.conflict),
            changed.get("crash", rates.crash),
            changed.get("error", rates.error),
        )
        for point, changed in per_point.items()
    }
    return rates


async def run_seeds(  # noqa: PLR0913 - the command line's options, passed through
    store: str,
    seeds: Iterable[int],
    *,
    steps: int,
    instances: int = 3,
    rates: FaultRates | None = None,
    budget_s: float | None = None,
    min_seeds: int = 1,
    keep_going: bool = False,
    long_calls: bool = False,
    report: Callable[[Result], None] | None = None,
) -> list[Result]:
    """Run seeds in order until they are done or `budget_s` is spent after at least `min_seeds` (a seed
    started always finishes)."""
    started = time.monotonic()
    results: list[Result] = []
    databases = Databases(store, os.environ.get("PINGPOST_TEST_POSTGRES_URL"))
    try:
        for seed in seeds:
            if budget_s is not None and len(results) >= min_seeds and time.monotonic() - started >= budget_s:
                break
            result = await run_seed(
                Options(
                    seed=seed,
                    store=store,
                    steps=steps,
                    instances=instances,
                    rates=rates or FaultRates(),
                    keep_going=keep_going,
                    long_calls=long_calls,
                    leases=store == "postgres" and seed % 2 == 0,  # docs/scale-out.md
                ),
                databases,
            )
            results.append(result)
            if report is not None:
                report(result)
    finally:
        await databases.close()
    return results


class _CrashedConnections(logging.Filter):
    """asyncpg reports each connection a crashed instance left mid-transaction: expected here."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Resetting connection with an active transaction")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.sim", description=__doc__)
    parser.add_argument("--seeds", type=int, default=10, help="how many seeds (from --first)")
    parser.add_argument("--first", type=int, default=1, help="the first seed")
    parser.add_argument("--seed", type=int, help="run this one seed (replay)")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--seconds", type=float, help="stop starting seeds after this long")
    parser.add_argument("--no-faults", action="store_true", help="inject no conflicts, crashes or exceptions")
    parser.add_argument(
        "--faults",
        default="",
        help="fault rates per fault point hit, e.g. conflict=0,crash=0.01 or call_connected_after_claim:crash=0.2",
    )
    parser.add_argument(
        "--keep-going",
        action="store_true",
        help="do not stop at a violation: report each invariant's first violation per seed",
    )
    parser.add_argument("--trace", action="store_true", help="print the whole trace of every seed")
    parser.add_argument("--json", action="store_true", help="one JSON line per seed (for surveys)")
    parser.add_argument(
        "--long-calls", action="store_true", help="let connected calls outlast the offer's max_call_duration_s"
    )
    args = parser.parse_args(argv)
    logging.getLogger("asyncio").addFilter(_CrashedConnections())
    seeds = [args.seed] if args.seed is not None else range(args.first, args.first + args.seeds)

    def report(result: Result) -> None:
        if args.json:
            found = [asdict(f) for f in result.findings]
            if result.failure is not None:
                found.append({**asdict(result.failure), "seconds": result.seconds})
            print(
                orjson.dumps(
                    {
                        "seed": result.seed,
                        "store": result.store,
                        "steps": result.steps,
                        "seconds": result.seconds,
                        "findings": found,
                    }
                ).decode(),
                flush=True,
            )
            return
        print(describe(result, steps=args.steps), flush=True)
        if args.trace:
            print("\n".join(f"    {line}" for line in result.trace), flush=True)

    rates = parse_faults(args.faults, FaultRates.off() if args.no_faults else FaultRates())
    results = asyncio.run(
        run_seeds(
            args.store,
            seeds,
            steps=args.steps,
            instances=args.instances,
            rates=rates,
            budget_s=args.seconds,
            keep_going=args.keep_going,
            long_calls=args.long_calls,
            report=report,
        )
    )
    failed = [r for r in results if not r.ok or r.findings]
    by_invariant: dict[str, list[int]] = {}
    for r in results:
        for invariant in ([r.failure.invariant] if r.failure else []) + [f.invariant for f in r.findings]:
            by_invariant.setdefault(invariant, []).append(r.seed)
    points: dict[str, int] = {}
    for r in results:
        for point, count in r.points.items():
            points[point] = points.get(point, 0) + count
    print(f"{len(results)} seeds, {len(failed)} failed; fault points seen: {dict(sorted(points.items()))}")
    for invariant, failing in sorted(by_invariant.items()):
        print(f"  {invariant}: seeds {failing}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
