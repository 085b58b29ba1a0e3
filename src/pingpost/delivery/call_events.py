"""The rows of call events: one per (ping, bid, type), holding the request's hash and its answer.

A `connected` row holds the claim until its answer replaces it; a duplicate of an event in flight in
this process waits its turn (docs/crash-safety.md, "Call events").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson

from pingpost import errors
from pingpost.delivery.call_schemas import ConnectedClaim, ConnectedOut


def check_same_event(row: Any, kind: str, sha: str) -> None:
    if row["request_sha256"] != sha:
        raise errors.Conflict(f"a different `{kind}` event was already recorded for this bid", code="event_conflict")


def connected_state(answer: str) -> ConnectedOut | ConnectedClaim | None:
    """A `connected` row's stored answer: the final answer, the claim still waiting for it, or None for a
    claim stored by a version that kept no claim (an empty answer)."""
    if not answer:
        return None
    stored = orjson.loads(answer)
    if "claimed" in stored:
        return ConnectedClaim.model_validate(stored["claimed"])
    return ConnectedOut.model_validate(stored)


class EventTurns:
    """One at a time per call event in this process: a duplicate that arrives while the first is still
    posting the caller record waits, then replays its answer, instead of posting the record again."""

    def __init__(self) -> None:
        self._locks: dict[tuple[str, str], tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def turn(self, key: tuple[str, str]) -> AsyncIterator[None]:
        lock, waiting = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, waiting + 1)
        try:
            async with lock:
                yield
        finally:
            lock, waiting = self._locks[key]
            if waiting == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, waiting - 1)
