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
