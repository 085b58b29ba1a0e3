"""Bodies of the payouts API (docs/protocol.md, Money)."""

from __future__ import annotations

from pydantic import Field

from pingpost.fields import MAX_CENTS, Strict, Text


class PayoutIn(Strict):
    amount_cents: int = Field(gt=0, le=MAX_CENTS)
    reference: Text  # required: a retried payout must never pay twice
