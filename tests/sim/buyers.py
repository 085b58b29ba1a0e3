"""Fake buyers behind the `BuyerClient` seam: seeded answers to bid requests and deliveries, and a
record of everything they received (docs/simulator.md).

A buyer that hangs answers what the real client answers once its deadline passes (a timeout), after
moving the simulated clock by that deadline instead of sleeping: real time is never spent waiting.
A slow buyer yields to the event loop a few times (so concurrent requests interleave) and moves the
simulated clock by its latency, so a ping can wait across a period boundary.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson

from pingpost.clock import ManualClock
from pingpost.outbound import HttpResult
from tests.sim.scenario import PII_FIELDS


@dataclass
class Received:
    kind: str  # bid | deliver
    buyer: str
    contract: str
    at_ms: int  # the simulation's one true clock
    body: dict[str, Any]
    answer: str


@dataclass
class FakeBuyers:
    rng: random.Random
    clock: ManualClock
    pii_values: tuple[str, ...]
    received: list[Received] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # PII seen in bid requests
    enabled: bool = True

    async def post(
        self,
        url: str,
        *,
        auth: dict[str, Any] | None,
        json_body: Any = None,
        form_body: dict[str, str] | None = None,
        timeout_ms: int,
    ) -> HttpResult:
        parts = urlsplit(url)
        buyer = (parts.hostname or "").split(".")[0]
        kind, _, contract = parts.path.strip("/").partition("/")
        body: dict[str, Any] = dict(json_body) if isinstance(json_body, dict) else dict(form_body or {})
        await self._yield(self.rng.randint(0, 3))
        if kind == "bid":
            self._check_bid_request(contract, body)
            answer, result = await self._bid(body, timeout_ms)
        else:
            answer, result = await self._deliver(timeout_ms)
        self.received.append(Received(kind, buyer, contract, self.clock.now_ms(), body, answer))
        return result

    async def close(self) -> None:
        return None

    # --- bids -----------------------------------------------------------------------------------

    def _check_bid_request(self, contract: str, body: dict[str, Any]) -> None:
        lead = body.get("lead") or {}
        named = sorted(set(lead) & set(PII_FIELDS))
        raw = orjson.dumps(body).decode()
        leaked = [v for v in self.pii_values if v in raw]
        if named or leaked:
            self.problems.append(
                f"bid request to {contract} for {body.get('ping_id')} carries PII "
                f"(fields {named}, {len(leaked)} values)"
            )

    async def _bid(self, body: dict[str, Any], timeout_ms: int) -> tuple[str, HttpResult]:
        roll = self.rng.random()
        if roll < 0.07:
            await self._sleep(timeout_ms)
            return "hang", HttpResult(None, b"", timeout_ms, "timeout")
        if roll < 0.12:
            return "error", HttpResult(500, b"oops", 3)
        if roll < 0.15:
            return "invalid", HttpResult(200, b"{not json", 3)
        if roll < 0.27:
            return "no_bid", HttpResult(200, b'{"no_bid": true, "reason": "sim"}', 3)
        latency = self.rng.choice([2, 5, 20, 120]) if self.rng.random() < 0.8 else self.rng.randint(150, 280)
        if latency >= timeout_ms:
            await self._sleep(timeout_ms)
            return "slow", HttpResult(None, b"", timeout_ms, "timeout")
        await self._sleep(latency)
        answer: dict[str, Any] = {"bid_cents": self.rng.randint(2, 40) * 100}
        if self.rng.random() < 0.3:
            answer["exclusive_bid_cents"] = answer["bid_cents"] + self.rng.randint(1, 10) * 100
        if body.get("channel") in ("call", "callback") and self.rng.random() < 0.85:
            answer["transfer"] = {"phone": f"+1786555{self.rng.randint(1000, 9999)}"}
        return f"bid {answer['bid_cents']}", HttpResult(200, orjson.dumps(answer), latency)

    # --- deliveries -----------------------------------------------------------------------------

    async def _deliver(self, timeout_ms: int) -> tuple[str, HttpResult]:
        roll = self.rng.random()
        if roll < 0.05:
            await self._sleep(timeout_ms)
            return "timeout", HttpResult(None, b"", timeout_ms, "timeout")
        if roll < 0.09:
            return "error", HttpResult(503, b"busy", 4)
        await self._sleep(self.rng.choice([3, 10, 40]))
        if roll < 0.27:
            return "reject", HttpResult(200, b'{"status": "rejected", "reason": "not today"}', 8)
        lead_id = f"bl-{self.rng.randint(0, 10**9)}"
        return "accept", HttpResult(200, orjson.dumps({"status": "accepted", "buyer_lead_id": lead_id}), 8)

    # --- simulated time -------------------------------------------------------------------------

    async def _yield(self, times: int) -> None:
        for _ in range(times):
            await asyncio.sleep(0)

    async def _sleep(self, ms: int) -> None:
        """Let `ms` of simulated time pass: other tasks run meanwhile, the clock moves to the end."""
        until = self.clock.now_ms() + ms
        await self._yield(1 + ms // 100)
        if self.clock.now_ms() < until:
            self.clock.set(until)

    def deliveries_for(self, ping_id: str) -> list[Received]:
        return [r for r in self.received if r.kind == "deliver" and r.body.get("ping_id") == ping_id]
