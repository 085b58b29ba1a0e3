"""The classic what-if questions over a small history whose figures are checked by hand
(docs/replay.md, Examples), and the live database left exactly as it was. On both stores.

The history: an exclusive offer, a campaign paying 70 %, contract `a` (buyer alpha) at 50.00 with a
daily cap of 2, contract `b` (buyer beta) at 30.00; two days of five pings, each a new consumer,
all posted and accepted. Each day `a` sells the first two, `b` the other three:
revenue 2 x (2 x 5,000 + 3 x 3,000) = 38,000, payout 26,600, margin 11,400, 10 sales."""

from __future__ import annotations

from datetime import date
from typing import Any

from pingpost.config import Settings
from pingpost.db.store import Store, Tx
from pingpost.db.tables import metadata
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.api import setup_data as sd
from tests.replay.history import DELIVER, History, open_history
from tests.support.money import at


async def small_history(h: History) -> None:
    await sd.base_setup(h.api, rule="exclusive")
    h.key = await sd.campaign(h.api)
    await sd.buyer(h.api, "alpha", deposit=10**6)
    await sd.buyer(h.api, "beta", deposit=10**6)
    await sd.contract(h.api, "a", "alpha", 5000, delivery={"url": DELIVER}, caps={"daily": 2})
    await sd.contract(h.api, "b", "beta", 3000, delivery={"url": DELIVER})
    serial = 0
    for day in ("2026-11-02", "2026-11-03"):
        h.clock.set(at(f"{day}T10:00:00"))
        for _ in range(5):
            serial += 1
            await h.ping_and_post({"state": "FL", "zip": "33109", "age": 70}, f"30555{serial:05d}")
            h.clock.advance(3_600_000)


async def replay(h: History, setup: dict[str, Any] | None = None) -> dict[str, Any]:
    return await ReplayService(h.store).run(ReplayRequest(date(2026, 11, 2), date(2026, 11, 3), setup=setup))


async def everything(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    async def unit(tx: Tx) -> dict[str, list[tuple[Any, ...]]]:
        return {
            t.name: sorted((tuple(r) for r in await tx.fetch(f"SELECT * FROM {t.name}")), key=repr)
            for t in metadata.sorted_tables
        }

    return await store.read(unit)


ACTUAL = {"pings": 10, "sold": 10, "sales": 10, "revenue_cents": 38_000, "payout_cents": 26_600}


async def test_the_classic_questions(settings: Settings) -> None:
    async with open_history(settings) as h:
        await small_history(h)
        await h.settle()
        before = await everything(h.store)

        unchanged = await replay(h)
        assert {k: unchanged["actual"][k] for k in ACTUAL} == ACTUAL
        assert unchanged["actual"]["margin_cents"] == 11_400 and unchanged["actual"]["fill_rate"] == "1.0000"
        assert unchanged["actual"]["by_contract"] == {
            "a": {"wins": 4, "sales": 4, "revenue_cents": 20_000},
            "b": {"wins": 6, "sales": 6, "revenue_cents": 18_000},
        }
        assert unchanged["proposed"] == unchanged["actual"]
        assert unchanged["days"]["actual"]["2026-11-02"] == {
            "pings": 5,
            "sold": 5,
            "sales": 5,
            "revenue_cents": 19_000,
            "payout_cents": 13_300,
        }

        # Pause alpha: beta buys all ten at 30.00.
        paused = await replay(h, {"buyers": [{"id": "alpha", "status": "paused"}]})
        assert (paused["proposed"]["revenue_cents"], paused["proposed"]["payout_cents"]) == (30_000, 21_000)
        assert paused["delta"]["revenue_cents"] == -8_000 and paused["delta"]["margin_cents"] == -2_400
        assert paused["delta"]["by_buyer"]["alpha"] == {"wins": -4, "sales": -4, "revenue_cents": -20_000}
        assert paused["delta"]["by_buyer"]["beta"] == {"wins": 4, "sales": 4, "revenue_cents": 12_000}

        # Raise a's cap to 4 a day: a sells four a day, b one: 2 x (4 x 5,000 + 3,000).
        raised = await replay(h, {"contracts": [{"id": "a", "caps": {"daily": 4}}]})
        assert raised["proposed"]["revenue_cents"] == 46_000 and raised["delta"]["revenue_cents"] == 8_000
        assert raised["proposed"]["by_contract"]["a"] == {"wins": 8, "sales": 8, "revenue_cents": 40_000}

        # Add gamma (credit 100.00, no deposit) with contract c at 60.00, one a day: it buys the first
        # ping of day one; on day two its 40.00 left is short of 60.00, so the day is as it was.
        added = await replay(
            h,
            {
                "buyers": [{"id": "gamma", "name": "Gamma", "credit_limit_cents": 10_000}],
                "contracts": [
                    {
                        "id": "c",
                        "name": "c",
                        "buyer": "gamma",
                        "offer": "med",
                        "price_cents": 6000,
                        "caps": {"daily": 1},
                    }
                ],
            },
        )
        assert added["proposed"]["by_contract"]["c"] == {"wins": 1, "sales": 1, "revenue_cents": 6_000}
        assert added["proposed"]["revenue_cents"] == 6_000 + 2 * 5_000 + 2 * 3_000 + 19_000 == 41_000
        assert added["delta"]["revenue_cents"] == 3_000 and added["delta"]["sales"] == 0

        # Multisell to two: every lead also goes to b (its real accept rate is 100 %): 14 sales.
        shared = await replay(h, {"offers": [{"id": "med", "distribution": {"rule": "multisell", "max_winners": 2}}]})
        assert (shared["proposed"]["sales"], shared["proposed"]["revenue_cents"]) == (14, 50_000)
        assert shared["proposed"]["sold"] == 10 and shared["delta"]["payout_cents"] == 35_000 - 26_600

        assert await everything(h.store) == before  # nothing live changed
