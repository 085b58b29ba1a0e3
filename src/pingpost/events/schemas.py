"""Wire shapes of webhooks and conversions (docs/events.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from pingpost.fields import MAX_CENTS, Slug, Strict, Text, Url

EventType = Literal[
    "*",
    "sale.created",
    "sale.reversed",
    "return.opened",
    "return.approved",
    "return.denied",
    "deposit.created",
    "payout.created",
    "call.connected",
    "call.completed",
    "delivery.unknown",
    "contract.auto_paused",
    "buyer.low_balance",
    "conversion.created",
]
Secret = Field(default=None, min_length=16, max_length=200, pattern=r"^[\x21-\x7e]+$")


class WebhookIn(Strict):
    id: Slug | None = None
    url: Url
    events: list[EventType] = Field(min_length=1, max_length=20)
    secret: str | None = Secret  # generated when absent; answered once, never shown again
    description: Text | None = None
    status: Literal["active", "paused"] = "active"


class WebhookPatch(Strict):
    url: Url | None = None
    events: list[EventType] | None = Field(default=None, min_length=1, max_length=20)
    description: Text | None = None
    status: Literal["active", "paused"] | None = None


class ConversionIn(Strict):
    sale_id: Slug
    event: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
    value_cents: int | None = Field(default=None, ge=0, le=MAX_CENTS)
    occurred_at: str | None = Field(default=None, max_length=40, json_schema_extra={"format": "date-time"})
