"""POST /v1/admin/replays runs a background job any process can follow; bad input is a 422 that
creates nothing; a job whose process died reads as failed; nothing live changes (docs/replay.md)."""

from __future__ import annotations

import asyncio
from typing import Any

from pingpost.config import Settings
from pingpost.db.store import Tx
from tests.replay.history import open_history
from tests.replay.test_scenarios import everything, small_history


async def _until_done(h: Any, job_id: str) -> dict[str, Any]:
    for _ in range(200):
        job: dict[str, Any] = await h.api.ok("GET", f"/v1/admin/replays/{job_id}")
        if job["status"] != "running":
            return job
        await asyncio.sleep(0.02)
    raise AssertionError("the replay did not finish")


async def test_replay_job_through_the_api(settings: Settings) -> None:
    async with open_history(settings) as h:
        await small_history(h)
        await h.settle()
        before = await everything(h.store)
        started = await h.api.ok(
            "POST",
            "/v1/admin/replays",
            202,
            json={
                "from": "2026-11-02",
                "to": "2026-11-03",
                "offer": "med",
                "setup": {
                    "buyers": [{"id": "alpha", "status": "paused"}],
                    "contracts": [
                        {"id": "b", "delivery": {"url": "http://x.test", "auth": {"type": "bearer", "token": "s3cret"}}}
                    ],
                },
            },
        )
        assert started["status"] == "running" and started["id"].startswith("rpl_")
        job = await _until_done(h, started["id"])
        assert job["status"] == "done" and job["done"] == job["total"] == 10
        assert job["delta"]["revenue_cents"] == -8_000 and job["proposed"]["by_buyer"]["beta"]["wins"] == 10
        assert set(job["days"]["proposed"]) == {"2026-11-02", "2026-11-03"}
        # configured at the history's first instant, inside the range (one instant, one version)
        assert job["configuration_changes"] == ["2026-11-02T06:00:00.000Z"]
        assert "s3cret" not in str(job)  # the setup is kept with its secrets redacted
        listed = await h.api.ok("GET", "/v1/admin/replays")
        assert [j["id"] for j in listed["items"]] == [started["id"]]
        after = await everything(h.store)
        assert len(after.pop("replay_jobs")) == 1 and before.pop("replay_jobs") == []
        audited = set(after.pop("audit_log")) - set(before.pop("audit_log"))
        assert [(row[5], row[6], row[7]) for row in audited] == [("create", "replay", started["id"])]
        assert "s3cret" not in str(audited)
        assert after == before  # nothing live changed but the job and its audit entry

        for body, field in (
            ({"from": "2026-11-03", "to": "2026-11-02"}, "to"),
            ({"from": "2026-13-01", "to": "2026-11-02"}, "from"),
            ({"from": "2026-11-01", "to": "2026-11-02", "offer": "nope"}, "offer"),
            (
                {"from": "2026-11-01", "to": "2026-11-02", "setup": {"contracts": [{"id": "a", "price_cents": -1}]}},
                None,
            ),
            ({"from": "2026-11-01", "to": "2026-11-02", "setup": {"widgets": []}}, "setup.widgets"),
        ):
            refused = await h.api.request("POST", "/v1/admin/replays", json=body)
            assert refused.status_code == 422, (body, refused.text)
            fields = [e["field"] for e in refused.json()["error"]["details"].get("errors", [])]
            assert field is None or field in fields, (body, fields)
            if field is None:
                assert any(f.startswith("setup.contracts.0.") for f in fields), fields
        assert len((await h.api.ok("GET", "/v1/admin/replays"))["items"]) == 1  # refusals created nothing
        assert (await h.api.request("GET", "/v1/admin/replays/rpl_unknown")).status_code == 404


async def test_a_job_whose_process_died_reads_as_failed(settings: Settings) -> None:
    async with open_history(settings) as h:

        async def orphan(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO replay_jobs (id, status, request, done, total, created_at, updated_at) VALUES "
                '(\'rpl_orphan\', \'running\', \'{"from": "2026-11-01", "to": "2026-11-02"}\', 5, 10, :t, :t)',
                {"t": h.clock.now_ms() - 120_000},
            )

        await h.store.write(orphan)
        job = await h.api.ok("GET", "/v1/admin/replays/rpl_orphan")
        assert (job["status"], job["done"], job["total"]) == ("failed", 5, 10)
        assert job["error"] == "the process running it stopped"
