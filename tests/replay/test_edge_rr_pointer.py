"""Edge: the round-robin pointer as the range starts (docs/replay.md: "each round-robin offer's pointer
as the last winner before the range left it"). Live, `rr_pointer` holds the winner's rank key
(priority:id) as it was when it won; a priority changed after that win but before the range leaves the
live pointer alone. Both stores.

Round-robin offer; `a` at priority 5, `b` and `c` at 1: on Nov 2 three pings go b, c, a (pointer
"0000000005:a"); then `a` is moved to priority 1. On Nov 3 the order is a, b, c and the pointer is past
all of them: the ping wraps to `a`."""

from __future__ import annotations

from datetime import date

from pingpost.config import Settings
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.api import setup_data as sd
from tests.replay.history import DELIVER, open_history
from tests.support.money import at


async def test_round_robin_pointer_after_a_priority_change(settings: Settings) -> None:
    async with open_history(settings) as h:
        await sd.base_setup(h.api, rule="round_robin", max_winners=1)
        h.key = await sd.campaign(h.api)
        for ident, priority in (("a", 5), ("b", 1), ("c", 1)):
            await sd.buyer(h.api, ident, deposit=10**6)
            await sd.contract(h.api, ident, ident, 4000, delivery={"url": DELIVER}, dedup_days=0, priority=priority)
        h.clock.set(at("2026-11-02T10:00:00"))
        day1 = []
        for n in range(3):
            h.clock.advance(3_600_000)
            day1.append(await h.ping_and_post({"state": "FL", "zip": "33109", "age": 70 + n}, f"30555{n:05d}"))
        h.clock.set(at("2026-11-02T20:00:00"))
        await h.api.ok("PATCH", "/v1/admin/contracts/a", json={"priority": 1})
        h.clock.set(at("2026-11-03T10:00:00"))
        await h.ping_and_post({"state": "FL", "zip": "33109", "age": 80}, "3055500009")
        real = await h.real_winners()
        assert [real[a["ping_id"]] for a in day1] == [["b"], ["c"], ["a"]]
        day2 = {p: w for p, w in real.items() if p not in {a["ping_id"] for a in day1}}
        assert list(day2.values()) == [["a"]]  # live: the pointer "…5:a" wrapped to a

        service = ReplayService(h.store)
        prepared = await service.prepare(ReplayRequest(date(2026, 11, 3), date(2026, 11, 3)), keep_winners=True)
        result = await service.execute(prepared)
        assert prepared.engine.winners == day2
        assert result["proposed"] == result["actual"]
