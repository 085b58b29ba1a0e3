"""SQL of the configuration resources (verticals, offers, partners, campaigns, buyers, contracts,
API keys): one table each, named by the admin service from a fixed list, never from input."""

from __future__ import annotations

from typing import Any

import orjson

from pingpost.db.store import Tx

TABLES = frozenset({"verticals", "offers", "partners", "campaigns", "buyers", "contracts", "api_keys"})


def _table(name: str) -> str:
    if name not in TABLES:
        raise ValueError(f"not a configuration table: {name}")
    return name


async def exists(tx: Tx, table: str, ident: str) -> bool:
    return await tx.fetchval(f"SELECT 1 FROM {_table(table)} WHERE id = :id", {"id": ident}) is not None


async def row(tx: Tx, table: str, ident: str) -> Any:
    return await tx.fetchrow(f"SELECT * FROM {_table(table)} WHERE id = :id", {"id": ident})


async def body(tx: Tx, table: str, ident: str) -> dict[str, Any] | None:
    raw = await tx.fetchval(f"SELECT body FROM {_table(table)} WHERE id = :id", {"id": ident})
    return None if raw is None else dict(orjson.loads(raw))


async def insert(tx: Tx, table: str, columns: dict[str, Any]) -> bool:
    """Insert a row (its `id` among the columns); False when the id is taken."""
    names = list(columns)
    return (
        await tx.execute(
            f"INSERT INTO {_table(table)} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)}) "
            "ON CONFLICT (id) DO NOTHING",
            columns,
        )
        == 1
    )


async def update(tx: Tx, table: str, ident: str, columns: dict[str, Any]) -> None:
    sets = ", ".join(f"{c} = :{c}" for c in columns)
    await tx.execute(f"UPDATE {_table(table)} SET {sets} WHERE id = :id", {**columns, "id": ident})


async def page(tx: Tx, table: str, *, filters: dict[str, Any], cursor: str | None, limit: int) -> list[Any]:
    """Rows in id order after `cursor`, where each filter column equals its value."""
    where = ["(CAST(:cursor AS TEXT) IS NULL OR id > :cursor)"]
    params: dict[str, Any] = {"cursor": cursor, "lim": limit}
    for i, (column, value) in enumerate(filters.items()):
        if not column.replace("_", "").isalnum():
            raise ValueError(f"not a column: {column}")
        where.append(f"{column} = :f{i}")
        params[f"f{i}"] = value
    return list(
        await tx.fetch(f"SELECT * FROM {_table(table)} WHERE {' AND '.join(where)} ORDER BY id LIMIT :lim", params)
    )


async def bump_config(tx: Tx) -> None:
    """Every process's configuration snapshot is stale from this commit on."""
    await tx.execute("UPDATE config_version SET version = version + 1 WHERE id = 1")


async def sync_contract_caps(tx: Tx, contract_id: str, caps: dict[str, Any]) -> None:
    """Copy a contract's caps into its usage row (the conditional slot UPDATE reads them there)."""
    params = {
        "c": contract_id,
        "d": caps.get("daily"),
        "w": caps.get("weekly"),
        "m": caps.get("monthly"),
        "l": caps.get("max_concurrent_calls"),
        "sd": caps.get("spend_daily_cents"),
        "sw": caps.get("spend_weekly_cents"),
        "sm": caps.get("spend_monthly_cents"),
    }
    changed = await tx.execute(
        "UPDATE contract_usage SET daily_cap = :d, weekly_cap = :w, monthly_cap = :m, max_live_calls = :l, "
        "spend_daily_cap_cents = :sd, spend_weekly_cap_cents = :sw, spend_monthly_cap_cents = :sm "
        "WHERE contract_id = :c",
        params,
    )
    if not changed:
        await tx.execute(
            "INSERT INTO contract_usage (contract_id, daily_cap, weekly_cap, monthly_cap, max_live_calls, "
            "spend_daily_cap_cents, spend_weekly_cap_cents, spend_monthly_cap_cents) "
            "VALUES (:c, :d, :w, :m, :l, :sd, :sw, :sm)",
            params,
        )


async def sync_buyer_controls(tx: Tx, buyer_id: str, body: dict[str, Any]) -> None:
    """Copy a buyer's spend caps and low-balance threshold into its funds row (the conditional hold
    UPDATE reads them there)."""
    caps = body.get("caps") or {}
    await tx.execute(
        "UPDATE buyer_funds SET spend_daily_cap_cents = :sd, spend_weekly_cap_cents = :sw, "
        "spend_monthly_cap_cents = :sm, low_balance_cents = :lb WHERE buyer_id = :b",
        {
            "b": buyer_id,
            "sd": caps.get("spend_daily_cents"),
            "sw": caps.get("spend_weekly_cents"),
            "sm": caps.get("spend_monthly_cents"),
            "lb": body.get("low_balance_cents"),
        },
    )


async def create_buyer_funds(tx: Tx, buyer_id: str, credit_limit_cents: int) -> None:
    await tx.execute(
        "INSERT INTO buyer_funds (buyer_id, credit_limit_cents) VALUES (:b, :c)",
        {"b": buyer_id, "c": credit_limit_cents},
    )


async def set_credit_limit(tx: Tx, buyer_id: str, credit_limit_cents: int) -> None:
    await tx.execute(
        "UPDATE buyer_funds SET credit_limit_cents = :c WHERE buyer_id = :b", {"c": credit_limit_cents, "b": buyer_id}
    )


async def buyer_funds(tx: Tx, buyer_id: str, *, now: int) -> dict[str, int] | None:
    """Balance, credit limit and holds; holds of reservations that lapsed but were not yet reclaimed
    no longer count (docs/crash-safety.md)."""
    funds = await tx.fetchrow("SELECT * FROM buyer_funds WHERE buyer_id = :b", {"b": buyer_id})
    if funds is None:
        return None
    stale = await tx.fetchval(
        "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM reservations "
        "WHERE buyer_id = :b AND state IN ('held', 'posting') AND expires_at <= :now",
        {"b": buyer_id, "now": now},
    )
    return {
        "balance_cents": int(funds["balance_cents"]),
        "credit_limit_cents": int(funds["credit_limit_cents"]),
        "holds_cents": int(funds["holds_cents"]) - int(stale),
    }
