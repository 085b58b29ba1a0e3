"""Admin service: create, read, list and patch every configuration resource, one short txn each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError

from pingpost import actors, errors
from pingpost.admin import schemas as s
from pingpost.db import admin_repo, audit_repo, traffic_repo
from pingpost.db.store import Store, Tx
from pingpost.ids import new_id, now_ms
from pingpost.security import key_hash, new_key
from pingpost.timefmt import rfc3339


def _status(body: dict[str, Any]) -> dict[str, Any]:
    return {"status": body.get("status", "active")}


@dataclass(frozen=True)
class Resource:
    kind: str
    table: str
    prefix: str
    model: type[BaseModel]
    columns: Callable[[dict[str, Any]], dict[str, Any]]
    refs: dict[str, tuple[str, str]] = field(default_factory=dict)  # body field -> (table, kind)
    immutable: tuple[str, ...] = ()
    list_filters: dict[str, str] = field(default_factory=dict)  # query name -> column


RESOURCES: dict[str, Resource] = {
    r.kind: r
    for r in [
        Resource("vertical", "verticals", "vrt", s.VerticalIn, lambda b: {}),
        Resource(
            "offer",
            "offers",
            "off",
            s.OfferIn,
            lambda b: {"vertical_id": b["vertical"], **_status(b)},
            refs={"vertical": ("verticals", "vertical")},
            immutable=("vertical",),
            list_filters={"vertical": "vertical_id", "status": "status"},
        ),
        Resource("partner", "partners", "prt", s.PartnerIn, _status, list_filters={"status": "status"}),
        Resource(
            "campaign",
            "campaigns",
            "cmp",
            s.CampaignIn,
            lambda b: {"partner_id": b["partner"], "offer_id": b["offer"], **_status(b)},
            refs={"partner": ("partners", "partner"), "offer": ("offers", "offer")},
            immutable=("partner", "offer"),
            list_filters={"partner": "partner_id", "offer": "offer_id", "status": "status"},
        ),
        Resource("buyer", "buyers", "buy", s.BuyerIn, _status, list_filters={"status": "status"}),
        Resource(
            "contract",
            "contracts",
            "ctr",
            s.ContractIn,
            lambda b: {"buyer_id": b["buyer"], "offer_id": b["offer"], **_status(b)},
            refs={"buyer": ("buyers", "buyer"), "offer": ("offers", "offer")},
            immutable=("buyer", "offer"),
            list_filters={"buyer": "buyer_id", "offer": "offer_id", "status": "status"},
        ),
        Resource(
            "api_key",
            "api_keys",
            "key",
            s.ApiKeyIn,
            lambda b: {"kind": b["kind"], "buyer_id": b.get("buyer"), "name": b["name"], "status": b["status"]},
            refs={"buyer": ("buyers", "buyer")},
            immutable=("kind", "buyer"),
            list_filters={"kind": "kind", "buyer": "buyer_id", "status": "status"},
        ),
    ]
}


def _dump(model: BaseModel) -> dict[str, Any]:
    body = model.model_dump(mode="json", exclude={"id"})
    return dict(body)


def _validate(resource: Resource, data: dict[str, Any]) -> BaseModel:
    try:
        return resource.model.model_validate(data)
    except ValidationError as exc:
        raise errors.ValidationFailed(
            [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()]
        ) from None


async def _check_refs(tx: Tx, resource: Resource, body: dict[str, Any]) -> None:
    for name, (table, kind) in resource.refs.items():
        ref = body.get(name)
        if ref is not None and not await admin_repo.exists(tx, table, ref):
            raise errors.ValidationFailed.one(name, f"unknown {kind} '{ref}'")


async def _check_contract(tx: Tx, body: dict[str, Any]) -> None:
    """Cross-object rules: filters and RTB fields name non-PII vertical fields; channels fit the offer."""
    offer = await admin_repo.body(tx, "offers", body["offer"])
    if offer is None:
        raise errors.ValidationFailed.one("offer", f"unknown offer '{body['offer']}'")
    vertical = await admin_repo.body(tx, "verticals", offer["vertical"]) or {"fields": []}
    fields = {f["name"]: f for f in vertical["fields"]}
    problems: list[dict[str, str]] = []
    for i, flt in enumerate(body.get("filters") or []):
        spec = fields.get(flt["field"])
        if spec is None and flt["field"] == "source":
            continue  # the ping's source (docs/protocol.md, Traffic controls)
        if spec is None:
            problems.append(
                {
                    "field": f"filters.{i}.field",
                    "message": f"'{flt['field']}' is not a field of vertical '{offer['vertical']}'",
                }
            )
        elif spec["pii"]:
            problems.append({"field": f"filters.{i}.field", "message": "filters on PII fields are not allowed"})
    rtb = body.get("rtb") or {}
    for i, name in enumerate(rtb.get("required_fields") or []):
        if name not in fields or fields[name]["pii"]:
            problems.append({"field": f"rtb.required_fields.{i}", "message": f"'{name}' is not a non-PII field"})
    if body.get("channels") is not None:
        for i, ch in enumerate(body["channels"]):
            if ch not in offer["channels"]:
                problems.append({"field": f"channels.{i}", "message": f"offer does not take channel '{ch}'"})
    for i, list_id in enumerate(body.get("suppression_lists") or []):
        found = await traffic_repo.suppression_list(tx, list_id)
        if found is None:
            problems.append({"field": f"suppression_lists.{i}", "message": f"unknown suppression list '{list_id}'"})
        elif found["scope"] == "buyer" and found["buyer_id"] != body["buyer"]:
            problems.append({"field": f"suppression_lists.{i}", "message": "a list of another buyer"})
    if problems:
        raise errors.ValidationFailed(problems)


def _keep_check_secrets(changes: dict[str, Any], current: dict[str, Any]) -> Any:
    """A verification list given without an `http` check's `auth` keeps the stored auth of the check
    with the same URL, so a secret need not be re-sent to change the list (docs/verification.md)."""
    given = changes["verification"]
    if not isinstance(given, list):
        return given
    stored = {c.get("url"): c.get("auth") for c in current.get("verification") or [] if c.get("type") == "http"}
    return [
        {**c, "auth": stored[c.get("url")]}
        if isinstance(c, dict) and c.get("type") == "http" and "auth" not in c and stored.get(c.get("url"))
        else c
        for c in given
    ]


class AdminService:
    def __init__(self, store: Store) -> None:
        self.store = store

    # --- views ---------------------------------------------------------------------------

    @staticmethod
    def _view(resource: Resource, row: Any, funds: Any = None) -> dict[str, Any]:
        if resource.kind == "api_key":
            body: dict[str, Any] = {
                "kind": row["kind"],
                "buyer": row["buyer_id"],
                "name": row["name"],
                "status": row["status"],
            }
        else:
            body = dict(orjson.loads(row["body"]))
        if resource.kind == "contract":
            for block in ("rtb", "delivery"):
                if body.get(block):
                    body[block]["auth"] = s.public_auth(body[block].get("auth"))
        if resource.kind in ("offer", "campaign") and "verification" in body:
            body["verification"] = s.public_verification(body["verification"])
        view = {
            "id": row["id"],
            **body,
            "created_at": rfc3339(row["created_at"]),
            "updated_at": rfc3339(row["updated_at"]),
        }
        if resource.kind == "buyer" and funds is not None:
            balance, holds = int(funds["balance_cents"]), int(funds["holds_cents"])
            view.update(
                balance_cents=balance,
                holds_cents=holds,
                available_cents=balance + int(funds["credit_limit_cents"]) - holds,
            )
        return view

    async def _funds(self, tx: Tx, buyer_id: str) -> Any:
        return await admin_repo.buyer_funds(tx, buyer_id, now=await tx.now_ms())

    async def _row(self, tx: Tx, resource: Resource, ident: str) -> Any:
        row = await admin_repo.row(tx, resource.table, ident)
        if row is None:
            raise errors.NotFound(resource.kind, ident)
        return row

    async def _full_view(self, tx: Tx, resource: Resource, ident: str) -> dict[str, Any]:
        row = await self._row(tx, resource, ident)
        funds = await self._funds(tx, ident) if resource.kind == "buyer" else None
        return self._view(resource, row, funds)

    # --- operations ----------------------------------------------------------------------

    async def create(self, kind: str, payload: BaseModel, *, secret: str | None = None) -> dict[str, Any]:
        """Create a resource; 409 when the id is taken, 422 when a reference is unknown.

        `secret` lets `pingpost apply` set a known posting key or API key (only its hash is stored).
        """
        resource = RESOURCES[kind]
        ident = getattr(payload, "id", None) or new_id(resource.prefix)
        body = _dump(payload)
        if kind in ("campaign", "api_key") and secret is None:
            secret = new_key("pp_live" if kind == "campaign" else "ppk")
        actor = actors.current()

        async def unit(tx: Tx) -> dict[str, Any]:
            await _check_refs(tx, resource, body)
            if kind == "contract":
                await _check_contract(tx, body)
            now = now_ms()
            cols = resource.columns(body)
            if kind == "campaign":
                cols["posting_key_sha256"] = key_hash(secret or "")
            if kind == "api_key":
                cols["key_sha256"] = key_hash(secret or "")
            else:
                cols["body"] = orjson.dumps(body).decode()
            if not await admin_repo.insert(
                tx, resource.table, {"id": ident, **cols, "created_at": now, "updated_at": now}
            ):
                raise errors.Conflict(f"{kind} '{ident}' already exists", details={"id": ident})
            if kind == "buyer":
                await admin_repo.create_buyer_funds(tx, ident, body["credit_limit_cents"])
                await admin_repo.sync_buyer_controls(tx, ident, body)
            if kind == "contract":
                await admin_repo.sync_contract_caps(tx, ident, body.get("caps") or {})
            await admin_repo.bump_config(tx)
            view = await self._full_view(tx, resource, ident)
            await audit_repo.record_audit(
                tx,
                actor=actor.as_dict(),
                action="create",
                object_type=kind,
                object_id=ident,
                before=None,
                after=view,
                now=now,
            )
            if kind == "campaign":
                view["posting_key"] = secret
                view["warnings"] = await self._campaign_warnings(tx, body)
            if kind == "api_key":
                view["key"] = secret
            return view

        return await self.store.write(unit)

    async def _campaign_warnings(self, tx: Tx, body: dict[str, Any]) -> list[str]:
        offer = await admin_repo.body(tx, "offers", body["offer"])
        if (
            offer
            and body["payout"]["type"] == "fixed"
            and offer["distribution"]["max_winners"] > 1
            and offer["distribution"]["rule"] != "exclusive"
        ):
            return ["a fixed payout is paid per sale: with max_winners > 1 one lead can pay it several times"]
        return []

    async def exists(self, kind: str, ident: str) -> bool:
        table = RESOURCES[kind].table
        return await self.store.read(lambda tx: admin_repo.exists(tx, table, ident))

    def validate(self, kind: str, data: dict[str, Any]) -> BaseModel:
        return _validate(RESOURCES[kind], data)

    async def get(self, kind: str, ident: str) -> dict[str, Any]:
        resource = RESOURCES[kind]
        return await self.store.read(lambda tx: self._full_view(tx, resource, ident))

    async def list(self, kind: str, *, limit: int, cursor: str | None, filters: dict[str, str]) -> dict[str, Any]:
        resource = RESOURCES[kind]
        columns = {resource.list_filters[name]: value for name, value in filters.items()}

        async def unit(tx: Tx) -> dict[str, Any]:
            rows = await admin_repo.page(tx, resource.table, filters=columns, cursor=cursor, limit=limit + 1)
            items = []
            for row in rows[:limit]:
                funds = await self._funds(tx, row["id"]) if kind == "buyer" else None
                items.append(self._view(resource, row, funds))
            return {"items": items, "next_cursor": rows[limit - 1]["id"] if len(rows) > limit else None}

        return await self.store.read(unit)

    async def patch(self, kind: str, ident: str, changes: dict[str, Any]) -> dict[str, Any]:
        """Merge `changes` (top-level fields) into the stored body and re-validate the whole object.

        Nested objects are replaced whole, except that an `rtb`/`delivery` block given without
        `auth` keeps the stored auth, so secrets need not be re-sent to change a URL.
        """
        resource = RESOURCES[kind]
        if "id" in changes and changes["id"] != ident:
            raise errors.ValidationFailed.one("id", "ids cannot be changed")
        changes.pop("id", None)
        actor = actors.current()

        async def unit(tx: Tx) -> dict[str, Any]:
            row = await self._row(tx, resource, ident)
            before = self._view(resource, row)
            if kind == "api_key":
                current: dict[str, Any] = {
                    "kind": row["kind"],
                    "buyer": row["buyer_id"],
                    "name": row["name"],
                    "status": row["status"],
                }
            else:
                current = dict(orjson.loads(row["body"]))
            merged, resumed = _merge(kind, resource, current, changes)
            body = _dump(_validate(resource, merged))
            if body == _dump(_validate(resource, current)):
                # nothing changed: only the audit entry of the operator's request is written
                await audit_repo.record_audit(
                    tx,
                    actor=actor.as_dict(),
                    action="update",
                    object_type=kind,
                    object_id=ident,
                    before=before,
                    after=before,
                    now=now_ms(),
                )
                return await self._full_view(tx, resource, ident)
            await _check_refs(tx, resource, body)
            if kind == "contract":
                await _check_contract(tx, body)
            cols = resource.columns(body)
            if kind != "api_key":
                cols["body"] = orjson.dumps(body).decode()
            await admin_repo.update(tx, resource.table, ident, {**cols, "updated_at": now_ms()})
            if kind == "buyer":
                await admin_repo.set_credit_limit(tx, ident, body["credit_limit_cents"])
                await admin_repo.sync_buyer_controls(tx, ident, body)
            if kind == "contract":
                await admin_repo.sync_contract_caps(tx, ident, body.get("caps") or {})
            if resumed and kind == "contract":
                await traffic_repo.reset_failures(tx, ident)
            await admin_repo.bump_config(tx)
            after = await self._full_view(tx, resource, ident)
            await audit_repo.record_audit(
                tx,
                actor=actor.as_dict(),
                action="update",
                object_type=kind,
                object_id=ident,
                before=before,
                after=after,
                now=now_ms(),
            )
            return after

        return await self.store.write(unit)


def _merge(
    kind: str, resource: Resource, current: dict[str, Any], changes: dict[str, Any]
) -> tuple[dict[str, Any], bool]:
    """The stored body with `changes` on top (secrets kept when not re-sent), and whether it resumes a
    paused contract or buyer."""
    for name in resource.immutable:
        if name in changes and changes[name] != current.get(name):
            raise errors.ValidationFailed.one(name, "cannot be changed after creation")
    merged = {**current, **changes}
    resumed = kind in ("contract", "buyer") and current.get("status") == "paused" and merged.get("status") == "active"
    if resumed:
        merged["paused_reason"] = None  # a resume clears the auto-pause (and its run of failures)
    for block in ("rtb", "delivery"):
        if (
            kind == "contract"
            and isinstance(changes.get(block), dict)
            and "auth" not in changes[block]
            and current.get(block)
        ):
            merged[block] = {**changes[block], "auth": current[block].get("auth")}
    if kind in ("offer", "campaign") and "verification" in changes:
        merged["verification"] = _keep_check_secrets(changes, current)
    return merged, resumed
