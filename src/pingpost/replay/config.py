"""The configuration a replay runs under: the live one (or a version rebuilt by `replay/history.py`),
with a proposed `setup` laid over it in memory (docs/replay.md, How a replay runs). The setup has the
shape of a `pingpost apply` file; objects are matched by id, changed fields replace the stored ones
(the same merge and validation as `apply`), new objects are added. Nothing is written."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pingpost import errors
from pingpost.admin.apply import ORDER
from pingpost.admin.schemas import public_auth
from pingpost.admin.service import RESOURCES, _dump, _validate
from pingpost.domain.model import Buyer, Campaign, Contract, Offer, Snapshot, Vertical

Bodies = dict[str, dict[str, dict[str, Any]]]


def overlay(bodies: Bodies, setup: Any) -> tuple[Bodies, dict[str, int]]:
    """`bodies` with `setup` applied, and the setup's extra deposits by buyer (added to the opening
    balances). Raises `ValidationFailed` (422) naming the setup's field, as `apply` would."""
    if setup is None:
        return bodies, {}
    if not isinstance(setup, dict):
        raise errors.ValidationFailed.one("setup", "a setup is a mapping of resource lists")
    unknown = set(setup) - {section for section, _ in ORDER} - {"deposits"}
    if unknown:
        raise errors.ValidationFailed.one(f"setup.{sorted(unknown)[0]}", "unknown section")
    merged = merge_setup(bodies, setup)
    _check_refs(merged)
    deposits: dict[str, int] = {}
    for index, dep in enumerate(setup.get("deposits") or []):
        buyer, amount = (dep or {}).get("buyer"), (dep or {}).get("amount_cents")
        if buyer not in merged["buyer"]:
            raise errors.ValidationFailed.one(f"setup.deposits.{index}.buyer", f"unknown buyer '{buyer}'")
        if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
            raise errors.ValidationFailed.one(f"setup.deposits.{index}.amount_cents", "a positive number of cents")
        deposits[str(buyer)] = deposits.get(str(buyer), 0) + amount
    return merged, deposits


def merge_setup(bodies: Bodies, setup: dict[str, Any], keep: Callable[[str, str], bool] | None = None) -> Bodies:
    """`bodies` with the setup's objects merged by id (those `keep(kind, id)` keeps), references not
    checked. Raises `ValidationFailed` naming the setup's field."""
    merged: Bodies = {kind: dict(objects) for kind, objects in bodies.items()}
    for section, kind in ORDER:
        if kind == "api_key":
            continue  # keys decide nothing in an auction
        for index, item in enumerate(setup.get(section) or []):
            where = f"setup.{section}.{index}"
            if not isinstance(item, dict) or not item.get("id"):
                raise errors.ValidationFailed.one(f"{where}.id", "every object in a setup needs an id")
            ident = str(item["id"])
            if keep is None or keep(kind, ident):
                merged[kind][ident] = _merge(kind, merged[kind].get(ident), item, where)
    return merged


def _merge(kind: str, current: dict[str, Any] | None, item: dict[str, Any], where: str) -> dict[str, Any]:
    resource = RESOURCES[kind]
    changes = {k: v for k, v in item.items() if k not in ("id", "posting_key")}
    if current is not None:
        for name in resource.immutable:
            if name in changes and changes[name] != current.get(name):
                raise errors.ValidationFailed.one(f"{where}.{name}", "cannot be changed after creation")
        data = {**current, **changes}
    else:
        data = changes
    try:
        return _dump(_validate(resource, data))
    except errors.ValidationFailed as failed:
        problems = failed.details.get("errors") or [{"field": "body", "message": str(failed)}]
        raise errors.ValidationFailed(
            [{"field": f"{where}.{p['field']}", "message": p["message"]} for p in problems]
        ) from None


def _check_refs(bodies: Bodies) -> None:
    for kind in ("offer", "campaign", "contract"):
        for ident, body in bodies[kind].items():
            for name, (_, ref_kind) in RESOURCES[kind].refs.items():
                ref = body.get(name)
                if ref is not None and ref not in bodies[ref_kind]:
                    raise errors.ValidationFailed.one(f"setup.{kind}.{ident}.{name}", f"unknown {ref_kind} '{ref}'")


def build_snapshot(bodies: Bodies) -> Snapshot:
    """The auction's configuration snapshot from bodies (as `db/snapshot_repo.load_snapshot` builds it
    from rows)."""
    snap = Snapshot(version=0)
    for ident, body in bodies["vertical"].items():
        snap.verticals[ident] = Vertical.from_body(ident, body)
    for ident, body in bodies["offer"].items():
        snap.offers[ident] = Offer.from_body(ident, body)
    for ident, body in bodies["partner"].items():
        snap.partner_status[ident] = body.get("status", "active")
    for ident, body in bodies["buyer"].items():
        snap.buyers[ident] = Buyer.from_body(ident, body.get("status", "active"), body)
    for ident, body in bodies["campaign"].items():
        snap.campaigns[ident] = Campaign.from_body(ident, body)
    for ident, body in bodies["contract"].items():
        contract = Contract.from_body(ident, body)
        snap.contracts[ident] = contract
        snap.contracts_by_offer.setdefault(contract.offer_id, []).append(contract)
    for contracts in snap.contracts_by_offer.values():
        contracts.sort(key=lambda c: c.rank_key)
    return snap


def credit_limits(bodies: Bodies) -> dict[str, int]:
    return {ident: int(body.get("credit_limit_cents") or 0) for ident, body in bodies["buyer"].items()}


def redacted(setup: dict[str, Any] | None) -> dict[str, Any] | None:
    """A setup as a job keeps it: auth blocks shown as the admin API shows them, no posting keys."""
    if setup is None:
        return None
    out: dict[str, Any] = {}
    for section, items in setup.items():
        if not isinstance(items, list):
            out[section] = items
            continue
        kept = []
        for item in items:
            if isinstance(item, dict):
                item = {k: v for k, v in item.items() if k not in ("posting_key", "key")}
                for block in ("rtb", "delivery"):
                    if isinstance(item.get(block), dict) and "auth" in item[block]:
                        auth = item[block]["auth"]
                        item[block] = {**item[block], "auth": public_auth(auth) if isinstance(auth, dict) else None}
            kept.append(item)
        out[section] = kept
    return out
