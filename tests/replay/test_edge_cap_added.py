"""Edge: a cap added mid-range through the admin API to a contract (or buyer) that had none. Live,
`take_cap_slot` and `take_hold` count every reservation in `contract_usage` / `buyer_funds`, capped or
not, so the new cap finds the day's earlier sales counted; the unchanged replay must reproduce that
(docs/replay.md: every winner, also when the configuration changed mid-range). Both stores.

Exclusive offer; `a` (alpha) at 50.00, `b` (beta) at 30.00. Pings at 10:00 and 11:00 UTC go to `a`;
at 12:00 the operator caps `a` (2 a day, or alpha 100.00 a day of spend); the 13:00 ping finds the cap
reached live and goes to `b`."""

from __future__ import annotations

from datetime import date
from typing import Any

from pingpost.config import Settings
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.api import setup_data as sd
from tests.replay.history import DELIVER, open_history
from tests.support.money import at


async def _history(settings: Settings, path: str, patch: dict[str, Any]) -> tuple[dict[str, list[str]], Any]:
    async with open_history(settings) as h:
        await sd.base_setup(h.api, rule="exclusive")
        h.key = await sd.campaign(h.api)
        await sd.buyer(h.api, "alpha", deposit=10**6)
        await sd.buyer(h.api, "beta", deposit=10**6)
        await sd.contract(h.api, "a", "alpha", 5000, delivery={"url": DELIVER}, dedup_days=0)
        await sd.contract(h.api, "b", "beta", 3000, delivery={"url": DELIVER}, dedup_days=0)
        h.clock.set(at("2026-11-02T10:00:00"))
        for n in range(3):
            if n == 2:
                h.clock.set(at("2026-11-02T12:00:00"))
                await h.api.ok("PATCH", path, json=patch)
            h.clock.set(at(f"2026-11-02T{10 + n + (n == 2):02d}:00:00"))
            await h.ping_and_post({"state": "FL", "zip": "33109", "age": 70 + n}, f"30555{n:05d}")
        real = await h.real_winners()
        service = ReplayService(h.store)
        prepared = await service.prepare(ReplayRequest(date(2026, 11, 2), date(2026, 11, 2)), keep_winners=True)
        result = await service.execute(prepared)
        return real, (prepared.engine.winners, result)


async def test_contract_cap_added_mid_range(settings: Settings) -> None:
    real, (replayed, result) = await _history(settings, "/v1/admin/contracts/a", {"caps": {"daily": 2}})
    assert sorted(w for ws in real.values() for w in ws) == ["a", "a", "b"]  # the cap bit live
    assert replayed == real
    assert result["proposed"] == result["actual"]


async def test_buyer_spend_cap_added_mid_range(settings: Settings) -> None:
    real, (replayed, result) = await _history(
        settings, "/v1/admin/buyers/alpha", {"caps": {"spend_daily_cents": 10_000}}
    )
    assert sorted(w for ws in real.values() for w in ws) == ["a", "a", "b"]  # the spend cap bit live
    assert replayed == real
    assert result["proposed"] == result["actual"]
