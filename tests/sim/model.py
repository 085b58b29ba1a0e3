"""What the simulator itself knows: the pings it sent and their bids, calls in progress, requests it
may retry, the caps in force, and what the invariants compare the database against."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.sim.scenario import Consumer


@dataclass
class PingRec:
    ping_id: str
    offer: str
    campaign: str
    channel: str
    lead: dict[str, Any]
    consumer: Consumer
    bids: list[dict[str, Any]]
    test: bool
    # The latest instant (on the one true clock) the ping's bids can still be live: the ping was
    # decided no later than its answer arrived, so it lapses no later than then + its lifetime.
    expiry_bound_ms: int
    posted: bool = False
    chosen: set[str] | None = None  # the bid ids the partner accepted (None: all)
    source: str | None = None  # the partner's sub-ID, carried unchanged to the post


@dataclass
class CallRec:
    ping: PingRec
    active: str | None
    connected: str | None = None
    # When `connected` was first sent (the call may be up from then on, answered or not) and when it
    # was answered as connected: a call is completed before it could outlast the offer's maximum.
    connect_sent_ms: int = 0
    connected_at_ms: int = 0
    completing: bool = False
    done: bool = False


@dataclass
class Resend:
    """A request to send again: a partner retry with the same Idempotency-Key, or a call event that
    got no final answer (a crash, a 5xx), which the call platform retries."""

    label: str
    path: str
    token: str
    body: dict[str, Any]
    key: str | None
    first_status: int | None = None  # None: interrupted (no answer)
    first_body: Any = None
    first_at_ms: int = 0  # when it was first sent, on the one true clock
    unanswered: bool = False  # the first attempt crashed (first_status None) or answered 5xx
    on_answer: Callable[[int, Any], str] | None = None  # updates the model once the retry is answered


@dataclass
class Model:
    pings: dict[str, PingRec] = field(default_factory=dict)
    calls: list[CallRec] = field(default_factory=list)
    resends: list[Resend] = field(default_factory=list)
    sale_ids: list[str] = field(default_factory=list)
    paused: set[tuple[str, str]] = field(default_factory=set)
    # Caps in force per contract, and per (contract, period kind, period key) the count a cap change
    # found already taken above the new cap (a cap lowered after sales is not a violation).
    caps: dict[str, dict[str, int]] = field(default_factory=dict)
    allowance: dict[tuple[str, str, str], int] = field(default_factory=dict)
    # Per buyer, what the operator charged for lapsed reservations (no hold covered it).
    overdraft: dict[str, int] = field(default_factory=dict)
    # (contract | buyer, id, day key) where the operator recorded a sale without a spend check
    spend_exempt: set[tuple[str, str, str]] = field(default_factory=set)
    # The newest period keys each contract's counters have shown (they may only move forward).
    newest_keys: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    checked_deliveries: int = 0
    posting_keys: dict[str, str] = field(default_factory=dict)
    platform_key: str = ""
    buyer_keys: dict[str, str] = field(default_factory=dict)  # made when a buyer first opens a return
    returns: list[str] = field(default_factory=list)  # returns opened (201)
    payouts: dict[str, int] = field(default_factory=dict)  # reference -> the amount it paid
    counter: int = 0

    def next(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def open_form_pings(self) -> list[PingRec]:
        return [p for p in self.pings.values() if p.channel == "form" and not p.posted and p.bids]

    def open_calls(self) -> list[CallRec]:
        return [c for c in self.calls if not c.done]

    def pending_event(self, call: CallRec) -> Resend | None:
        """A call event of this call that got no final answer yet (the platform retries it first)."""
        prefix = f"/v1/calls/{call.ping.ping_id}/"
        return next((r for r in self.resends if r.unanswered and r.path.startswith(prefix)), None)
