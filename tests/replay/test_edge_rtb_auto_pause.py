"""Edge: an RTB contract auto-paused by the ping whose bid failed (docs/protocol.md, auto-pause). Live,
`autopause.record` runs after the ping is decided, so that ping's static fallback still bids and
wins; the `contract.auto_paused` event carries the ping's instant. The unchanged replay must
reproduce the winner (docs/replay.md: auto-pauses "happen at their real instants"). Both stores.

Exclusive offer; RTB `r` (fallback on_failure at 60.00, paused after 1 failure) errors for age 71;
`b` (beta) at 30.00 buys FL only. 10:00 age 70: r bids 70.00 and wins; 11:00 age 71 from TX: r
errors, its static 60.00 wins (static fallback: no other bid), r is paused; 12:00: b."""

from __future__ import annotations

from datetime import date
from typing import Any

from pingpost.config import Settings
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.api import setup_data as sd
from tests.replay.history import DELIVER, HOUR_MS, open_history
from tests.support.money import at


async def test_the_failing_ping_keeps_its_static_fallback_winner(settings: Settings) -> None:
    async def bids(sent: Any) -> tuple[int, Any]:
        return (500, {"error": "down"}) if sent.body["lead"]["age"] == 71 else (200, {"bid_cents": 7000})

    async with open_history(settings) as h:
        await sd.base_setup(h.api, rule="exclusive")
        h.key = await sd.campaign(h.api)
        await sd.buyer(h.api, "rtb", deposit=10**6)
        await sd.buyer(h.api, "beta", deposit=10**6)
        rtb = {"url": "http://buyer.test/r", "timeout_ms": 500, "fallback": "on_failure"}
        await sd.contract(
            h.api, "r", "rtb", 6000, rtb=rtb, delivery={"url": DELIVER}, auto_pause={"max_consecutive_failures": 1}
        )
        await sd.contract(
            h.api, "b", "beta", 3000, delivery={"url": DELIVER}, filters=[{"field": "state", "op": "eq", "value": "FL"}]
        )
        h.client.handlers["http://buyer.test/r"] = bids
        h.clock.set(at("2026-11-02T10:00:00"))
        for serial, (age, state) in enumerate(((70, "FL"), (71, "TX"), (72, "FL")), 1):
            await h.ping_and_post({"state": state, "zip": "33109", "age": age}, f"30555{serial:05d}")
            h.clock.advance(HOUR_MS)
        assert (await h.api.ok("GET", "/v1/admin/contracts/r"))["status"] == "paused"
        real = await h.real_winners()
        assert list(real.values()) == [["r"], ["r"], ["b"]]

        service = ReplayService(h.store)
        prepared = await service.prepare(ReplayRequest(date(2026, 11, 2), date(2026, 11, 2)), keep_winners=True)
        result = await service.execute(prepared)
        assert prepared.engine.winners == real
        assert result["proposed"] == result["actual"]
