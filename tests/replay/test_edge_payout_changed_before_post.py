"""Edge: the campaign's payout changed through the admin API between a ping and its post. Live, the
partner is owed the payout its bid was answered with (the bid's `payout_cents`, fixed at the
decision; the sale records it). The unchanged replay must figure the same payout (docs/replay.md:
proposed equals actual, also when the configuration changed mid-range). Both stores.

Exclusive offer, campaign revshare 70 %; `a` at 50.00. Ping 1 at 10:00:00 (payout 35.00); at
10:00:10 the operator sets revshare 50 %; ping 2 at 10:00:20; ping 1 is posted at 10:00:30 and sold
at 35.00 payout; ping 2 is posted after and sold at 25.00."""

from __future__ import annotations

import hashlib
from datetime import date

from pingpost.config import Settings
from pingpost.replay.service import ReplayRequest, ReplayService
from tests.api import setup_data as sd
from tests.replay.history import DELIVER, open_history
from tests.support.money import at


async def test_payout_changed_between_ping_and_post(settings: Settings) -> None:
    async with open_history(settings) as h:
        await sd.base_setup(h.api, rule="exclusive")
        h.key = await sd.campaign(h.api)
        await sd.buyer(h.api, "alpha", deposit=10**6)
        await sd.contract(h.api, "a", "alpha", 5000, delivery={"url": DELIVER}, dedup_days=0)
        h.clock.set(at("2026-11-02T10:00:00"))
        leads = [{"state": "FL", "zip": "33109", "age": 70 + n} for n in range(2)]
        phones = ["3055500001", "3055500002"]
        consumer = [{"phone_sha256": hashlib.sha256(p.encode()).hexdigest()} for p in phones]
        first = await sd.ping(h.api, h.key, leads[0], consumer=consumer[0])
        h.clock.advance(10_000)
        await h.api.ok("PATCH", "/v1/admin/campaigns/acme-med", json={"payout": {"type": "revshare", "percent": 50}})
        h.clock.advance(10_000)
        second = await sd.ping(h.api, h.key, leads[1], consumer=consumer[1])
        assert [first["bids"][0]["payout_cents"], second["bids"][0]["payout_cents"]] == [3500, 2500]
        for answer, lead, phone in zip((first, second), leads, phones, strict=True):
            h.clock.advance(10_000)
            await h.api.ok(
                "POST",
                "/v1/post",
                token=h.key,
                json={"ping_id": answer["ping_id"], "lead": {**lead, "first_name": "Ann", "phone": phone}},
            )

        result = await ReplayService(h.store).run(ReplayRequest(date(2026, 11, 2), date(2026, 11, 2)))
        assert result["actual"]["payout_cents"] == 3500 + 2500
        assert result["proposed"]["payout_cents"] == result["actual"]["payout_cents"]
        assert result["proposed"] == result["actual"]
