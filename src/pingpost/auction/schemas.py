"""Wire shapes of the partner ping (docs/protocol.md, Partners)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, field_validator

from pingpost.fields import Cents, LeadFields, Source, Subs, whole_number

PartnerLeadId = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=r"^[^\x00]*$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-fA-F]{64}$")]


class Consumer(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    phone_sha256: Sha256Hex | None = None
    email_sha256: Sha256Hex | None = None


class PingIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    lead: LeadFields
    consumer: Consumer | None = None
    channel: Literal["form", "call", "callback"] = "form"
    partner_lead_id: PartnerLeadId | None = None
    min_payout_cents: Cents = 0
    test: bool = False
    source: Source | None = None
    subs: Subs | None = None

    # 2.0 is the integer 2 in JSON (docs/protocol.md); one field, not a validator on every field (the hot path).
    _whole_numbers = field_validator("min_payout_cents", mode="before")(whole_number)


class BidOut(BaseModel):
    bid_id: str
    payout_cents: int
    sale_type: Literal["exclusive", "shared"]
    transfer: dict[Literal["phone", "sip"], str] | None = None  # E.164 phone or SIP URI, for calls


class PingOut(BaseModel):
    ping_id: str
    status: Literal["bids", "no_bids"]
    expires_at: str
    post_url: str
    bids: list[BidOut]
    duplicate_of: str | None = None  # a duplicate ping answered the earlier ping's answer
    reason: str | None = None  # `duplicate_ping` when a duplicate's earlier bids are gone
