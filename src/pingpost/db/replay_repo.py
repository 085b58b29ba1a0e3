"""SQL of the what-if replay (docs/replay.md): read-only reads of the configuration, the state at the
start of a range, the stored pings in batches (keyset pagination on the primary key), and the job
rows. Nothing here writes anything but `replay_jobs`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pingpost.db.store import Tx

CONFIG_TABLES = {
    "vertical": "verticals",
    "offer": "offers",
    "partner": "partners",
    "campaign": "campaigns",
    "buyer": "buyers",
    "contract": "contracts",
}
MONTH_MS = 32 * 86_400_000  # reservations this old may still count in a monthly cap period


async def config_bodies(tx: Tx) -> dict[str, dict[str, dict[str, Any]]]:
    """Every configuration object's stored body by kind and id (the live configuration)."""
    bodies: dict[str, dict[str, dict[str, Any]]] = {}
    for kind, table in CONFIG_TABLES.items():
        rows = await tx.fetch(f"SELECT id, body FROM {table}")
        bodies[kind] = {r["id"]: orjson.loads(r["body"]) for r in rows}
    return bodies


async def config_changes(tx: Tx, *, since: int) -> list[Any]:
    """The audit log's entries for configuration objects written from `since` on, oldest first: each
    object's `before` (the admin API's view, secrets redacted) undoes it (docs/replay.md)."""
    return list(
        await tx.fetch(
            "SELECT id, at, object_type, object_id, before FROM audit_log "
            "WHERE at >= :s AND object_type IN (:kinds) ORDER BY at, id",
            {"s": since, "kinds": list(CONFIG_TABLES)},
        )
    )


async def auto_pauses(tx: Tx, *, since: int) -> list[Any]:
    """The pauses written without an audit entry, from `since` on, oldest first: a contract's
    `contract.auto_paused` event, a buyer's `buyer.low_balance` (paused when its data says so)."""
    return list(
        await tx.fetch(
            "SELECT id, created_at, type, data FROM events WHERE created_at >= :s "
            "AND type IN ('contract.auto_paused', 'buyer.low_balance') ORDER BY created_at, id",
            {"s": since},
        )
    )


async def opening_balances(tx: Tx, *, before: int) -> dict[str, int]:
    rows = await tx.fetch(
        "SELECT account, CAST(SUM(amount_cents) AS BIGINT) AS total FROM ledger_entries "
        "WHERE account LIKE 'buyer:%' AND created_at < :t GROUP BY account",
        {"t": before},
    )
    return {str(r["account"])[len("buyer:") :]: int(r["total"]) for r in rows}


async def buyer_moves(tx: Tx, *, since: int) -> list[Any]:
    """Buyers' ledger entries from `since` on, but sales (the replay charges its own): deposits,
    reversals, returns, each with the sale it refunds (its ping, contract, and whether it is a ping of
    the range that the replay decides)."""
    return list(
        await tx.fetch(
            "SELECT e.account, e.amount_cents, e.created_at, t.kind, s.ping_id, s.contract_id "
            "FROM ledger_entries e JOIN ledger_transactions t ON t.id = e.transaction_id "
            "LEFT JOIN sales s ON s.id = t.sale_id "
            "WHERE e.account LIKE 'buyer:%' AND e.created_at >= :t AND t.kind <> 'sale' ORDER BY e.created_at",
            {"t": since},
        )
    )


async def recent_purchases(tx: Tx, *, since: int, before: int) -> list[Any]:
    """The latest purchase of each (buyer, keyed hash) in [since, before): the dedup records that
    precede the range."""
    return list(
        await tx.fetch(
            "SELECT buyer_id, hash_hmac, MAX(sold_at) AS sold_at FROM dedup_records "
            "WHERE sold_at >= :s AND sold_at < :b GROUP BY buyer_id, hash_hmac",
            {"s": since, "b": before},
        )
    )


async def reservations_around(tx: Tx, *, since: int, before: int) -> list[Any]:
    """Reservations made in [since, before) with how each ended (sale time, delivery and post times)
    and their ping's offer, mode, test flag and received time, so the caller keeps those it does not
    replay."""
    return list(
        await tx.fetch(
            "SELECT r.contract_id, r.buyer_id, r.amount_cents, r.day_key, r.week_key, r.month_key, r.state, "
            "r.buyer_day_key, r.buyer_week_key, r.buyer_month_key, "
            "r.expires_at, r.created_at, s.created_at AS sold_at, d.finished_at, po.created_at AS posted_at, "
            "p.offer_id, p.mode, p.test, p.received_at FROM reservations r "
            "JOIN pings p ON p.id = r.ping_id "
            "LEFT JOIN sales s ON s.bid_id = r.bid_id "
            "LEFT JOIN deliveries d ON d.bid_id = r.bid_id "
            "LEFT JOIN posts po ON po.ping_id = r.ping_id "
            "WHERE r.created_at >= :s AND r.created_at < :b",
            {"s": since, "b": before},
        )
    )


async def ping_scope_row(tx: Tx, ping_id: str) -> Any:
    """What says whether a replay decides this ping: its offer, mode, test flag, arrival."""
    return await tx.fetchrow("SELECT offer_id, mode, test, received_at FROM pings WHERE id = :i", {"i": ping_id})


async def accept_counts(tx: Tx, *, since: int, before: int) -> list[Any]:
    """Per contract, deliveries made in the range and how many were accepted."""
    return list(
        await tx.fetch(
            "SELECT contract_id, COUNT(*) AS delivered, "
            "SUM(CASE WHEN outcome = 'post_accepted' THEN 1 ELSE 0 END) AS accepted "
            "FROM deliveries WHERE created_at >= :s AND created_at < :b GROUP BY contract_id",
            {"s": since, "b": before},
        )
    )


async def last_winning_bids(tx: Tx, offer_id: str, *, before_id: str) -> Any:
    """The stored bids and decision instant of the offer's last ping with winners before `before_id`
    (the round-robin pointer as the range starts), or None."""
    return await tx.fetchrow(
        "SELECT bids, decided_at FROM pings WHERE offer_id = :o AND id < :i AND status <> 'no_bids' AND test = 0 "
        "ORDER BY id DESC LIMIT 1",
        {"o": offer_id, "i": before_id},
    )


async def contract_view_after(tx: Tx, contract_id: str, *, after: int) -> Any:
    """The contract as the first audit entry after `after` found it (its `before` view), or None when
    nothing changed it since (one indexed read)."""
    return await tx.fetchrow(
        "SELECT before FROM audit_log WHERE object_type = 'contract' AND object_id = :c AND at > :t "
        "ORDER BY at, id LIMIT 1",
        {"c": contract_id, "t": after},
    )


@dataclass(frozen=True)
class PingScope:
    """Which pings a replay reads: ids in [first_id, end_id) (an id starts with its instant), received in
    [since, before), ping_post and not test, of `offer` or every offer."""

    first_id: str
    end_id: str
    since: int
    before: int
    offer: str | None = None


def _where(scope: PingScope, after_id: str | None) -> tuple[str, dict[str, Any]]:
    where = (
        f"p.id {'>' if after_id is not None else '>='} :first AND p.id < :end "
        "AND p.received_at >= :s AND p.received_at < :b AND p.mode = 'ping_post' AND p.test = 0"
    )
    params: dict[str, Any] = {
        "first": after_id or scope.first_id,
        "end": scope.end_id,
        "s": scope.since,
        "b": scope.before,
    }
    if scope.offer is not None:
        where += " AND p.offer_id = :o"
        params["o"] = scope.offer
    return where, params


async def count_pings(tx: Tx, scope: PingScope) -> int:
    where, params = _where(scope, None)
    return int(await tx.fetchval(f"SELECT COUNT(*) FROM pings p WHERE {where}", params))


async def ping_batch(tx: Tx, scope: PingScope, *, after_id: str | None, limit: int, with_waterfall: bool) -> list[Any]:
    """The next `limit` pings of `scope` after `after_id` (the last of the previous batch), in id order,
    with the instant their post claimed them (the waterfall only of pings without a `replay` document,
    when asked)."""
    where, params = _where(scope, after_id)
    waterfall = "CASE WHEN p.replay IS NULL THEN p.waterfall END" if with_waterfall else "NULL"
    return list(
        await tx.fetch(  # the loader unpacks the columns in this order
            "SELECT p.id, p.offer_id, p.campaign_id, p.channel, p.received_at, p.decided_at, p.lead, p.consumer, "
            f"p.bids, p.replay, p.source, {waterfall} AS waterfall, po.created_at AS posted_at, p.dup_key FROM pings p "
            f"LEFT JOIN posts po ON po.ping_id = p.id WHERE {where} ORDER BY p.id LIMIT {int(limit)}",
            params,
        )
    )


async def any_suppression_list(tx: Tx) -> bool:
    return await tx.fetchval("SELECT 1 FROM suppression_lists LIMIT 1") is not None


async def suppression_entries(tx: Tx, hashes: Sequence[str]) -> list[Any]:
    """The suppression lists (id, scope) each of these keyed consumer hashes is on now."""
    return list(
        await tx.fetch(
            "SELECT e.hash_hmac, l.id, l.scope FROM suppression_entries e "
            "JOIN suppression_lists l ON l.id = e.list_id WHERE e.hash_hmac IN (:hs)",
            {"hs": list(hashes)},
        )
    )


async def batch_deliveries(tx: Tx, ping_ids: Sequence[str]) -> list[Any]:
    # the loader unpacks the columns in this order (as `batch_sales`' first two)
    return list(
        await tx.fetch(
            "SELECT ping_id, contract_id, outcome, created_at, finished_at FROM deliveries WHERE ping_id IN (:ids)",
            {"ids": list(ping_ids)},
        )
    )


async def batch_sales(tx: Tx, ping_ids: Sequence[str]) -> list[Any]:
    return list(
        await tx.fetch(
            "SELECT ping_id, contract_id, price_cents, payout_cents, status, created_at FROM sales "
            "WHERE ping_id IN (:ids) AND status NOT IN ('void', 'pending')",
            {"ids": list(ping_ids)},
        )
    )


# --- jobs ---------------------------------------------------------------------------------------


async def insert_job(tx: Tx, *, job_id: str, request: dict[str, Any], now: int) -> None:
    await tx.execute(
        "INSERT INTO replay_jobs (id, status, request, done, total, created_at, updated_at) "
        "VALUES (:id, 'running', :r, 0, 0, :now, :now)",
        {"id": job_id, "r": orjson.dumps(request).decode(), "now": now},
    )


async def job_progress(tx: Tx, *, job_id: str, done: int, total: int, now: int) -> None:
    await tx.execute(
        "UPDATE replay_jobs SET done = :d, total = :t, updated_at = :now WHERE id = :id AND status = 'running'",
        {"id": job_id, "d": done, "t": total, "now": now},
    )


async def finish_job(
    tx: Tx, *, job_id: str, status: str, now: int, result: dict[str, Any] | None = None, error: str | None = None
) -> None:
    await tx.execute(
        "UPDATE replay_jobs SET status = :s, result = :res, error = :e, updated_at = :now "
        "WHERE id = :id AND status = 'running'",
        {
            "id": job_id,
            "s": status,
            "res": orjson.dumps(result).decode() if result is not None else None,
            "e": error,
            "now": now,
        },
    )


async def fail_stale_jobs(tx: Tx, *, before: int) -> None:
    """Running jobs whose process stopped beating (it died): `failed`."""
    await tx.execute(
        "UPDATE replay_jobs SET status = 'failed', error = 'the process running it stopped' "
        "WHERE status = 'running' AND updated_at < :b",
        {"b": before},
    )


async def get_job(tx: Tx, job_id: str) -> Any:
    return await tx.fetchrow("SELECT * FROM replay_jobs WHERE id = :id", {"id": job_id})


async def list_jobs(tx: Tx, *, limit: int) -> list[Any]:
    return list(
        await tx.fetch(
            "SELECT id, status, request, done, total, error, created_at, updated_at FROM replay_jobs "
            f"ORDER BY id DESC LIMIT {int(limit)}"
        )
    )
