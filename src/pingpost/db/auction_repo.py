"""SQL of the ping path: the state read and the reservation write (the configuration snapshot is
read by `snapshot_repo.py`). Over 450 lines since `ruff format` puts one argument a line: every
statement that takes or gives back a cap slot or a hold stays in this one file, with its lock order.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

import orjson

from pingpost.db import leases_repo, traffic_repo
from pingpost.db.snapshot_repo import config_version
from pingpost.db.store import DB_CLOCK_SQL, Tx
from pingpost.domain.auction import AuctionState, Funds
from pingpost.domain.eligibility import PeriodKeys, Usage


@dataclass(frozen=True, slots=True)
class StateQuery:
    """What one ping's state read covers: its open contracts, their buyers, the consumer's keyed hashes
    (dedup) and, when the campaign is rate limited, the campaign whose rate window to read."""

    contract_ids: Sequence[str]
    buyer_ids: Sequence[str]
    hashes: Sequence[str]
    rate_campaign: str | None = None
    suppression: bool = False  # read the suppression lists the hashes are on (some list exists)


async def read_state(tx: Tx, query: StateQuery, *, now: int, calls: bool = False) -> AuctionState:
    """Usage, funds and dedup for one ping, with expired-but-unreclaimed reservations subtracted, and
    the configuration version (so a stale in-memory snapshot is noticed in the same read)."""
    contract_ids, buyer_ids, hashes = query.contract_ids, query.buyer_ids, query.hashes
    state = AuctionState(config_version=await config_version(tx), now=now)
    if query.rate_campaign is not None:
        state.rate_used = await _rate_used(tx, query.rate_campaign, now)
    if contract_ids:
        await _read_usage(tx, contract_ids, state.usage)
    if buyer_ids:
        await _read_funds(tx, buyer_ids, state.funds)
    if contract_ids or buyer_ids:
        stale = await tx.fetch(
            f"SELECT {_RESERVATION_KEYS} FROM reservations "
            "WHERE state IN ('held', 'posting') AND expires_at <= :now "
            "AND (contract_id IN (:cs) OR buyer_id IN (:bs))",
            {"now": now, "cs": list(contract_ids), "bs": list(buyer_ids)},
        )
        lapsed_calls = (
            await tx.fetch(
                "SELECT contract_id FROM reservations WHERE state = 'sold' AND live_call = 1 AND expires_at <= :now "
                "AND contract_id IN (:cs)",
                {"now": now, "cs": list(contract_ids)},
            )
            if calls
            else []
        )
        for r in lapsed_calls:
            u = state.usage.get(r["contract_id"])
            if u is not None:
                state.usage[r["contract_id"]] = replace(u, live_calls=u.live_calls - 1)
        for r in stale:
            u = state.usage.get(r["contract_id"])
            if u is not None:
                state.usage[r["contract_id"]] = _minus(u, r)
            f = state.funds.get(r["buyer_id"])
            if f is not None:
                f.holds_cents -= int(r["amount_cents"])
                f.spent = _spent_minus(f.spent, f.spend_keys, r)
    if hashes and buyer_ids:
        state.last_sold = await _last_sold(tx, buyer_ids, hashes)
    if query.suppression and hashes:
        state.suppressed = await traffic_repo.suppressing_lists(tx, hashes)
    return state


@dataclass
class BatchState:
    """Rows shared by the fixed-price ping units of one write batch (`Store.write(batch_cache=True)`).

    Exact because the batch holds the write lock and every change these units make to the rows goes
    through `take_cap_slot` / `take_hold`, which update it; any other change drops it (`forget`)."""

    config_version: int | None = None
    usage: dict[str, Usage] = field(default_factory=dict)
    funds: dict[str, Funds] = field(default_factory=dict)
    buyers_read: set[str] = field(default_factory=set)
    reclaimed: set[tuple[str, ...]] = field(default_factory=set)


def _batch(tx: Tx) -> BatchState | None:
    batch: BatchState | None = tx.cache.get("auction")
    return batch


def forget(tx: Tx) -> None:
    """Usage or funds changed other than by a reservation taken here: read them again."""
    tx.cache.pop("auction", None)


async def read_state_for_write(tx: Tx, query: StateQuery, *, now: int) -> AuctionState:
    """The state read inside the deciding write (auctions without RTB contracts, form channels).

    Lapsed reservations are reclaimed first, so usage and funds are read exactly; rows already read by
    an earlier ping of the same batch (and kept current by its reservations) are not read again."""
    contract_ids, buyer_ids = query.contract_ids, query.buyer_ids
    batch = _batch(tx)
    if batch is None:
        batch = tx.cache["auction"] = BatchState()
    key = tuple(contract_ids)
    if key not in batch.reclaimed:
        # Within one batch (a few milliseconds) a reservation lapsing after this is freed by the next one.
        if await reclaim_expired(tx, contract_ids=contract_ids, buyer_ids=buyer_ids, now=now):
            batch = tx.cache["auction"] = BatchState()
        batch.reclaimed.add(key)
    if batch.config_version is None:
        batch.config_version = await config_version(tx)
    missing = [c for c in contract_ids if c not in batch.usage]
    if missing:
        for c in missing:
            batch.usage[c] = Usage()
        await _read_usage(tx, missing, batch.usage)
    missing = [b for b in buyer_ids if b not in batch.buyers_read]
    if missing:
        batch.buyers_read.update(missing)
        await _read_funds(tx, missing, batch.funds)
    state = AuctionState(config_version=batch.config_version, usage=batch.usage, funds=batch.funds, now=now)
    await _read_traffic(tx, query, state)
    return state


# The ids of `read_counters`, sent as JSON documents, as arrays an index scan can use.
_CS = "ARRAY(SELECT json_array_elements_text(:cs::json))"
_BS = "ARRAY(SELECT json_array_elements_text(:bs::json))"


@dataclass(frozen=True, slots=True)
class SharedRead:
    """What `read_counters` read at `now`: the configuration version, usage and funds; never changed
    (a decision works on `state_from`'s copies of the dicts, and replaces a `Funds`, never changes it)."""

    now: int
    config_version: int
    usage: dict[str, Usage]
    funds: dict[str, Funds]


async def read_counters(tx: Tx, contract_ids: Sequence[str], buyer_ids: Sequence[str]) -> SharedRead | None:
    """PostgreSQL, in one statement outside any transaction (`Tx.fetchrow_alone`): the store's clock for
    shared decisions, the configuration version, usage and funds; None when a reservation of these
    contracts or buyers has lapsed (then `read_state_for_write` reclaims it first). One ping's or
    several (docs/performance.md, "Scale-out": round trips are what a ping costs there)."""
    # ids as JSON documents: asyncpg encodes one string far cheaper than a text array
    params: dict[str, Any] = {"cs": orjson.dumps(contract_ids).decode(), "bs": orjson.dumps(buyer_ids).decode()}
    if tx.pending_now():
        clock = DB_CLOCK_SQL
    else:
        clock, params["now"] = ":now::bigint", await tx.now_ms()
    row = await tx.fetchrow_alone(
        f"WITH c AS (SELECT {clock} AS now) SELECT c.now, "
        "(SELECT version FROM config_version WHERE id = 1) AS version, "
        "EXISTS (SELECT 1 FROM reservations WHERE state IN ('held', 'posting') AND expires_at <= c.now "
        f"AND (contract_id = ANY({_CS}) OR buyer_id = ANY({_BS}))) AS lapsed, "
        f"ARRAY(SELECT ROW({_USAGE_COLUMNS}) FROM contract_usage WHERE contract_id = ANY({_CS})) AS usage, "
        f"ARRAY(SELECT ROW({_FUNDS_COLUMNS}) FROM buyer_funds WHERE buyer_id = ANY({_BS})) AS funds FROM c",
        params,
    )
    assert row is not None
    now = int(row["now"])
    tx.adopt_now(now)
    if row["lapsed"]:
        return None
    usage = dict.fromkeys(contract_ids, Usage())
    usage.update((r[0], _usage(r)) for r in row["usage"])
    return SharedRead(now, int(row["version"]), usage, {r[0]: _funds(r) for r in row["funds"]})


async def state_from(tx: Tx, query: StateQuery, read: SharedRead | None) -> AuctionState:
    """One ping's state from `read_counters` (None: something lapsed, so reclaim and read again here):
    copies of its rows, at its clock, with the ping's own rate window, dedup and suppression."""
    if read is None:
        return await read_state_for_write(tx, query, now=await tx.now_ms())
    tx.adopt_now(read.now)
    # Usage is immutable and the decision replaces, never changes, a buyer's Funds: copies of the dicts do
    state = AuctionState(
        config_version=read.config_version, usage=dict(read.usage), funds=dict(read.funds), now=read.now
    )
    await _read_traffic(tx, query, state)
    return state


async def _read_traffic(tx: Tx, query: StateQuery, state: AuctionState) -> None:
    """The rate window, dedup and suppression, where the ping's campaign and configuration need them
    (PostgreSQL: in one statement, outside any transaction while none is open)."""
    sold, suppression = bool(query.hashes and query.buyer_ids), bool(query.suppression and query.hashes)
    if tx.dialect == "postgresql" and (query.rate_campaign is not None or sold or suppression):
        row = await tx.fetchrow_alone(
            _TRAFFIC,
            {
                "c": query.rate_campaign,
                "bs": orjson.dumps(query.buyer_ids if sold else []).decode(),
                "hs": orjson.dumps(query.hashes).decode(),
                "lists": suppression,
            },
        )
        assert row is not None
        window = row["rate"]
        if window is not None and window[0] == state.now // 1000:
            state.rate_used = int(window[1])
        if sold:
            state.last_sold = {r[0]: int(r[1]) for r in row["sold"]}
        if suppression:
            state.suppressed = traffic_repo.suppression_of(row["lists"])
        return
    if query.rate_campaign is not None:
        state.rate_used = await _rate_used(tx, query.rate_campaign, state.now)
    if query.hashes and query.buyer_ids:
        state.last_sold = await _last_sold(tx, query.buyer_ids, query.hashes)
    if query.suppression and query.hashes:
        state.suppressed = await traffic_repo.suppressing_lists(tx, query.hashes)


# `_rate_used`, `_last_sold` and `traffic_repo.suppressing_lists` in one statement (PostgreSQL).
_HS = "ARRAY(SELECT json_array_elements_text(:hs::json))"
_TRAFFIC = (
    "SELECT (SELECT ROW(window_start, pings) FROM rate_windows WHERE campaign_id = :c::text) AS rate, "
    "ARRAY(SELECT ROW(buyer_id, MAX(sold_at)) FROM dedup_records "
    f"WHERE buyer_id = ANY({_BS}) AND hash_hmac = ANY({_HS}) GROUP BY buyer_id) AS sold, "
    "ARRAY(SELECT DISTINCT ROW(l.id, l.scope) FROM suppression_entries e JOIN suppression_lists l "
    f"ON l.id = e.list_id WHERE :lists::integer = 1 AND e.hash_hmac = ANY({_HS})) AS lists"
)


async def _rate_used(tx: Tx, campaign_id: str, now: int) -> int:
    window = await tx.fetchrow(
        "SELECT window_start, pings FROM rate_windows WHERE campaign_id = :c", {"c": campaign_id}
    )
    if window is not None and window["window_start"] == now // 1000:
        return int(window["pings"])
    return 0


# The columns of a contract's usage and a buyer's funds that a decision reads, in `_usage` / `_funds` order.
_USAGE_COLUMNS = (
    "contract_id, day_key, day_used, week_key, week_used, month_key, month_used, live_calls, "
    "day_spent_cents, week_spent_cents, month_spent_cents"
)
_FUNDS_COLUMNS = (
    "buyer_id, balance_cents, credit_limit_cents, holds_cents, "
    "spend_daily_cap_cents, spend_weekly_cap_cents, spend_monthly_cap_cents, "
    "spend_day_key, spend_week_key, spend_month_key, day_spent_cents, week_spent_cents, month_spent_cents"
)


def _usage(r: Any) -> Usage:
    return Usage(r[1], r[2], r[3], r[4], r[5], r[6], r[7], int(r[8]), int(r[9]), int(r[10]))


def _funds(r: Any) -> Funds:
    return Funds(
        int(r[1]), int(r[2]), int(r[3]), (r[4], r[5], r[6]), (r[7], r[8], r[9]), (int(r[10]), int(r[11]), int(r[12]))
    )


async def _read_usage(tx: Tx, contract_ids: Sequence[str], into: dict[str, Usage]) -> None:
    rows = await tx.fetch(
        f"SELECT {_USAGE_COLUMNS} FROM contract_usage WHERE contract_id IN (:cs)", {"cs": list(contract_ids)}
    )
    for r in rows:
        into[r[0]] = _usage(r)


async def _read_funds(tx: Tx, buyer_ids: Sequence[str], into: dict[str, Funds]) -> None:
    for r in await tx.fetch(
        f"SELECT {_FUNDS_COLUMNS} FROM buyer_funds WHERE buyer_id IN (:bs)", {"bs": list(buyer_ids)}
    ):
        into[r[0]] = _funds(r)


async def _last_sold(tx: Tx, buyer_ids: Sequence[str], hashes: Sequence[str]) -> dict[str, int]:
    rows = await tx.fetch(
        "SELECT buyer_id, MAX(sold_at) AS sold_at FROM dedup_records "
        "WHERE buyer_id IN (:bs) AND hash_hmac IN (:hs) GROUP BY buyer_id",
        {"bs": list(buyer_ids), "hs": list(hashes)},
    )
    return {r["buyer_id"]: int(r["sold_at"]) for r in rows}


def _minus(u: Usage, r: Any) -> Usage:
    amount = int(r["amount_cents"])
    return Usage(
        u.day_key,
        u.day_used - (1 if r["day_key"] == u.day_key else 0),
        u.week_key,
        u.week_used - (1 if r["week_key"] == u.week_key else 0),
        u.month_key,
        u.month_used - (1 if r["month_key"] == u.month_key else 0),
        u.live_calls - (1 if r["live_call"] else 0),
        u.day_spent - (amount if r["day_key"] == u.day_key else 0),
        u.week_spent - (amount if r["week_key"] == u.week_key else 0),
        u.month_spent - (amount if r["month_key"] == u.month_key else 0),
    )


def _spent_minus(spent: tuple[int, int, int], keys: tuple[str, str, str], r: Any) -> tuple[int, int, int]:
    """A buyer's spend without a lapsed reservation's price, in the periods it counted in."""
    amount = int(r["amount_cents"])
    held = (r["buyer_day_key"], r["buyer_week_key"], r["buyer_month_key"])
    return (
        spent[0] - (amount if held[0] == keys[0] else 0),
        spent[1] - (amount if held[1] == keys[1] else 0),
        spent[2] - (amount if held[2] == keys[2] else 0),
    )


async def lock_rows(tx: Tx, *, contract_ids: Iterable[str], buyer_ids: Iterable[str]) -> None:
    """PostgreSQL: lock every row the unit may touch in one global order (contracts, then buyers)."""
    if tx.dialect != "postgresql":
        return  # SQLite's BEGIN IMMEDIATE already serialises writers
    cs, bs = sorted(set(contract_ids)), sorted(set(buyer_ids))
    if cs:
        await tx.fetch(
            "SELECT 1 FROM contract_usage WHERE contract_id IN (:cs) ORDER BY contract_id FOR UPDATE", {"cs": cs}
        )
    if bs:
        await tx.fetch("SELECT 1 FROM buyer_funds WHERE buyer_id IN (:bs) ORDER BY buyer_id FOR UPDATE", {"bs": bs})


async def give_back(tx: Tx, rows: Sequence[Any]) -> None:
    """Return the cap slots and holds of reservations that just left held/posting.

    Rows change in the one lock order of docs/crash-safety.md (contracts by id, then buyers by id),
    one statement per row, so two transactions giving back overlapping reservations never deadlock."""
    if rows:
        forget(tx)
    slots: dict[tuple[str, str, str, str, int], list[int]] = {}  # -> [slots, cents]
    holds: dict[tuple[str, str, str, str], int] = {}  # (buyer, its spend periods) -> cents
    for r in rows:
        if r["contract_id"]:  # (a hold given back alone has none)
            key = (r["contract_id"], r["day_key"] or "", r["week_key"] or "", r["month_key"] or "", int(r["live_call"]))
            slot = slots.setdefault(key, [0, 0])
            slot[0] += 1
            slot[1] += int(r["amount_cents"])
        if r["buyer_id"]:
            bkey = (r["buyer_id"], r["buyer_day_key"] or "", r["buyer_week_key"] or "", r["buyer_month_key"] or "")
            holds[bkey] = holds.get(bkey, 0) + int(r["amount_cents"])
    greatest = "GREATEST" if tx.dialect == "postgresql" else "MAX"
    for (contract_id, day, week, month, live), (n, cents) in sorted(slots.items()):
        await tx.execute(
            "UPDATE contract_usage SET "
            "day_used = CASE WHEN day_key = :d THEN MAX_(day_used - :n, 0) ELSE day_used END, "
            "week_used = CASE WHEN week_key = :w THEN MAX_(week_used - :n, 0) ELSE week_used END, "
            "month_used = CASE WHEN month_key = :m THEN MAX_(month_used - :n, 0) ELSE month_used END, "
            "day_spent_cents = CASE WHEN day_key = :d THEN MAX_(day_spent_cents - :a, 0) ELSE day_spent_cents END, "
            "week_spent_cents = CASE WHEN week_key = :w THEN MAX_(week_spent_cents - :a, 0) "
            "ELSE week_spent_cents END, "
            "month_spent_cents = CASE WHEN month_key = :m THEN MAX_(month_spent_cents - :a, 0) "
            "ELSE month_spent_cents END, "
            "live_calls = CASE WHEN :lc = 1 THEN MAX_(live_calls - :n, 0) ELSE live_calls END "
            "WHERE contract_id = :c".replace("MAX_", greatest),
            {"d": day, "w": week, "m": month, "lc": live, "n": n, "a": cents, "c": contract_id},
        )
    for (buyer_id, day, week, month), amount in sorted(holds.items()):
        await tx.execute(
            "UPDATE buyer_funds SET holds_cents = holds_cents - :a, "
            # funds back at or above the low-balance threshold re-arm the buyer's alert
            "low_balance_alerted = CASE WHEN low_balance_cents IS NOT NULL AND balance_cents + credit_limit_cents "
            "- holds_cents + :a >= low_balance_cents THEN 0 ELSE low_balance_alerted END, "
            "day_spent_cents = CASE WHEN spend_day_key = :d THEN MAX_(day_spent_cents - :a, 0) "
            "ELSE day_spent_cents END, "
            "week_spent_cents = CASE WHEN spend_week_key = :w THEN MAX_(week_spent_cents - :a, 0) "
            "ELSE week_spent_cents END, "
            "month_spent_cents = CASE WHEN spend_month_key = :m THEN MAX_(month_spent_cents - :a, 0) "
            "ELSE month_spent_cents END "
            "WHERE buyer_id = :b".replace("MAX_", greatest),
            {"a": amount, "b": buyer_id, "d": day, "w": week, "m": month},
        )


# What giving a reservation back needs: its slot's periods, its price, and the buyer's spend periods.
_RESERVATION_KEYS = (
    "contract_id, buyer_id, amount_cents, day_key, week_key, month_key, live_call, "
    "buyer_day_key, buyer_week_key, buyer_month_key"
)
_RETURNING = f"RETURNING {_RESERVATION_KEYS}"


async def reclaim_expired(
    tx: Tx, *, contract_ids: Sequence[str], buyer_ids: Sequence[str], now: int, calls: bool = False
) -> int:
    """Expire lapsed reservations of these contracts/buyers; the state guard frees each exactly once.

    On PostgreSQL the counter rows they free are locked first, in the one lock order (a plain read
    finds which; usually none, and then nothing is locked), before the reservation rows change."""
    if tx.dialect == "postgresql":
        lapsed = await tx.fetch(
            "SELECT contract_id, buyer_id FROM reservations WHERE state IN ('held', 'posting') "
            "AND expires_at <= :now AND (contract_id IN (:cs) OR buyer_id IN (:bs))",
            {"now": now, "cs": list(contract_ids), "bs": list(buyer_ids)},
        )
        if not lapsed and not calls:
            return 0
        if lapsed:
            await lock_rows(
                tx,
                contract_ids={*contract_ids, *(r["contract_id"] for r in lapsed)},
                buyer_ids={*buyer_ids, *(r["buyer_id"] for r in lapsed)},
            )
    rows = await tx.fetch(
        "UPDATE reservations SET state = 'expired' WHERE state IN ('held', 'posting') AND expires_at <= :now "
        f"AND (contract_id IN (:cs) OR buyer_id IN (:bs)) {_RETURNING}",
        {"now": now, "cs": list(contract_ids), "bs": list(buyer_ids)},
    )
    await give_back(tx, rows)
    if not calls:
        return len(rows)
    # A connected call billed at connect is `sold` but holds its live-call slot until completed or expiry.
    lapsed_calls = await tx.fetch(
        "UPDATE reservations SET live_call = 0 WHERE state = 'sold' AND live_call = 1 AND expires_at <= :now "
        "AND contract_id IN (:cs) RETURNING contract_id",
        {"now": now, "cs": list(contract_ids)},
    )
    for r in lapsed_calls:
        forget(tx)
        await tx.execute(
            "UPDATE contract_usage SET live_calls = live_calls - 1 WHERE contract_id = :c AND live_calls > 0",
            {"c": r["contract_id"]},
        )
    return len(rows) + len(lapsed_calls)


async def release(tx: Tx, reservation_ids: Sequence[str], *, to_state: str = "released") -> int:
    """Release live reservations (held/posting) and give back their slots and holds."""
    if not reservation_ids:
        return 0
    rows = await tx.fetch(
        f"UPDATE reservations SET state = :s WHERE id IN (:ids) AND state IN ('held', 'posting') {_RETURNING}",
        {"s": to_state, "ids": list(reservation_ids)},
    )
    await give_back(tx, rows)
    return len(rows)


async def take_cap_slot(tx: Tx, *, contract_id: str, keys: PeriodKeys, amount_cents: int = 0) -> PeriodKeys | None:
    """One slot in every cap period at once, and `amount_cents` against the spend caps, rolling stale
    periods forward in place; None when a cap is full. Answers the keys the slot counts in: a counter
    already in a newer period (another process's clock read a later instant) is never moved back; the
    slot counts in that period. A counter never moves back (docs/crash-safety.md)."""
    for _ in range(3):
        params = {"c": contract_id, "d": keys.day, "w": keys.week, "m": keys.month, "a": amount_cents}
        taken = await tx.execute(_TAKE_SLOT, params) == 1
        if taken:
            batch = _batch(tx)
            if batch is not None:
                u = batch.usage.get(contract_id)
                if u is None:
                    forget(tx)
                else:  # the same arithmetic as the UPDATE
                    batch.usage[contract_id] = Usage(
                        keys.day,
                        (u.day_used if u.day_key == keys.day else 0) + 1,
                        keys.week,
                        (u.week_used if u.week_key == keys.week else 0) + 1,
                        keys.month,
                        (u.month_used if u.month_key == keys.month else 0) + 1,
                        u.live_calls,
                        (u.day_spent if u.day_key == keys.day else 0) + amount_cents,
                        (u.week_spent if u.week_key == keys.week else 0) + amount_cents,
                        (u.month_spent if u.month_key == keys.month else 0) + amount_cents,
                    )
            return keys
        forget(tx)
        row = await tx.fetchrow(
            "SELECT day_key, week_key, month_key FROM contract_usage WHERE contract_id = :c", {"c": contract_id}
        )
        if row is None:
            return None
        newer = PeriodKeys(
            max(keys.day, row["day_key"]), max(keys.week, row["week_key"]), max(keys.month, row["month_key"])
        )
        if newer == keys:
            return None  # a cap is full
        keys = newer
    return None


_TAKE_SLOT = (
    "UPDATE contract_usage SET "
    "day_used = CASE WHEN day_key = :d THEN day_used ELSE 0 END + 1, day_key = :d, "
    "week_used = CASE WHEN week_key = :w THEN week_used ELSE 0 END + 1, week_key = :w, "
    "month_used = CASE WHEN month_key = :m THEN month_used ELSE 0 END + 1, month_key = :m, "
    "day_spent_cents = CASE WHEN day_key = :d THEN day_spent_cents ELSE 0 END + :a, "
    "week_spent_cents = CASE WHEN week_key = :w THEN week_spent_cents ELSE 0 END + :a, "
    "month_spent_cents = CASE WHEN month_key = :m THEN month_spent_cents ELSE 0 END + :a "
    "WHERE contract_id = :c AND day_key <= :d AND week_key <= :w AND month_key <= :m "
    "AND (daily_cap IS NULL OR CASE WHEN day_key = :d THEN day_used ELSE 0 END < daily_cap) "
    "AND (weekly_cap IS NULL OR CASE WHEN week_key = :w THEN week_used ELSE 0 END < weekly_cap) "
    "AND (monthly_cap IS NULL OR CASE WHEN month_key = :m THEN month_used ELSE 0 END < monthly_cap) "
    # spend caps (docs/protocol.md): the price must fit what the period has left
    "AND (spend_daily_cap_cents IS NULL "
    "OR CASE WHEN day_key = :d THEN day_spent_cents ELSE 0 END + :a <= spend_daily_cap_cents) "
    "AND (spend_weekly_cap_cents IS NULL "
    "OR CASE WHEN week_key = :w THEN week_spent_cents ELSE 0 END + :a <= spend_weekly_cap_cents) "
    "AND (spend_monthly_cap_cents IS NULL "
    "OR CASE WHEN month_key = :m THEN month_spent_cents ELSE 0 END + :a <= spend_monthly_cap_cents)"
)


async def take_slots(tx: Tx, reservations: Sequence[dict[str, Any]]) -> bool:
    """PostgreSQL: every reservation's cap slot and hold at once, under the same conditions as
    `take_cap_slot` and `take_hold`; False (the caller undoes its transaction) unless every one was
    taken. One statement for all the rows (each contract and buyer appears once: one winner per
    buyer), so a ping holds the offer's hot counter rows only from here to its commit. (SQLite never
    needs this: its write batch holds the only write lock.)"""
    # One statement, so the hot rows stay locked only until the commit that follows it (a second
    # statement would wait for this process's event loop while holding them). Rows are locked in key
    # order first (`lc`, `lb`): an UPDATE ... FROM alone locks them in whatever order its join meets
    # them, and two pings meeting the same rows in different orders deadlock.
    row = await tx.fetchrow(
        "WITH lc AS (SELECT contract_id FROM contract_usage WHERE contract_id = ANY(:cs::text[]) "
        "ORDER BY contract_id FOR UPDATE), "
        "caps AS (UPDATE contract_usage AS u SET "
        "day_used = CASE WHEN u.day_key = v.d THEN u.day_used ELSE 0 END + 1, day_key = v.d, "
        "week_used = CASE WHEN u.week_key = v.w THEN u.week_used ELSE 0 END + 1, week_key = v.w, "
        "month_used = CASE WHEN u.month_key = v.m THEN u.month_used ELSE 0 END + 1, month_key = v.m, "
        "day_spent_cents = CASE WHEN u.day_key = v.d THEN u.day_spent_cents ELSE 0 END + v.a, "
        "week_spent_cents = CASE WHEN u.week_key = v.w THEN u.week_spent_cents ELSE 0 END + v.a, "
        "month_spent_cents = CASE WHEN u.month_key = v.m THEN u.month_spent_cents ELSE 0 END + v.a "
        "FROM unnest(:cs::text[], :ds::text[], :ws::text[], :ms::text[], :amounts::bigint[]) AS v(c, d, w, m, a), lc "
        "WHERE u.contract_id = v.c AND lc.contract_id = v.c "
        "AND u.day_key <= v.d AND u.week_key <= v.w AND u.month_key <= v.m "
        "AND (u.daily_cap IS NULL OR CASE WHEN u.day_key = v.d THEN u.day_used ELSE 0 END < u.daily_cap) "
        "AND (u.weekly_cap IS NULL OR CASE WHEN u.week_key = v.w THEN u.week_used ELSE 0 END < u.weekly_cap) "
        "AND (u.monthly_cap IS NULL OR CASE WHEN u.month_key = v.m THEN u.month_used ELSE 0 END < u.monthly_cap) "
        "AND (u.spend_daily_cap_cents IS NULL OR "
        "CASE WHEN u.day_key = v.d THEN u.day_spent_cents ELSE 0 END + v.a <= u.spend_daily_cap_cents) "
        "AND (u.spend_weekly_cap_cents IS NULL OR "
        "CASE WHEN u.week_key = v.w THEN u.week_spent_cents ELSE 0 END + v.a <= u.spend_weekly_cap_cents) "
        "AND (u.spend_monthly_cap_cents IS NULL OR "
        "CASE WHEN u.month_key = v.m THEN u.month_spent_cents ELSE 0 END + v.a <= u.spend_monthly_cap_cents) "
        "RETURNING 1), "
        "lb AS (SELECT buyer_id FROM buyer_funds WHERE buyer_id = ANY(:bs::text[]) "
        "AND (SELECT count(*) FROM caps) = :n ORDER BY buyer_id FOR UPDATE), "
        "holds AS (UPDATE buyer_funds AS f SET holds_cents = f.holds_cents + v.a, "
        "day_spent_cents = CASE WHEN f.spend_day_key = v.d THEN f.day_spent_cents ELSE 0 END + v.a, "
        "week_spent_cents = CASE WHEN f.spend_week_key = v.w THEN f.week_spent_cents ELSE 0 END + v.a, "
        "month_spent_cents = CASE WHEN f.spend_month_key = v.m THEN f.month_spent_cents ELSE 0 END + v.a, "
        "spend_day_key = v.d, spend_week_key = v.w, spend_month_key = v.m "
        "FROM unnest(:bs::text[], :amounts::bigint[], :bds::text[], :bws::text[], :bms::text[]) "
        "AS v(b, a, d, w, m), lb "
        "WHERE f.buyer_id = v.b AND lb.buyer_id = v.b "
        "AND f.balance_cents + f.credit_limit_cents - f.holds_cents >= v.a "
        "AND f.spend_day_key <= v.d AND f.spend_week_key <= v.w AND f.spend_month_key <= v.m "
        f"AND {_BUYER_SPEND_FITS.format(f='f.', d='v.d', w='v.w', m='v.m', a='v.a')} RETURNING 1) "
        "SELECT (SELECT count(*) FROM caps) AS caps, (SELECT count(*) FROM holds) AS holds",
        {
            "cs": [r["contract_id"] for r in reservations],
            "ds": [r["day_key"] for r in reservations],
            "ws": [r["week_key"] for r in reservations],
            "ms": [r["month_key"] for r in reservations],
            "bs": [r["buyer_id"] for r in reservations],
            "amounts": [r["amount_cents"] for r in reservations],
            "bds": [r["buyer_day_key"] for r in reservations],
            "bws": [r["buyer_week_key"] for r in reservations],
            "bms": [r["buyer_month_key"] for r in reservations],
            "n": len(reservations),
        },
    )
    return row is not None and row["caps"] == row["holds"] == len(reservations)


async def return_cap_slot(tx: Tx, *, contract_id: str, keys: PeriodKeys, amount_cents: int = 0) -> None:
    await give_back(
        tx,
        [
            {
                "day_key": keys.day,
                "week_key": keys.week,
                "month_key": keys.month,
                "live_call": 0,
                "contract_id": contract_id,
                "amount_cents": amount_cents,
                "buyer_id": "",
            }
        ],
    )


# A buyer's spend caps, as a condition on its funds row (alias `f`) taking `a` in periods d, w, m.
_BUYER_SPEND_FITS = (
    "({f}spend_daily_cap_cents IS NULL OR "
    "CASE WHEN {f}spend_day_key = {d} THEN {f}day_spent_cents ELSE 0 END + {a} <= {f}spend_daily_cap_cents) "
    "AND ({f}spend_weekly_cap_cents IS NULL OR "
    "CASE WHEN {f}spend_week_key = {w} THEN {f}week_spent_cents ELSE 0 END + {a} <= {f}spend_weekly_cap_cents) "
    "AND ({f}spend_monthly_cap_cents IS NULL OR "
    "CASE WHEN {f}spend_month_key = {m} THEN {f}month_spent_cents ELSE 0 END + {a} <= {f}spend_monthly_cap_cents)"
)
_TAKE_HOLD = (
    "UPDATE buyer_funds SET holds_cents = holds_cents + :a, "
    "day_spent_cents = CASE WHEN spend_day_key = :d THEN day_spent_cents ELSE 0 END + :a, "
    "week_spent_cents = CASE WHEN spend_week_key = :w THEN week_spent_cents ELSE 0 END + :a, "
    "month_spent_cents = CASE WHEN spend_month_key = :m THEN month_spent_cents ELSE 0 END + :a, "
    "spend_day_key = :d, spend_week_key = :w, spend_month_key = :m "
    "WHERE buyer_id = :b AND balance_cents + credit_limit_cents - holds_cents >= :a "
    "AND spend_day_key <= :d AND spend_week_key <= :w AND spend_month_key <= :m AND "
    + _BUYER_SPEND_FITS.format(f="", d=":d", w=":w", m=":m", a=":a")
)


async def take_hold(tx: Tx, *, buyer_id: str, amount_cents: int, keys: PeriodKeys) -> PeriodKeys | None:
    """Hold `amount_cents` of the buyer's available funds and count it against its spend caps in the
    periods `keys` (its own time zone), rolled forward in place like the count caps: a counter in a
    newer period is never moved back, the hold counts there. Answers the periods it counts in, None
    when the funds or a spend cap do not allow it."""
    for _ in range(3):
        params = {"a": amount_cents, "b": buyer_id, "d": keys.day, "w": keys.week, "m": keys.month}
        if await tx.execute(_TAKE_HOLD, params) == 1:
            batch = _batch(tx)
            if batch is not None:
                funds = batch.funds.get(buyer_id)
                if funds is None:
                    forget(tx)
                else:  # the same arithmetic as the UPDATE
                    now_keys = (keys.day, keys.week, keys.month)
                    funds.holds_cents += amount_cents
                    funds.spent = tuple(  # type: ignore[assignment]
                        (spent if key == now_key else 0) + amount_cents
                        for spent, key, now_key in zip(funds.spent, funds.spend_keys, now_keys, strict=True)
                    )
                    funds.spend_keys = now_keys
            return keys
        forget(tx)
        row = await tx.fetchrow(
            "SELECT spend_day_key, spend_week_key, spend_month_key FROM buyer_funds WHERE buyer_id = :b",
            {"b": buyer_id},
        )
        if row is None:
            return None
        newer = PeriodKeys(
            max(keys.day, row["spend_day_key"]),
            max(keys.week, row["spend_week_key"]),
            max(keys.month, row["spend_month_key"]),
        )
        if newer == keys:
            return None  # funds or a spend cap
        keys = newer
    return None


async def take_live_slot(tx: Tx, *, contract_id: str) -> bool:
    """A live-call slot under `max_concurrent_calls` (conditional, atomic like the caps)."""
    forget(tx)
    return (
        await tx.execute(
            "UPDATE contract_usage SET live_calls = live_calls + 1 WHERE contract_id = :c "
            "AND (max_live_calls IS NULL OR live_calls < max_live_calls)",
            {"c": contract_id},
        )
        == 1
    )


async def end_live_call(tx: Tx, reservation_id: str) -> None:
    """Give back the live-call slot of a sold call (once: the flag is cleared in the same statement).

    A reservation that was released or expired gave its slot back then (`give_back`)."""
    contract_id = await tx.fetchval(
        "UPDATE reservations SET live_call = 0 WHERE id = :r AND live_call = 1 AND state = 'sold' "
        "RETURNING contract_id",
        {"r": reservation_id},
    )
    if contract_id is not None:
        forget(tx)
        await tx.execute(
            "UPDATE contract_usage SET live_calls = live_calls - 1 WHERE contract_id = :c AND live_calls > 0",
            {"c": contract_id},
        )


async def return_hold(tx: Tx, *, buyer_id: str, amount_cents: int, keys: PeriodKeys) -> None:
    """Give back a hold just taken (and its spend, in the periods `take_hold` answered)."""
    await give_back(
        tx,
        [
            {
                "contract_id": "",
                "day_key": None,
                "week_key": None,
                "month_key": None,
                "live_call": 0,
                "buyer_id": buyer_id,
                "amount_cents": amount_cents,
                "buyer_day_key": keys.day,
                "buyer_week_key": keys.week,
                "buyer_month_key": keys.month,
            }
        ],
    )


_RESERVATION_COLUMNS = (
    "id",
    "bid_id",
    "ping_id",
    "contract_id",
    "buyer_id",
    "amount_cents",
    "day_key",
    "week_key",
    "month_key",
    "live_call",
    "expires_at",
    "created_at",
    "buyer_day_key",
    "buyer_week_key",
    "buyer_month_key",
    "lease_id",  # docs/scale-out.md; absent (NULL) unless drawn from a process lease
)


@lru_cache(maxsize=32)
def _insert_reservations_sql(count: int) -> str:
    values = ", ".join("(" + ", ".join(f":{c}_{i}" for c in _RESERVATION_COLUMNS) + ", 'held')" for i in range(count))
    return f"INSERT INTO reservations ({', '.join(_RESERVATION_COLUMNS)}, state) VALUES {values}"


async def insert_reservations(tx: Tx, rows: Sequence[dict[str, Any]]) -> None:
    """New `held` reservations, all in one statement (a ping's winners and standbys)."""
    if rows:
        await tx.execute(
            _insert_reservations_sql(len(rows)),
            {f"{c}_{i}": row.get(c) for i, row in enumerate(rows) for c in _RESERVATION_COLUMNS},
        )


async def insert_reservation(tx: Tx, row: dict[str, Any]) -> None:
    await insert_reservations(tx, [row])


async def write_ping(tx: Tx, ping: dict[str, Any], reservations: Sequence[dict[str, Any]], leases: WriteLeases) -> bool:
    """A decided ping: its reservations and its row, if the leases its winners drew from all hold
    (`leases_repo.hold`: active, unexpired at `leases.now`, share-locked until commit); False, having
    written nothing, if one does not.

    PostgreSQL: one statement (the lease check, then both inserts only if it passed), since round trips
    are what a ping costs there (docs/performance.md, "Scale-out"). With `leases.last` it is the ping
    decision's last statement (`Tx.fetchval_last`): a unit that opened no transaction sends it alone,
    and it turns synchronous commit off for its own transaction (ping decisions only, docs/deploy.md)."""
    if tx.dialect != "postgresql":
        if leases.ids and not await leases_repo.hold(tx, leases.ids, now=leases.now):
            return False
        await insert_reservations(tx, reservations)
        await insert_ping(tx, ping)
        return True
    # The rows go as JSON documents: asyncpg encodes one string far cheaper than a typed array a column.
    params = {
        "rows": orjson.dumps(reservations).decode(),
        "ping": orjson.dumps(ping).decode(),
        "lease_ids": orjson.dumps(leases.ids).decode(),
        "n_leases": len(leases.ids),
        "now": leases.now,
    }
    if leases.last:
        return bool(await tx.fetchval_last(_WRITE_PING, params))
    return bool(await tx.fetchval(_WRITE_PING, params))


@dataclass(frozen=True, slots=True)
class WriteLeases:
    """The leases a ping's winners drew from (sorted ids), the store's clock the ping decided at, and
    whether the ping's write is the last statement of its unit."""

    ids: Sequence[str]
    now: int
    last: bool = False


async def rr_last_key(tx: Tx, offer_id: str) -> str:
    """Lock and read the offer's round-robin pointer (created on first use)."""
    key = await tx.fetchval(
        "UPDATE rr_pointer SET last_key = last_key WHERE offer_id = :o RETURNING last_key", {"o": offer_id}
    )
    if key is None:
        await tx.execute(
            "INSERT INTO rr_pointer (offer_id, last_key) VALUES (:o, '') ON CONFLICT DO NOTHING", {"o": offer_id}
        )
        key = await tx.fetchval(
            "UPDATE rr_pointer SET last_key = last_key WHERE offer_id = :o RETURNING last_key", {"o": offer_id}
        )
    return str(key or "")


async def set_rr_last_key(tx: Tx, offer_id: str, key: str) -> None:
    await tx.execute("UPDATE rr_pointer SET last_key = :k WHERE offer_id = :o", {"k": key, "o": offer_id})


async def count_rate_window(tx: Tx, *, campaign_id: str, now: int) -> None:
    """One more ping in the campaign's current one-second window (a new second starts at 1)."""
    await tx.execute(
        "INSERT INTO rate_windows (campaign_id, window_start, pings) VALUES (:c, :w, 1) "
        "ON CONFLICT (campaign_id) DO UPDATE SET pings = CASE WHEN rate_windows.window_start = :w "
        "THEN rate_windows.pings + 1 ELSE 1 END, window_start = :w",
        {"c": campaign_id, "w": now // 1000},
    )


_PING_COLUMNS = (
    "id",
    "offer_id",
    "campaign_id",
    "partner_id",
    "channel",
    "mode",
    "status",
    "post_state",
    "test",
    "partner_lead_id",
    "received_at",
    "decided_at",
    "expires_at",
    "lead",
    "consumer",
    "bids",
    "waterfall",
    "source",
    "subs",
    "dup_key",
)
_INSERT_PING_SQL = (
    f"INSERT INTO pings ({', '.join(_PING_COLUMNS)}{{c}}) VALUES ({', '.join(':' + c for c in _PING_COLUMNS)}{{v}})"
)
_INSERT_PING = _INSERT_PING_SQL.format(c="", v="")
_INSERT_PING_REPLAY = _INSERT_PING_SQL.format(c=", replay", v=", :replay")
_NO_TRAFFIC = {"source": None, "subs": None, "dup_key": None}
_WRITE_PING = (
    # a ping decision commits without waiting for the disk (docs/deploy.md), also when sent alone
    "WITH sync AS MATERIALIZED (SELECT set_config('synchronous_commit', 'off', true) AS off), "
    "held AS (SELECT id FROM leases WHERE id = ANY(ARRAY(SELECT json_array_elements_text(:lease_ids::json))) "
    "AND state = 'active' AND expires_at > :now::bigint FOR SHARE), "
    "ok AS (SELECT (SELECT off FROM sync) IS NOT NULL AND (SELECT count(*) FROM held) = :n_leases AS ok), "
    f"r AS (INSERT INTO reservations ({', '.join(_RESERVATION_COLUMNS)}, state) "
    f"SELECT {', '.join(_RESERVATION_COLUMNS)}, 'held' FROM json_populate_recordset(NULL::reservations, :rows::json) "
    "WHERE (SELECT ok FROM ok) RETURNING 1), "
    f"p AS (INSERT INTO pings ({', '.join(_PING_COLUMNS)}, replay) "
    f"SELECT {', '.join(_PING_COLUMNS)}, replay FROM json_populate_record(NULL::pings, :ping::json) "
    "WHERE (SELECT ok FROM ok) RETURNING 1) "
    "SELECT (SELECT ok FROM ok) AND (SELECT count(*) FROM p) = 1"
)


async def insert_ping(tx: Tx, row: dict[str, Any]) -> None:
    """A ping with its waterfall; `replay` (what a replay needs beyond it, docs/replay.md) only when set."""
    if row.get("replay") is None:
        await tx.execute(_INSERT_PING, {**_NO_TRAFFIC, **row})
    else:
        await tx.execute(_INSERT_PING_REPLAY, {**_NO_TRAFFIC, **row})


async def record_dedup(tx: Tx, *, buyer_id: str, hashes: Sequence[str], sold_at: int, sale_id: str) -> None:
    await tx.executemany(
        "INSERT INTO dedup_records (buyer_id, hash_hmac, sold_at, sale_id) VALUES (:b, :h, :t, :s) "
        "ON CONFLICT DO NOTHING",
        [{"b": buyer_id, "h": h, "t": sold_at, "s": sale_id} for h in hashes],
    )


async def count_reservations(tx: Tx, contract_id: str) -> int:
    """Every reservation ever taken for the contract (the benchmark's exactness check)."""
    return int(await tx.fetchval("SELECT COUNT(*) FROM reservations WHERE contract_id = :c", {"c": contract_id}))
