"""Edge: a campaign payout with an override (docs/protocol.md, Traffic controls): the unchanged replay
must figure the partner's payout as the sale was really paid (docs/replay.md: proposed equals actual)."""

from __future__ import annotations

from datetime import date

from pingpost.config import Settings
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.api import setup_data as sd
from tests.replay.history import DELIVER, open_history
from tests.support.money import at


async def test_payout_override_replays_as_paid(settings: Settings) -> None:
    async with open_history(settings) as h:
        await sd.base_setup(h.api, rule="exclusive")
        payout = {
            "type": "revshare",
            "percent": 70,
            "overrides": [{"contract": "a", "payout": {"type": "fixed", "amount_cents": 1000}}],
        }
        h.key = await sd.campaign(h.api, payout=payout)
        await sd.buyer(h.api, "alpha", deposit=10**6)
        await sd.contract(h.api, "a", "alpha", 5000, delivery={"url": DELIVER})
        h.clock.set(at("2026-11-02T10:00:00"))
        answer = await h.ping_and_post({"state": "FL", "zip": "33109", "age": 70}, "3055500001")
        assert answer["bids"][0]["payout_cents"] == 1000  # the override paid live
        result = await ReplayService(h.store).run(ReplayRequest(date(2026, 11, 2), date(2026, 11, 2)))
        assert result["actual"]["payout_cents"] == 1000
        assert result["proposed"]["payout_cents"] == result["actual"]["payout_cents"]
        assert result["proposed"] == result["actual"]
