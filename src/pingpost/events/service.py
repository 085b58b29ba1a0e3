"""The outbox's views, webhook subscriptions, redelivery and the audit log's view (docs/events.md).
Every write here is audited in its own transaction, like every admin write."""

from __future__ import annotations

import secrets
from typing import Any

import orjson

from pingpost import actors, errors
from pingpost.db import audit_repo, events_repo, webhooks_repo
from pingpost.db.store import Store, Tx
from pingpost.domain.webhooks import subscribed
from pingpost.events.schemas import WebhookIn
from pingpost.ids import new_id, now_ms
from pingpost.timefmt import rfc3339


def event_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "type": row["type"],
        "created_at": rfc3339(row["created_at"]),
        "data": orjson.loads(row["data"]),
    }


def webhook_view(row: Any) -> dict[str, Any]:
    """A subscription as the API shows it: never its secret."""
    return {
        "id": row["id"],
        "url": row["url"],
        "events": orjson.loads(row["events"]),
        "description": row["description"],
        "status": row["status"],
        "created_at": rfc3339(row["created_at"]),
        "updated_at": rfc3339(row["updated_at"]),
    }


def delivery_view(row: Any) -> dict[str, Any]:
    pending = row["status"] == "pending"
    return {
        "id": row["id"],
        "event_id": row["event_id"],
        "event_type": row["event_type"],
        "target": row["target"],
        "status": row["status"],
        "attempts": int(row["attempts"]),
        "last_status": row["last_status"],
        "last_error": row["last_error"],
        "next_attempt_at": rfc3339(row["next_attempt_at"]) if pending else None,
        "created_at": rfc3339(row["created_at"]),
    }


def audit_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "at": rfc3339(row["at"]),
        "actor": {"key_id": row["actor_key_id"], "kind": row["actor_kind"], "via": row["actor_via"]},
        "action": row["action"],
        "object": {"type": row["object_type"], "id": row["object_id"]},
        "before": None if row["before"] is None else orjson.loads(row["before"]),
        "after": None if row["after"] is None else orjson.loads(row["after"]),
    }


def new_webhook_secret() -> str:
    return f"whsec_{secrets.token_urlsafe(32)}"


class EventsService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def events(self, *, type_: str | None, after: str | None, limit: int) -> dict[str, Any]:
        """Events oldest first after the event id `after` (a cursor a reader keeps)."""
        rows = await self.store.read(lambda tx: events_repo.page_events(tx, type_=type_, after=after, limit=limit))
        return {"items": [event_view(r) for r in rows], "next_after": rows[-1]["id"] if rows else after}

    async def create_webhook(self, body: WebhookIn) -> dict[str, Any]:
        """A subscription; its secret (given or generated) is in this answer only. 409 for a taken id."""
        actor = actors.current()
        ident = body.id or new_id("wh")
        secret = body.secret or new_webhook_secret()

        async def unit(tx: Tx) -> dict[str, Any]:
            now = now_ms()
            columns = {
                "id": ident,
                "url": body.url,
                "events": orjson.dumps(sorted(set(body.events))).decode(),
                "secret": secret,
                "description": body.description,
                "status": body.status,
                "created_at": now,
                "updated_at": now,
            }
            if not await webhooks_repo.insert_webhook(tx, columns):
                raise errors.Conflict(f"webhook '{ident}' already exists", details={"id": ident})
            view = webhook_view(columns)
            await audit_repo.record_audit(
                tx,
                actor=actor.as_dict(),
                action="create",
                object_type="webhook",
                object_id=ident,
                before=None,
                after={**view, "secret": secret},
                now=now,
            )
            return view

        view = await self.store.write(unit)
        return {**view, "secret": secret}

    async def _webhook(self, tx: Tx, ident: str) -> Any:
        row = await webhooks_repo.webhook(tx, ident)
        if row is None:
            raise errors.NotFound("webhook", ident)
        return row

    async def webhook(self, ident: str) -> dict[str, Any]:
        return webhook_view(await self.store.read(lambda tx: self._webhook(tx, ident)))

    async def webhooks(self, *, cursor: str | None, limit: int) -> dict[str, Any]:
        rows = await self.store.read(lambda tx: webhooks_repo.page_webhooks(tx, cursor=cursor, limit=limit + 1))
        return {
            "items": [webhook_view(r) for r in rows[:limit]],
            "next_cursor": rows[limit - 1]["id"] if len(rows) > limit else None,
        }

    async def patch_webhook(self, ident: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Change a subscription's url, events, description or status (`paused` stops new deliveries)."""
        actor = actors.current()

        async def unit(tx: Tx) -> dict[str, Any]:
            before = webhook_view(await self._webhook(tx, ident))
            columns = {k: v for k, v in changes.items() if v is not None}
            if "events" in columns:
                columns["events"] = orjson.dumps(sorted(set(columns["events"]))).decode()
            now = now_ms()
            await webhooks_repo.update_webhook(tx, ident, {**columns, "updated_at": now})
            after = webhook_view(await self._webhook(tx, ident))
            await audit_repo.record_audit(
                tx,
                actor=actor.as_dict(),
                action="update",
                object_type="webhook",
                object_id=ident,
                before=before,
                after=after,
                now=now,
            )
            return after

        return await self.store.write(unit)

    async def deliveries(self, ident: str, *, cursor: str | None, limit: int) -> dict[str, Any]:
        async def unit(tx: Tx) -> list[Any]:
            await self._webhook(tx, ident)
            return await webhooks_repo.page_deliveries(tx, webhook_id=ident, cursor=cursor, limit=limit + 1)

        rows = await self.store.read(unit)
        return {
            "items": [delivery_view(r) for r in rows[:limit]],
            "next_cursor": rows[limit - 1]["id"] if len(rows) > limit else None,
        }

    async def redeliver(self, event_id: str) -> dict[str, Any]:
        """A new delivery of the event to every active webhook subscribed to its type (404 unknown event)."""
        actor = actors.current()

        async def unit(tx: Tx) -> dict[str, Any]:
            event = await events_repo.event(tx, event_id)
            if event is None:
                raise errors.NotFound("event", event_id)
            now = await tx.now_ms()
            rows = [
                {
                    "id": new_id("whd"),
                    "event_id": event_id,
                    "event_type": event["type"],
                    "target": "webhook",
                    "webhook_id": hook["id"],
                    "campaign_id": None,
                    "url": None,
                    "next_attempt_at": now,
                    "created_at": now,
                }
                for hook in await webhooks_repo.active_webhooks(tx)
                if subscribed(orjson.loads(hook["events"]), event["type"])
            ]
            await webhooks_repo.insert_deliveries(tx, rows)
            answer = {"event_id": event_id, "deliveries": [r["id"] for r in rows]}
            await audit_repo.record_audit(
                tx,
                actor=actor.as_dict(),
                action="redeliver",
                object_type="event",
                object_id=event_id,
                before=None,
                after=answer,
                now=now,
            )
            return answer

        return await self.store.write(unit)

    async def audit(  # noqa: PLR0913 - the audit log's filters
        self,
        *,
        object_type: str | None,
        object_id: str | None,
        actor: str | None,
        start: int | None,
        end: int | None,
        cursor: str | None,
        limit: int,
    ) -> dict[str, Any]:
        """Audit entries newest first; `actor` is a key id or an actor kind (`cli`)."""
        rows = await self.store.read(
            lambda tx: audit_repo.page_audit(
                tx,
                object_type=object_type,
                object_id=object_id,
                actor=actor,
                start=start,
                end=end,
                cursor=cursor,
                limit=limit + 1,
            )
        )
        return {
            "items": [audit_view(r) for r in rows[:limit]],
            "next_cursor": rows[limit - 1]["id"] if len(rows) > limit else None,
        }
