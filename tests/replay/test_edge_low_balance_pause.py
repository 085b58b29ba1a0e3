"""Edge: a buyer paused by `pause_on_low_balance` (docs/protocol.md, Traffic controls). Live, the pause
is written after the ping's holds are taken (`autopause.check_low_balance`), so the ping that crosses
the threshold keeps its winner; its `buyer.low_balance` event carries that ping's instant. The
unchanged replay must reproduce that winner (docs/replay.md: auto-pauses "happen at their real
instants"). Both stores.

Exclusive offer; `a` (alpha: 100.00 deposited, low balance 60.00, pause on low balance) at 50.00,
`b` (beta) at 30.00. The 10:00 ping goes to `a` (available falls to 50.00: alpha is paused); the
11:00 ping goes to `b`."""

from __future__ import annotations

from datetime import date

from pingpost.config import Settings
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.api import setup_data as sd
from tests.replay.history import DELIVER, open_history
from tests.support.money import at


async def test_ping_that_crosses_the_low_balance_keeps_its_winner(settings: Settings) -> None:
    async with open_history(settings) as h:
        await sd.base_setup(h.api, rule="exclusive")
        h.key = await sd.campaign(h.api)
        await sd.buyer(h.api, "alpha", deposit=10_000)
        await h.api.ok(
            "PATCH", "/v1/admin/buyers/alpha", json={"low_balance_cents": 6_000, "pause_on_low_balance": True}
        )
        await sd.buyer(h.api, "beta", deposit=10**6)
        await sd.contract(h.api, "a", "alpha", 5000, delivery={"url": DELIVER}, dedup_days=0)
        await sd.contract(h.api, "b", "beta", 3000, delivery={"url": DELIVER}, dedup_days=0)
        h.clock.set(at("2026-11-02T10:00:00"))
        await h.ping_and_post({"state": "FL", "zip": "33109", "age": 70}, "3055500001")
        h.clock.set(at("2026-11-02T11:00:00"))
        await h.ping_and_post({"state": "FL", "zip": "33109", "age": 71}, "3055500002")
        assert (await h.api.ok("GET", "/v1/admin/buyers/alpha"))["status"] == "paused"
        real = await h.real_winners()
        assert list(real.values()) == [["a"], ["b"]]

        service = ReplayService(h.store)
        prepared = await service.prepare(ReplayRequest(date(2026, 11, 2), date(2026, 11, 2)), keep_winners=True)
        result = await service.execute(prepared)
        assert prepared.engine.winners == real
        assert result["proposed"] == result["actual"]
