"""SQL of buyers' conversions (docs/events.md): one row per (sale, event), whatever races."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pingpost.db.store import Tx


async def insert(tx: Tx, row: Mapping[str, Any]) -> bool:
    """False when the sale already has a conversion of this event (the unique key decides)."""
    return (
        await tx.execute(
            "INSERT INTO conversions (id, sale_id, event, buyer_id, offer_id, campaign_id, partner_id, contract_id, "
            "value_cents, occurred_at, created_at) VALUES (:id, :sale_id, :event, :buyer_id, :offer_id, :campaign_id, "
            ":partner_id, :contract_id, :value_cents, :occurred_at, :created_at) "
            "ON CONFLICT (sale_id, event) DO NOTHING",
            row,
        )
        == 1
    )


async def of_sale(tx: Tx, sale_id: str, event: str) -> Any:
    return await tx.fetchrow("SELECT * FROM conversions WHERE sale_id = :s AND event = :e", {"s": sale_id, "e": event})
