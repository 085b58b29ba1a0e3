"""Time is an input: every decision that depends on the clock asks this module (docs/crash-safety.md).

`now_ms()` answers the current context's clock. Production uses the system clock; tests and the
simulator install their own (`use_clock`), one per simulated app instance, possibly skewed. Each
`Store` also carries the clock that *shared* decisions use (expiry, cap periods): on PostgreSQL
the database's own clock, read inside the deciding transaction, so hosts whose clocks disagree
still agree on what has lapsed and which period a slot counts in.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    """The host's wall clock."""

    def now_ms(self) -> int:
        return int(time.time() * 1000)


class ManualClock:
    """A clock that moves only when told to (tests, the simulator)."""

    def __init__(self, start_ms: int) -> None:
        self._now = start_ms

    def now_ms(self) -> int:
        return self._now

    def advance(self, ms: int) -> None:
        if ms < 0:
            raise ValueError("a clock never moves back")
        self._now += ms

    def set(self, at_ms: int) -> None:
        self._now = at_ms


class SkewedClock:
    """Another clock seen from a host whose clock is `skew_ms` ahead (or behind, when negative)."""

    def __init__(self, base: Clock, skew_ms: int) -> None:
        self.base = base
        self.skew_ms = skew_ms

    def now_ms(self) -> int:
        return self.base.now_ms() + self.skew_ms


class ContextClock:
    """Whatever clock the current context uses: a store given this as its shared clock follows the
    test's or simulator's `use_clock` (on PostgreSQL, instead of the database's clock)."""

    def now_ms(self) -> int:
        return _current.get().now_ms()


SYSTEM = SystemClock()
CONTEXT = ContextClock()
_current: ContextVar[Clock] = ContextVar("pingpost_clock", default=SYSTEM)


def now_ms() -> int:
    """Milliseconds since the epoch on the current context's clock."""
    return _current.get().now_ms()


def current() -> Clock:
    return _current.get()


@contextmanager
def use_clock(clock: Clock) -> Iterator[Clock]:
    """Run the block (and every task it starts) on `clock`."""
    token = _current.set(clock)
    try:
        yield clock
    finally:
        _current.reset(token)
