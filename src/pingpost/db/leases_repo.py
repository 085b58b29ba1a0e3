"""SQL of process leases: a process takes a block of a contract's cap slots and of its buyer's funds
from the shared counter rows in one short statement, and serves its pings from memory against it
(docs/scale-out.md). The counter rows stay the one source of truth: a leased slot or cent is counted
there before any ping uses it, so the sum over processes never passes a cap or the funds.

Lock order (docs/crash-safety.md, extended): lease rows first (a ping holds FOR SHARE on the leases it
draws from until its commit; ending a lease updates its row, so it waits for those pings), then
`contract_usage` rows by contract id, then `buyer_funds` rows by buyer id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pingpost.db.store import Tx


@dataclass(frozen=True, slots=True)
class Take:
    """What one winner takes from the shared counters: `slots` cap slots of `contract_id` in the periods
    `day`/`week`/`month` and `cents` of `buyer_id`'s funds (1 slot and the price when not leasing)."""

    contract_id: str
    day: str
    week: str
    month: str
    buyer_id: str
    slots: int
    cents: int


async def take(tx: Tx, takes: Sequence[Take]) -> bool:
    """Every take at once, or none (False: the caller undoes its transaction). Each contract and buyer
    appears once. Conditions as `auction_repo.take_cap_slot` / `take_hold`, for `slots` and `cents`."""
    if tx.dialect != "postgresql":
        return await _take_one_by_one(tx, takes)
    row = await tx.fetchrow(
        "WITH lc AS (SELECT contract_id FROM contract_usage WHERE contract_id = ANY(:cs::text[]) "
        "ORDER BY contract_id FOR UPDATE), "
        "caps AS (UPDATE contract_usage AS u SET "
        "day_used = CASE WHEN u.day_key = v.d THEN u.day_used ELSE 0 END + v.k, day_key = v.d, "
        "week_used = CASE WHEN u.week_key = v.w THEN u.week_used ELSE 0 END + v.k, week_key = v.w, "
        "month_used = CASE WHEN u.month_key = v.m THEN u.month_used ELSE 0 END + v.k, month_key = v.m "
        "FROM unnest(:cs::text[], :ds::text[], :ws::text[], :ms::text[], :ks::bigint[]) AS v(c, d, w, m, k), lc "
        "WHERE u.contract_id = v.c AND lc.contract_id = v.c "
        "AND u.day_key <= v.d AND u.week_key <= v.w AND u.month_key <= v.m "
        "AND (u.daily_cap IS NULL OR CASE WHEN u.day_key = v.d THEN u.day_used ELSE 0 END + v.k <= u.daily_cap) "
        "AND (u.weekly_cap IS NULL OR CASE WHEN u.week_key = v.w THEN u.week_used ELSE 0 END + v.k <= u.weekly_cap) "
        "AND (u.monthly_cap IS NULL OR CASE WHEN u.month_key = v.m THEN u.month_used ELSE 0 END + v.k "
        "<= u.monthly_cap) RETURNING 1), "
        "lb AS (SELECT buyer_id FROM buyer_funds WHERE buyer_id = ANY(:bs::text[]) "
        "AND (SELECT count(*) FROM caps) = :n ORDER BY buyer_id FOR UPDATE), "
        "holds AS (UPDATE buyer_funds AS f SET holds_cents = f.holds_cents + v.a "
        "FROM unnest(:bs::text[], :amounts::bigint[]) AS v(b, a), lb "
        "WHERE f.buyer_id = v.b AND lb.buyer_id = v.b "
        "AND f.balance_cents + f.credit_limit_cents - f.holds_cents >= v.a RETURNING 1) "
        "SELECT (SELECT count(*) FROM caps) AS caps, (SELECT count(*) FROM holds) AS holds",
        {
            "cs": [t.contract_id for t in takes],
            "ds": [t.day for t in takes],
            "ws": [t.week for t in takes],
            "ms": [t.month for t in takes],
            "ks": [t.slots for t in takes],
            "bs": [t.buyer_id for t in takes],
            "amounts": [t.cents for t in takes],
            "n": len(takes),
        },
    )
    return row is not None and row["caps"] == row["holds"] == len(takes)


async def _take_one_by_one(tx: Tx, takes: Sequence[Take]) -> bool:
    """SQLite (one writer: no lock order to keep): the same conditions, a statement each."""
    for t in sorted(takes, key=lambda t: t.contract_id):
        taken = await tx.execute(
            "UPDATE contract_usage SET "
            "day_used = CASE WHEN day_key = :d THEN day_used ELSE 0 END + :k, day_key = :d, "
            "week_used = CASE WHEN week_key = :w THEN week_used ELSE 0 END + :k, week_key = :w, "
            "month_used = CASE WHEN month_key = :m THEN month_used ELSE 0 END + :k, month_key = :m "
            "WHERE contract_id = :c AND day_key <= :d AND week_key <= :w AND month_key <= :m "
            "AND (daily_cap IS NULL OR CASE WHEN day_key = :d THEN day_used ELSE 0 END + :k <= daily_cap) "
            "AND (weekly_cap IS NULL OR CASE WHEN week_key = :w THEN week_used ELSE 0 END + :k <= weekly_cap) "
            "AND (monthly_cap IS NULL OR CASE WHEN month_key = :m THEN month_used ELSE 0 END + :k <= monthly_cap)",
            {"c": t.contract_id, "d": t.day, "w": t.week, "m": t.month, "k": t.slots},
        )
        if taken != 1:
            return False
    for t in sorted(takes, key=lambda t: t.buyer_id):
        held = await tx.execute(
            "UPDATE buyer_funds SET holds_cents = holds_cents + :a "
            "WHERE buyer_id = :b AND balance_cents + credit_limit_cents - holds_cents >= :a",
            {"a": t.cents, "b": t.buyer_id},
        )
        if held != 1:
            return False
    return True


async def extend(tx: Tx, t: Take) -> bool:
    """`t.slots` more cap slots and `t.cents` more funds for a winner whose own slot and hold this
    transaction already took (its rows are locked: PostgreSQL's careful path locks them first, SQLite
    has one writer); both or neither (the slots go back when the funds are short)."""
    params = {"c": t.contract_id, "d": t.day, "w": t.week, "m": t.month, "k": t.slots}
    taken = await tx.execute(
        "UPDATE contract_usage SET day_used = day_used + :k, week_used = week_used + :k, "
        "month_used = month_used + :k WHERE contract_id = :c AND day_key = :d AND week_key = :w AND month_key = :m "
        "AND (daily_cap IS NULL OR day_used + :k <= daily_cap) "
        "AND (weekly_cap IS NULL OR week_used + :k <= weekly_cap) "
        "AND (monthly_cap IS NULL OR month_used + :k <= monthly_cap)",
        params,
    )
    if taken != 1:
        return False
    held = await tx.execute(
        "UPDATE buyer_funds SET holds_cents = holds_cents + :a "
        "WHERE buyer_id = :b AND balance_cents + credit_limit_cents - holds_cents >= :a",
        {"a": t.cents, "b": t.buyer_id},
    )
    if held == 1:
        return True
    await tx.execute(
        "UPDATE contract_usage SET day_used = day_used - :k, week_used = week_used - :k, "
        "month_used = month_used - :k WHERE contract_id = :c AND day_key = :d AND week_key = :w AND month_key = :m",
        params,
    )
    return False


async def insert(tx: Tx, rows: Sequence[dict[str, Any]]) -> None:
    """New active leases (the counters were taken by `take` in the same transaction)."""
    await tx.executemany(
        "INSERT INTO leases (id, holder, contract_id, buyer_id, day_key, week_key, month_key, slots, cents, "
        "state, expires_at, created_at) VALUES (:id, :holder, :contract_id, :buyer_id, :day_key, :week_key, "
        ":month_key, :slots, :cents, 'active', :expires_at, :created_at)",
        rows,
    )


async def hold(tx: Tx, lease_ids: Sequence[str], *, now: int) -> bool:
    """The leases a ping draws from are all still active and unexpired at `now`; on PostgreSQL they stay
    share-locked until the ping's commit, so none can end (and count its reservations) before that."""
    lock = " FOR SHARE" if tx.dialect == "postgresql" else ""
    rows = await tx.fetch(
        f"SELECT id FROM leases WHERE id IN (:ids) AND state = 'active' AND expires_at > :now{lock}",
        {"ids": list(lease_ids), "now": now},
    )
    return len(rows) == len(lease_ids)


async def end(tx: Tx, *, now: int, ids: Sequence[str] = (), limit: int = 200) -> list[dict[str, Any]]:
    """End the given leases and every lease past its expiry (whoever holds it; a dead process's too),
    and give back to the counters what their reservations did not use. Exactly once: the state guard.

    What a lease's reservations used is counted after its row is updated, so every ping that drew from
    it has committed (it held the row FOR SHARE) and a later one cannot (the row is no longer active)."""
    # PostgreSQL: a lease a ping is drawing from right now (FOR SHARE) is skipped, not waited for; no
    # new ping can draw from it once it has expired or its holder stopped handing it out, so a later
    # sweep ends it. Two sweeps never wait for each other either.
    skip = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgresql" else ""
    rows = await tx.fetch(
        "UPDATE leases SET state = 'ended', ended_at = :now WHERE id IN (SELECT id FROM leases "
        f"WHERE state = 'active' AND (expires_at <= :now OR id IN (:ids)) ORDER BY id LIMIT :lim{skip}) "
        "AND state = 'active' "
        "RETURNING id, contract_id, buyer_id, day_key, week_key, month_key, slots, cents",
        {"now": now, "ids": list(ids), "lim": limit},
    )
    if not rows:
        return []
    used = {
        r["lease_id"]: (int(r["n"]), int(r["cents"]))
        for r in await tx.fetch(
            "SELECT lease_id, COUNT(*) AS n, COALESCE(SUM(amount_cents), 0) AS cents FROM reservations "
            "WHERE lease_id IN (:ids) GROUP BY lease_id",
            {"ids": [r["id"] for r in rows]},
        )
    }
    current = {
        r["contract_id"]: (r["day_key"], r["week_key"], r["month_key"])
        for r in await tx.fetch(
            "SELECT contract_id, day_key, week_key, month_key FROM contract_usage WHERE contract_id IN (:cs)",
            {"cs": sorted({r["contract_id"] for r in rows})},
        )
    }
    ended: list[dict[str, Any]] = []
    slots: dict[tuple[str, str, str, str], int] = {}
    cents: dict[str, int] = {}
    for r in rows:
        used_slots, used_cents = used.get(r["id"], (0, 0))
        unused = int(r["slots"]) - used_slots
        keys = (r["day_key"], r["week_key"], r["month_key"])
        key = (r["contract_id"], *keys)
        slots[key] = slots.get(key, 0) + unused
        cents[r["buyer_id"]] = cents.get(r["buyer_id"], 0) + int(r["cents"]) - used_cents
        ended.append(
            {
                "id": r["id"],
                "contract_id": r["contract_id"],
                "used_slots": used_slots,
                "used_cents": used_cents,
                "unused_slots": unused,
                "stranded": int(unused > 0 and current.get(r["contract_id"], keys) != keys),
            }
        )
    for (contract_id, day, week, month), n in sorted(slots.items()):
        if n:
            await tx.execute(
                "UPDATE contract_usage SET "
                "day_used = CASE WHEN day_key = :d THEN MAX_(day_used - :n, 0) ELSE day_used END, "
                "week_used = CASE WHEN week_key = :w THEN MAX_(week_used - :n, 0) ELSE week_used END, "
                "month_used = CASE WHEN month_key = :m THEN MAX_(month_used - :n, 0) ELSE month_used END "
                "WHERE contract_id = :c".replace("MAX_", "GREATEST" if tx.dialect == "postgresql" else "MAX"),
                {"d": day, "w": week, "m": month, "n": n, "c": contract_id},
            )
    for buyer_id, amount in sorted(cents.items()):
        if amount:
            await tx.execute(
                "UPDATE buyer_funds SET holds_cents = holds_cents - :a WHERE buyer_id = :b",
                {"a": amount, "b": buyer_id},
            )
    await tx.executemany(
        "UPDATE leases SET used_slots = :used_slots, used_cents = :used_cents, stranded = :stranded WHERE id = :id",
        [{k: e[k] for k in ("id", "used_slots", "used_cents", "stranded")} for e in ended],
    )
    return ended


async def summary(tx: Tx, *, since: int) -> list[dict[str, Any]]:
    """Per contract, leases taken since `since`: how many, active now, slots leased, used, and the slots
    stranded at a period's end (the under-fill, docs/scale-out.md)."""
    rows = await tx.fetch(
        "SELECT contract_id, COUNT(*) AS leases, "
        "SUM(CASE WHEN state = 'active' THEN 1 ELSE 0 END) AS active, "
        "COALESCE(SUM(slots), 0) AS slots, COALESCE(SUM(used_slots), 0) AS used_slots, "
        "COALESCE(SUM(CASE WHEN stranded = 1 THEN slots - used_slots ELSE 0 END), 0) AS stranded_slots "
        "FROM leases WHERE created_at >= :since GROUP BY contract_id ORDER BY contract_id",
        {"since": since},
    )
    return [{k: (int(r[k]) if k != "contract_id" else r[k]) for k in r.keys()} for r in rows]  # noqa: SIM118
