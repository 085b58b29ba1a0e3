"""Per-contract report counters (pings evaluated, bids, wins), aggregated in memory and flushed.

Incrementing up to 30 counter rows inside every ping's write transaction would double the
database work of a ping; instead each process sums them in memory and upserts them about once a
second (and at shutdown). A crash can lose at most that second of bid/win counts; sales, revenue
and payouts in reports come from the sales table and are always exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import date
from functools import lru_cache

from pingpost.db import reports_repo
from pingpost.db.store import Store, Tx

Key = tuple[str, str, str, str, str, str]  # day, offer, campaign, partner, contract ('' = ping row), buyer


def utc_day(ms: int) -> str:
    """The UTC day of an epoch-ms time, `YYYY-MM-DD`; times before year 1 or after 9999 (a report's
    `from`/`to` may say so) are held to the first or last day there is."""
    return _utc_day(ms // 86_400_000)


_EPOCH_DAY = date(1970, 1, 1).toordinal()


@lru_cache(maxsize=64)
def _utc_day(day_number: int) -> str:
    return date.fromordinal(min(max(_EPOCH_DAY + day_number, 1), date.max.toordinal())).isoformat()


class ReportCounters:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: dict[Key, list[int]] = {}  # pings, bids, wins
        self._task: asyncio.Task[None] | None = None
        # One flush at a time: a report's flush must not return while the timer's flush is still
        # writing what it took (the report would read before those counts are committed).
        self._flushing = asyncio.Lock()

    def add_ping(
        self,
        *,
        at_ms: int,
        offer_id: str,
        campaign_id: str,
        partner_id: str,
        contracts: Iterable[tuple[str, str, bool, bool]],
    ) -> None:
        """Count one ping and, per evaluated contract (id, buyer, bid?, won?), its bid and win."""
        day = utc_day(at_ms)
        self._bump((day, offer_id, campaign_id, partner_id, "", ""), 1, 0, 0)
        for contract_id, buyer_id, bid, won in contracts:
            self._bump((day, offer_id, campaign_id, partner_id, contract_id, buyer_id), 1, int(bid), int(won))

    def _bump(self, key: Key, pings: int, bids: int, wins: int) -> None:
        counts = self._pending.get(key)
        if counts is None:
            self._pending[key] = [pings, bids, wins]
        else:
            counts[0] += pings
            counts[1] += bids
            counts[2] += wins

    async def flush(self) -> None:
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}

        async def unit(tx: Tx) -> None:
            await reports_repo.add_counters(
                tx,
                [
                    {
                        "d": k[0],
                        "o": k[1],
                        "c": k[2],
                        "p": k[3],
                        "ct": k[4],
                        "b": k[5],
                        "pings": v[0],
                        "bids": v[1],
                        "wins": v[2],
                    }
                    for k, v in sorted(pending.items())
                ],
            )

        try:
            await self.store.write(unit)
        except BaseException:
            for key, (pings, bids, wins) in pending.items():  # keep the counts for the next flush
                self._bump(key, pings, bids, wins)
            raise

    def start(self, interval_s: float = 1.0) -> None:
        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                with contextlib.suppress(Exception):  # a failed flush is retried with the next batch
                    await self.flush()

        self._task = asyncio.create_task(loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
