"""Reads what a replay needs, read-only, and shapes it for the pure engine (`domain/replay.py`): the
state as the range starts, the accept rates, and the stored pings in batches (docs/replay.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from pingpost.db import replay_repo as repo
from pingpost.db.store import Store, Tx
from pingpost.domain.eligibility import PeriodKeys, Suppression
from pingpost.domain.model import Snapshot
from pingpost.domain.replay_inputs import Acceptance, FixedHold, Move, RealWin, StartState, StoredPing, stored_bids

BATCH = 5000
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Range:
    """A replay's pings: received in [start, end) (UTC days, both given days included), of one offer
    or all."""

    start: int
    end: int
    offer: str | None = None

    @property
    def first_id(self) -> str:
        return f"png_{self.start:011x}"

    @property
    def pings(self) -> repo.PingScope:
        # an id's instant is the ping's arrival or a moment later: the end bound leaves a minute
        return repo.PingScope(self.first_id, f"png_{self.end + 60_000:011x}", self.start, self.end, self.offer)

    def replays(self, row: Any) -> bool:
        """Whether the replay decides this reservation's ping itself."""
        return (
            row["mode"] == "ping_post"
            and not row["test"]
            and self.start <= row["received_at"] < self.end
            and (self.offer is None or row["offer_id"] == self.offer)
        )


async def start_state(
    store: Store, scope: Range, snap: Snapshot, credit: dict[str, int], max_dedup_days: int
) -> StartState:
    async def unit(tx: Tx) -> StartState:
        state = StartState(credit_limits=credit)
        state.balances = await repo.opening_balances(tx, before=scope.start)
        for row in await repo.buyer_moves(tx, since=scope.start):
            sale = (str(row["ping_id"]), str(row["contract_id"])) if row["ping_id"] is not None else None
            replayed = sale is not None and await _replayed_ping(tx, scope, sale[0])
            state.moves.append(
                Move(
                    int(row["created_at"]),
                    str(row["account"])[len("buyer:") :],
                    int(row["amount_cents"]),
                    sale if replayed else None,
                )
            )
        for row in await repo.recent_purchases(tx, since=scope.start - max_dedup_days * DAY_MS, before=scope.start):
            buyers = state.dedup.setdefault(row["hash_hmac"], {})
            buyers[row["buyer_id"]] = max(int(row["sold_at"]), buyers.get(row["buyer_id"], 0))
        for row in await repo.reservations_around(tx, since=scope.start - repo.MONTH_MS, before=scope.end):
            hold = _fixed_hold(row, scope)
            if hold is not None:
                state.holds.append(hold)
        for offer in snap.offers.values():
            if offer.rule == "round_robin" and (scope.offer is None or scope.offer == offer.id):
                pointer = await _rr_pointer(tx, offer.id, scope, snap)
                if pointer is not None:
                    state.rr[offer.id] = pointer
        return state

    return await store.read(unit)


async def _rr_pointer(tx: Tx, offer_id: str, scope: Range, snap: Snapshot) -> str | None:
    """The round-robin pointer as the offer's last winner before the range left it: that contract's
    rank key with its priority at that decision (a later change of its priority does not move the
    stored pointer)."""
    row = await repo.last_winning_bids(tx, offer_id, before_id=scope.first_id)
    winners = [b for b in orjson.loads(row["bids"]) if b.get("role") == "winner"] if row is not None else []
    if not winners:
        return None
    contract_id = str(winners[-1]["contract_id"])
    changed = await repo.contract_view_after(tx, contract_id, after=int(row["decided_at"]))
    view = orjson.loads(changed["before"]) if changed is not None and changed["before"] else None
    if view is not None and "priority" in view:
        return f"{int(view['priority']):010d}:{contract_id}"  # Contract.rank_key's form
    last = snap.contracts.get(contract_id)
    return last.rank_key if last is not None else None


async def _replayed_ping(tx: Tx, scope: Range, ping_id: str) -> bool:
    row = await repo.ping_scope_row(tx, ping_id)
    return row is not None and scope.replays(row)


def _fixed_hold(row: Any, scope: Range) -> FixedHold | None:
    """A reservation the replay does not decide, with the instant and way it ended; None when it
    neither counts nor holds anything in the range."""
    if scope.replays(row):
        return None
    sold = row["sold_at"] is not None or row["state"] == "sold"
    if sold:
        end = int(row["sold_at"] if row["sold_at"] is not None else row["created_at"])
    elif row["state"] == "released":
        end = int(row["finished_at"] or row["posted_at"] or row["created_at"])
    else:  # expired, or still held or posting
        end = int(row["expires_at"])
    if not sold and end <= scope.start:
        return None
    keys = PeriodKeys(row["day_key"], row["week_key"], row["month_key"]) if row["day_key"] else None
    buyer_keys = (
        PeriodKeys(row["buyer_day_key"], row["buyer_week_key"], row["buyer_month_key"])
        if row["buyer_day_key"]
        else None
    )
    return FixedHold(
        str(row["contract_id"]),
        str(row["buyer_id"]),
        int(row["amount_cents"]),
        keys,
        int(row["created_at"]),
        end,
        sold,
        funds=end > scope.start,
        buyer_keys=buyer_keys,
    )


async def acceptance(store: Store, scope: Range) -> Acceptance:
    """Each contract's accept rate over the range (deliveries accepted ÷ made), in basis points; a
    contract without deliveries gets the rate of all of them (10,000 when there were none)."""
    rows = await store.read(lambda tx: repo.accept_counts(tx, since=scope.start, before=scope.end))
    rates = {str(r["contract_id"]): int(r["accepted"] or 0) * 10_000 // int(r["delivered"]) for r in rows}
    delivered = sum(int(r["delivered"]) for r in rows)
    accepted = sum(int(r["accepted"] or 0) for r in rows)
    return Acceptance(rates, accepted * 10_000 // delivered if delivered else 10_000)


async def count(store: Store, scope: Range) -> int:
    return await store.read(lambda tx: repo.count_pings(tx, scope.pings))


async def batches(store: Store, scope: Range, *, with_waterfall: bool) -> AsyncIterator[list[StoredPing]]:
    """The range's pings in id order (their arrival order), `BATCH` a read, each with the suppression
    lists its consumer is on now (read only when some list exists)."""
    after: str | None = None
    suppression = await store.read(repo.any_suppression_list)
    while True:

        async def unit(tx: Tx, after: str | None = after) -> tuple[list[Any], list[Any], list[Any], list[Any]]:
            rows = await repo.ping_batch(tx, scope.pings, after_id=after, limit=BATCH, with_waterfall=with_waterfall)
            ids = [r["id"] for r in rows]
            if not ids:
                return rows, [], [], []
            deliveries, sales = await repo.batch_deliveries(tx, ids), await repo.batch_sales(tx, ids)
            hashes = {h for r in rows if r["consumer"] != "{}" for h in orjson.loads(r["consumer"]).values()}
            entries = await repo.suppression_entries(tx, sorted(hashes)) if suppression and hashes else []
            return rows, deliveries, sales, entries

        rows, deliveries, sales, entries = await store.read(unit)
        if not rows:
            return
        pings = stored_pings(rows, deliveries, sales, with_waterfall=with_waterfall)
        if entries:
            _suppress(pings, entries)
        yield pings
        if len(rows) < BATCH:
            return
        after = str(rows[-1]["id"])


def _suppress(pings: list[StoredPing], entries: list[Any]) -> None:
    """Each ping's `Suppression`: the lists any of its hashes is on (as `traffic_repo.suppressing_lists`)."""
    on: dict[str, list[tuple[str, str]]] = {}
    for e in entries:
        on.setdefault(e["hash_hmac"], []).append((str(e["id"]), str(e["scope"])))
    for ping in pings:
        lists = [entry for h in ping.hashes for entry in on.get(h, ())]
        if lists:
            ping.suppressed = Suppression(
                lists=frozenset(i for i, _ in lists), global_hit=any(scope == "global" for _, scope in lists)
            )


def stored_pings(rows: list[Any], deliveries: list[Any], sales: list[Any], *, with_waterfall: bool) -> list[StoredPing]:
    """`ping_batch`'s rows (unpacked in its column order) with their deliveries and sales, as the
    engine reads them. Empty bids, consumer hashes and replay documents are not parsed."""
    delivered: dict[tuple[str, str], Any] = {}
    settled: dict[str, int] = {}
    first_delivery: dict[str, int] = {}
    for d in deliveries:  # columns in `batch_deliveries`' order
        ping_id, contract_id, _, created, finished = d
        delivered[ping_id, contract_id] = d
        earliest = first_delivery.get(ping_id)
        if earliest is None or created < earliest:
            first_delivery[ping_id] = created
        if finished is not None and finished > settled.get(ping_id, 0):
            settled[ping_id] = finished
    sold: dict[tuple[str, str], Any] = {(s[0], s[1]): s for s in sales}  # `batch_sales`' order
    pings = []
    loads = orjson.loads
    for (
        ping_id,
        offer_id,
        campaign_id,
        channel,
        received,
        decided,
        lead,
        consumer,
        bids,
        replay,
        source,
        waterfall,
        posted,
        dup_key,
    ) in rows:
        document = loads(replay) if replay else None
        if posted is None:  # seeded histories have deliveries but no post row
            posted = first_delivery.get(ping_id)
        real = _real_wins(ping_id, loads(bids), posted, sold, delivered) if bids != "[]" else ()
        pings.append(
            StoredPing(
                ping_id,
                offer_id,
                campaign_id,
                channel,
                received,
                decided,
                loads(lead),
                tuple(loads(consumer).values()) if consumer != "{}" else (),
                stored_bids(document) if document is not None or waterfall is None else None,
                int((document or {}).get("min_payout_cents") or 0),
                posted,
                settled.get(ping_id),
                real,
                waterfall if with_waterfall else None,
                source,
                dup_key=dup_key,
            )
        )
    return pings


def _real_wins(
    ping_id: str,
    bids: list[dict[str, Any]],
    posted: int | None,
    sold: dict[tuple[str, str], Any],
    delivered: dict[tuple[str, str], Any],
) -> tuple[RealWin, ...]:
    """The ping's real winners and what became of each."""
    real = []
    for bid in bids:
        if bid.get("role") != "winner":
            continue
        key = (ping_id, bid["contract_id"])
        sale, delivery = sold.get(key), delivered.get(key)
        at: int | None
        if sale is not None:
            fate, at = "accepted", int(sale["created_at"])
        elif delivery is not None:
            fate, at = "rejected", delivery["finished_at"] or delivery["created_at"]
        else:
            fate, at = ("released" if posted is not None else "open"), posted
        real.append(
            RealWin(
                bid["contract_id"],
                bid["buyer_id"],
                int(bid["price_cents"]),
                fate,
                int(at) if at is not None else None,
                (int(sale["price_cents"]), int(sale["payout_cents"])) if sale is not None else None,
            )
        )
    return tuple(real)
