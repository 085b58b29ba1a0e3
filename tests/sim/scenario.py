"""The simulated exchange's configuration, drawn from the seed: vertical, offers, buyers, contracts,
campaigns, the consumers whose PII the partners post, and a start instant just before a boundary
(local midnight, week, month, DST change) in one of the contracts' time zones (docs/simulator.md)."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

ZONES = ("America/New_York", "America/Los_Angeles", "Pacific/Auckland", "UTC")
STATES = ("FL", "CA", "NY", "TX")
PII_FIELDS = ("first_name", "last_name", "phone", "email")
CALL_OFFER = "calls"
DIRECT_OFFER = "direct"
FORM_OFFERS = ("leads", "ranked")

VERTICAL: dict[str, Any] = {
    "id": "medicare",
    "name": "Medicare",
    "fields": [
        {"name": "state", "type": "state", "required": True},
        {"name": "zip", "type": "zip", "required": True},
        {"name": "age", "type": "integer", "required": True},
        {"name": "coverage", "type": "enum", "values": ["none", "original", "advantage"]},
        {"name": "smoker", "type": "boolean"},
        {"name": "first_name", "type": "string", "required": True, "pii": True},
        {"name": "last_name", "type": "string", "pii": True},
        {"name": "phone", "type": "phone", "required": True, "pii": True},
        {"name": "email", "type": "email", "pii": True},
    ],
}

# Dates whose local midnight (or the night around them) is a boundary worth crossing: DST changes in
# the US and New Zealand, month and year ends, and a Sunday night (the week's end).
BOUNDARY_DATES = (
    date(2025, 3, 9),
    date(2025, 11, 2),  # US DST starts / ends (02:00 local)
    date(2025, 4, 6),
    date(2025, 9, 28),  # New Zealand DST ends / starts
    date(2025, 3, 1),
    date(2025, 7, 1),
    date(2025, 1, 1),
    date(2025, 6, 2),  # month, year, week (Monday)
)


@dataclass(frozen=True)
class Consumer:
    """A person whose lead partners ping and post; every value is unique enough to be found by a scan."""

    first_name: str
    last_name: str
    phone: str
    email: str

    def pii(self) -> dict[str, str]:
        return {"first_name": self.first_name, "last_name": self.last_name, "phone": self.phone, "email": self.email}

    def values(self) -> tuple[str, ...]:
        return (self.first_name, self.last_name, self.phone, self.email)


@dataclass
class ContractPlan:
    id: str
    buyer: str
    offer: str
    tz: str
    caps: dict[str, int]
    dedup_days: int
    body: dict[str, Any]


@dataclass
class Scenario:
    start_ms: int
    start_note: str
    skews_ms: list[int]
    offers: list[dict[str, Any]]
    buyers: list[dict[str, Any]]
    deposits: dict[str, int]
    contracts: list[ContractPlan]
    campaigns: list[dict[str, Any]]
    consumers: list[Consumer]
    rate_limited: set[str] = field(default_factory=set)

    def contract(self, ident: str) -> ContractPlan:
        return next(c for c in self.contracts if c.id == ident)

    def campaigns_for(self, offer: str) -> list[dict[str, Any]]:
        return [c for c in self.campaigns if c["offer"] == offer]

    def ttl_ms(self, offer: str, channel: str) -> int:
        body = next(o for o in self.offers if o["id"] == offer)
        return int(body["callback_ttl_s"] if channel == "callback" else body["ping_ttl_s"]) * 1000


def _start(rng: random.Random) -> tuple[int, str]:
    zone = rng.choice(ZONES)
    day = rng.choice(BOUNDARY_DATES)
    # DST changes happen at 02:00-03:00 local; the others at midnight.
    at = (
        time(2, 0)
        if day in (date(2025, 3, 9), date(2025, 11, 2)) and zone.startswith("America") and rng.random() < 0.5
        else time(0, 0)
    )
    local = datetime.combine(day, at, ZoneInfo(zone))
    before_s = rng.randint(20, 600)
    start = int(local.timestamp() * 1000) - before_s * 1000
    return start, f"{before_s}s before {local.isoformat()} {zone}"


def _caps(rng: random.Random) -> dict[str, int]:
    caps: dict[str, int] = {}
    if rng.random() < 0.8:
        caps["daily"] = rng.randint(1, 5)
    if rng.random() < 0.5:
        caps["weekly"] = rng.randint(caps.get("daily", 2), 10)
    if rng.random() < 0.4:
        caps["monthly"] = rng.randint(caps.get("weekly", 3), 20)
    return caps


def buyer_url(kind: str, buyer: str, contract: str) -> str:
    return f"http://{buyer}.buyers.sim/{kind}/{contract}"


def draw(rng: random.Random, *, instances: int) -> Scenario:  # noqa: C901 - one world, drawn in one reading order
    """Draw a whole world from `rng` (the same seed, the same world)."""
    start_ms, note = _start(rng)
    skews = [rng.randint(-4000, 4000) for _ in range(instances)]
    offers: list[dict[str, Any]] = [
        {
            "id": "leads",
            "name": "Leads",
            "vertical": "medicare",
            "channels": ["form"],
            "distribution": {"rule": "multisell", "max_winners": 2},
            "ping_ttl_s": rng.choice([30, 60, 120]),
            "auction_timeout_ms": 500,
        },
        {
            "id": "ranked",
            "name": "Ranked",
            "vertical": "medicare",
            "channels": ["form"],
            "distribution": {
                "rule": rng.choice(["priority", "hybrid", "round_robin", "exclusive"]),
                "max_winners": rng.choice([1, 2]),
                "hybrid_floor_cents": rng.choice([1500, 2500]),
            },
            "ping_ttl_s": rng.choice([30, 90]),
            "auction_timeout_ms": 500,
            "floor_cents": 200,
        },
        {
            "id": CALL_OFFER,
            "name": "Calls",
            "vertical": "medicare",
            "channels": ["call", "callback"],
            "call_standby": rng.choice([1, 2]),
            "ping_ttl_s": 60,
            "callback_ttl_s": rng.choice([120, 600]),
            "max_call_duration_s": 3600,
            "auction_timeout_ms": 500,
        },
        {
            "id": DIRECT_OFFER,
            "name": "Direct",
            "vertical": "medicare",
            "mode": "direct_post",
            "channels": ["form"],
            "direct_post_attempts": 2,
        },
    ]
    buyer_ids = ["b1", "b2", "b3", "b4"]
    buyers = [{"id": b, "name": b.upper(), "credit_limit_cents": rng.choice([0, 0, 1000, 5000])} for b in buyer_ids]
    deposits = {b: rng.randint(4000, 25000) for b in buyer_ids}
    contracts: list[ContractPlan] = []
    for offer in offers:
        ident = str(offer["id"])
        chosen = rng.sample(buyer_ids, k=rng.randint(3, 4))
        for i, buyer in enumerate(chosen):
            cid = f"{ident[:2]}{i}-{buyer}"
            tz = rng.choice(ZONES)
            caps = _caps(rng)
            dedup = rng.choice([0, 1, 30, 30])
            rtb = ident != DIRECT_OFFER and rng.random() < 0.45
            body: dict[str, Any] = {
                "id": cid,
                "name": cid,
                "buyer": buyer,
                "offer": ident,
                "timezone": tz,
                "dedup_days": dedup,
                "priority": rng.randint(1, 5) * 10,
                "delivery": {"url": buyer_url("deliver", buyer, cid), "timeout_ms": 2000},
            }
            if rtb:
                body["rtb"] = {
                    "url": buyer_url("bid", buyer, cid),
                    "timeout_ms": 300,
                    "fallback": rng.choice(["always", "on_failure", "never"]),
                }
                if rng.random() < 0.3:
                    body["rtb"]["min_bid_cents"] = 400
                if rng.random() < 0.5:
                    body["price_cents"] = rng.randint(3, 12) * 100  # the static fallback price
            else:
                body["price_cents"] = rng.randint(3, 30) * 100
                if rng.random() < 0.3:
                    body["exclusive_price_cents"] = body["price_cents"] + rng.randint(1, 10) * 100
            if ident == CALL_OFFER:
                caps["max_concurrent_calls"] = rng.randint(1, 2)
                body["billable_after_s"] = rng.choice([0, 0, 60])
                if not rtb or rng.random() < 0.5:
                    body["transfer"] = {"phone": f"+1305555{rng.randint(1000, 9999)}"}
            if rng.random() < 0.3:
                body["filters"] = [{"field": "age", "op": "gte", "value": 65}]
            elif rng.random() < 0.2:
                body["filters"] = [{"field": "coverage", "op": "ne", "value": "advantage"}]
            if rng.random() < 0.15:
                body["schedule"] = {
                    "windows": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat"], "start": "06:00", "end": "01:00"}]
                }
            if rng.random() < 0.1:
                body["consent_required"] = ["tcpa"]
            if caps:
                body["caps"] = dict(caps)
            contracts.append(ContractPlan(cid, buyer, ident, tz, caps, dedup, body))
    campaigns: list[dict[str, Any]] = []
    for offer in offers:
        ident = str(offer["id"])
        campaigns.append(
            {
                "id": f"pa-{ident}",
                "name": f"pa {ident}",
                "partner": "pa",
                "offer": ident,
                "payout": {"type": "revshare", "percent": rng.choice([50, 60, 70, 80])},
            }
        )
        if ident in (FORM_OFFERS[0], DIRECT_OFFER) or rng.random() < 0.5:
            campaigns.append(
                {
                    "id": f"pb-{ident}",
                    "name": f"pb {ident}",
                    "partner": "pb",
                    "offer": ident,
                    "payout": rng.choice([{"type": "revshare", "percent": 65}, {"type": "fixed", "amount_cents": 250}]),
                }
            )
    # Verification at post (docs/verification.md): pb's campaign on the first form offer refuses a
    # disposable email, which the first consumer has; no draw, so every seed's sequence is unchanged.
    for c in campaigns:
        if c["id"] == f"pb-{FORM_OFFERS[0]}":
            c["verification"] = [{"type": "email"}, {"type": "phone", "mode": "flag"}]
    rate_limited = {c["id"] for c in campaigns if c["partner"] == "pb" and rng.random() < 0.5}
    for c in campaigns:
        if c["id"] in rate_limited:
            c["rate_limit_per_s"] = 2
    consumers = []
    for n in range(rng.randint(6, 12)):
        tag = "".join(rng.choice("BCDFGHJKLMNPQRSTVWXZ") for _ in range(5))
        phone = (
            f"{rng.randint(2, 9)}{rng.randint(0, 8)}{rng.randint(0, 9)}{rng.randint(2, 9)}"
            f"{rng.randint(0, 9)}{rng.randint(0, 9)}{rng.randint(1000, 9999)}"
        )
        consumers.append(
            Consumer(
                first_name=f"Pii{tag}",
                last_name=f"Sur{tag}x",
                phone=phone,
                email=f"pii.{tag.lower()}{n}@" + ("mailinator.com" if n == 0 else "consumer.example"),
            )
        )
    _traffic_controls(random.Random(start_ms), buyers, contracts, campaigns)
    return Scenario(
        start_ms=start_ms,
        start_note=note,
        skews_ms=skews,
        offers=offers,
        buyers=buyers,
        deposits=deposits,
        contracts=contracts,
        campaigns=campaigns,
        consumers=consumers,
        rate_limited=rate_limited,
    )


SOURCES = ("s.alpha", "s.beta:2", "blocked.src")


def _traffic_controls(
    rng: random.Random, buyers: list[dict[str, Any]], contracts: list[ContractPlan], campaigns: list[dict[str, Any]]
) -> None:
    """Spend caps on some contracts and one buyer, a blocked source and a duplicate-ping window
    (docs/protocol.md, Traffic controls), drawn from their own generator so the rest of a seed's world
    stays what it was."""
    for plan in contracts:
        if plan.offer != CALL_OFFER and rng.random() < 0.3:
            plan.caps["spend_daily_cents"] = rng.randint(5, 40) * 100
            plan.body["caps"] = dict(plan.caps)
    capped = rng.choice(buyers)
    capped["timezone"] = rng.choice(ZONES)
    capped["caps"] = {"spend_daily_cents": rng.randint(10, 60) * 100}
    for campaign in campaigns:
        if campaign["offer"] in FORM_OFFERS:
            campaign["sources"] = {"allow": None, "block": ["blocked.src"]}
            campaign["duplicate_ping_window_s"] = rng.choice([0, 60, 600])


def next_boundary_ms(now_ms: int, zone: str) -> int:
    """The next local midnight in `zone` after `now_ms` (days, weeks and months all start there)."""
    tz = ZoneInfo(zone)
    local = datetime.fromtimestamp(now_ms / 1000, tz)
    midnight = datetime.combine(local.date() + timedelta(days=1), time(0, 0), tz)
    return int(midnight.timestamp() * 1000)
