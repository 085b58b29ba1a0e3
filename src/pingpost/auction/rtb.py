"""The RTB bidder: every RTB contract's buyer asked concurrently under one auction deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from pingpost.auction.bidders import BidRequest, BidResult
from pingpost.domain.model import Contract
from pingpost.domain.outcomes import Outcome
from pingpost.domain.rtb_response import parse_bid
from pingpost.metrics import BID_OUTCOMES, BID_REQUESTS, BID_SECONDS
from pingpost.outbound.client import BuyerClient

# The auction waits this much past its deadline for answers already in hand before cutting.
DEADLINE_SLACK_S = 0.005


def bid_request_body(request: BidRequest, contract: Contract, timeout_ms: int) -> dict[str, Any]:
    """The non-PII ping as buyers see it (docs/protocol.md, Buyers); consumer hashes only with send_consumer_hashes."""
    body: dict[str, Any] = {
        "ping_id": request.ping_id,
        "offer": request.offer_id,
        "vertical": request.vertical_id,
        "channel": request.channel,
        "lead": dict(request.lead),
        "test": request.test,
        "timeout_ms": timeout_ms,
    }
    if request.source is not None:
        body["source"] = request.source
    if request.subs:
        body["subs"] = dict(request.subs)
    if (contract.rtb or {}).get("send_consumer_hashes") and request.consumer:
        body["consumer"] = dict(request.consumer)
    return body


def contract_timeout_ms(contract: Contract, channel: str) -> int:
    default = 3000 if channel in ("call", "callback") else 1000
    return int((contract.rtb or {}).get("timeout_ms") or default)


class AiohttpRtbBidder:
    def __init__(self, client: BuyerClient) -> None:
        self.client = client

    async def bid_all(
        self, contracts: Sequence[Contract], request: BidRequest, deadline_ms: int
    ) -> dict[str, BidResult]:
        tasks = {
            c.id: asyncio.create_task(self._one(c, request, min(contract_timeout_ms(c, request.channel), deadline_ms)))
            for c in contracts
        }
        done, pending = await asyncio.wait(tasks.values(), timeout=deadline_ms / 1000 + DEADLINE_SLACK_S)
        for task in pending:  # a late answer is discarded
            task.cancel()
        results: dict[str, BidResult] = {}
        for contract_id, task in tasks.items():
            if task in done and not task.cancelled() and task.exception() is None:
                results[contract_id] = task.result()
            else:  # cut by the auction's deadline: counted as the timeout it is (the task never got to)
                BID_OUTCOMES.labels(contract_id, Outcome.BID_TIMEOUT.value).inc()
                results[contract_id] = BidResult(Outcome.BID_TIMEOUT, detail="auction_deadline", latency_ms=deadline_ms)
        return results

    async def _one(self, contract: Contract, request: BidRequest, timeout_ms: int) -> BidResult:
        rtb = contract.rtb or {}
        BID_REQUESTS.labels(contract.id).inc()
        result = await self.client.post(
            rtb["url"],
            auth=rtb.get("auth"),
            timeout_ms=timeout_ms,
            json_body=bid_request_body(request, contract, timeout_ms),
        )
        parsed = parse_bid(status=result.status, body=result.body, error=result.error, mapping=rtb.get("response"))
        BID_SECONDS.labels(contract.id).observe(result.latency_ms / 1000)
        BID_OUTCOMES.labels(contract.id, parsed.outcome.value if parsed.outcome else "bid").inc()
        return BidResult(
            parsed.outcome,
            parsed.bid_cents,
            parsed.exclusive_bid_cents,
            parsed.bid_ref,
            parsed.transfer,
            result.latency_ms,
            parsed.detail,
            source="rtb",
        )
