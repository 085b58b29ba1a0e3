"""Bidders: how a contract prices a ping. Fixed price here; the RTB bidder plugs in the same seam."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pingpost.domain.model import Contract
from pingpost.domain.outcomes import Outcome


@dataclass(frozen=True)
class BidRequest:
    """What a buyer may see of a ping: never PII (consumer hashes only with send_consumer_hashes)."""

    ping_id: str
    offer_id: str
    vertical_id: str
    channel: str
    lead: Mapping[str, Any]
    test: bool
    consumer: Mapping[str, str]


@dataclass(frozen=True)
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


def fixed_bid(contract: Contract) -> BidResult:
    assert contract.price_cents is not None
    return BidResult(None, contract.price_cents, contract.exclusive_price_cents, source="fixed")


class RtbBidder(Protocol):
    async def bid_all(self, contracts: Sequence[Contract], request: BidRequest,
                      deadline_ms: int) -> dict[str, BidResult]:
        """Ask every contract's buyer concurrently; answer a result for each within `deadline_ms`."""
        ...
