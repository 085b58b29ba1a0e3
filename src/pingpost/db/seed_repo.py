"""Bulk inserts of made-up traffic for `pingpost seed-data` (docs/performance.md, Console): pings
with their waterfalls, deliveries and sales, many rows a statement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pingpost.db.store import Tx


async def insert_pings(tx: Tx, rows: Sequence[Mapping[str, Any]]) -> None:
    await tx.executemany(
        "INSERT INTO pings (id, offer_id, campaign_id, partner_id, channel, mode, status, post_state, test, "
        "partner_lead_id, received_at, decided_at, expires_at, lead, consumer, bids, waterfall, replay) "
        "VALUES (:id, :offer, "
        ":campaign, :partner, 'form', 'ping_post', :status, :post_state, 0, NULL, :received, :decided, :expires, "
        ":lead, '{}', :bids, :waterfall, :replay)",
        rows,
    )


async def insert_deliveries(tx: Tx, rows: Sequence[Mapping[str, Any]]) -> None:
    await tx.executemany(
        "INSERT INTO deliveries (id, ping_id, bid_id, contract_id, buyer_id, state, outcome, detail, latency_ms, "
        "buyer_lead_id, created_at, finished_at) VALUES (:id, :ping, :bid, :contract, :buyer, 'accepted', "
        "'post_accepted', NULL, :latency, NULL, :at, :at)",
        rows,
    )


async def insert_sales(tx: Tx, rows: Sequence[Mapping[str, Any]]) -> None:
    await tx.executemany(
        "INSERT INTO sales (id, ping_id, bid_id, offer_id, campaign_id, partner_id, contract_id, buyer_id, channel, "
        "sale_type, price_cents, payout_cents, status, created_at) VALUES (:id, :ping, :bid, :offer, :campaign, "
        ":partner, :contract, :buyer, 'form', 'exclusive', :price, :payout, :status, :at)",
        rows,
    )
