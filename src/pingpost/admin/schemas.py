"""Validated shapes of every configuration object (docs/protocol.md); over 450 lines because the
shapes cross-reference each other (auth, filters, schedules inside contracts) and one module keeps
every rule the OpenAPI states in one place. Bodies are stored as the JSON of these models; secrets
inside them are stored but never shown.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, available_timezones

from pydantic import (
    AfterValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    field_validator,
    model_validator,
)

from pingpost.domain.returns import DEFAULT_REASONS
from pingpost.fields import (
    MAX_CENTS,
    Cents,
    Channel,
    Day,
    Documented,
    FieldName,
    FieldType,
    LongText,
    Scalar,
    Slug,
    Source,
    Status,
    Strict,
    Text,
    Url,
)

# The rules a model validator enforces are stated in the model's JSON Schema too (`json_schema_extra`),
# so that the OpenAPI document refuses what the code refuses. Rules no JSON Schema can state (unique
# field names, references to existing objects, ordered `between` bounds) are in the descriptions.

# --- verticals -------------------------------------------------------------------------------


class VerticalField(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {"type": {"const": "enum"}, "values": {"type": "array", "minItems": 1}},
                    "required": ["type", "values"],
                },
                {
                    "properties": {
                        "type": {"enum": [t for t in get_args(FieldType) if t != "enum"]},
                        "values": {"type": "null"},
                    }
                },
            ]
        }
    )

    name: FieldName
    type: FieldType = "string"
    required: bool = False
    pii: bool = False
    values: list[Text] | None = None

    @model_validator(mode="after")
    def _enum_values(self) -> VerticalField:
        if self.type == "enum" and not self.values:
            raise ValueError("an enum field needs a non-empty `values` list")
        if self.type != "enum" and self.values is not None:
            raise ValueError("`values` is only for enum fields")
        return self


class VerticalIn(Strict):
    id: Slug | None = None
    name: Text
    fields: list[VerticalField] = Field(min_length=1, max_length=200, description="field names are unique")

    @field_validator("fields")
    @classmethod
    def _unique(cls, fields: list[VerticalField]) -> list[VerticalField]:
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise ValueError("field names must be unique")
        return fields


# --- offers ----------------------------------------------------------------------------------


class Distribution(Strict):
    rule: Literal["exclusive", "multisell", "hybrid", "priority", "weighted", "round_robin"] = "exclusive"
    max_winners: int = Field(default=3, ge=1, le=20)
    hybrid_floor_cents: Cents = 0


class OfferIn(Strict):
    """`verification` runs at post (docs/verification.md); `verification_timeout_ms` is its one deadline."""

    id: Slug | None = None
    name: Text
    vertical: Slug
    mode: Literal["ping_post", "direct_post"] = "ping_post"
    channels: list[Channel] = Field(
        default_factory=lambda: list[Channel](["form"]), min_length=1, json_schema_extra={"uniqueItems": True}
    )
    distribution: Distribution = Field(default_factory=Distribution)
    floor_cents: Cents = 0
    ping_ttl_s: int = Field(default=120, ge=1, le=3600)
    auction_timeout_ms: int | None = Field(default=None, ge=100, le=30000)
    callback_ttl_s: int = Field(default=3600, ge=1, le=86400)
    call_standby: int = Field(default=2, ge=0, le=10)
    max_call_duration_s: int = Field(default=14400, ge=60, le=86400)
    static_fallback: bool | None = None
    direct_post_attempts: int = Field(default=3, ge=1, le=20)
    min_margin_cents: Cents = 0  # a bid whose margin (price - payout) is under it: below_min_margin
    verification: list[VerificationCheck] = Field(default_factory=list, max_length=10)
    verification_timeout_ms: int = Field(default=2000, ge=100, le=10000)
    status: Status = "active"

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, channels: list[str]) -> list[str]:
        if len(set(channels)) != len(channels):
            raise ValueError("channels must be unique")
        return channels


# --- partners and campaigns ------------------------------------------------------------------


class PartnerIn(Strict):
    id: Slug | None = None
    name: Text
    status: Status = "active"


class FixedPayout(Strict):
    type: Literal["fixed"]
    amount_cents: Cents


# A percent as a JSON string: 0-100 with at most two significant decimals (leading and trailing zeros
# allowed). The code reads more spellings than this (see RevsharePayout), never fewer.
_PERCENT_TEXT = r"^0*([0-9]{1,2}(\.[0-9]{0,2}0*)?|\.[0-9]{1,2}0*|100(\.0*)?)$"


# What a percent field with `_two_decimals` takes: a JSON number or string, 0-100, two decimals at most.
PERCENT = Documented(
    {
        "anyOf": [
            {"type": "number", "minimum": 0, "maximum": 100, "multipleOf": 0.01},
            {"type": "string", "pattern": _PERCENT_TEXT},
        ]
    }
)


class RevsharePayout(Strict):
    type: Literal["revshare"]
    percent: Annotated[Decimal, PERCENT] = Field(ge=0, le=100, strict=False)

    @field_validator("percent")
    @classmethod
    def _two_decimals(cls, value: Decimal) -> Decimal:
        if value != value.quantize(Decimal("0.01")):
            raise ValueError("at most two decimals")
        return value


class MarginPayout(Strict):
    """payout = price - amount_cents, at least 0."""

    type: Literal["margin"]
    amount_cents: Cents


class MarginPercentPayout(Strict):
    """payout = price * (100 - percent) / 100, rounded down to the cent."""

    type: Literal["margin_percent"]
    percent: Annotated[Decimal, PERCENT] = Field(ge=0, le=100, strict=False)

    @field_validator("percent")
    @classmethod
    def _two_decimals(cls, value: Decimal) -> Decimal:
        if value != value.quantize(Decimal("0.01")):
            raise ValueError("at most two decimals")
        return value


PayoutRule = Annotated[FixedPayout | RevsharePayout | MarginPayout | MarginPercentPayout, Field(discriminator="type")]


class PayoutOverride(Strict):
    """The payout for one buyer's or one contract's bids (exactly one of `buyer`, `contract`)."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"buyer": {"type": "string"}, "contract": {"type": "null"}}, "required": ["buyer"]},
                {"properties": {"buyer": {"type": "null"}, "contract": {"type": "string"}}, "required": ["contract"]},
            ]
        }
    )

    buyer: Slug | None = None
    contract: Slug | None = None
    payout: PayoutRule

    @model_validator(mode="after")
    def _one_target(self) -> PayoutOverride:
        if (self.buyer is None) == (self.contract is None):
            raise ValueError("give exactly one of `buyer` or `contract`")
        return self


class _WithOverrides(Strict):
    overrides: list[PayoutOverride] = Field(default_factory=list, max_length=500)


class FixedPayoutRule(FixedPayout, _WithOverrides):
    pass


class RevsharePayoutRule(RevsharePayout, _WithOverrides):
    pass


class MarginPayoutRule(MarginPayout, _WithOverrides):
    pass


class MarginPercentPayoutRule(MarginPercentPayout, _WithOverrides):
    pass


# A campaign's payout: a rule, and `overrides` (the first matching buyer or contract wins).
Payout = Annotated[
    FixedPayoutRule | RevsharePayoutRule | MarginPayoutRule | MarginPercentPayoutRule, Field(discriminator="type")
]


class Sources(Strict):
    """Which `source` values a campaign takes: `allow` (null = any) minus `block`."""

    allow: list[Source] | None = Field(default=None, max_length=10_000)
    block: list[Source] = Field(default_factory=list, max_length=10_000)


class Postback(Strict):
    """A partner's postback (docs/events.md): a GET to `url` with `{ping_id}`, `{sale_id}`, `{payout}`...
    filled in, for the statuses in `events`."""

    url: Url
    events: list[Literal["sold", "returned", "converted"]] = Field(min_length=1, max_length=3)


class CampaignIn(Strict):
    """`verification`, where given, replaces the offer's list (`[]`: none for this campaign); absent or
    null, the offer's applies. `verification_timeout_ms`, where given, replaces the offer's."""

    id: Slug | None = None
    name: Text
    partner: Slug
    offer: Slug
    payout: Payout
    rate_limit_per_s: int | None = Field(default=None, ge=1, le=100_000)  # pings a second, all processes
    sources: Sources | None = None
    duplicate_ping_window_s: int = Field(default=0, ge=0, le=30 * 86_400)  # 0 = off
    postback: Postback | None = None
    verification: list[VerificationCheck] | None = Field(default=None, max_length=10)
    verification_timeout_ms: int | None = Field(default=None, ge=100, le=10000)
    status: Status = "active"


# --- buyers ----------------------------------------------------------------------------------


class SpendCaps(Strict):
    """Money caps per period: a reservation holds its price against them until released or sold."""

    spend_daily_cents: Cents | None = None
    spend_weekly_cents: Cents | None = None
    spend_monthly_cents: Cents | None = None


# --- contracts -------------------------------------------------------------------------------


class AuthNone(Strict):
    type: Literal["none"]


class AuthBearer(Strict):
    type: Literal["bearer"]
    token: Text


class AuthHeader(Strict):
    type: Literal["header"]
    name: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9-]{1,64}$")]
    value: Text


class AuthBasic(Strict):
    type: Literal["basic"]
    username: Text
    password: Text


Auth = Annotated[AuthNone | AuthBearer | AuthHeader | AuthBasic, Field(discriminator="type")]


# --- verification at post (docs/verification.md) ---------------------------------------------

AllowedHost = Annotated[
    str,
    StringConstraints(pattern=r"^(https?://)?[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(:[0-9]{1,5})?$"),
]


class _CheckBase(Strict):
    mode: Literal["require", "flag"] = "require"
    on_error: Literal["fail", "pass"] = "fail"


class TrustedFormCheck(_CheckBase):
    """Only certificate URLs on `allowed_hosts` are ever called, over HTTPS; an entry written
    `http://host:port` also allows plain HTTP to exactly that host and port (a sandbox, tests)."""

    type: Literal["trustedform"]
    allowed_hosts: list[AllowedHost] = Field(
        default_factory=lambda: list[str](["cert.trustedform.com"]), min_length=1, max_length=20
    )


class JornayaCheck(_CheckBase):
    type: Literal["jornaya"]


class PhoneCheck(_CheckBase):
    type: Literal["phone"]


class EmailCheck(_CheckBase):
    type: Literal["email"]


class HttpCheck(_CheckBase):
    """The operator's own validator: POST `{ping_id, lead, consent}` with `auth` (never shown back)."""

    type: Literal["http"]
    url: Url
    auth: Auth | None = None


VerificationCheck = Annotated[
    TrustedFormCheck | JornayaCheck | PhoneCheck | EmailCheck | HttpCheck, Field(discriminator="type")
]


class Filter(Strict):
    """`value` by `op`: a non-empty list for `in`/`not_in`; `[low, high]` (both strings or both numbers,
    low <= high) for `between`; a boolean for `exists`; a non-empty string for `prefix`; a number or a
    string for `gt`/`gte`/`lt`/`lte`; a single value for `eq`/`ne`. `field` is a non-PII field of the
    offer's vertical."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {
                        "op": {"enum": ["in", "not_in"]},
                        "value": {"type": "array", "minItems": 1, "maxItems": 1000},
                    },
                    "required": ["value"],
                },
                {
                    "properties": {
                        "op": {"const": "between"},
                        "value": {
                            "type": "array",
                            "minItems": 2,
                            "maxItems": 2,
                            "anyOf": [{"items": {"type": "string"}}, {"items": {"type": "number"}}],
                        },
                    },
                    "required": ["value"],
                },
                {"properties": {"op": {"const": "exists"}, "value": {"type": "boolean"}}, "required": ["value"]},
                {
                    "properties": {"op": {"const": "prefix"}, "value": {"type": "string", "minLength": 1}},
                    "required": ["value"],
                },
                {
                    "properties": {"op": {"enum": ["gt", "gte", "lt", "lte"]}, "value": {"type": ["number", "string"]}},
                    "required": ["value"],
                },
                {
                    "properties": {"op": {"enum": ["eq", "ne"]}, "value": {"type": ["string", "number", "boolean"]}},
                    "required": ["value"],
                },
            ]
        }
    )

    field: FieldName
    op: Literal["eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "between", "exists", "prefix"]
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _value_fits_op(self) -> Filter:
        v = self.value
        if self.op in ("in", "not_in"):
            if not isinstance(v, list) or not v or len(v) > 1000:
                raise ValueError(f"`{self.op}` needs a non-empty list value")
        elif self.op == "between":
            if not isinstance(v, list) or len(v) != 2 or isinstance(v[0], bool) or isinstance(v[1], bool):
                raise ValueError("`between` needs a [low, high] list")
            if isinstance(v[0], str) != isinstance(v[1], str):
                raise ValueError("`between` bounds must have the same type")
            if v[0] > v[1]:  # type: ignore[operator]
                raise ValueError("`between` needs low <= high")
        elif self.op == "exists":
            if not isinstance(v, bool):
                raise ValueError("`exists` needs a true/false value")
        elif self.op == "prefix":
            if not isinstance(v, str) or not v:
                raise ValueError("`prefix` needs a non-empty string")
        elif self.op in ("gt", "gte", "lt", "lte"):
            if isinstance(v, bool) or not isinstance(v, (int, float, str)):
                raise ValueError(f"`{self.op}` needs a number or a string")
        elif v is None or isinstance(v, list):
            raise ValueError(f"`{self.op}` needs a single value")
        return self


class Caps(SpendCaps):
    daily: int | None = Field(default=None, ge=0, le=10**9)
    weekly: int | None = Field(default=None, ge=0, le=10**9)
    monthly: int | None = Field(default=None, ge=0, le=10**9)
    max_concurrent_calls: int | None = Field(default=None, ge=1, le=10**6)


class AutoPause(Strict):
    """Pause the contract after this many consecutive RTB or delivery failures (null = off)."""

    max_consecutive_failures: int | None = Field(default=None, ge=1, le=10_000)


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")
HhMm = Annotated[str, Documented({"pattern": _HHMM.pattern})]


class Window(Strict):
    days: list[Day] = Field(min_length=1)
    start: HhMm
    end: HhMm

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("must be HH:MM (00:00-24:00)")
        return value


class Schedule(Strict):
    windows: list[Window] = Field(min_length=1, max_length=100)


class NoBidWhen(Strict):
    path: Text
    values: list[Scalar] = Field(min_length=1)


class RtbResponse(Strict):
    bid_path: Text | None = None
    bid_unit: Literal["cents", "dollars"] = "cents"
    exclusive_bid_path: Text | None = None
    bid_ref_path: Text | None = None
    transfer_path: Text | None = None
    no_bid_when: NoBidWhen | None = None


class Rtb(Strict):
    url: Url
    auth: Auth | None = None
    timeout_ms: int | None = Field(default=None, ge=100, le=30000)
    min_bid_cents: Cents | None = None
    required_fields: list[FieldName] = Field(default_factory=list)
    response: RtbResponse | None = None
    fallback: Literal["always", "on_failure", "never"] = "always"
    send_consumer_hashes: bool = False


class DeliveryRule(Strict):
    """Accepted when the JSON at `path` is one of `accepted`, or when `regex` matches a whole word."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {
                        "path": {"type": "string"},
                        "accepted": {"type": "array", "minItems": 1},
                        "regex": {"type": "null"},
                    },
                    "required": ["path", "accepted"],
                },
                {"properties": {"path": {"type": "null"}, "regex": {"type": "string"}}, "required": ["regex"]},
            ]
        }
    )

    path: Text | None = None
    accepted: list[Scalar] | None = None
    regex: Annotated[Text, Documented({"format": "regex"})] | None = None
    reason_path: Text | None = None
    buyer_lead_id_path: Text | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> DeliveryRule:
        if (self.path is None) == (self.regex is None):
            raise ValueError("give either `path` with `accepted`, or `regex`")
        if self.path is not None and not self.accepted:
            raise ValueError("`path` needs a non-empty `accepted` list")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"invalid regular expression: {exc.msg}") from None
        return self


class Delivery(Strict):
    url: Url
    auth: Auth | None = None
    timeout_ms: int = Field(default=5000, ge=100, le=60000)
    format: Literal["json", "form"] = "json"
    # Keys outside the key type are refused: say so (pydantic states them as patternProperties only).
    field_map: dict[FieldName, Text] = Field(default_factory=dict, json_schema_extra={"additionalProperties": False})
    static_fields: dict[Text, Scalar] = Field(default_factory=dict, json_schema_extra={"additionalProperties": False})
    response: DeliveryRule | None = None


_E164 = re.compile(r"^\+[1-9]\d{7,14}$")


class Transfer(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"phone": {"type": "string"}, "sip": {"type": "null"}}, "required": ["phone"]},
                {"properties": {"phone": {"type": "null"}, "sip": {"type": "string"}}, "required": ["sip"]},
            ]
        }
    )

    phone: Annotated[str, Documented({"pattern": _E164.pattern})] | None = None
    sip: Annotated[str, StringConstraints(pattern=r"^sips?:[^\s]{1,200}$")] | None = None

    @model_validator(mode="after")
    def _one(self) -> Transfer:
        if (self.phone is None) == (self.sip is None):
            raise ValueError("give exactly one of `phone` (E.164) or `sip`")
        if self.phone is not None and not _E164.match(self.phone):
            raise ValueError("`phone` must be E.164, like +13055550100")
        return self


def _timezone(value: str) -> str:
    if value not in _ZONES:
        raise ValueError("unknown IANA time zone")
    ZoneInfo(value)
    return value


_ZONES = available_timezones() | {"UTC"}
# Stated as an alternation rather than an `enum`: the same set, but a client is not handed a 600-member
# enum type that changes with each tz database release.
Timezone = Annotated[
    str,
    AfterValidator(_timezone),
    Documented(
        {
            "description": "A time zone name of the tz database (IANA), like `America/New_York`, or `UTC`",
            "pattern": "^(" + "|".join(zone.replace("+", "\\+") for zone in sorted(_ZONES)) + ")$",
        }
    ),
]


class BuyerIn(Strict):
    """`caps` are spend caps in the buyer's own `timezone`; `low_balance_cents` raises the event
    `buyer.low_balance` once per crossing (and pauses the buyer with `pause_on_low_balance`)."""

    id: Slug | None = None
    name: Text
    credit_limit_cents: Cents = 0
    timezone: Timezone = "UTC"
    caps: SpendCaps | None = None
    low_balance_cents: Cents | None = None
    pause_on_low_balance: bool = False
    paused_reason: LongText | None = None
    status: Status = "active"


ReturnReason = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]


def _percent_number(value: Decimal) -> int | float:
    # Shown and stored as a JSON number; two decimals at most, so the float's repr is that exact value.
    return int(value) if value == value.to_integral_value() else float(value)


class ReturnPolicy(Strict):
    """What returns a contract takes (docs/protocol.md, Returns). The defaults take none."""

    window_days: int = Field(default=0, ge=0, le=365)
    reasons: list[ReturnReason] = Field(
        default_factory=lambda: list(DEFAULT_REASONS),
        min_length=1,
        max_length=50,
        json_schema_extra={"uniqueItems": True},
    )  # _unique_reasons
    max_return_rate_pct: (
        Annotated[Decimal, PERCENT, PlainSerializer(_percent_number, return_type=int | float)] | None
    ) = Field(default=None, ge=0, le=100, strict=False)
    auto_approve: bool = False
    partner_clawback: bool = True

    @field_validator("reasons")
    @classmethod
    def _unique_reasons(cls, reasons: list[str]) -> list[str]:
        if len(set(reasons)) != len(reasons):
            raise ValueError("reasons must be unique")
        return reasons

    @field_validator("max_return_rate_pct")
    @classmethod
    def _two_decimals(cls, value: Decimal | None) -> Decimal | None:
        if value is not None and value != value.quantize(Decimal("0.01")):
            raise ValueError("at most two decimals")
        return value


class ContractIn(Strict):
    """`filters` and `rtb.required_fields` name non-PII fields of the offer's vertical; `channels` are
    among the offer's."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"properties": {"price_cents": {"type": "integer"}}, "required": ["price_cents"]},
                {"properties": {"rtb": {"type": "object"}}, "required": ["rtb"]},
            ]
        }
    )

    id: Slug | None = None
    name: Text
    buyer: Slug
    offer: Slug
    price_cents: Cents | None = None
    exclusive_price_cents: Cents | None = None
    rtb: Rtb | None = None
    delivery: Delivery | None = None
    consent_required: list[
        Literal["tcpa", "text", "captured_at", "ip", "user_agent", "page_url", "trustedform_cert_url", "jornaya_leadid"]
    ] = Field(default_factory=list)
    transfer: Transfer | None = None
    filters: list[Filter] = Field(default_factory=list, max_length=100)
    timezone: Timezone = "UTC"
    caps: Caps | None = None
    schedule: Schedule | None = None
    dedup_days: int = Field(default=30, ge=0, le=3650)
    priority: int = Field(default=100, ge=1, le=1_000_000)
    weight: int = Field(default=1, ge=1, le=1_000_000)
    channels: list[Channel] | None = None
    billable_after_s: int = Field(default=0, ge=0, le=86400)
    return_policy: ReturnPolicy = Field(default_factory=ReturnPolicy)
    rank_factor_pct: int = Field(default=100, ge=1, le=200)  # ranking only, never the charge
    suppression_lists: list[Slug] = Field(default_factory=list, max_length=100)
    auto_pause: AutoPause | None = None
    paused_reason: LongText | None = None  # set by auto-pause; cleared when resumed
    status: Status = "active"

    @model_validator(mode="after")
    def _priced(self) -> ContractIn:
        if self.price_cents is None and self.rtb is None:
            raise ValueError("a contract needs `price_cents` or `rtb`")
        return self


class ApiKeyIn(Strict):
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {"kind": {"const": "buyer"}, "buyer": {"type": "string"}},
                    "required": ["kind", "buyer"],
                },
                {"properties": {"kind": {"enum": ["admin", "call_platform"]}, "buyer": {"type": "null"}}},
            ]
        }
    )

    id: Slug | None = None
    kind: Literal["admin", "call_platform", "buyer"]
    buyer: Slug | None = None
    name: Text
    status: Literal["active", "revoked"] = "active"

    @model_validator(mode="after")
    def _buyer_scope(self) -> ApiKeyIn:
        if (self.kind == "buyer") != (self.buyer is not None):
            raise ValueError("`buyer` is required for buyer keys and only for them")
        return self


class DepositIn(Strict):
    amount_cents: int = Field(gt=0, le=MAX_CENTS)
    reference: Text | None = None


class ReverseIn(Strict):
    reason: Text


def public_verification(checks: list[dict[str, Any]] | None) -> list[dict[str, Any]] | None:
    """A verification list as the admin API shows it: an `http` check's auth without its secret."""
    if checks is None:
        return None
    return [{**c, "auth": public_auth(c.get("auth"))} if c.get("type") == "http" else c for c in checks]


def public_auth(auth: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the admin API shows of an auth block: its type (and header name), never a secret."""
    if auth is None:
        return None
    shown: dict[str, Any] = {"type": auth["type"]}
    if auth["type"] == "header":
        shown["name"] = auth["name"]
    return shown


# Offers and campaigns name `VerificationCheck`, defined after them beside the auth blocks it uses.
OfferIn.model_rebuild()
CampaignIn.model_rebuild()
