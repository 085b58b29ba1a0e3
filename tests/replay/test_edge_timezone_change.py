"""Edge: a capped contract's time zone changed mid-range through the admin API, to one behind the
old one. Live, `take_cap_slot` never moves a counter back: the new zone's day ("2026-11-02" in Los
Angeles) is older than the counter's ("2026-11-03" in Tokyo), so the slot is taken in the counter's
day, which is full. The unchanged replay must reproduce that (docs/replay.md: caps in each contract's
time zone; a version switch keeps the cap counters, as `contract_usage` rows stay). Both stores.

Exclusive offer; `a` (alpha) at 50.00, 2 a day in Asia/Tokyo; `b` (beta) at 30.00. Pings at 15:00 and
16:00 UTC on Nov 2 (Nov 3 in Tokyo) go to `a`; at 17:00 the operator moves `a` to America/Los_Angeles;
the 18:00 ping (Nov 2, 10:00 in Los Angeles) finds the cap full live and goes to `b`."""

from __future__ import annotations

from datetime import date

from pingpost.config import Settings
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.api import setup_data as sd
from tests.replay.history import DELIVER, open_history
from tests.support.money import at


async def test_time_zone_moved_back_keeps_the_full_day(settings: Settings) -> None:
    async with open_history(settings) as h:
        await sd.base_setup(h.api, rule="exclusive")
        h.key = await sd.campaign(h.api)
        await sd.buyer(h.api, "alpha", deposit=10**6)
        await sd.buyer(h.api, "beta", deposit=10**6)
        await sd.contract(
            h.api, "a", "alpha", 5000, delivery={"url": DELIVER}, dedup_days=0, caps={"daily": 2}, timezone="Asia/Tokyo"
        )
        await sd.contract(h.api, "b", "beta", 3000, delivery={"url": DELIVER}, dedup_days=0)
        for n, hour in enumerate((15, 16, 18)):
            if hour == 18:
                h.clock.set(at("2026-11-02T17:00:00"))
                await h.api.ok("PATCH", "/v1/admin/contracts/a", json={"timezone": "America/Los_Angeles"})
            h.clock.set(at(f"2026-11-02T{hour}:00:00"))
            await h.ping_and_post({"state": "FL", "zip": "33109", "age": 70 + n}, f"30555{n:05d}")
        real = await h.real_winners()
        assert list(real.values()) == [["a"], ["a"], ["b"]]

        service = ReplayService(h.store)
        prepared = await service.prepare(ReplayRequest(date(2026, 11, 2), date(2026, 11, 2)), keep_winners=True)
        result = await service.execute(prepared)
        assert prepared.engine.winners == real
        assert result["proposed"] == result["actual"]
