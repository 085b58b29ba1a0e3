"""SQL of call events: one `call_events` row per (ping, bid, type) with its stored answer.

A `connected` row is written by the claim transaction holding the claim (`{"claimed": ...}`) and
gets its final answer from the record transaction; `failed` and `completed` rows are written with
their final answer in one transaction (docs/crash-safety.md, "Call events").
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pingpost.db.events_repo import record_event
from pingpost.db.store import Tx


async def find_event(tx: Tx, *, ping_id: str, bid_id: str, type_: str, lock: bool = False) -> Any:
    """The event's row (request_sha256, answer) or None; `lock` row-locks it on PostgreSQL."""
    suffix = " FOR UPDATE" if lock and tx.dialect == "postgresql" else ""
    return await tx.fetchrow(
        f"SELECT request_sha256, answer FROM call_events WHERE ping_id = :p AND bid_id = :b AND type = :t{suffix}",
        {"p": ping_id, "b": bid_id, "t": type_},
    )


async def insert_event(tx: Tx, *, ping_id: str, bid_id: str, type_: str, sha: str, now: int) -> bool:
    """Take the event for this unit; False when a row exists already (on PostgreSQL, after waiting for
    the transaction that wrote it, so the caller can read it)."""
    return (
        await tx.execute(
            "INSERT INTO call_events (ping_id, bid_id, type, request_sha256, answer, created_at) "
            "VALUES (:p, :b, :t, :h, '', :now) ON CONFLICT DO NOTHING",
            {"p": ping_id, "b": bid_id, "t": type_, "h": sha, "now": now},
        )
        == 1
    )


async def store_answer(tx: Tx, *, ping_id: str, bid_id: str, type_: str, answer: str) -> None:
    await tx.execute(
        "UPDATE call_events SET answer = :a WHERE ping_id = :p AND bid_id = :b AND type = :t",
        {"a": answer, "p": ping_id, "b": bid_id, "t": type_},
    )


async def find_delivery(tx: Tx, bid_id: str) -> Any:
    return await tx.fetchrow("SELECT state, outcome FROM deliveries WHERE bid_id = :b", {"b": bid_id})


async def find_sale(tx: Tx, bid_id: str) -> Any:
    return await tx.fetchrow("SELECT id, status FROM sales WHERE bid_id = :b", {"b": bid_id})


async def start_call(tx: Tx, reservation_id: str, *, expires_at: int) -> None:
    """The connected call's reservation: in delivery, holding a live-call slot, until `expires_at`."""
    await tx.execute(
        "UPDATE reservations SET state = 'posting', live_call = 1, expires_at = :e WHERE id = :r",
        {"e": expires_at, "r": reservation_id},
    )


async def mark_live(tx: Tx, reservation_id: str) -> None:
    """The reservation now holds a live-call slot (taken by the caller)."""
    await tx.execute("UPDATE reservations SET live_call = 1 WHERE id = :r", {"r": reservation_id})


async def record_call_event(
    tx: Tx, type_: str, *, ping: Any, bid: Mapping[str, Any], sale_id: str | None, **facts: Any
) -> None:
    """`call.connected` or `call.completed` in the event's own transaction (docs/events.md): ids,
    amounts and codes only, never the caller's record."""
    await record_event(
        tx,
        type_,
        {
            "ping_id": ping["id"],
            "bid_id": bid["bid_id"],
            "sale_id": sale_id,
            "contract": bid["contract_id"],
            "buyer": bid["buyer_id"],
            "campaign": ping["campaign_id"],
            "price_cents": int(bid["price_cents"]),
            **facts,
        },
    )
