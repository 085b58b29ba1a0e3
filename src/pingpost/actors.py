"""Who is making a change, for the audit log (docs/events.md): the API's key check, the console's
session and the CLI set it for the current context; services read it before opening their unit of
work (a batched unit may run in another task)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Actor:
    key_id: str | None
    kind: str  # admin | buyer | cli | system
    via: str  # api | console | cli

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


CLI = Actor(key_id=None, kind="cli", via="cli")
SYSTEM = Actor(key_id=None, kind="system", via="api")
_current: ContextVar[Actor] = ContextVar("pingpost_actor", default=SYSTEM)


def current() -> Actor:
    return _current.get()


def set_actor(actor: Actor) -> None:
    """For the rest of the current context (a request's task)."""
    _current.set(actor)


@contextmanager
def acting_as(actor: Actor) -> Iterator[Actor]:
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)
