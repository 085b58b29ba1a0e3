"""Buyers' conversions of their own sales (docs/events.md): idempotent on (sale, event)."""

from __future__ import annotations

from typing import Any

from pingpost import errors
from pingpost.db import conversions_repo, events_repo, sales_repo
from pingpost.db.store import Store, Tx
from pingpost.events.schemas import ConversionIn
from pingpost.ids import new_id
from pingpost.timefmt import parse_rfc3339, rfc3339

# A conversion needs a lead the buyer was charged for (returned and reversed sales were delivered too).
CONVERTIBLE = frozenset({"charged", "partially_returned", "returned", "reversed"})


def conversion_view(row: Any) -> dict[str, Any]:
    return {
        "id": row["id"],
        "sale_id": row["sale_id"],
        "event": row["event"],
        "buyer": row["buyer_id"],
        "value_cents": None if row["value_cents"] is None else int(row["value_cents"]),
        "occurred_at": rfc3339(row["occurred_at"]),
        "created_at": rfc3339(row["created_at"]),
    }


class ConversionService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def record(self, buyer_id: str, body: ConversionIn) -> tuple[dict[str, Any], bool]:
        """The conversion and whether it is new. 404 for a sale that is not this buyer's, 409 `conflict`
        for one never charged (pending or void), 422 for a malformed `occurred_at`. A repeat of the same
        sale and event answers the first record (not new), whatever its value."""
        occurred: int | None = None
        if body.occurred_at is not None:
            try:
                occurred = parse_rfc3339(body.occurred_at)
            except ValueError:
                raise errors.ValidationFailed.one("occurred_at", "must be an RFC 3339 time") from None

        async def unit(tx: Tx) -> tuple[dict[str, Any], bool]:
            sale = await sales_repo.sale(tx, body.sale_id)
            if sale is None or sale["buyer_id"] != buyer_id:
                raise errors.NotFound("sale", body.sale_id)
            first = await conversions_repo.of_sale(tx, body.sale_id, body.event)
            if first is not None:
                return conversion_view(first), False
            if sale["status"] not in CONVERTIBLE:
                raise errors.Conflict(f"a {sale['status']} sale cannot convert", details={"status": sale["status"]})
            now = await tx.now_ms()
            row = {
                "id": new_id("cnv"),
                "sale_id": body.sale_id,
                "event": body.event,
                "buyer_id": buyer_id,
                "offer_id": sale["offer_id"],
                "campaign_id": sale["campaign_id"],
                "partner_id": sale["partner_id"],
                "contract_id": sale["contract_id"],
                "value_cents": body.value_cents,
                "occurred_at": occurred if occurred is not None else now,
                "created_at": now,
            }
            if not await conversions_repo.insert(tx, row):  # a concurrent twin won the unique key
                return conversion_view(await conversions_repo.of_sale(tx, body.sale_id, body.event)), False
            await events_repo.record_event(
                tx,
                "conversion.created",
                {
                    "conversion_id": row["id"],
                    "sale_id": body.sale_id,
                    "event": body.event,
                    "value_cents": body.value_cents,
                    "buyer": buyer_id,
                    "contract": sale["contract_id"],
                    "campaign": sale["campaign_id"],
                    "partner": sale["partner_id"],
                },
            )
            return conversion_view(row), True

        return await self.store.write(unit)
