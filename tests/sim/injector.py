"""Fault injection at the named points production code reports through `pingpost.faults.hit`.

Generic over point names: each point gets a seeded chance of an injected conflict (only where the
stores retry the unit: `before_commit`), a simulated crash of the instance, or a plain exception.
Every point seen is counted, so the docs can list what the code under test reports
(docs/simulator.md). Faults are injected only while a simulated action runs, never during setup,
start-up or the invariant checks.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol

from pingpost import faults

# The action running in this task (and the tasks it starts): faults are injected only inside one.
CURRENT_ACTION: ContextVar[str | None] = ContextVar("sim_action", default=None)

# Points at which both stores retry the whole unit on `InjectedConflict` (a deadlock elsewhere would
# be an ordinary error, a 500).
RETRIED_POINTS = frozenset({"before_commit"})


class InjectedError(RuntimeError):
    """An unexpected exception at a fault point (a bug, a lost connection): the request answers 500."""


class Mortal(Protocol):
    name: str
    dead: bool


@dataclass
class FaultRates:
    """Chances per fault point hit; `per_point` overrides them for named points."""

    conflict: float = 0.04
    crash: float = 0.006
    error: float = 0.004
    per_point: dict[str, FaultRates] = field(default_factory=dict)

    @classmethod
    def off(cls) -> FaultRates:
        return cls(0.0, 0.0, 0.0)


@dataclass
class FaultInjector:
    rng: random.Random
    rates: FaultRates
    log: Callable[[str], None]
    seen: Counter[str] = field(default_factory=Counter)
    injected: Counter[str] = field(default_factory=Counter)
    errors_this_step: int = 0

    def for_instance(self, instance: Mortal) -> Callable[[str], None]:
        def inject(point: str) -> None:
            if instance.dead:
                # A dead process runs nothing more: whatever its tasks still try ends here.
                raise faults.SimulatedCrash(point)
            action = CURRENT_ACTION.get()
            if action is None:
                return
            self.seen[point] += 1
            rates = self.rates.per_point.get(point, self.rates)
            roll = self.rng.random()
            if point in RETRIED_POINTS and roll < rates.conflict:
                self.injected["conflict"] += 1
                self.log(f"  fault: conflict at {point} on {instance.name} ({action})")
                raise faults.InjectedConflict(point)
            roll -= rates.conflict if point in RETRIED_POINTS else 0.0
            if roll < rates.crash:
                self.injected["crash"] += 1
                instance.dead = True
                self.log(f"  fault: CRASH of {instance.name} at {point} ({action})")
                raise faults.SimulatedCrash(point)
            roll -= rates.crash
            if roll < rates.error:
                self.injected["error"] += 1
                self.errors_this_step += 1
                self.log(f"  fault: exception at {point} on {instance.name} ({action})")
                raise InjectedError(point)

        return inject
