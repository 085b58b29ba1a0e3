"""SQL of posts: claiming a ping, deliveries, sales with their ledger transaction, releases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from pingpost.db import auction_repo
from pingpost.db.events_repo import record_event
from pingpost.db.ledger_repo import record_transaction
from pingpost.db.store import Tx
from pingpost.domain.money import sale_entries
from pingpost.ids import new_id


async def load_ping(tx: Tx, ping_id: str) -> Any:
    return await tx.fetchrow("SELECT * FROM pings WHERE id = :id", {"id": ping_id})


async def claim_ping(tx: Tx, *, ping_id: str, campaign_id: str, now: int) -> bool:
    """Move an open, unexpired ping of this campaign to `posting`; False when someone else has it."""
    return (
        await tx.execute(
            "UPDATE pings SET post_state = 'posting' WHERE id = :p AND campaign_id = :c AND post_state = 'open' "
            "AND expires_at > :now",
            {"p": ping_id, "c": campaign_id, "now": now},
        )
        == 1
    )


async def set_post_state(tx: Tx, ping_id: str, *, post_state: str, status: str) -> None:
    await tx.execute(
        "UPDATE pings SET post_state = :ps, status = :s WHERE id = :p", {"ps": post_state, "s": status, "p": ping_id}
    )


async def update_waterfall(tx: Tx, ping_id: str, updates: Mapping[str, Mapping[str, Any]]) -> None:
    """Merge per-contract changes into the ping's waterfall document (row-locked on PostgreSQL)."""
    lock = " FOR UPDATE" if tx.dialect == "postgresql" else ""
    raw = await tx.fetchval(f"SELECT waterfall FROM pings WHERE id = :p{lock}", {"p": ping_id})
    waterfall = orjson.loads(raw)
    for entry in waterfall:
        if entry["contract_id"] in updates:
            entry.update(updates[entry["contract_id"]])
    await tx.execute(
        "UPDATE pings SET waterfall = :w WHERE id = :p", {"w": orjson.dumps(waterfall).decode(), "p": ping_id}
    )


async def add_event(
    tx: Tx, *, ping_id: str, at: int, type_: str, bid_id: str | None = None, detail: str | None = None
) -> None:
    await tx.execute(
        "INSERT INTO ping_events (id, ping_id, at, type, bid_id, detail) VALUES (:id, :p, :at, :t, :b, :d)",
        {"id": new_id("evt"), "p": ping_id, "at": at, "t": type_, "b": bid_id, "d": detail},
    )


async def move_to_posting(tx: Tx, reservation_id: str, *, expires_at: int, now: int) -> bool:
    """A live reservation (held, not lapsed at `now`) moves to `posting`; False when it lapsed."""
    return (
        await tx.execute(
            "UPDATE reservations SET state = 'posting', expires_at = :e WHERE id = :r AND state = 'held' "
            "AND expires_at > :now",
            {"e": expires_at, "r": reservation_id, "now": now},
        )
        == 1
    )


async def recent_purchase(tx: Tx, *, buyer_id: str, hashes: Sequence[str], since: int) -> bool:
    """The buyer bought (or is being delivered) one of these consumers since `since`."""
    if not hashes:
        return False
    return (
        await tx.fetchval(
            "SELECT 1 FROM dedup_records WHERE buyer_id = :b AND hash_hmac IN (:hs) AND sold_at >= :since LIMIT 1",
            {"b": buyer_id, "hs": list(hashes), "since": since},
        )
        is not None
    )


def pending_sale_id(bid_id: str) -> str:
    """Dedup rows written while a delivery is in flight carry this id until the sale is recorded."""
    return f"pending:{bid_id}"


async def insert_delivery(tx: Tx, *, ping_id: str, bid: Mapping[str, Any], now: int) -> str:
    delivery_id = new_id("dlv")
    await tx.execute(
        "INSERT INTO deliveries (id, ping_id, bid_id, contract_id, buyer_id, state, created_at) "
        "VALUES (:id, :p, :b, :c, :buyer, 'pending', :now)",
        {
            "id": delivery_id,
            "p": ping_id,
            "b": bid["bid_id"],
            "c": bid["contract_id"],
            "buyer": bid["buyer_id"],
            "now": now,
        },
    )
    return delivery_id


async def finish_delivery(  # noqa: PLR0913 - every column of a delivery's result
    tx: Tx,
    *,
    bid_id: str,
    state: str,
    outcome: str,
    detail: str | None,
    latency_ms: int | None,
    buyer_lead_id: str | None,
    now: int,
) -> bool:
    """Record a delivery's result once (only a pending delivery changes)."""
    return (
        await tx.execute(
            "UPDATE deliveries SET state = :s, outcome = :o, detail = :d, latency_ms = :l, buyer_lead_id = :bl, "
            "finished_at = :now WHERE bid_id = :b AND state = 'pending'",
            {"s": state, "o": outcome, "d": detail, "l": latency_ms, "bl": buyer_lead_id, "now": now, "b": bid_id},
        )
        == 1
    )


async def record_sale(tx: Tx, *, ping: Any, bid: Mapping[str, Any], now: int) -> str:
    """The sale of one accepted bid: reservation sold, hold turned into a charge, zero-sum ledger
    transaction, dedup records. Answers the sale id (the existing one if already recorded)."""
    existing = await tx.fetchval("SELECT id FROM sales WHERE bid_id = :b", {"b": bid["bid_id"]})
    if existing is not None:
        return str(existing)
    await settle_reservation(tx, bid)
    sale_id = await insert_sale(tx, ping=ping, bid=bid, status="charged", now=now)
    await charge_sale(tx, ping=ping, bid=bid, sale_id=sale_id, now=now)
    return sale_id


async def settle_reservation(tx: Tx, bid: Mapping[str, Any]) -> None:
    """Turn a bid's reservation into a sale: its cap slot becomes a count and its hold is released
    (the ledger charge replaces it). A reservation that lapsed (a crash, a very long call) had its
    slot given back, so the sale is counted again in the reservation's own period."""
    reservation_id = bid.get("reservation_id")
    sold = await tx.fetchrow(
        "UPDATE reservations SET state = 'sold' WHERE id = :r AND state IN ('held', 'posting') RETURNING amount_cents",
        {"r": reservation_id},
    )
    if sold is not None:
        await tx.execute(
            "UPDATE buyer_funds SET holds_cents = holds_cents - :a WHERE buyer_id = :b",
            {"a": int(sold["amount_cents"]), "b": bid["buyer_id"]},
        )
        return
    lapsed = await tx.fetchrow("SELECT * FROM reservations WHERE id = :r AND state <> 'sold'", {"r": reservation_id})
    if lapsed is not None:
        await count_sale_slot(tx, lapsed)
        # A lapsed call gave its live-call slot back when it lapsed: a sold row still flagged would
        # give it back a second time at `completed` (auction_repo.end_live_call).
        await tx.execute("UPDATE reservations SET state = 'sold', live_call = 0 WHERE id = :r", {"r": reservation_id})


async def insert_sale(tx: Tx, *, ping: Any, bid: Mapping[str, Any], status: str, now: int) -> str:
    sale_id = new_id("sal")
    await tx.execute(
        "INSERT INTO sales (id, ping_id, bid_id, offer_id, campaign_id, partner_id, contract_id, buyer_id, channel, "
        "sale_type, price_cents, payout_cents, status, created_at) VALUES (:id, :p, :b, :o, :c, :pa, :ct, :bu, :ch, "
        ":st, :price, :payout, :status, :now)",
        {
            "id": sale_id,
            "p": ping["id"],
            "b": bid["bid_id"],
            "o": ping["offer_id"],
            "c": ping["campaign_id"],
            "pa": ping["partner_id"],
            "ct": bid["contract_id"],
            "bu": bid["buyer_id"],
            "ch": ping["channel"],
            "st": bid["sale_type"],
            "price": bid["price_cents"],
            "payout": bid["payout_cents"],
            "status": status,
            "now": now,
        },
    )
    return sale_id


async def charge_sale(tx: Tx, *, ping: Any, bid: Mapping[str, Any], sale_id: str, now: int) -> None:
    """The sale's zero-sum ledger transaction and its dedup records."""
    await tx.execute("UPDATE sales SET status = 'charged' WHERE id = :s", {"s": sale_id})
    await record_transaction(
        tx,
        kind="sale",
        now=now,
        sale_id=sale_id,
        reference=sale_id,
        entries=sale_entries(
            buyer_id=bid["buyer_id"],
            partner_id=ping["partner_id"],
            price_cents=int(bid["price_cents"]),
            payout_cents=int(bid["payout_cents"]),
        ),
    )
    await tx.execute(
        "UPDATE dedup_records SET sale_id = :s, sold_at = :now WHERE sale_id = :pending",
        {"s": sale_id, "now": now, "pending": pending_sale_id(bid["bid_id"])},
    )
    # The outbox row, in the sale's own transaction (docs/events.md): ids and amounts, never the lead.
    await record_event(
        tx,
        "sale.created",
        {
            "sale_id": sale_id,
            "ping_id": ping["id"],
            "bid_id": bid["bid_id"],
            "offer": ping["offer_id"],
            "campaign": ping["campaign_id"],
            "partner": ping["partner_id"],
            "contract": bid["contract_id"],
            "buyer": bid["buyer_id"],
            "channel": ping["channel"],
            "sale_type": bid["sale_type"],
            "price_cents": int(bid["price_cents"]),
            "payout_cents": int(bid["payout_cents"]),
        },
    )


async def count_sale_slot(tx: Tx, reservation: Any) -> None:
    """Count a sale in its reservation's cap periods, and its price against the contract's and the
    buyer's spend, without a cap check (the lead is already sold)."""
    await tx.execute(
        "UPDATE contract_usage SET "
        "day_used = CASE WHEN day_key = :d THEN day_used + 1 ELSE day_used END, "
        "week_used = CASE WHEN week_key = :w THEN week_used + 1 ELSE week_used END, "
        "month_used = CASE WHEN month_key = :m THEN month_used + 1 ELSE month_used END, "
        "day_spent_cents = CASE WHEN day_key = :d THEN day_spent_cents + :a ELSE day_spent_cents END, "
        "week_spent_cents = CASE WHEN week_key = :w THEN week_spent_cents + :a ELSE week_spent_cents END, "
        "month_spent_cents = CASE WHEN month_key = :m THEN month_spent_cents + :a ELSE month_spent_cents END "
        "WHERE contract_id = :c",
        {
            "d": reservation["day_key"],
            "w": reservation["week_key"],
            "m": reservation["month_key"],
            "a": int(reservation["amount_cents"]),
            "c": reservation["contract_id"],
        },
    )
    await tx.execute(
        "UPDATE buyer_funds SET "
        "day_spent_cents = CASE WHEN spend_day_key = :d THEN day_spent_cents + :a ELSE day_spent_cents END, "
        "week_spent_cents = CASE WHEN spend_week_key = :w THEN week_spent_cents + :a ELSE week_spent_cents END, "
        "month_spent_cents = CASE WHEN spend_month_key = :m THEN month_spent_cents + :a ELSE month_spent_cents END "
        "WHERE buyer_id = :b",
        {
            "d": reservation["buyer_day_key"],
            "w": reservation["buyer_week_key"],
            "m": reservation["buyer_month_key"],
            "a": int(reservation["amount_cents"]),
            "b": reservation["buyer_id"],
        },
    )


async def release_bid(tx: Tx, bid: Mapping[str, Any]) -> None:
    """Give back a bid's reservation and forget its in-flight dedup rows."""
    if bid.get("reservation_id"):
        await auction_repo.release(tx, [bid["reservation_id"]])
    await tx.execute("DELETE FROM dedup_records WHERE sale_id = :pending", {"pending": pending_sale_id(bid["bid_id"])})


async def insert_post(
    tx: Tx, *, ping_id: str, pii_ciphertext: str, now: int, once: bool = False, verification: str | None = None
) -> None:
    """The posted lead and consent, encrypted (docs/security.md), and the verification results (JSON,
    no PII; docs/verification.md); with `once`, not if already there."""
    await tx.execute(
        "INSERT INTO posts (id, ping_id, pii_ciphertext, created_at, verification) VALUES (:id, :p, :c, :now, :v)"
        + (" ON CONFLICT DO NOTHING" if once else ""),
        {"id": new_id("pst"), "p": ping_id, "now": now, "c": pii_ciphertext, "v": verification},
    )


async def post_verification(tx: Tx, ping_id: str) -> str | None:
    """The verification results stored with a ping's post (JSON), or None (no post, or no checks)."""
    found = await tx.fetchval("SELECT verification FROM posts WHERE ping_id = :p", {"p": ping_id})
    return None if found is None else str(found)


async def sales_of_ping(tx: Tx, ping_id: str) -> dict[str, str]:
    """bid id -> sale id."""
    return {
        r["bid_id"]: r["id"] for r in await tx.fetch("SELECT id, bid_id FROM sales WHERE ping_id = :p", {"p": ping_id})
    }


async def deliveries_of_ping(tx: Tx, ping_id: str) -> dict[str, Any]:
    """bid id -> delivery row."""
    return {
        r["bid_id"]: r
        for r in await tx.fetch("SELECT * FROM deliveries WHERE ping_id = :p ORDER BY id", {"p": ping_id})
    }


async def add_bid(tx: Tx, ping_id: str, bid: Mapping[str, Any]) -> None:
    """Append a bid to the ping's stored bids (direct posts add one per attempt)."""
    bids = orjson.loads(await tx.fetchval("SELECT bids FROM pings WHERE id = :p", {"p": ping_id}))
    await tx.execute(
        "UPDATE pings SET bids = :b WHERE id = :p", {"b": orjson.dumps([*bids, bid]).decode(), "p": ping_id}
    )


async def purge_pii(tx: Tx, *, before: int, now: int) -> int:
    """Delete the encrypted lead and consent of posts created before `before`; answer how many."""
    return await tx.execute(
        "UPDATE posts SET pii_ciphertext = NULL, purged_at = :now "
        "WHERE pii_ciphertext IS NOT NULL AND created_at < :cutoff",
        {"now": now, "cutoff": before},
    )


async def ping_events(tx: Tx, ping_id: str) -> list[Any]:
    return list(await tx.fetch("SELECT * FROM ping_events WHERE ping_id = :id ORDER BY id", {"id": ping_id}))


async def page_pings(  # noqa: PLR0913 - the filters of the ping list
    tx: Tx,
    *,
    filters: Mapping[str, Any],
    buyer: str | None,
    start: int | None,
    end: int | None,
    cursor: str | None,
    limit: int,
) -> list[Any]:
    """Pings newest first after `cursor`; filters are column equalities from a fixed list."""
    where = ["(CAST(:cursor AS TEXT) IS NULL OR id < :cursor)"]
    params: dict[str, Any] = {"cursor": cursor, "lim": limit}
    for column, value in filters.items():
        if column not in ("offer_id", "campaign_id", "partner_id", "status", "partner_lead_id", "source"):
            raise ValueError(f"not a ping filter: {column}")
        where.append(f"{column} = :{column}")
        params[column] = value
    if buyer is not None:  # pings in which the buyer won a bid
        where.append("id IN (SELECT ping_id FROM reservations WHERE buyer_id = :buyer)")
        params["buyer"] = buyer
    if start is not None:
        where.append("received_at >= :start")
        params["start"] = start
    if end is not None:
        where.append("received_at < :end")
        params["end"] = end
    return list(await tx.fetch(f"SELECT * FROM pings WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT :lim", params))


async def set_bids(tx: Tx, ping_id: str, bids: Sequence[Mapping[str, Any]]) -> None:
    await tx.execute("UPDATE pings SET bids = :b WHERE id = :p", {"b": orjson.dumps(bids).decode(), "p": ping_id})


async def set_ping_status(tx: Tx, ping_id: str, status: str) -> None:
    await tx.execute("UPDATE pings SET status = :s WHERE id = :p", {"s": status, "p": ping_id})


async def reservation(tx: Tx, reservation_id: str) -> Any:
    return await tx.fetchrow("SELECT * FROM reservations WHERE id = :r", {"r": reservation_id})


async def set_sale_status(tx: Tx, sale_id: str, status: str) -> None:
    await tx.execute("UPDATE sales SET status = :st WHERE id = :s", {"st": status, "s": sale_id})


def ping_source(ping: Any) -> tuple[str | None, dict[str, str]]:
    """A ping's `source` and `subs` (a stored row, or a direct post's record before it is stored)."""
    keys = set(ping.keys())  # (an asyncpg record's keys are an iterator)
    raw = ping["subs"] if "subs" in keys else None
    return (ping["source"] if "source" in keys else None), (orjson.loads(raw) if raw else {})
