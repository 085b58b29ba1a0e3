"""Wire shapes of posts and direct posts (docs/protocol.md, Partners)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from pingpost.auction.schemas import PartnerLeadId
from pingpost.fields import LeadFields, Source, Subs

Short = Annotated[str, StringConstraints(max_length=2000, pattern=r"^[^\x00]*$")]
Ident = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]


class Consent(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    tcpa: bool | None = None
    text: Annotated[str, StringConstraints(max_length=10000, pattern=r"^[^\x00]*$")] | None = None
    captured_at: Short | None = None
    ip: Annotated[str, StringConstraints(max_length=64, pattern=r"^[0-9A-Fa-f:.]+$")] | None = None
    user_agent: Short | None = None
    page_url: Short | None = None
    trustedform_cert_url: Short | None = None
    jornaya_leadid: Short | None = None


class PostIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    ping_id: Ident
    bid_ids: list[Ident] | None = Field(default=None, max_length=50)
    lead: LeadFields
    consent: Consent | None = None
    source: Source | None = None  # must be the ping's (lead_mismatch)
    subs: Subs | None = None  # the ping's subs are kept (docs/protocol.md)


class DirectPostIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    lead: LeadFields
    consent: Consent | None = None
    partner_lead_id: PartnerLeadId | None = None
    test: bool = False
    source: Source | None = None
    subs: Subs | None = None


class SaleOut(BaseModel):
    sale_id: str | None
    bid_id: str
    payout_cents: int


class RejectedOut(BaseModel):
    bid_id: str
    reason: str


class PostOut(BaseModel):
    ping_id: str
    status: Literal["sold", "unsold"]
    sales: list[SaleOut]
    rejected: list[RejectedOut]
    payout_total_cents: int
