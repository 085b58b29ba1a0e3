"""SQL of webhooks, their deliveries (webhook POSTs and partner postbacks) and the sender's lease
(docs/events.md). Every statement is short: the sender never holds a transaction across a send."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pingpost.db.store import Tx

SENDER_LEASE = "webhook_sender"


async def insert_webhook(tx: Tx, columns: Mapping[str, Any]) -> bool:
    return (
        await tx.execute(
            "INSERT INTO webhooks (id, url, events, secret, description, status, created_at, updated_at) "
            "VALUES (:id, :url, :events, :secret, :description, :status, :created_at, :updated_at) "
            "ON CONFLICT (id) DO NOTHING",
            columns,
        )
        == 1
    )


async def webhook(tx: Tx, webhook_id: str) -> Any:
    return await tx.fetchrow("SELECT * FROM webhooks WHERE id = :id", {"id": webhook_id})


async def page_webhooks(tx: Tx, *, cursor: str | None, limit: int) -> list[Any]:
    return list(
        await tx.fetch(
            "SELECT * FROM webhooks WHERE (CAST(:cursor AS TEXT) IS NULL OR id > :cursor) ORDER BY id LIMIT :lim",
            {"cursor": cursor, "lim": limit},
        )
    )


async def update_webhook(tx: Tx, webhook_id: str, columns: Mapping[str, Any]) -> None:
    allowed = {"url", "events", "description", "status", "updated_at"}
    if not set(columns) <= allowed:
        raise ValueError(f"not webhook columns: {sorted(set(columns) - allowed)}")
    sets = ", ".join(f"{c} = :{c}" for c in columns)
    await tx.execute(f"UPDATE webhooks SET {sets} WHERE id = :id", {**columns, "id": webhook_id})


async def active_webhooks(tx: Tx) -> list[Any]:
    return list(await tx.fetch("SELECT id, events, created_at FROM webhooks WHERE status = 'active' ORDER BY id"))


async def insert_deliveries(tx: Tx, rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        await tx.executemany(
            "INSERT INTO webhook_deliveries (id, event_id, event_type, target, webhook_id, campaign_id, url, status, "
            "attempts, next_attempt_at, created_at) VALUES (:id, :event_id, :event_type, :target, :webhook_id, "
            ":campaign_id, :url, 'pending', 0, :next_attempt_at, :created_at)",
            rows,
        )


async def page_deliveries(tx: Tx, *, webhook_id: str, cursor: str | None, limit: int) -> list[Any]:
    """A webhook's deliveries, newest first."""
    return list(
        await tx.fetch(
            "SELECT * FROM webhook_deliveries WHERE webhook_id = :w "
            "AND (CAST(:cursor AS TEXT) IS NULL OR id < :cursor) ORDER BY id DESC LIMIT :lim",
            {"w": webhook_id, "cursor": cursor, "lim": limit},
        )
    )


async def deliveries_of_event(tx: Tx, event_id: str) -> list[Any]:
    return list(await tx.fetch("SELECT * FROM webhook_deliveries WHERE event_id = :e ORDER BY id", {"e": event_id}))


async def due_deliveries(tx: Tx, *, now: int, limit: int) -> list[Any]:
    return list(
        await tx.fetch(
            "SELECT d.id FROM webhook_deliveries d LEFT JOIN webhooks w ON w.id = d.webhook_id "
            "WHERE d.status = 'pending' AND d.next_attempt_at <= :now "
            "AND (d.webhook_id IS NULL OR w.status = 'active') ORDER BY d.next_attempt_at, d.id LIMIT :lim",
            {"now": now, "lim": limit},
        )
    )


async def has_work(tx: Tx, *, now: int) -> bool:
    """Anything for a sender: an event to dispatch or a delivery due."""
    event = await tx.fetchval("SELECT id FROM events WHERE dispatched_at IS NULL LIMIT 1")
    if event is not None:
        return True
    due = await tx.fetchval(
        "SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= :now LIMIT 1", {"now": now}
    )
    return due is not None


async def take_lease(tx: Tx, *, holder: str, now: int, ttl_ms: int) -> int | None:
    """Take or renew the sender lease; answers its fencing token (a new one for every new holder, or
    after a lapse), or None while another holder's lease is live."""
    params = {"n": SENDER_LEASE, "h": holder, "now": now, "exp": now + ttl_ms}
    row = await tx.fetchrow(
        "UPDATE sender_leases SET token = CASE WHEN holder = :h AND expires_at > :now THEN token ELSE token + 1 END, "
        "holder = :h, expires_at = :exp WHERE name = :n AND (holder = :h OR expires_at <= :now) RETURNING token",
        params,
    )
    if row is not None:
        return int(row["token"])
    inserted = await tx.execute(
        "INSERT INTO sender_leases (name, holder, token, expires_at) VALUES (:n, :h, 1, :exp) "
        "ON CONFLICT (name) DO NOTHING",
        params,
    )
    return 1 if inserted == 1 else None


async def release_lease(tx: Tx, *, holder: str, token: int) -> None:
    await tx.execute(
        "UPDATE sender_leases SET expires_at = 0 WHERE name = :n AND holder = :h AND token = :t",
        {"n": SENDER_LEASE, "h": holder, "t": token},
    )


async def claim_attempt(tx: Tx, *, delivery_id: str, token: int, now: int, in_flight_ms: int) -> Any:
    """Take the next attempt of a due delivery under the live lease `token`, recorded as in flight
    before anything is sent; answers the delivery joined to its event and webhook, or None when it is
    not due any more or the lease moved on (another sender took it: nothing is sent twice)."""
    taken = await tx.execute(
        "UPDATE webhook_deliveries SET attempts = attempts + 1, claim_token = :t, next_attempt_at = :until "
        "WHERE id = :id AND status = 'pending' AND next_attempt_at <= :now AND EXISTS ("
        "SELECT 1 FROM sender_leases WHERE name = :n AND token = :t AND expires_at > :now)",
        {"id": delivery_id, "t": token, "now": now, "until": now + in_flight_ms, "n": SENDER_LEASE},
    )
    if taken != 1:
        return None
    return await tx.fetchrow(
        "SELECT d.*, e.data AS event_data, e.created_at AS event_created_at, w.url AS webhook_url, "
        "w.secret AS webhook_secret, w.status AS webhook_status FROM webhook_deliveries d "
        "JOIN events e ON e.id = d.event_id LEFT JOIN webhooks w ON w.id = d.webhook_id WHERE d.id = :id",
        {"id": delivery_id},
    )


async def record_attempt(  # noqa: PLR0913 - every column of an attempt's result
    tx: Tx,
    *,
    delivery_id: str,
    token: int,
    attempts: int,
    status: str,
    last_status: int | None,
    last_error: str | None,
    next_attempt_at: int,
    now: int,
) -> bool:
    """Record the answer of the attempt this sender took; False when that attempt is no longer its own."""
    return (
        await tx.execute(
            "UPDATE webhook_deliveries SET status = :s, last_status = :ls, last_error = :le, "
            "next_attempt_at = :next, finished_at = :finished "
            "WHERE id = :id AND claim_token = :t AND attempts = :a AND status = 'pending'",
            {
                "s": status,
                "ls": last_status,
                "le": last_error,
                "next": next_attempt_at,
                "finished": None if status == "pending" else now,
                "id": delivery_id,
                "t": token,
                "a": attempts,
            },
        )
        == 1
    )


async def sale_and_ping(tx: Tx, sale_id: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """A sale and its ping's row (for a postback's ids, amounts and sub-ids; the lead is never read out)."""
    sale = await tx.fetchrow("SELECT * FROM sales WHERE id = :s", {"s": sale_id})
    if sale is None:
        return None
    ping = await tx.fetchrow("SELECT * FROM pings WHERE id = :p", {"p": sale["ping_id"]})
    return dict(sale), dict(ping) if ping is not None else {}


# A buyer delivery nothing can finish any more (as sales_repo's reconciliation query), not yet told;
# only once it is older than any delivery's deadline (30 s at most) and grace, so a call's data post
# still in flight (its reservation already sold at `connected`) is not told as unknown.
UNKNOWN_AFTER_MS = 300_000


async def untold_unknown_deliveries(tx: Tx, *, now: int, limit: int) -> list[Any]:
    return list(
        await tx.fetch(
            "SELECT d.id, d.ping_id, d.bid_id, d.contract_id, d.buyer_id FROM deliveries d "
            "LEFT JOIN reservations r ON r.bid_id = d.bid_id WHERE d.state = 'pending' AND d.unknown_event_id IS NULL "
            "AND d.created_at <= :settled "
            "AND (r.expires_at IS NULL OR r.expires_at <= :now OR r.state <> 'posting') ORDER BY d.id LIMIT :lim",
            {"now": now, "settled": now - UNKNOWN_AFTER_MS, "lim": limit},
        )
    )


async def mark_unknown_told(tx: Tx, *, delivery_id: str, event_id: str) -> bool:
    return (
        await tx.execute(
            "UPDATE deliveries SET unknown_event_id = :e WHERE id = :id AND unknown_event_id IS NULL "
            "AND state = 'pending'",
            {"e": event_id, "id": delivery_id},
        )
        == 1
    )


async def campaign_body(tx: Tx, campaign_id: str) -> str | None:
    raw: str | None = await tx.fetchval("SELECT body FROM campaigns WHERE id = :id", {"id": campaign_id})
    return raw
