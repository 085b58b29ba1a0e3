"""SQL of the audit log (docs/events.md): one row per admin write, in that write's own transaction.
Nothing here updates or deletes a row."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from pingpost.db.store import Tx
from pingpost.domain.audit import redact
from pingpost.ids import new_id


async def record_audit(  # noqa: PLR0913 - every column of an entry
    tx: Tx,
    *,
    actor: Mapping[str, Any],
    action: str,
    object_type: str,
    object_id: str,
    before: Any,
    after: Any,
    now: int,
) -> str:
    """Write one entry; `before` and `after` are redacted here (domain/audit.redact), so no caller can
    forget to."""
    entry_id = new_id("aud")
    await tx.execute(
        "INSERT INTO audit_log (id, at, actor_key_id, actor_kind, actor_via, action, object_type, object_id, "
        "before, after) VALUES (:id, :at, :k, :kind, :via, :action, :ot, :oid, :before, :after)",
        {
            "id": entry_id,
            "at": now,
            "k": actor.get("key_id"),
            "kind": actor["kind"],
            "via": actor["via"],
            "action": action,
            "ot": object_type,
            "oid": object_id,
            "before": None if before is None else orjson.dumps(redact(before)).decode(),
            "after": None if after is None else orjson.dumps(redact(after)).decode(),
        },
    )
    return entry_id


async def page_audit(  # noqa: PLR0913 - the filters of the audit log
    tx: Tx,
    *,
    object_type: str | None,
    object_id: str | None,
    actor: str | None,
    start: int | None,
    end: int | None,
    cursor: str | None,
    limit: int,
) -> list[Any]:
    """Entries newest first after `cursor`, filtered by object, actor key id (or kind) and time."""
    return list(
        await tx.fetch(
            "SELECT * FROM audit_log WHERE (CAST(:cursor AS TEXT) IS NULL OR id < :cursor) "
            "AND (CAST(:ot AS TEXT) IS NULL OR object_type = :ot) AND (CAST(:oid AS TEXT) IS NULL OR object_id = :oid) "
            "AND (CAST(:actor AS TEXT) IS NULL OR actor_key_id = :actor OR actor_kind = :actor) "
            "AND (CAST(:start AS BIGINT) IS NULL OR at >= :start) AND (CAST(:end AS BIGINT) IS NULL OR at < :end) "
            "ORDER BY id DESC LIMIT :lim",
            {
                "cursor": cursor,
                "ot": object_type,
                "oid": object_id,
                "actor": actor,
                "start": start,
                "end": end,
                "lim": limit,
            },
        )
    )
