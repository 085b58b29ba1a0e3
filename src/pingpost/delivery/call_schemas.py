"""Wire shapes of call events from the operator's telephony platform (docs/protocol.md, Calls)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from pingpost.auction.schemas import BidOut
from pingpost.delivery.schemas import Consent, Ident
from pingpost.fields import LeadFields, Strict


class Connected(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    bid_id: Ident
    lead: LeadFields
    consent: Consent | None = None


class Failed(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    bid_id: Ident
    reason: Literal["no_answer", "busy", "rejected"]


class Completed(Strict):
    bid_id: Ident
    duration_s: int = Field(ge=0, le=7 * 86400)


class ConnectedOut(BaseModel):
    sale_id: str | None
    billable: bool | None
    data_post: Literal["post_accepted", "post_rejected", "post_timeout", "post_error"]


class FailedOut(BaseModel):
    next_bid: BidOut | None


class CompletedOut(BaseModel):
    sale_id: str | None
    billable: bool


class ConnectedClaim(BaseModel):
    """What `connected` decided when it claimed the bid (committed before the data post): stored in
    the event row until the record transaction replaces it with the answer, so a retry after a crash
    answers the same sale and billing (docs/crash-safety.md, "Call events")."""

    sale_id: str | None
    billable: bool | None
