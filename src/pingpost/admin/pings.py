"""Operator views of pings: the audit record with its waterfall and timeline, and the list."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Depends, Query, Request

from pingpost import errors
from pingpost.auth import admin_key
from pingpost.db import post_repo
from pingpost.db.store import Store, Tx
from pingpost.http import IdPath, Page, query_time, refusals, time_query
from pingpost.ids import now_ms
from pingpost.services import services
from pingpost.timefmt import rfc3339

# The admin token is checked before the body is read (docs/security.md).
router = APIRouter(prefix="/v1/admin", tags=["admin"], route_class=admin_key.route,
                   dependencies=admin_key.documented)


WATERFALL_KEYS = ("contract_id", "buyer_id", "outcome", "detail", "bid_cents", "source", "rtb_latency_ms", "bid_id",
                  "sale_type", "post_outcome", "post_detail", "post_latency_ms", "sale_id")


def waterfall_entry(stored: dict[str, Any]) -> dict[str, Any]:
    """A waterfall entry with every key: entries are stored without their empty (null) keys, which
    keeps the ping row small (it is written on every ping; docs/performance.md)."""
    entry = {key: stored.get(key) for key in WATERFALL_KEYS}
    entry.update(stored)  # and what later steps added (a reversal, a call's events)
    return entry


def ping_view(row: Any, events: list[Any], *, now: int) -> dict[str, Any]:
    # roles move on (a call's winner fails, is connected, completes); standbys were never winners
    winners = [b for b in orjson.loads(row["bids"]) if b["role"] in ("winner", "failed", "connected", "completed")]
    timeline = [{"at": rfc3339(row["received_at"]), "type": "ping", "bid_id": None, "detail": None},
                {"at": rfc3339(row["decided_at"]), "type": "bids" if winners else "no_bids", "bid_id": None,
                 "detail": f"{len(winners)} winning bid(s)"}]
    timeline += [{"at": rfc3339(e["at"]), "type": e["type"], "bid_id": e["bid_id"], "detail": e["detail"]}
                 for e in events]
    if row["post_state"] == "open" and row["expires_at"] <= now:
        timeline.append({"at": rfc3339(row["expires_at"]), "type": "expired", "bid_id": None, "detail": None})
    return {
        "ping_id": row["id"], "offer": row["offer_id"], "campaign": row["campaign_id"], "partner": row["partner_id"],
        "channel": row["channel"], "mode": row["mode"], "status": row["status"], "test": bool(row["test"]),
        "partner_lead_id": row["partner_lead_id"], "received_at": rfc3339(row["received_at"]),
        "decided_at": rfc3339(row["decided_at"]), "decision_ms": row["decided_at"] - row["received_at"],
        "expires_at": rfc3339(row["expires_at"]), "lead": orjson.loads(row["lead"]),
        "waterfall": [waterfall_entry(w) for w in orjson.loads(row["waterfall"])], "events": timeline,
    }


@router.get("/pings/{ident}", summary="The audit record of one ping: waterfall and timeline",
            responses=refusals(401, (404, "Unknown ping (`not_found`)."), 422))
async def get_ping(request: Request, ident: str = IdPath) -> dict[str, Any]:
    store: Store = services(request).store

    async def unit(tx: Tx) -> dict[str, Any]:
        row = await post_repo.load_ping(tx, ident)
        if row is None:
            raise errors.NotFound("ping", ident)
        events = await post_repo.ping_events(tx, ident)
        return ping_view(row, events, now=now_ms())

    return await store.read(unit)


@router.get("/pings", summary="List pings, newest first", responses=refusals(401, 422))
async def list_pings(request: Request, page: Page = Depends(),
                     offer: str | None = Query(None, max_length=64), campaign: str | None = Query(None, max_length=64),
                     partner: str | None = Query(None, max_length=64), buyer: str | None = Query(None, max_length=64),
                     status: str | None = Query(None, max_length=32),
                     partner_lead_id: str | None = Query(None, max_length=100),
                     from_: str | None = time_query("from", "Received at or after"),
                     to: str | None = time_query("to", "Received before")) -> dict[str, Any]:
    store: Store = services(request).store
    filters = {column: value for column, value in (
        ("offer_id", offer), ("campaign_id", campaign), ("partner_id", partner), ("status", status),
        ("partner_lead_id", partner_lead_id)) if value is not None}
    start, end = query_time(from_, "from"), query_time(to, "to")

    async def unit(tx: Tx) -> dict[str, Any]:
        rows = await post_repo.page_pings(tx, filters=filters, buyer=buyer, start=start, end=end, cursor=page.cursor,
                                          limit=page.limit + 1)
        now = now_ms()
        items = []
        for row in rows[:page.limit]:
            view = ping_view(row, [], now=now)
            del view["waterfall"], view["events"]
            items.append(view)
        return {"items": items, "next_cursor": rows[page.limit - 1]["id"] if len(rows) > page.limit else None}

    return await store.read(unit)
