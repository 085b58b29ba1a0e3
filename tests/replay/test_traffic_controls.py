"""The traffic controls in a replay (docs/replay.md): spend caps, suppression lists and duplicate-ping
windows as they ran reproduce every winner, and a proposed change to them is figured by hand. On
both stores.

The history: an exclusive offer, a campaign paying 70 % with a duplicate-ping window of 600 s;
contract `a` (buyer alpha) at 50.00 with a daily spend cap of 100.00, contract `b` (beta) at 30.00,
neither with dedup;
a global suppression list holding one phone. Each of two days: five pings an hour apart, the third
from the suppressed phone (nobody may buy it); the fifth is sent again 5 minutes later (a duplicate:
no auction, no record) and again 30 minutes later (outside the window: a ping of its own).
Each day `a` sells pings 1 and 2 (then its spend cap is reached), `b` sells 4, 5 and the late
repeat: 2 x (2 x 5,000 + 3 x 3,000) = 38,000 in 10 sales, 12 stored pings."""

from __future__ import annotations

from datetime import date
from typing import Any

from pingpost.config import Settings
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.api import setup_data as sd
from tests.replay.history import DELIVER, History, open_history
from tests.support.money import at

SUPPRESSED = "3055509999"


async def controlled_history(h: History) -> list[dict[str, Any]]:
    api = h.api
    await sd.base_setup(api, rule="exclusive")
    h.key = await sd.campaign(api)
    await api.ok("PATCH", "/v1/admin/campaigns/acme-med", json={"duplicate_ping_window_s": 600})
    await sd.buyer(api, "alpha", deposit=10**6)
    await sd.buyer(api, "beta", deposit=10**6)
    await sd.contract(
        api, "a", "alpha", 5000, delivery={"url": DELIVER}, caps={"spend_daily_cents": 10_000}, dedup_days=0
    )
    await sd.contract(api, "b", "beta", 3000, delivery={"url": DELIVER}, dedup_days=0)
    await api.ok("POST", "/v1/admin/suppression-lists", 201, json={"id": "dnc", "name": "Do not call"})
    await api.ok("POST", "/v1/admin/suppression-lists/dnc/entries", json={"phones": [SUPPRESSED]})
    answers = []
    for day, base in (("2026-11-02", 0), ("2026-11-03", 10)):
        h.clock.set(at(f"{day}T10:00:00"))
        for n in range(1, 6):
            if n > 1:
                h.clock.advance(3_600_000)
            phone = SUPPRESSED if n == 3 else f"30555{base + n:05d}"
            answers.append(await h.ping_and_post({"state": "FL", "zip": "33109", "age": 70 + n}, phone))
        last = {"state": "FL", "zip": "33109", "age": 75}
        h.clock.advance(5 * 60_000)  # 5 minutes after the fifth
        answers.append(await h.ping_and_post(last, f"30555{base + 5:05d}"))
        h.clock.advance(25 * 60_000)  # 30 minutes after the fifth
        answers.append(await h.ping_and_post(last, f"30555{base + 5:05d}"))
    return answers


async def replay(h: History, setup: dict[str, Any] | None = None) -> dict[str, Any]:
    return await ReplayService(h.store).run(ReplayRequest(date(2026, 11, 2), date(2026, 11, 3), setup=setup))


async def test_traffic_controls_replay_as_they_ran_and_as_proposed(settings: Settings) -> None:
    async with open_history(settings) as h:
        answers = await controlled_history(h)
        duplicates = [a for a in answers if a.get("duplicate_of")]
        assert len(duplicates) == 2 and all(a["status"] == "no_bids" for a in duplicates)
        seen = await h.outcomes()
        assert {"suppressed", "cap_reached", "won", "post_accepted"} <= seen
        real = await h.real_winners()
        assert len(real) == 12

        service = ReplayService(h.store)
        prepared = await service.prepare(ReplayRequest(date(2026, 11, 2), date(2026, 11, 3)), keep_winners=True)
        unchanged = await service.execute(prepared)
        assert prepared.engine.winners == real  # every winner, the suppressed consumer's empty list too
        assert (unchanged["actual"]["sales"], unchanged["actual"]["revenue_cents"]) == (10, 38_000)
        assert unchanged["proposed"] == unchanged["actual"]

        # A window of an hour: each day's late repeat (30 minutes after the fifth) is a duplicate.
        longer = await replay(h, {"campaigns": [{"id": "acme-med", "duplicate_ping_window_s": 3600}]})
        assert (longer["proposed"]["sales"], longer["proposed"]["revenue_cents"]) == (8, 32_000)
        assert longer["proposed"]["pings"] == 12 and longer["delta"]["by_contract"]["b"]["sales"] == -2

        # No spend cap on a: it sells everything but the suppressed consumer, 5 a day.
        uncapped = await replay(h, {"contracts": [{"id": "a", "caps": {}}]})
        assert (uncapped["proposed"]["sales"], uncapped["proposed"]["revenue_cents"]) == (10, 50_000)
        assert uncapped["proposed"]["by_contract"] == {"a": {"wins": 10, "sales": 10, "revenue_cents": 50_000}}

        # A spend cap of 150.00 a day on buyer alpha instead: three of a's a day.
        buyer_cap = await replay(
            h,
            {
                "contracts": [{"id": "a", "caps": {}}],
                "buyers": [{"id": "alpha", "caps": {"spend_daily_cents": 15_000}}],
            },
        )
        assert buyer_cap["proposed"]["by_contract"]["a"] == {"wins": 6, "sales": 6, "revenue_cents": 30_000}
        assert buyer_cap["proposed"]["revenue_cents"] == 30_000 + 4 * 3_000
