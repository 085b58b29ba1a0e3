"""Per-contract report counters (pings evaluated, bids, wins), aggregated in memory and flushed.

Incrementing up to 30 counter rows inside every ping's write transaction would double the
database work of a ping; instead each process sums them in memory and upserts them about once a
second (and at shutdown). A crash can lose at most that second of bid/win counts; sales, revenue
and payouts in reports come from the sales table and are always exact.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from functools import lru_cache
from typing import Any

from pingpost.db import reports_repo
from pingpost.db.store import Store, Tx

Key = tuple[str, str, str, str, str, str]  # day, offer, campaign, partner, contract ('' = ping row), buyer
SourceKey = tuple[str, str, str, str, str]  # day, offer, campaign, partner, source ('' = none)


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
        self._pending: dict[Key, list[int]] = {}  # pings, bids, wins, duplicate pings
        self._sources: dict[SourceKey, list[int]] = {}  # the same per source (docs/protocol.md)
        self._task: asyncio.Task[None] | None = None
        # One flush at a time: a report's flush must not return while the timer's flush is still
        # writing what it took (the report would read before those counts are committed).
        self._flushing = asyncio.Lock()

    def add_ping(  # noqa: PLR0913 - the dimensions of one ping's counters
        self,
        *,
        at_ms: int,
        offer_id: str,
        campaign_id: str,
        partner_id: str,
        contracts: Iterable[tuple[str, str, bool, bool]],
        source: str | None = None,
        duplicate: bool = False,
    ) -> None:
        """Count one ping and, per evaluated contract (id, buyer, bid?, won?), its bid and win; a
        duplicate ping (no auction) counts as a ping and a duplicate ping."""
        day = utc_day(at_ms)
        dup = int(duplicate)
        self._bump((day, offer_id, campaign_id, partner_id, "", ""), 1, 0, 0, dup)
        bids = wins = 0
        for contract_id, buyer_id, bid, won in contracts:
            self._bump((day, offer_id, campaign_id, partner_id, contract_id, buyer_id), 1, int(bid), int(won))
            bids += int(bid)
            wins += int(won)
        _add(self._sources, (day, offer_id, campaign_id, partner_id, source or ""), (1, bids, wins, dup))

    def _bump(self, key: Key, pings: int, bids: int, wins: int, duplicates: int = 0) -> None:
        _add(self._pending, key, (pings, bids, wins, duplicates))

    async def flush(self) -> None:
        async with self._flushing:
            await self._flush()

    async def _flush(self) -> None:
        if not self._pending and not self._sources:
            return
        pending, self._pending = self._pending, {}
        sources, self._sources = self._sources, {}

        async def unit(tx: Tx) -> None:
            await reports_repo.add_counters(tx, counter_rows(pending))
            await reports_repo.add_source_counters(
                tx,
                [
                    {
                        "d": k[0],
                        "o": k[1],
                        "c": k[2],
                        "p": k[3],
                        "s": k[4],
                        "pings": v[0],
                        "bids": v[1],
                        "wins": v[2],
                        "dups": v[3],
                    }
                    for k, v in sorted(sources.items())
                ],
            )

        try:
            await self.store.write(unit)
        except BaseException:
            for key, counts in pending.items():  # keep the counts for the next flush
                _add(self._pending, key, counts)
            for source_key, counts in sources.items():
                _add(self._sources, source_key, counts)
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


def _add(into: dict[Any, list[int]], key: Any, counts: Sequence[int]) -> None:
    current = into.get(key)
    if current is None:
        into[key] = list(counts)
    else:
        for i, n in enumerate(counts):
            current[i] += n


def counter_rows(counters: Mapping[Any, Sequence[int]]) -> list[dict[str, Any]]:
    """`add_counters` rows from (day, offer, campaign, partner, contract, buyer) -> (pings, bids, wins,
    duplicate pings)."""
    return [
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
            "dups": v[3],
        }
        for k, v in sorted(counters.items())
    ]
