"""Operator views of pings, sales and deliveries, shared by the admin API and the console: one
shape of the waterfall, the timeline and a sale, whichever page or endpoint shows them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from pingpost import errors
from pingpost.db import post_repo
from pingpost.db.store import Store, Tx
from pingpost.domain.outcomes import PostOutcome
from pingpost.ids import now_ms
from pingpost.timefmt import rfc3339

WATERFALL_KEYS = (
    "contract_id",
    "buyer_id",
    "outcome",
    "detail",
    "bid_cents",
    "source",
    "rtb_latency_ms",
    "bid_id",
    "sale_type",
    "post_outcome",
    "post_detail",
    "post_latency_ms",
    "sale_id",
)
PING_FILTERS = ("offer_id", "campaign_id", "partner_id", "status", "partner_lead_id", "source")


def waterfall_entry(stored: dict[str, Any]) -> dict[str, Any]:
    """A waterfall entry with every key: entries are stored without their empty (null) keys, which
    keeps the ping row small (it is written on every ping; docs/performance.md)."""
    entry = {key: stored.get(key) for key in WATERFALL_KEYS}
    entry.update(stored)  # and what later steps added (a reversal, a call's events)
    return entry


def ping_view(row: Any, events: list[Any], *, now: int) -> dict[str, Any]:
    # roles move on (a call's winner fails, is connected, completes); standbys were never winners
    winners = [b for b in orjson.loads(row["bids"]) if b["role"] in ("winner", "failed", "connected", "completed")]
    timeline = [
        {"at": rfc3339(row["received_at"]), "type": "ping", "bid_id": None, "detail": None},
        {
            "at": rfc3339(row["decided_at"]),
            "type": "bids" if winners else "no_bids",
            "bid_id": None,
            "detail": f"{len(winners)} winning bid(s)",
        },
    ]
    timeline += [
        {"at": rfc3339(e["at"]), "type": e["type"], "bid_id": e["bid_id"], "detail": e["detail"]} for e in events
    ]
    if row["post_state"] == "open" and row["expires_at"] <= now:
        timeline.append({"at": rfc3339(row["expires_at"]), "type": "expired", "bid_id": None, "detail": None})
    return {
        "ping_id": row["id"],
        "offer": row["offer_id"],
        "campaign": row["campaign_id"],
        "partner": row["partner_id"],
        "channel": row["channel"],
        "mode": row["mode"],
        "status": row["status"],
        "test": bool(row["test"]),
        "partner_lead_id": row["partner_lead_id"],
        "source": row["source"],
        "subs": orjson.loads(row["subs"]) if row["subs"] else {},
        "received_at": rfc3339(row["received_at"]),
        "decided_at": rfc3339(row["decided_at"]),
        "decision_ms": row["decided_at"] - row["received_at"],
        "expires_at": rfc3339(row["expires_at"]),
        "lead": orjson.loads(row["lead"]),
        "waterfall": [waterfall_entry(w) for w in orjson.loads(row["waterfall"])],
        "events": timeline,
    }


async def ping_record(store: Store, ping_id: str) -> dict[str, Any]:
    """One ping's audit record: the lead's non-PII fields, the whole waterfall, the timeline and the
    verification results of its post (docs/verification.md); 404."""

    async def unit(tx: Tx) -> dict[str, Any]:
        row = await post_repo.load_ping(tx, ping_id)
        if row is None:
            raise errors.NotFound("ping", ping_id)
        events = await post_repo.ping_events(tx, ping_id)
        view = ping_view(row, events, now=now_ms())
        stored = await post_repo.post_verification(tx, ping_id)
        view["verification"] = orjson.loads(stored) if stored else []
        return view

    return await store.read(unit)


@dataclass(frozen=True)
class PingQuery:
    """Which pings a list shows: column equalities of PING_FILTERS (None meaning any), pings a buyer
    won a bid in, a received-at window, and the page (after `cursor`, `limit` of them)."""

    filters: Mapping[str, str | None]
    buyer: str | None = None
    start: int | None = None
    end: int | None = None
    cursor: str | None = None
    limit: int = 50


async def page_pings(store: Store, query: PingQuery) -> dict[str, Any]:
    """Pings newest first (no waterfall, no timeline)."""
    present = {column: value for column, value in query.filters.items() if value is not None}
    limit = query.limit

    async def unit(tx: Tx) -> dict[str, Any]:
        rows = await post_repo.page_pings(
            tx,
            filters=present,
            buyer=query.buyer,
            start=query.start,
            end=query.end,
            cursor=query.cursor,
            limit=limit + 1,
        )
        now = now_ms()
        items = []
        for row in rows[:limit]:
            view = ping_view(row, [], now=now)
            del view["waterfall"], view["events"]
            items.append(view)
        return {"items": items, "next_cursor": rows[limit - 1]["id"] if len(rows) > limit else None}

    return await store.read(unit)


def sale_view(row: Any) -> dict[str, Any]:
    return {
        "sale_id": row["id"],
        "ping_id": row["ping_id"],
        "bid_id": row["bid_id"],
        "offer": row["offer_id"],
        "campaign": row["campaign_id"],
        "partner": row["partner_id"],
        "contract": row["contract_id"],
        "buyer": row["buyer_id"],
        "channel": row["channel"],
        "sale_type": row["sale_type"],
        "price_cents": int(row["price_cents"]),
        "payout_cents": int(row["payout_cents"]),
        "status": row["status"],
        "created_at": rfc3339(row["created_at"]),
    }


def delivery_view(row: Any) -> dict[str, Any]:
    return {
        "delivery_id": row["id"],
        "ping_id": row["ping_id"],
        "bid_id": row["bid_id"],
        "contract_id": row["contract_id"],
        "buyer_id": row["buyer_id"],
        "state": row["state"],
        "post_outcome": row["outcome"] or PostOutcome.POST_UNKNOWN.value,
        "created_at": rfc3339(row["created_at"]),
        "finished_at": rfc3339(row["finished_at"]),
    }
