"""A replay runs the configuration as it stood (docs/replay.md, The configuration): over a history in
which the configuration changed mid-range through the admin API, replaying the unchanged configuration
reproduces every real winner, and a proposed setup is laid over every version. On both stores."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date
from typing import Any

from pingpost.config import Settings
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.api import setup_data as sd
from tests.replay.history import DELIVER, HOUR_MS, History, open_history, rich_market
from tests.support.money import at

Step = Callable[[History], Awaitable[Any]]


def patch(path: str, **changes: Any) -> Step:
    async def step(h: History) -> Any:
        return await h.api.ok("PATCH", f"/v1/admin/{path}", json=changes)

    return step


async def late_buyer(h: History) -> None:
    await sd.buyer(h.api, "late", deposit=10**7)
    await sd.contract(h.api, "late", "late", 5200, delivery={"url": DELIVER})


# (day, ping index) -> the admin write made just before that ping
CHANGES: dict[tuple[int, int], Step] = {
    (0, 4): patch("buyers/fl", status="paused"),
    (0, 8): patch("contracts/cap", caps={"daily": 4}),  # a cap raised
    (1, 3): patch("buyers/fl", status="active"),
    (1, 6): late_buyer,  # a buyer and its contract added
    (1, 10): patch("contracts/r2", price_cents=3500),  # the static fallback price of an RTB contract
    (2, 5): patch("contracts/fl", price_cents=5900),  # a price changed
}


async def changing_traffic(h: History, *, days: int = 3, per_day: int = 14) -> dict[str, tuple[int, int]]:
    """`rich_traffic`'s pings, with the admin writes of CHANGES between them; answers each ping's
    (day, index)."""
    states = ("FL", "TX", "FL", "GA", "FL", "NY")
    serial, where = 0, {}
    for day in range(days):
        h.clock.set(at("2026-11-02T06:00:00") + day * 24 * HOUR_MS)
        for index in range(per_day):
            change = CHANGES.get((day, index))
            if change is not None:
                await change(h)
                h.clock.advance(60_000)
            serial += 1
            lead = {"state": states[serial % len(states)], "zip": "33109", "age": 64 + (serial * 7) % 30}
            answer = await h.ping_and_post(lead, f"30555{serial % 9:05d}", post=serial % 4 != 0)
            where[answer["ping_id"]] = (day, index)
            h.clock.advance(50 * 60_000)
    return where


async def test_a_changing_configuration_is_replayed_as_it_stood(settings: Settings) -> None:
    async with open_history(settings) as h:
        await rich_market(h)
        # an auth block on an RTB contract: the audit log keeps it redacted
        rtb = {"url": "http://buyer.test/r2", "timeout_ms": 500, "fallback": "on_failure"}
        await patch("contracts/r2", rtb={**rtb, "auth": {"type": "header", "name": "X-Key", "value": "k3y"}})(h)
        where = await changing_traffic(h)
        real = await h.real_winners()
        service = ReplayService(h.store)
        prepared = await service.prepare(ReplayRequest(date(2026, 11, 1), date(2026, 11, 30)), keep_winners=True)
        result = await service.execute(prepared)
        replayed = prepared.engine.winners
        assert replayed is not None

        # the changes decided real auctions: fl won nothing while paused, late only once it existed,
        # cap sold more than 3 a day once its cap was raised
        def wins(contract: str) -> list[tuple[int, int]]:
            return sorted(where[p] for p, winners in real.items() if contract in winners)

        assert wins("fl") and not [w for w in wins("fl") if (0, 4) <= w < (1, 3)]
        assert wins("late") and min(wins("late")) >= (1, 6)
        assert max(sum(1 for d, _ in wins("cap") if d == day) for day in range(3)) > 3
        assert await h.outcomes() >= {"cap_reached", "insufficient_balance", "static_fallback", "bid_error"}

        assert result["total"] == len(real) == 42
        mismatched = {p: (real[p], replayed.get(p)) for p in real if sorted(real[p]) != sorted(replayed.get(p, []))}
        assert mismatched == {}
        assert result["proposed"] == result["actual"]
        changes = result["configuration_changes"]  # the mid-range admin writes, oldest first, as RFC 3339
        assert len(changes) >= 5 and changes == sorted(changes) and all(c.startswith("2026-11-0") for c in changes)


async def test_a_setup_is_laid_over_every_version(settings: Settings) -> None:
    """An exclusive offer: `a` (alpha, 50.00, daily cap 2) and `b` (beta, 30.00), five pings a day, all
    posted and accepted. Before day 2 the cap of `a` is raised to 3, and buyer gamma is added with
    contract `c` at 20.00 (never first). Real: day 1 `a` 2 + `b` 3 = 19,000; day 2 `a` 3 + `b` 2 =
    21,000; 40,000 in all."""
    async with open_history(settings) as h:
        await sd.base_setup(h.api, rule="exclusive")
        h.key = await sd.campaign(h.api)
        await sd.buyer(h.api, "alpha", deposit=10**6)
        await sd.buyer(h.api, "beta", deposit=10**6)
        await sd.contract(h.api, "a", "alpha", 5000, delivery={"url": DELIVER}, caps={"daily": 2})
        await sd.contract(h.api, "b", "beta", 3000, delivery={"url": DELIVER})
        serial = 0
        for day in ("2026-11-02", "2026-11-03"):
            h.clock.set(at(f"{day}T10:00:00"))
            if day == "2026-11-03":
                await patch("contracts/a", caps={"daily": 3})(h)
                await sd.buyer(h.api, "gamma", deposit=10**6)
                await sd.contract(h.api, "c", "gamma", 2000, delivery={"url": DELIVER})
                h.clock.advance(60_000)
            for _ in range(5):
                serial += 1
                await h.ping_and_post({"state": "FL", "zip": "33109", "age": 70}, f"30555{serial:05d}")
                h.clock.advance(HOUR_MS)

        async def replay(setup: dict[str, Any] | None = None) -> dict[str, Any]:
            return await ReplayService(h.store).run(ReplayRequest(date(2026, 11, 2), date(2026, 11, 3), setup=setup))

        unchanged = await replay()
        assert unchanged["actual"]["revenue_cents"] == 40_000
        # today's cap of 3 on day 1 would have sold 3 x 5,000 + 2 x 3,000 = 21,000 that day
        assert unchanged["proposed"] == unchanged["actual"]

        # b at 40.00 in every version: day 1 2 x 5,000 + 3 x 4,000 = 22,000 (cap 2 as it stood),
        # day 2 3 x 5,000 + 2 x 4,000 = 23,000
        dearer = await replay({"contracts": [{"id": "b", "price_cents": 4000}]})
        assert {d: v["revenue_cents"] for d, v in dearer["days"]["proposed"].items()} == {
            "2026-11-02": 22_000,
            "2026-11-03": 23_000,
        }

        # c at 60.00: it exists from day 2 only, where it buys all five (30,000); day 1 as it was (19,000)
        c_first = await replay({"contracts": [{"id": "c", "price_cents": 6000}]})
        assert {d: v["revenue_cents"] for d, v in c_first["days"]["proposed"].items()} == {
            "2026-11-02": 19_000,
            "2026-11-03": 30_000,
        }
        assert c_first["proposed"]["by_contract"]["c"] == {"wins": 5, "sales": 5, "revenue_cents": 30_000}
        assert (c_first["proposed"]["revenue_cents"], c_first["proposed"]["payout_cents"]) == (49_000, 34_300)

        # a contract the setup adds for gamma bids only once gamma exists (day 2), one for beta throughout
        new = {"name": "New", "offer": "med"}
        g = {"id": "g", "buyer": "gamma", "price_cents": 7000, **new}
        n = {"id": "n", "buyer": "beta", "price_cents": 4500, "caps": {"daily": 1}, **new}
        added = await replay({"contracts": [g, n]})
        # day 1: n 4,500 + a 2 x 5,000 + b 2 x 3,000 = 20,500; day 2: g 5 x 7,000 = 35,000
        assert {d: v["revenue_cents"] for d, v in added["days"]["proposed"].items()} == {
            "2026-11-02": 20_500,
            "2026-11-03": 35_000,
        }


async def test_an_auto_pause_and_its_resume_are_replayed(settings: Settings) -> None:
    """An auto-pause writes an event, not an audit entry: the replay takes it from the event. RTB
    contract `r` (60.00) fails for ages 71 and 72 and is paused after two failures in a row; `b`
    (30.00) buys meanwhile; an operator resumes `r`, which buys again."""

    async def bids(sent: Any) -> tuple[int, Any]:
        return (500, {"error": "down"}) if sent.body["lead"]["age"] in (71, 72) else (200, {"bid_cents": 6000})

    async with open_history(settings) as h:
        await sd.base_setup(h.api, rule="exclusive")
        h.key = await sd.campaign(h.api)
        await sd.buyer(h.api, "rtb", deposit=10**6)
        await sd.buyer(h.api, "beta", deposit=10**6)
        rtb = {"url": "http://buyer.test/r", "timeout_ms": 500, "fallback": "never"}
        await sd.contract(
            h.api, "r", "rtb", None, rtb=rtb, delivery={"url": DELIVER}, auto_pause={"max_consecutive_failures": 2}
        )
        await sd.contract(h.api, "b", "beta", 3000, delivery={"url": DELIVER})
        h.client.handlers["http://buyer.test/r"] = bids
        h.clock.set(at("2026-11-02T10:00:00"))
        for serial, age in enumerate((70, 70, 71, 72, 70, 70, 0, 70, 70), 1):
            if age == 0:
                await patch("contracts/r", status="active")(h)
            else:
                await h.ping_and_post({"state": "FL", "zip": "33109", "age": age}, f"30555{serial:05d}")
            h.clock.advance(HOUR_MS)
        real = await h.real_winners()
        assert [w for _, w in sorted(real.items())] == [["r"], ["r"], ["b"], ["b"], ["b"], ["b"], ["r"], ["r"]]

        service = ReplayService(h.store)
        prepared = await service.prepare(ReplayRequest(date(2026, 11, 2), date(2026, 11, 2)), keep_winners=True)
        result = await service.execute(prepared)
        assert prepared.engine.winners == real
        assert result["proposed"] == result["actual"]
