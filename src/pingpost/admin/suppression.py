"""Suppression lists (docs/protocol.md, Traffic controls): consumers no buyer (or one buyer) may get.

Values are normalized as consumer hashes are (phone: 10 NANP digits; email: trimmed, lower-case),
hashed with SHA-256 and stored only as the keyed HMAC the pings and posts carry, so a match is an
equality of keyed hashes and no plain value is ever stored or answered: a list shows counts only."""

from __future__ import annotations

import csv
import io
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, model_validator

from pingpost import actors, errors
from pingpost.db import admin_repo, audit_repo, traffic_repo
from pingpost.db.store import Store, Tx
from pingpost.domain.consumer import email_sha256, phone_sha256
from pingpost.fields import Slug, Strict, Text
from pingpost.ids import new_id, now_ms
from pingpost.security import SecretKey
from pingpost.timefmt import rfc3339

MAX_ENTRIES = 100_000  # values in one request


class SuppressionListIn(Strict):
    """`buyer` is required for `scope: buyer` lists and only for them; it names an existing buyer."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {
                    "properties": {"scope": {"const": "buyer"}, "buyer": {"type": "string"}},
                    "required": ["scope", "buyer"],
                },
                {"properties": {"scope": {"const": "global"}, "buyer": {"type": "null"}}},
            ]
        }
    )

    id: Slug | None = None
    name: Text
    scope: Literal["global", "buyer"] = "global"
    buyer: Slug | None = None

    @model_validator(mode="after")
    def _buyer_scope(self) -> SuppressionListIn:
        if (self.scope == "buyer") != (self.buyer is not None):
            raise ValueError("`buyer` is required for buyer lists and only for them")
        return self


class SuppressionEntriesIn(Strict):
    """Phones (any formatting of a NANP number) and emails; never answered back."""

    phones: list[Text] = Field(default_factory=list, max_length=MAX_ENTRIES)
    emails: list[Text] = Field(default_factory=list, max_length=MAX_ENTRIES)


def parse_csv(text: str) -> SuppressionEntriesIn:
    """One value a line (the first column); a value with `@` is an email, anything else a phone; a
    header line naming `phone` or `email` and blank lines are skipped."""
    phones: list[str] = []
    emails: list[str] = []
    try:
        rows = list(csv.reader(io.StringIO(text)))
    except csv.Error:
        raise errors.ValidationFailed.one("body", "not CSV: one phone or email a line") from None
    for row in rows:
        value = row[0].strip() if row else ""
        if not value or value.lower() in ("phone", "email", "phones", "emails", "value"):
            continue
        (emails if "@" in value else phones).append(value)
    if len(phones) + len(emails) > MAX_ENTRIES:
        raise errors.ValidationFailed.one("body", f"at most {MAX_ENTRIES} values a request")
    try:
        return SuppressionEntriesIn(phones=phones, emails=emails)
    except ValidationError:
        raise errors.ValidationFailed.one("body", "a value is not a phone or an email") from None


class SuppressionService:
    def __init__(self, store: Store, secret: SecretKey | None) -> None:
        self.store = store
        self.secret = secret  # None: lists only (`pingpost apply`), no entries

    @staticmethod
    def validate(data: dict[str, Any]) -> SuppressionListIn:
        try:
            return SuppressionListIn.model_validate(data)
        except ValidationError as exc:
            raise errors.ValidationFailed(
                [{"field": ".".join(str(p) for p in e["loc"]) or "body", "message": e["msg"]} for e in exc.errors()]
            ) from None

    async def exists(self, ident: str) -> bool:
        return await self.store.read(lambda tx: traffic_repo.suppression_list(tx, ident)) is not None

    async def rename(self, body: SuppressionListIn) -> bool:
        """`pingpost apply` on an existing list: its name may change, its scope and buyer may not."""
        ident = body.id or ""
        actor = actors.current()

        async def unit(tx: Tx) -> bool:
            row = await traffic_repo.suppression_list(tx, ident)
            if row is None:
                raise errors.NotFound("suppression_list", ident)
            if (row["scope"], row["buyer_id"]) != (body.scope, body.buyer):
                raise errors.ValidationFailed.one("scope", "cannot be changed after creation")
            if row["name"] == body.name:
                return False
            before = await self._view(tx, ident, row)
            await traffic_repo.rename_suppression_list(tx, ident, body.name, now_ms())
            after = await self._view(tx, ident)
            await _audit(tx, actor, "update", ident, before, after)
            return True

        return await self.store.write(unit)

    def keyed_entries(self, body: SuppressionEntriesIn) -> list[tuple[str, str]]:
        """(kind, keyed hash) of every value; 422 naming the position (never the value) of a bad one."""
        assert self.secret is not None, "entries need the server's secret"
        out: list[tuple[str, str]] = []
        problems: list[dict[str, str]] = []
        for i, phone in enumerate(body.phones):
            digest = phone_sha256(phone)
            if digest is None:
                problems.append({"field": f"phones.{i}", "message": "not a 10-digit NANP phone number"})
            else:
                out.append(("phone", self.secret.keyed(digest)))
        for i, email in enumerate(body.emails):
            if "@" not in email:
                problems.append({"field": f"emails.{i}", "message": "not an email address"})
            else:
                out.append(("email", self.secret.keyed(email_sha256(email))))
        if problems:
            raise errors.ValidationFailed(problems[:50])
        return out

    async def create(self, body: SuppressionListIn) -> dict[str, Any]:
        ident = body.id or new_id("sup")
        actor = actors.current()

        async def unit(tx: Tx) -> dict[str, Any]:
            if body.buyer is not None and not await admin_repo.exists(tx, "buyers", body.buyer):
                raise errors.ValidationFailed.one("buyer", f"unknown buyer '{body.buyer}'")
            now = now_ms()
            row = {
                "id": ident,
                "name": body.name,
                "scope": body.scope,
                "buyer_id": body.buyer,
                "created_at": now,
                "updated_at": now,
            }
            if not await traffic_repo.insert_suppression_list(tx, row):
                raise errors.Conflict(f"suppression list '{ident}' already exists", details={"id": ident})
            await admin_repo.bump_config(tx)  # global lists apply to every contract: the snapshot knows them
            view = await self._view(tx, ident)
            await _audit(tx, actor, "create", ident, None, view)
            return view

        return await self.store.write(unit)

    async def get(self, ident: str) -> dict[str, Any]:
        return await self.store.read(lambda tx: self._view(tx, ident))

    async def list(self, *, cursor: str | None, limit: int) -> dict[str, Any]:
        async def unit(tx: Tx) -> dict[str, Any]:
            rows = await traffic_repo.suppression_lists_page(tx, cursor=cursor, limit=limit + 1)
            items = [await self._view(tx, r["id"], r) for r in rows[:limit]]
            return {"items": items, "next_cursor": rows[limit - 1]["id"] if len(rows) > limit else None}

        return await self.store.read(unit)

    async def change(self, ident: str, body: SuppressionEntriesIn, *, add: bool) -> dict[str, Any]:
        """Add (or remove) the values; answers the list with its new counts."""
        entries = self.keyed_entries(body)
        actor = actors.current()

        async def unit(tx: Tx) -> dict[str, Any]:
            if await traffic_repo.suppression_list(tx, ident) is None:
                raise errors.NotFound("suppression_list", ident)
            before = await self._view(tx, ident)
            if add:
                await traffic_repo.add_suppression_entries(tx, ident, entries)
            else:
                await traffic_repo.remove_suppression_entries(tx, ident, [h for _, h in entries])
            await traffic_repo.touch_suppression_list(tx, ident, now_ms())
            after = await self._view(tx, ident)
            # Counts only: the values (and their hashes) never reach the audit log.
            await _audit(tx, actor, "add_entries" if add else "delete_entries", ident, before, after)
            return after

        return await self.store.write(unit)

    @staticmethod
    async def _view(tx: Tx, ident: str, row: Any = None) -> dict[str, Any]:
        row = row if row is not None else await traffic_repo.suppression_list(tx, ident)
        if row is None:
            raise errors.NotFound("suppression_list", ident)
        return {
            "id": row["id"],
            "name": row["name"],
            "scope": row["scope"],
            "buyer": row["buyer_id"],
            "counts": await traffic_repo.suppression_counts(tx, row["id"]),
            "created_at": rfc3339(row["created_at"]),
            "updated_at": rfc3339(row["updated_at"]),
        }


async def _audit(tx: Tx, actor: actors.Actor, action: str, ident: str, before: Any, after: Any) -> None:
    await audit_repo.record_audit(
        tx,
        actor=actor.as_dict(),
        action=action,
        object_type="suppression_list",
        object_id=ident,
        before=before,
        after=after,
        now=now_ms(),
    )
