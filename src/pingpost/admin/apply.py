"""`pingpost apply`: a declarative setup (YAML) upserted by id through the admin services."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pingpost import actors, errors
from pingpost.admin import schemas as admin_schemas
from pingpost.admin.service import AdminService
from pingpost.admin.suppression import SuppressionService
from pingpost.config import Settings
from pingpost.ledger.service import LedgerService

ORDER = [
    ("verticals", "vertical"),
    ("offers", "offer"),
    ("partners", "partner"),
    ("buyers", "buyer"),
    ("suppression_lists", "suppression_list"),  # before the contracts that name them; entries via the API
    ("campaigns", "campaign"),
    ("contracts", "contract"),
    ("api_keys", "api_key"),
]
SECRET_FIELD = {"campaign": "posting_key", "api_key": "key"}


@dataclass
class ApplyResult:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deposits: list[str] = field(default_factory=list)
    secrets: dict[str, str] = field(default_factory=dict)  # generated keys, shown once


async def apply_setup(document: Any, admin: AdminService, ledger: LedgerService) -> ApplyResult:
    """Upsert `document`; every write is audited as the CLI's (docs/events.md, audit log)."""
    with actors.acting_as(actors.CLI):
        return await _apply_setup(document, admin, ledger)


async def _apply_setup(document: Any, admin: AdminService, ledger: LedgerService) -> ApplyResult:
    """Upsert every object of `document` in dependency order; raises PingpostError on invalid input."""
    if not isinstance(document, dict):
        raise errors.ValidationFailed.one("body", "a setup file is a mapping of resource lists")
    unknown = set(document) - {section for section, _ in ORDER} - {"deposits"}
    if unknown:
        raise errors.ValidationFailed.one(sorted(unknown)[0], "unknown section")
    result = ApplyResult()
    for section, kind in ORDER:
        for index, item in enumerate(document.get(section) or []):
            if not isinstance(item, dict) or not item.get("id"):
                raise errors.ValidationFailed.one(f"{section}.{index}.id", "every object in a setup needs an id")
            item = dict(item)
            secret = item.pop(SECRET_FIELD.get(kind, "\x00"), None)
            label = f"{kind} {item['id']}"
            if kind == "suppression_list":
                lists = SuppressionService(admin.store, None)
                wanted = lists.validate(item)
                if await lists.exists(item["id"]):
                    changed = await lists.rename(wanted)
                    (result.updated if changed else result.unchanged).append(label)
                else:
                    await lists.create(wanted)
                    result.created.append(label)
                continue
            if await admin.exists(kind, item["id"]):
                before = await admin.get(kind, item["id"])
                after = await admin.patch(kind, item["id"], {k: v for k, v in item.items() if k != "id"})
                (result.updated if after["updated_at"] != before["updated_at"] else result.unchanged).append(label)
            else:
                created = await admin.create(kind, admin.validate(kind, item), secret=secret)
                result.created.append(label)
                if secret is None and SECRET_FIELD.get(kind) in created:
                    result.secrets[label] = created[SECRET_FIELD[kind]]
    for index, dep in enumerate(document.get("deposits") or []):
        if not isinstance(dep, dict) or not dep.get("reference"):
            raise errors.ValidationFailed.one(f"deposits.{index}.reference", "deposits in a setup need a reference")
        body = admin_schemas.DepositIn.model_validate({k: v for k, v in dep.items() if k != "buyer"})
        txn = await ledger.deposit(str(dep.get("buyer")), body.amount_cents, body.reference)
        result.deposits.append(txn["transaction_id"])
    return result


async def apply_file(settings: Settings, document: Any) -> ApplyResult:
    """`apply_setup` over a store of its own (the CLI and the demo)."""
    from pingpost.db.store import open_store

    store = await open_store(settings.database_url)
    try:
        return await apply_setup(document, AdminService(store), LedgerService(store))
    finally:
        await store.close()
