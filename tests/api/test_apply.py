"""`pingpost apply`: the example setup applies through the admin services, and twice is a no-op."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pingpost import errors
from pingpost.admin.apply import apply_setup
from pingpost.admin.service import AdminService
from pingpost.db.store import Store, Tx
from pingpost.ledger.service import LedgerService
from pingpost.security import key_hash

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "medicare.yaml"


async def snapshot(store: Store) -> dict[str, list[tuple[object, ...]]]:
    async def unit(tx: Tx) -> dict[str, list[tuple[object, ...]]]:
        out = {}
        for table in (
            "verticals",
            "offers",
            "partners",
            "campaigns",
            "buyers",
            "contracts",
            "ledger_entries",
            "buyer_funds",
            "contract_usage",
            "config_version",
        ):
            out[table] = [tuple(r) for r in await tx.fetch(f"SELECT * FROM {table} ORDER BY 1")]
        return out

    return await store.read(unit)


async def test_apply_example_twice_changes_nothing(store: Store) -> None:
    admin, ledger = AdminService(store), LedgerService(store)
    document = yaml.safe_load(EXAMPLE.read_text())
    first = await apply_setup(document, admin, ledger)
    assert "contract charlie-rtb" in first.created and not first.updated
    before = await snapshot(store)
    second = await apply_setup(document, admin, ledger)
    assert second.created == [] and second.updated == []
    assert len(second.unchanged) == len(first.created)
    assert await snapshot(store) == before
    buyer = await admin.get("buyer", "alpha")
    assert buyer["balance_cents"] == 1_000_000
    # the known demo posting key is stored only as a hash
    rows = await store.read(lambda tx: tx.fetch("SELECT posting_key_sha256 FROM campaigns"))
    assert rows[0][0] == key_hash("pp_demo_acme_medicare")
    # a changed document updates only what changed
    document["contracts"][0]["price_cents"] = 8600
    third = await apply_setup(document, admin, ledger)
    assert third.updated == ["contract alpha-rtb"]
    assert (await admin.get("contract", "alpha-rtb"))["price_cents"] == 8600


async def test_apply_refuses_invalid_documents(store: Store) -> None:
    admin, ledger = AdminService(store), LedgerService(store)
    with pytest.raises(errors.ValidationFailed):
        await apply_setup({"buyers": [{"name": "no id"}]}, admin, ledger)
    with pytest.raises(errors.ValidationFailed):
        await apply_setup({"buyers": [{"id": "b", "name": "B", "credit_limit_cents": -1}]}, admin, ledger)
    with pytest.raises(errors.ValidationFailed):
        await apply_setup({"sellers": []}, admin, ledger)
    assert (await snapshot(store))["buyers"] == []


TRAFFIC_SETUP = """
verticals:
  - {id: medicare, name: Medicare, fields: [{name: state, type: state, required: true},
     {name: phone, type: phone, pii: true}]}
offers:
  - {id: med, name: Medicare, vertical: medicare, min_margin_cents: 500}
partners:
  - {id: acme, name: Acme}
buyers:
  - id: alpha
    name: Alpha
    timezone: America/Chicago
    caps: {spend_daily_cents: 100000}
    low_balance_cents: 20000
    pause_on_low_balance: true
suppression_lists:
  - {id: alpha-dnc, name: Alpha DNC, scope: buyer, buyer: alpha}
  - {id: house, name: House DNC}
campaigns:
  - id: acme-med
    name: Acme
    partner: acme
    offer: med
    posting_key: pp_traffic_key
    sources: {allow: null, block: [spam.net]}
    duplicate_ping_window_s: 600
    payout:
      type: margin_percent
      percent: 12.5
      overrides: [{buyer: alpha, payout: {type: margin, amount_cents: 1500}}]
contracts:
  - id: alpha-fixed
    name: Alpha
    buyer: alpha
    offer: med
    price_cents: 5000
    rank_factor_pct: 120
    suppression_lists: [alpha-dnc]
    auto_pause: {max_consecutive_failures: 10}
    caps: {daily: 100, spend_weekly_cents: 400000}
    filters: [{field: source, op: not_in, value: [bad.src]}]
"""


async def test_apply_traffic_controls_twice_changes_nothing(store: Store) -> None:
    admin, ledger = AdminService(store), LedgerService(store)
    document = yaml.safe_load(TRAFFIC_SETUP)
    first = await apply_setup(document, admin, ledger)
    assert "suppression_list house" in first.created and "contract alpha-fixed" in first.created
    second = await apply_setup(document, admin, ledger)
    assert second.created == [] and second.updated == []
    contract = await admin.get("contract", "alpha-fixed")
    assert contract["rank_factor_pct"] == 120 and contract["caps"]["spend_weekly_cents"] == 400000
    campaign = await admin.get("campaign", "acme-med")
    assert campaign["payout"]["overrides"][0]["payout"]["amount_cents"] == 1500
    assert campaign["sources"]["block"] == ["spam.net"] and campaign["duplicate_ping_window_s"] == 600
    document["suppression_lists"][1]["name"] = "House do-not-call"
    third = await apply_setup(document, admin, ledger)
    assert third.updated == ["suppression_list house"]
    document["suppression_lists"][1]["scope"] = "buyer"
    with pytest.raises(errors.PingpostError):
        await apply_setup(document, admin, ledger)
