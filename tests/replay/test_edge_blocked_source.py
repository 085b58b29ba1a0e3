"""Edge: a setup that blocks a partner source on the campaign (`sources.block`, docs/protocol.md,
Traffic controls). Live, such a ping is refused with 403 `source_blocked` before any auction, so the
proposed figures should count those pings as pings with no sale, as the replay does for a campaign
the setup pauses (docs/replay.md). Both stores.

Exclusive offer; `a` at 50.00. Four pings, sources s1, s2, s1, s2, all sold live (200.00). Blocking
s2 leaves two sales, 100.00, figured by hand."""

from __future__ import annotations

import hashlib
from datetime import date

from pingpost.config import Settings
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.api import setup_data as sd
from tests.replay.history import DELIVER, HOUR_MS, open_history
from tests.support.money import at


async def test_a_blocked_source_sells_nothing(settings: Settings) -> None:
    async with open_history(settings) as h:
        await sd.base_setup(h.api, rule="exclusive")
        h.key = await sd.campaign(h.api)
        await sd.buyer(h.api, "alpha", deposit=10**6)
        await sd.contract(h.api, "a", "alpha", 5000, delivery={"url": DELIVER}, dedup_days=0)
        h.clock.set(at("2026-11-02T10:00:00"))
        for n, source in enumerate(("s1", "s2", "s1", "s2")):
            lead, phone = {"state": "FL", "zip": "33109", "age": 70 + n}, f"30555{n:05d}"
            consumer = {"phone_sha256": hashlib.sha256(phone.encode()).hexdigest()}
            answer = await sd.ping(h.api, h.key, lead, consumer=consumer, source=source)
            h.clock.advance(1500)
            post = {
                "ping_id": answer["ping_id"],
                "source": source,
                "lead": {**lead, "first_name": "Ann", "phone": phone},
            }
            await h.api.ok("POST", "/v1/post", token=h.key, json=post)
            h.clock.advance(HOUR_MS)
        # live, the block refuses the ping before any auction
        await h.api.ok("PATCH", "/v1/admin/campaigns/acme-med", json={"sources": {"block": ["s2"]}})
        refused = await h.api.ok("POST", "/v1/ping", 403, token=h.key, json={"lead": sd.LEAD, "source": "s2"})
        assert refused["error"]["code"] == "source_blocked"
        await h.api.ok("PATCH", "/v1/admin/campaigns/acme-med", json={"sources": {"block": []}})

        setup = {"campaigns": [{"id": "acme-med", "sources": {"block": ["s2"]}}]}
        result = await ReplayService(h.store).run(ReplayRequest(date(2026, 11, 2), date(2026, 11, 2), setup=setup))
        assert (result["actual"]["sales"], result["actual"]["revenue_cents"]) == (4, 20_000)
        assert (result["proposed"]["sales"], result["proposed"]["revenue_cents"]) == (2, 10_000)
