"""Plain, immutable views of the configuration the auction reads (built from stored JSON)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from zoneinfo import ZoneInfo

from pingpost.domain.outcomes import Outcome
from pingpost.domain.verification import Check, checks_from_body

UTC = ZoneInfo("UTC")
DAY_INDEX = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: str
    required: bool
    pii: bool
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Vertical:
    id: str
    fields: dict[str, FieldSpec]

    @classmethod
    def from_body(cls, ident: str, body: dict[str, Any]) -> Vertical:
        return cls(
            ident,
            {
                f["name"]: FieldSpec(f["name"], f["type"], f["required"], f["pii"], tuple(f.get("values") or ()))
                for f in body["fields"]
            },
        )


@dataclass(frozen=True)
class Window:
    days: frozenset[int]
    start_min: int
    end_min: int


@dataclass(frozen=True)
class FilterRule:
    field: str
    op: str
    value: Any


@dataclass(frozen=True, slots=True)
class BidResult:
    """A price (`outcome` None) or the reason there is none."""

    outcome: Outcome | None
    bid_cents: int | None = None
    exclusive_bid_cents: int | None = None
    bid_ref: str | None = None
    transfer: dict[str, str] | None = None
    latency_ms: int | None = None
    detail: str | None = None
    source: str = "rtb"


@dataclass(frozen=True)
class Contract:
    id: str
    name: str
    buyer_id: str
    offer_id: str
    status: str
    price_cents: int | None
    exclusive_price_cents: int | None
    rtb: dict[str, Any] | None
    delivery: dict[str, Any] | None
    consent_required: tuple[str, ...]
    transfer: dict[str, Any] | None
    filters: tuple[FilterRule, ...]
    tz: ZoneInfo
    daily_cap: int | None
    weekly_cap: int | None
    monthly_cap: int | None
    max_concurrent_calls: int | None
    windows: tuple[Window, ...] | None
    dedup_days: int
    priority: int
    weight: int
    channels: tuple[str, ...] | None
    billable_after_s: int
    rank_factor_pct: int = 100
    suppression_lists: tuple[str, ...] = ()
    max_consecutive_failures: int | None = None  # auto_pause; None = off
    spend_daily_cap: int | None = None
    spend_weekly_cap: int | None = None
    spend_monthly_cap: int | None = None

    @property
    def rank_key(self) -> str:
        """Stable (priority, id) order used for ties and the round-robin pointer."""
        return f"{self.priority:010d}:{self.id}"

    @cached_property
    def filter_checks(self) -> tuple[Callable[[dict[str, Any]], bool], ...]:
        """The filters compiled once per contract, in order (see eligibility.compiled_filter)."""
        from pingpost.domain.eligibility import compiled_filter

        return tuple(compiled_filter(rule) for rule in self.filters)

    @cached_property
    def capped(self) -> bool:
        """Whether any cap period applies (most contracts have none: their cap check is skipped)."""
        return self.daily_cap is not None or self.weekly_cap is not None or self.monthly_cap is not None

    @cached_property
    def spend_capped(self) -> bool:
        """Whether any spend cap applies (none on most contracts: the spend check is skipped)."""
        return (
            self.spend_daily_cap is not None or self.spend_weekly_cap is not None or self.spend_monthly_cap is not None
        )

    @cached_property
    def pre_bid_cents(self) -> int:
        """Funds needed before bidding: a fixed price, or an RTB contract's minimum bid (at least 1 cent)."""
        if self.rtb:
            return max(int(self.rtb.get("min_bid_cents") or 0), 1)
        return self.price_cents or 0

    @cached_property
    def fixed_bid(self) -> BidResult:
        """This contract's fixed-price bid, built once (the contract is immutable)."""
        assert self.price_cents is not None
        return BidResult(None, self.price_cents, self.exclusive_price_cents, source="fixed")

    @classmethod
    def from_body(cls, ident: str, body: dict[str, Any]) -> Contract:
        caps = body.get("caps") or {}
        schedule = body.get("schedule")
        windows = None
        if schedule:
            windows = tuple(
                Window(frozenset(DAY_INDEX[d] for d in w["days"]), _minutes(w["start"]), _minutes(w["end"]))
                for w in schedule["windows"]
            )
        return cls(
            id=ident,
            name=body["name"],
            buyer_id=body["buyer"],
            offer_id=body["offer"],
            status=body["status"],
            price_cents=body.get("price_cents"),
            exclusive_price_cents=body.get("exclusive_price_cents"),
            rtb=body.get("rtb"),
            delivery=body.get("delivery"),
            consent_required=tuple(body.get("consent_required") or ()),
            transfer={k: v for k, v in body["transfer"].items() if v} if body.get("transfer") else None,
            filters=tuple(FilterRule(f["field"], f["op"], f.get("value")) for f in body.get("filters") or ()),
            tz=ZoneInfo(body.get("timezone") or "UTC"),
            daily_cap=caps.get("daily"),
            weekly_cap=caps.get("weekly"),
            monthly_cap=caps.get("monthly"),
            max_concurrent_calls=caps.get("max_concurrent_calls"),
            windows=windows,
            dedup_days=body.get("dedup_days", 30),
            priority=body.get("priority", 100),
            weight=body.get("weight", 1),
            channels=tuple(body["channels"]) if body.get("channels") is not None else None,
            billable_after_s=body.get("billable_after_s", 0),
            rank_factor_pct=body.get("rank_factor_pct", 100),
            suppression_lists=tuple(body.get("suppression_lists") or ()),
            max_consecutive_failures=(body.get("auto_pause") or {}).get("max_consecutive_failures"),
            spend_daily_cap=caps.get("spend_daily_cents"),
            spend_weekly_cap=caps.get("spend_weekly_cents"),
            spend_monthly_cap=caps.get("spend_monthly_cents"),
        )


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


@dataclass(frozen=True)
class Offer:
    id: str
    vertical_id: str
    mode: str
    channels: tuple[str, ...]
    rule: str
    max_winners: int
    hybrid_floor_cents: int
    floor_cents: int
    ping_ttl_s: int
    auction_timeout_ms: int | None
    callback_ttl_s: int
    call_standby: int
    max_call_duration_s: int
    static_fallback: bool | None
    direct_post_attempts: int
    status: str
    min_margin_cents: int = 0
    verification: tuple[Check, ...] = ()
    verification_timeout_ms: int | None = None

    @classmethod
    def from_body(cls, ident: str, body: dict[str, Any]) -> Offer:
        dist = body["distribution"]
        return cls(
            id=ident,
            vertical_id=body["vertical"],
            mode=body["mode"],
            channels=tuple(body["channels"]),
            rule=dist["rule"],
            max_winners=dist["max_winners"],
            hybrid_floor_cents=dist["hybrid_floor_cents"],
            floor_cents=body["floor_cents"],
            ping_ttl_s=body["ping_ttl_s"],
            auction_timeout_ms=body.get("auction_timeout_ms"),
            callback_ttl_s=body["callback_ttl_s"],
            call_standby=body["call_standby"],
            max_call_duration_s=body["max_call_duration_s"],
            static_fallback=body.get("static_fallback"),
            direct_post_attempts=body["direct_post_attempts"],
            status=body["status"],
            min_margin_cents=body.get("min_margin_cents", 0),
            verification=checks_from_body(body.get("verification")) or (),
            verification_timeout_ms=body.get("verification_timeout_ms"),
        )


@dataclass(frozen=True)
class Campaign:
    id: str
    partner_id: str
    offer_id: str
    status: str
    payout: dict[str, Any]
    rate_limit_per_s: int | None = None
    sources_allow: frozenset[str] | None = None  # None: any source
    sources_block: frozenset[str] = frozenset()
    duplicate_ping_window_s: int = 0
    verification: tuple[Check, ...] | None = None  # None: the offer's list (docs/verification.md)
    verification_timeout_ms: int | None = None

    @classmethod
    def from_body(cls, ident: str, body: dict[str, Any]) -> Campaign:
        sources = body.get("sources") or {}
        allow = sources.get("allow")
        return cls(
            ident,
            body["partner"],
            body["offer"],
            body["status"],
            body["payout"],
            body.get("rate_limit_per_s"),
            sources_allow=frozenset(allow) if allow is not None else None,
            sources_block=frozenset(sources.get("block") or ()),
            duplicate_ping_window_s=body.get("duplicate_ping_window_s", 0),
            verification=checks_from_body(body.get("verification")),
            verification_timeout_ms=body.get("verification_timeout_ms"),
        )

    def source_allowed(self, source: str | None) -> bool:
        """A campaign's `sources` rule: a ping without a source passes unless an allow list is set."""
        if source is None:
            return self.sources_allow is None
        if source in self.sources_block:
            return False
        return self.sources_allow is None or source in self.sources_allow


@dataclass(frozen=True)
class Buyer:
    id: str
    status: str
    tz: ZoneInfo = UTC
    spend_daily_cap: int | None = None
    spend_weekly_cap: int | None = None
    spend_monthly_cap: int | None = None
    low_balance_cents: int | None = None
    pause_on_low_balance: bool = False

    @property
    def spend_capped(self) -> bool:
        return (
            self.spend_daily_cap is not None or self.spend_weekly_cap is not None or self.spend_monthly_cap is not None
        )

    @classmethod
    def from_body(cls, ident: str, status: str, body: dict[str, Any]) -> Buyer:
        caps = body.get("caps") or {}
        return cls(
            ident,
            status,
            ZoneInfo(body.get("timezone") or "UTC"),
            caps.get("spend_daily_cents"),
            caps.get("spend_weekly_cents"),
            caps.get("spend_monthly_cents"),
            body.get("low_balance_cents"),
            body.get("pause_on_low_balance", False),
        )


@dataclass
class Snapshot:
    """Everything the ping path reads from configuration, refreshed when config_version moves."""

    version: int
    verticals: dict[str, Vertical] = field(default_factory=dict)
    offers: dict[str, Offer] = field(default_factory=dict)
    campaigns_by_key: dict[str, Campaign] = field(default_factory=dict)
    campaigns: dict[str, Campaign] = field(default_factory=dict)
    partner_status: dict[str, str] = field(default_factory=dict)
    buyers: dict[str, Buyer] = field(default_factory=dict)
    contracts_by_offer: dict[str, list[Contract]] = field(default_factory=dict)
    contracts: dict[str, Contract] = field(default_factory=dict)
    memo: dict[Any, Any] = field(default_factory=dict)  # values derived from this snapshot alone
    suppression_lists: int = 0  # how many lists exist (none: no ping reads them)
