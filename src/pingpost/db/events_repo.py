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


async def record_event(tx: Tx, type_: str, data: Mapping[str, Any]) -> str:
    """Write one event in `tx` (the change's own transaction); answer its id (`evt_…`).

    Raises ValueError for a type pingpost does not define: an unknown type is a bug, not an event."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"not an event type: {type_}")
    event_id = new_id("evt")
    await tx.execute(
        "INSERT INTO events (id, type, data, created_at) VALUES (:id, :type, :data, :now)",
        {"id": event_id, "type": type_, "data": orjson.dumps(dict(data)).decode(), "now": await tx.now_ms()},
    )
    return event_id
