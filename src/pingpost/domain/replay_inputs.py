"""What a replay reads of one stored ping, pure (docs/replay.md, What each ping keeps).

The waterfall holds most of a ping's inputs; what it cannot hold is kept in the ping's `replay`
column, written only when there is something to keep (so a fixed-price ping writes nothing more):
- `rtb`: every RTB answer as the buyer gave it, `{contract_id: [outcome, bid_cents,
  exclusive_bid_cents, latency_ms, detail, has_transfer]}` (the waterfall shows the price charged,
  not an exclusive bid, nor a bid that static fallback replaced);
- `min_payout_cents`: the partner's minimum, when not 0;
- `source`: the partner's sub-ID, read from the ping's own `source` column.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pingpost.domain.eligibility import NO_SUPPRESSION, PeriodKeys, Suppression
from pingpost.domain.model import BidResult
from pingpost.domain.outcomes import Outcome

_OUTCOMES = {o.value: o for o in Outcome}


def replay_document(lines: Sequence[Any], min_payout_cents: int) -> dict[str, Any] | None:
    """What the ping path stores for a replay beyond the waterfall, or None when nothing (`lines` are
    `domain.auction.Line`s after bidding)."""
    rtb: dict[str, list[Any]] = {}
    for line in lines:
        bid: BidResult | None = line.bid
        if bid is not None and bid.source == "rtb":
            rtb[line.contract.id] = [
                bid.outcome.value if bid.outcome is not None else None,
                bid.bid_cents,
                bid.exclusive_bid_cents,
                bid.latency_ms,
                bid.detail,
                1 if bid.transfer else 0,
            ]
    if not rtb and not min_payout_cents:
        return None
    document: dict[str, Any] = {}
    if rtb:
        document["rtb"] = rtb
    if min_payout_cents:
        document["min_payout_cents"] = min_payout_cents
    return document


_STORED_TRANSFER = {"stored": "1"}  # a call's bid carried a destination; which one does not matter here


_BIDS: dict[tuple[Any, ...], BidResult] = {}


def stored_bids(document: dict[str, Any] | None) -> dict[str, BidResult]:
    """The RTB answers a `replay_document` kept, as the auction's `BidResult`s. The latency is left
    out (a replay writes no waterfall): equal answers share one immutable object."""
    bids: dict[str, BidResult] = {}
    for contract_id, (outcome, cents, exclusive, _latency, detail, transfer) in (
        (document or {}).get("rtb") or {}
    ).items():
        key = (outcome, cents, exclusive, detail, transfer)
        bid = _BIDS.get(key)
        if bid is None:
            if len(_BIDS) > 100_000:
                _BIDS.clear()
            bid = _BIDS[key] = BidResult(
                _OUTCOMES[outcome] if outcome is not None else None,
                cents,
                exclusive,
                None,
                _STORED_TRANSFER if transfer else None,
                None,
                detail,
            )
        bids[contract_id] = bid
    return bids


_RTB_FAILURES = {"no_bid", "bid_timeout", "bid_error", "bid_invalid"}


def bids_from_waterfall(waterfall: Sequence[dict[str, Any]], rtb_contracts: set[str]) -> dict[str, BidResult]:
    """Pings stored before the `replay` column: the RTB answers the waterfall shows (the price of a
    bid that passed, or its failure). An exclusive bid it did not show is taken as the ordinary one."""
    bids: dict[str, BidResult] = {}
    for entry in waterfall:
        contract_id = entry.get("contract_id")
        if contract_id not in rtb_contracts:
            continue
        outcome = entry.get("outcome")
        if outcome in _RTB_FAILURES:
            bids[contract_id] = BidResult(_OUTCOMES[outcome], latency_ms=entry.get("rtb_latency_ms"))
        elif entry.get("source") == "rtb" and entry.get("bid_cents") is not None:
            bids[contract_id] = BidResult(None, int(entry["bid_cents"]), latency_ms=entry.get("rtb_latency_ms"))
    return bids


@dataclass(slots=True)  # not frozen: built once per real winner, a million times a replay
class RealWin:
    """One real winner of a stored ping and what became of it: `fate` is `accepted` or `rejected`
    (delivered, recorded at `at`), `released` (posted without it: not chosen, re-check failed,
    lapsed) or `open` (the ping was never posted). `sale` is (price, payout) of its sale record."""

    contract_id: str
    buyer_id: str
    price_cents: int
    fate: str
    at: int | None = None
    sale: tuple[int, int] | None = None


@dataclass(slots=True)
class StoredPing:
    """One stored ping as the replay engine reads it."""

    id: str
    offer_id: str
    campaign_id: str
    channel: str
    received_at: int
    decided_at: int
    lead: dict[str, Any]
    hashes: tuple[str, ...]  # keyed (HMAC) consumer hashes
    rtb: dict[str, BidResult] | None  # None: not stored (an older ping): `waterfall` says
    min_payout_cents: int = 0
    posted_at: int | None = None  # when the partner's post claimed its bids; None when never posted
    settled_at: int | None = None  # when its last delivery was recorded
    real: tuple[RealWin, ...] = ()
    waterfall: str | None = None  # the stored waterfall, read only when `rtb` is None
    source: str | None = None  # the partner's sub-ID (filters see it as the field `source`)
    suppressed: Suppression = NO_SUPPRESSION  # the suppression lists its consumer hashes are on now
    dup_key: str | None = None  # its duplicate-ping key, stored when its campaign had a window


# --- the state as a range starts, and the accept rates (read by `replay/loader.py`) ---


@dataclass(slots=True)
class FixedHold:
    """A reservation the replay does not decide (made before the range, or by a ping it does not
    replay: a direct post, another offer's ping): it takes its slot and hold at `start` and ends at
    `end`, sold (a charge) or not (given back), the same in the actual and the proposed run."""

    contract_id: str
    buyer_id: str
    amount_cents: int
    keys: PeriodKeys | None
    start: int
    end: int
    sold: bool
    funds: bool = True  # False: sold before the range (its charge is in the opening balance; only its slot counts)
    buyer_keys: PeriodKeys | None = None  # the buyer's spend periods it counted in


@dataclass(slots=True)
class Move:
    """A ledger movement of a buyer in the range: a deposit, or a refund (`sale` names the replayed
    ping and contract whose sale it refunds: applied only when the replay sold it too)."""

    at: int
    buyer_id: str
    amount_cents: int
    sale: tuple[str, str] | None = None


@dataclass
class StartState:
    """The state at the start of the range, read from the database."""

    balances: dict[str, int] = field(default_factory=dict)  # buyer -> ledger balance at the start
    credit_limits: dict[str, int] = field(default_factory=dict)
    dedup: dict[str, dict[str, int]] = field(default_factory=dict)  # hash -> buyer -> latest purchase
    rr: dict[str, str] = field(default_factory=dict)  # offer -> round-robin pointer
    holds: list[FixedHold] = field(default_factory=list)
    moves: list[Move] = field(default_factory=list)


@dataclass(frozen=True)
class Acceptance:
    """Accept rates in basis points per contract, and the rate of a contract without deliveries."""

    by_contract: dict[str, int]
    default_bp: int


def accepts(ping_id: str, contract_id: str, rate_bp: int) -> bool:
    """Whether the modelled delivery is accepted: a hash of the ping and contract under the rate."""
    digest = hashlib.blake2b(f"{ping_id}|{contract_id}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % 10_000 < rate_bp
