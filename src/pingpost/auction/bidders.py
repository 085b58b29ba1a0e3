"""Bidders: how a contract prices a ping. Fixed price here; the RTB bidder plugs in the same seam."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from pingpost.domain.model import BidResult, Contract

__all__ = ["BidRequest", "BidResult", "RtbBidder", "fixed_bid"]


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
    source: str | None = None  # the partner's sub-ID and subs (docs/protocol.md, Traffic controls)
    subs: Mapping[str, str] | None = None


def fixed_bid(contract: Contract) -> BidResult:
    """A fixed-price contract's bid (immutable: built once per contract and configuration snapshot)."""
    return contract.fixed_bid


class RtbBidder(Protocol):
    async def bid_all(
        self, contracts: Sequence[Contract], request: BidRequest, deadline_ms: int
    ) -> dict[str, BidResult]:
        """Ask every contract's buyer concurrently; answer a result for each within `deadline_ms`."""
        ...
