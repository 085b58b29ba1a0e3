"""Bodies of the returns API (docs/protocol.md, Returns)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from pingpost.fields import MAX_CENTS, LongText, Strict, no_nul

# Any code is read; one the contract's policy does not list is 422 `invalid_reason`, not a schema error.
ReasonCode = Annotated[str, StringConstraints(min_length=1, max_length=64), AfterValidator(no_nul)]


class ReturnIn(Strict):
    reason: ReasonCode
    note: LongText | None = None
    amount_cents: int | None = Field(default=None, gt=0, le=MAX_CENTS)  # default: the sale's price


class DecisionIn(Strict):
    note: LongText | None = None
