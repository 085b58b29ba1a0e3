"""What-if replay: the configuration as it stood (rebuilt from the audit log) with a proposed setup over
each version, the stored pings of a range run through the auction's own rules in simulated time,
actual against proposed (docs/replay.md). Read-only: the only rows it writes are its own job's in `replay_jobs`
and the audit entry of a job's start."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import orjson
import structlog

from pingpost import actors, errors
from pingpost.db import audit_repo
from pingpost.db import replay_repo as repo
from pingpost.db.store import Store, Tx
from pingpost.domain.replay import Replayer
from pingpost.domain.replay_figures import delta
from pingpost.ids import new_id, now_ms
from pingpost.replay import config, history, loader
from pingpost.timefmt import rfc3339

log = structlog.get_logger("pingpost.replay")

MAX_DAYS = 366
CHUNK = 500  # pings replayed between yields to the event loop (a served process keeps answering)
STALE_MS = 60_000  # a running job whose process has not written progress for this long has died

Progress = Callable[[int, int], None]
Beat = Callable[[int, int], Awaitable[None]]


@dataclass(frozen=True)
class ReplayRequest:
    """A replay as asked: UTC days `from`..`to` (both included), one offer or all, a proposed setup."""

    from_day: date
    to_day: date
    offer: str | None = None
    setup: dict[str, Any] | None = None

    @classmethod
    def parse(cls, from_day: Any, to_day: Any, offer: Any = None, setup: Any = None) -> ReplayRequest:
        days = []
        for name, value in (("from", from_day), ("to", to_day)):
            try:
                days.append(date.fromisoformat(str(value)))
            except ValueError:
                raise errors.ValidationFailed.one(name, "a date YYYY-MM-DD") from None
        if days[1] < days[0]:
            raise errors.ValidationFailed.one("to", "on or after from")
        if (days[1] - days[0]).days >= MAX_DAYS:
            raise errors.ValidationFailed.one("to", f"at most {MAX_DAYS} days after from")
        if setup is not None and not isinstance(setup, dict):
            raise errors.ValidationFailed.one("setup", "a setup is a mapping of resource lists")
        return cls(days[0], days[1], str(offer) if offer is not None else None, setup)

    @property
    def scope(self) -> loader.Range:
        start = int(datetime(self.from_day.year, self.from_day.month, self.from_day.day, tzinfo=UTC).timestamp() * 1000)
        end = int(datetime(self.to_day.year, self.to_day.month, self.to_day.day, tzinfo=UTC).timestamp() * 1000)
        return loader.Range(start, end + loader.DAY_MS, self.offer)

    def document(self) -> dict[str, Any]:
        """The request as a job row keeps it (secrets in the setup redacted)."""
        return {
            "from": self.from_day.isoformat(),
            "to": self.to_day.isoformat(),
            "offer": self.offer,
            "setup": config.redacted(self.setup),
        }


class _Collections:
    """The process's replays running, and the thresholds to restore when the last one ends."""

    replays = 0
    saved: tuple[int, int, int] = gc.get_threshold()


REPLAY_GC_THRESHOLD = (50_000, 20, 100)


@contextmanager
def fewer_collections() -> Iterator[None]:
    """A replay makes millions of short-lived objects beside a large state that lives as long as it
    does; under the default thresholds the cyclic collector ran so often that it cost a third of the
    replay's CPU (docs/performance.md). While any replay runs in the process collections are rarer,
    never off; the first replay to start saves the thresholds and the last to end restores them."""
    if _Collections.replays == 0:
        _Collections.saved = gc.get_threshold()
        gc.set_threshold(*REPLAY_GC_THRESHOLD)
    _Collections.replays += 1
    try:
        yield
    finally:
        _Collections.replays -= 1
        if _Collections.replays == 0:
            gc.set_threshold(*_Collections.saved)


@dataclass
class Prepared:
    """A validated replay, ready to run: its engine and the pings to feed it."""

    request: ReplayRequest
    engine: Replayer
    total: int
    with_waterfall: bool
    changes: tuple[int, ...] = ()  # the instants the configuration changed in the range


class ReplayService:
    def __init__(self, store: Store, *, static_fallback: bool = True) -> None:
        self.store = store
        self.static_fallback = static_fallback
        self._tasks: set[asyncio.Task[None]] = set()

    async def prepare(self, request: ReplayRequest, *, keep_winners: bool = False) -> Prepared:
        """Validate the setup against the live configuration (422 naming the field), rebuild the
        configuration as it stood through the range from the audit log and lay the setup over each
        version, and read the state at the range's start. Nothing is written."""
        live = await self.store.read(repo.config_bodies)
        merged, extra_deposits = config.overlay(live, request.setup)
        if request.offer is not None and request.offer not in merged["offer"]:
            raise errors.ValidationFailed.one("offer", f"unknown offer '{request.offer}'")
        scope = request.scope
        found = await self.store.read(lambda tx: _changes(tx, since=scope.start))
        stood = [v for v in history.versions(live, found, start=scope.start) if v[0] < scope.end]
        versions = [
            (at, config.build_snapshot(bodies), config.credit_limits(bodies))
            for at, bodies in history.proposed(stood, live, request.setup)
        ]
        _, snap, credit = versions[0]
        max_dedup = max((c.dedup_days for _, s, _ in versions for c in s.contracts.values()), default=0)
        start = await loader.start_state(self.store, scope, snap, credit, max_dedup)
        for buyer, amount in extra_deposits.items():
            start.balances[buyer] = start.balances.get(buyer, 0) + amount
        engine = Replayer(
            snap,
            start,
            await loader.acceptance(self.store, scope),
            static_fallback=self.static_fallback,
            keep_winners=keep_winners,
            versions=versions[1:],
        )
        total = await loader.count(self.store, scope)
        with_waterfall = any(c.rtb for _, s, _ in versions for c in s.contracts.values())
        return Prepared(request, engine, total, with_waterfall, tuple(at for at, _, _ in versions[1:]))

    async def execute(
        self, prepared: Prepared, progress: Progress | None = None, beat: Beat | None = None
    ) -> dict[str, Any]:
        """Feed every ping of the range to the engine, in order; answer the comparison. `progress` is told
        after each batch; `beat` (a background job's heartbeat) is awaited after each batch."""
        engine, done = prepared.engine, 0
        with fewer_collections():
            async for batch in loader.batches(
                self.store, prepared.request.scope, with_waterfall=prepared.with_waterfall
            ):
                for index in range(0, len(batch), CHUNK):
                    for ping in batch[index : index + CHUNK]:
                        engine.step(ping)
                    await asyncio.sleep(0)
                done += len(batch)
                total = max(done, prepared.total)
                if progress is not None:
                    progress(done, total)
                if beat is not None:
                    await beat(done, total)
            tallies = engine.finish()
        actual, proposed = tallies["actual"].summary(), tallies["proposed"].summary()
        return {
            "done": done,
            "total": max(done, prepared.total),
            "actual": actual,
            "proposed": proposed,
            "delta": delta(actual, proposed),
            "days": {"actual": tallies["actual"].series(), "proposed": tallies["proposed"].series()},
            # the configuration was replayed as it stood: each change in the range, oldest first
            "configuration_changes": [rfc3339(at) for at in prepared.changes],
        }

    async def run(self, request: ReplayRequest, progress: Progress | None = None) -> dict[str, Any]:
        return await self.execute(await self.prepare(request), progress)

    # --- background jobs (POST /v1/admin/replays) ---------------------------------------------

    async def start(self, request: ReplayRequest) -> dict[str, Any]:
        """Validate now (4xx before any job exists), then run in the background: 202 with the job."""
        prepared = await self.prepare(request)
        job_id = new_id("rpl")
        actor = actors.current()

        async def unit(tx: Tx) -> None:
            await repo.insert_job(tx, job_id=job_id, request=request.document(), now=now_ms())
            # the request as the job keeps it (its setup's secrets redacted)
            await audit_repo.record_audit(
                tx,
                actor=actor.as_dict(),
                action="create",
                object_type="replay",
                object_id=job_id,
                before=None,
                after={"id": job_id, **request.document()},
                now=now_ms(),
            )

        await self.store.write(unit)
        task = asyncio.create_task(self._background(job_id, prepared))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return {"id": job_id, "status": "running"}

    async def _background(self, job_id: str, prepared: Prepared) -> None:
        async def beat(done: int, total: int) -> None:
            await self.store.write(
                lambda tx: repo.job_progress(tx, job_id=job_id, done=done, total=total, now=now_ms())
            )

        try:
            await beat(0, prepared.total)
            result = await self.execute(prepared, beat=beat)
            await self.store.write(
                lambda tx: repo.finish_job(tx, job_id=job_id, status="done", now=now_ms(), result=result)
            )
        except Exception as exc:
            log.exception("replay_failed", job_id=job_id)
            message = type(exc).__name__
            await self.store.write(
                lambda tx: repo.finish_job(tx, job_id=job_id, status="failed", now=now_ms(), error=message)
            )

    async def wait(self) -> None:
        """Wait for this process's running jobs (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def job(self, job_id: str) -> dict[str, Any]:
        async def unit(tx: Tx) -> Any:
            await repo.fail_stale_jobs(tx, before=now_ms() - STALE_MS)
            return await repo.get_job(tx, job_id)

        row = await self.store.write(unit)
        if row is None:
            raise errors.NotFound("replay", job_id)
        return job_view(row, full=True)

    async def jobs(self, *, limit: int = 50) -> list[dict[str, Any]]:
        rows = await self.store.read(lambda tx: repo.list_jobs(tx, limit=limit))
        return [job_view(r, full=False) for r in rows]


async def _changes(tx: Tx, *, since: int) -> list[history.Change]:
    return history.changes(await repo.config_changes(tx, since=since), await repo.auto_pauses(tx, since=since))


def job_view(row: Any, *, full: bool) -> dict[str, Any]:
    request = orjson.loads(row["request"])
    view: dict[str, Any] = {
        "id": row["id"],
        "status": row["status"],
        "from": request["from"],
        "to": request["to"],
        "offer": request.get("offer"),
        "done": int(row["done"]),
        "total": int(row["total"]),
        "created_at": rfc3339(int(row["created_at"])),
        "error": row["error"],
    }
    if full:
        result = orjson.loads(row["result"]) if row["result"] else {}
        view["setup"] = request.get("setup")
        for name in ("actual", "proposed", "delta", "days"):
            view[name] = result.get(name)
        view["configuration_changes"] = result.get("configuration_changes", [])
    return view
