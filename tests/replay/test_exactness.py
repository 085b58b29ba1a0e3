"""The test of the engine (docs/replay.md): replaying the unchanged configuration over a history made
through the real app reproduces every ping's real winners, and the proposed figures equal the actual
ones. On both stores."""

from __future__ import annotations

from datetime import date

from pingpost.config import Settings
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.replay.history import open_history, rich_market, rich_traffic


async def test_unchanged_configuration_reproduces_every_winner(settings: Settings) -> None:
    async with open_history(settings) as h:
        await rich_market(h)
        await rich_traffic(h)
        real = await h.real_winners()
        service = ReplayService(h.store)
        prepared = await service.prepare(ReplayRequest(date(2026, 11, 1), date(2026, 11, 30)), keep_winners=True)
        result = await service.execute(prepared)
        replayed = prepared.engine.winners
        assert replayed is not None
        assert {"cap", "sched", "poor", "fl", "r1", "r2"} <= {c for winners in real.values() for c in winners}
        seen = await h.outcomes()
        # the history exercises every state the replay keeps
        assert {"cap_reached", "insufficient_balance", "duplicate", "outside_schedule", "filter_mismatch"} <= seen
        assert {"no_bid", "bid_error", "static_fallback", "post_rejected"} <= seen
        assert result["total"] == len(real) == 42
        mismatched = {p: (real[p], replayed.get(p)) for p in real if sorted(real[p]) != sorted(replayed.get(p, []))}
        assert mismatched == {}
        assert result["proposed"] == result["actual"]
        assert result["delta"]["revenue_cents"] == 0 and result["delta"]["fill_rate"] == "0.0000"
        assert result["days"]["proposed"] == result["days"]["actual"]
