"""SQL of the event outbox: every event is one row written in the same transaction as the change it
tells of, so an event exists exactly when its change committed (docs/protocol.md, Events)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pingpost.db.store import Tx
from pingpost.ids import new_id

# The events pingpost writes; `data` holds ids, amounts and codes, never PII or consumer hashes.
EVENT_TYPES = frozenset(
    {
        "sale.created",
        "sale.reversed",
        "return.opened",
        "return.approved",
        "return.denied",
        "deposit.created",
        "payout.created",
        "call.connected",
        "call.completed",
        "delivery.unknown",
        "contract.auto_paused",
        "buyer.low_balance",
        "conversion.created",
    }
)


async def record_event(tx: Tx, type_: str, data: Mapping[str, Any], *, event_id: str | None = None) -> str:
    """Write one event in `tx` (the change's own transaction): one INSERT, the only cost on the path
    that made the change (the sender makes its deliveries later). Answers its id (`evt_…`).

    Raises ValueError for a type pingpost does not define: an unknown type is a bug, not an event."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"not an event type: {type_}")
    event_id = event_id or new_id("evt")
    await tx.execute(
        "INSERT INTO events (id, type, data, created_at) VALUES (:id, :type, :data, :now)",
        {"id": event_id, "type": type_, "data": orjson.dumps(dict(data)).decode(), "now": await tx.now_ms()},
    )
    return event_id


async def page_events(tx: Tx, *, type_: str | None, after: str | None, limit: int) -> list[Any]:
    """Events oldest first after the event id `after`, of one type when given."""
    return list(
        await tx.fetch(
            "SELECT id, type, data, created_at FROM events WHERE (CAST(:after AS TEXT) IS NULL OR id > :after) "
            "AND (CAST(:type AS TEXT) IS NULL OR type = :type) ORDER BY id LIMIT :lim",
            {"after": after, "type": type_, "lim": limit},
        )
    )


async def event(tx: Tx, event_id: str) -> Any:
    return await tx.fetchrow("SELECT id, type, data, created_at FROM events WHERE id = :id", {"id": event_id})


async def undispatched(tx: Tx, *, limit: int) -> list[Any]:
    """Events the sender has not yet made deliveries for (whatever order their transactions committed in)."""
    return list(
        await tx.fetch(
            "SELECT id, type, data, created_at FROM events WHERE dispatched_at IS NULL ORDER BY id LIMIT :lim",
            {"lim": limit},
        )
    )


async def mark_dispatched(tx: Tx, event_ids: list[str], *, now: int) -> list[str]:
    """Mark events dispatched; answers the ids this transaction marked (not those another sender did)."""
    if not event_ids:
        return []
    rows = await tx.fetch(
        "UPDATE events SET dispatched_at = :now WHERE id IN (:ids) AND dispatched_at IS NULL RETURNING id",
        {"now": now, "ids": event_ids},
    )
    return [r["id"] for r in rows]
