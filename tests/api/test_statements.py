"""Statements through HTTP on both stores, and `pingpost statement`: opening + lines = closing, every
figure re-derived from the ledger; JSON and CSV; a buyer reads only its own (docs/protocol.md, Money)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pingpost.config import Settings
from pingpost.db.store import Tx
from tests.support.money import DAY_MS, Market, at, open_market


@pytest.fixture
async def market(settings: Settings) -> AsyncIterator[Market]:
    async with open_market(settings, start="2026-11-30T10:00:00") as m:
        await m.contract("fl", "b1", state="FL", policy={"window_days": 7})
        yield m


async def history(m: Market) -> None:
    """Nov 30: the setup's deposit. Dec 1: two sales. Dec 2: a deposit, a partial return approved.
    Dec 4: a payout, a sale, a reversal."""
    m.clock.set(at("2026-12-01T10:00:00"))
    first = await m.sell()
    await m.sell()
    m.clock.set(at("2026-12-02T09:00:00"))
    await m.api.ok("POST", "/v1/admin/buyers/b1/deposits", 201, json={"amount_cents": 5000, "reference": "dep-2"})
    opened = await m.api.ok(
        "POST",
        f"/v1/admin/sales/{first['sale_id']}/returns",
        201,
        json={"reason": "disconnected", "amount_cents": 4000},
    )
    await m.api.ok("POST", f"/v1/admin/returns/{opened['id']}/approve")
    m.clock.set(at("2026-12-04T23:59:59"))
    await m.api.ok("POST", "/v1/admin/partners/acme/payouts", 201, json={"amount_cents": 6000, "reference": "p-1"})
    third = await m.sell()
    await m.api.ok("POST", f"/v1/admin/sales/{third['sale_id']}/reverse", json={"reason": "test traffic"})


async def ledger_balance(m: Market, account: str, before_ms: int) -> int:
    async def unit(tx: Tx) -> int:
        return int(
            await tx.fetchval(
                "SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM ledger_entries "
                "WHERE account = :a AND created_at < :t",
                {"a": account, "t": before_ms},
            )
        )

    return await m.store.read(unit)


def adds_up(statement: dict[str, Any]) -> bool:
    lines = sum(int(line["amount_cents"]) for line in statement["lines"])
    opening, closing = int(statement["opening_balance_cents"]), int(statement["closing_balance_cents"])
    return opening + lines == closing and sum(int(v) for v in statement["totals"].values()) == lines


async def test_a_buyer_statement_by_day_and_kind(market: Market) -> None:
    m = market
    await history(m)
    statement = await m.api.ok(
        "GET", "/v1/admin/statements", params={"account": "buyer:b1", "from": "2026-12-01", "to": "2026-12-04"}
    )
    assert statement == {
        "account": "buyer:b1",
        "from": "2026-12-01",
        "to": "2026-12-04",
        "opening_balance_cents": 1_000_000,
        "closing_balance_cents": 1_000_000 - 20_000 + 5000 + 4000,
        "totals": {"deposit": 5000, "return": 4000, "reversal": 10_000, "sale": -30_000},
        "lines": [
            {"date": "2026-12-01", "kind": "sale", "count": 2, "amount_cents": -20_000},
            {"date": "2026-12-02", "kind": "deposit", "count": 1, "amount_cents": 5000},
            {"date": "2026-12-02", "kind": "return", "count": 1, "amount_cents": 4000},
            {"date": "2026-12-04", "kind": "reversal", "count": 1, "amount_cents": 10_000},
            {"date": "2026-12-04", "kind": "sale", "count": 1, "amount_cents": -10_000},
        ],
    }
    assert adds_up(statement)
    assert statement["closing_balance_cents"] == (await m.api.ok("GET", "/v1/admin/buyers/b1"))["balance_cents"]
    # One day in the middle: its opening is everything before it.
    middle = await m.api.ok(
        "GET", "/v1/admin/statements", params={"account": "buyer:b1", "from": "2026-12-02", "to": "2026-12-03"}
    )
    assert (middle["opening_balance_cents"], middle["closing_balance_cents"]) == (980_000, 989_000)
    empty = await m.api.ok(
        "GET", "/v1/admin/statements", params={"account": "buyer:b1", "from": "2026-12-03", "to": "2026-12-03"}
    )
    assert (empty["lines"], empty["totals"]) == ([], {})
    assert empty["opening_balance_cents"] == empty["closing_balance_cents"] == 989_000


async def test_partner_and_house_statements(market: Market) -> None:
    m = market
    await history(m)
    partner = await m.api.ok(
        "GET", "/v1/admin/statements", params={"account": "partner:acme", "from": "2026-11-01", "to": "2026-12-31"}
    )
    assert partner["totals"] == {"payout": -6000, "return": -2800, "reversal": -7000, "sale": 21_000}
    assert (partner["opening_balance_cents"], partner["closing_balance_cents"]) == (0, 5200)
    assert adds_up(partner)
    house = await m.api.ok(
        "GET", "/v1/admin/statements", params={"account": "house:revenue", "from": "2026-12-01", "to": "2026-12-04"}
    )
    assert house["totals"] == {"return": -1200, "reversal": -3000, "sale": 9000} and adds_up(house)


async def test_csv_and_the_buyers_own_statement(market: Market) -> None:
    m = market
    await history(m)
    r = await m.api.request(
        "GET",
        "/v1/admin/statements",
        params={"account": "partner:acme", "from": "2026-12-01", "to": "2026-12-04", "format": "csv"},
    )
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert 'filename="statement-partner-acme-2026-12-01-2026-12-04.csv"' in r.headers["content-disposition"]
    assert r.text.splitlines() == [
        "date,kind,count,amount_cents",
        "2026-12-01,sale,2,14000",
        "2026-12-02,return,1,-2800",
        "2026-12-04,payout,1,-6000",
        "2026-12-04,reversal,1,-7000",
        "2026-12-04,sale,1,7000",
    ]
    key = await m.buyer_key("b1")
    own = await m.api.ok("GET", "/v1/buyer/statement", token=key, params={"from": "2026-12-01", "to": "2026-12-04"})
    assert own == await m.api.ok(
        "GET", "/v1/admin/statements", params={"account": "buyer:b1", "from": "2026-12-01", "to": "2026-12-04"}
    )
    r = await m.api.request(
        "GET", "/v1/buyer/statement", token=key, params={"from": "2026-12-01", "to": "2026-12-04", "format": "csv"}
    )
    assert r.text.splitlines()[0] == "date,kind,count,amount_cents" and len(r.text.splitlines()) == 6
    # A buyer key reads only its own statement: the account is not a parameter it can set.
    r = await m.api.request(
        "GET",
        "/v1/buyer/statement",
        token=key,
        params={"from": "2026-12-01", "to": "2026-12-04", "account": "buyer:b2"},
    )
    assert r.json()["account"] == "buyer:b1"
    assert (
        await m.api.request(
            "GET",
            "/v1/admin/statements",
            token=key,
            params={"account": "buyer:b1", "from": "2026-12-01", "to": "2026-12-04"},
        )
    ).status_code == 401


async def test_bad_statement_requests(market: Market) -> None:
    m = market
    cases = [
        ({"account": "bank:x", "from": "2026-12-01", "to": "2026-12-02"}, 422, "account"),
        ({"account": "buyer:b1", "from": "2026-12-1", "to": "2026-12-02"}, 422, "from"),
        ({"account": "buyer:b1", "from": "2026-13-01", "to": "2026-12-02"}, 422, "from"),
        ({"account": "buyer:b1", "from": "2026-12-03", "to": "2026-12-02"}, 422, "to"),
        ({"account": "buyer:b1", "from": "2025-01-01", "to": "2026-12-02"}, 422, "to"),
        ({"account": "buyer:b1", "from": "2026-12-01", "to": "2026-12-02", "format": "pdf"}, 422, "format"),
        ({"account": "buyer:b1", "to": "2026-12-02"}, 422, "from"),
        ({"account": "partner:ghost", "from": "2026-12-01", "to": "2026-12-02"}, 404, None),
    ]
    for params, status, field in cases:
        r = await m.api.request("GET", "/v1/admin/statements", params=params)
        assert r.status_code == status, (params, r.text)
        if field:
            assert r.json()["error"]["details"]["errors"][0]["field"] == field, (params, r.text)


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(
    first=st.integers(0, 6),
    length=st.integers(0, 6),
    account=st.sampled_from(["buyer:b1", "partner:acme", "house:revenue", "house:cash"]),
)
async def test_any_range_adds_up_to_the_ledger(market: Market, first: int, length: int, account: str) -> None:
    m = market
    if not await m.events("return."):
        await history(m)
    start = at("2026-11-30T00:00:00") + first * DAY_MS
    days = [f"2026-{'11' if d == 0 else '12'}-{30 if d == 0 else d:02d}" for d in (first, first + length)]
    statement = await m.api.ok(
        "GET", "/v1/admin/statements", params={"account": account, "from": days[0], "to": days[1]}
    )
    assert adds_up(statement)
    assert statement["opening_balance_cents"] == await ledger_balance(m, account, start)
    end = start + (length + 1) * DAY_MS
    assert statement["closing_balance_cents"] == await ledger_balance(m, account, end)


async def test_the_statement_command(market: Market, settings: Settings) -> None:
    m = market
    await history(m)
    base = [
        str(Path(sys.executable).parent / "pingpost"),
        "statement",
        "partner:acme",
        "--from",
        "2026-12-01",
        "--to",
        "2026-12-04",
        "--database",
        settings.database_url,
    ]

    def run(*extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, *extra], capture_output=True, text=True, timeout=60, check=False)

    as_csv = await asyncio.to_thread(run, "--csv")
    assert as_csv.returncode == 0, as_csv.stderr
    assert as_csv.stdout.splitlines()[0] == "date,kind,count,amount_cents" and len(as_csv.stdout.splitlines()) == 6
    table = await asyncio.to_thread(run)
    assert table.returncode == 0 and "opening balance" in table.stdout and "5200" in table.stdout
    bad = await asyncio.to_thread(
        subprocess.run, [*base[:2], "nobody", *base[3:]], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 2 and "validation_error" in bad.stderr
