"""Named fault points for the simulator (docs/crash-safety.md).

Production code calls `faults.hit("name")` at the step boundaries of the post and call designs and
around commits; nothing happens unless a test or the simulator installed an injector, which may
raise (an exception, a simulated crash, a deadlock) or record that the point was reached.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

Injector = Callable[[str], None]
_injector: ContextVar[Injector | None] = ContextVar("pingpost_faults", default=None)


class SimulatedCrash(BaseException):
    """The process dies here: nothing after this point runs (BaseException so no handler swallows it)."""


class InjectedConflict(Exception):
    """A deadlock or serialization failure: the store retries the whole unit, as for 40P01/40001."""


def hit(point: str) -> None:
    """Give an installed injector the chance to fail at `point`."""
    injector = _injector.get()
    if injector is not None:
        injector(point)


@contextmanager
def inject(injector: Injector) -> Iterator[None]:
    token = _injector.set(injector)
    try:
        yield
    finally:
        _injector.reset(token)
