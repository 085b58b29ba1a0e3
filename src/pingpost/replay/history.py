"""The configuration as it stood (docs/replay.md, The configuration): the live bodies with the audit
log's changes undone, newest first, back to the range's start, one version per instant at which
something changed; and a proposed setup laid over each version. Pure: the rows are read by the caller.

An audit entry's `before` is the object as the admin API showed it (a view: `id`, timestamps and, for a
buyer, its funds beside the body; auth blocks reduced to their type; secrets `[redacted]`). Its body is
the view's fields of the resource, with each secret taken from the next newer version of the object
(the live one at the end of the chain): secrets decide nothing in an auction, and the body must still
validate. A secret with nothing to take it from stays `[redacted]`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from pingpost import errors
from pingpost.admin.service import RESOURCES, _dump, _validate
from pingpost.domain.audit import REDACTED
from pingpost.replay import config
from pingpost.replay.config import Bodies
from pingpost.timefmt import rfc3339

# What an auth block of each type holds besides `type` (and a header's `name`): dropped by redaction.
_AUTH_SECRETS = {"bearer": ("token",), "header": ("value",), "basic": ("username", "password")}


@dataclass(frozen=True, slots=True)
class Change:
    """One change of a configuration object at `at`: `before` is the audit entry's (None: the object
    did not exist); `auto_pause` marks a pause written as an event (undone: active again)."""

    at: int
    kind: str
    ident: str
    before: dict[str, Any] | None = None
    auto_pause: bool = False


def changes(audit: Sequence[Mapping[str, Any]], events: Sequence[Mapping[str, Any]]) -> list[Change]:
    """The changes from the rows of `replay_repo.config_changes` and `replay_repo.auto_pauses`, oldest
    first (an audit entry before an event of the same instant)."""
    found = [
        Change(
            int(r["at"]),
            str(r["object_type"]),
            str(r["object_id"]),
            None if r["before"] is None else orjson.loads(r["before"]),
        )
        for r in audit
    ]
    for r in events:
        data = orjson.loads(r["data"])
        # an auto-pause is written after the decision that caused it, in the same millisecond: it
        # applies from the next one (that ping was decided before the pause)
        at = int(r["created_at"]) + 1
        if r["type"] == "contract.auto_paused":
            found.append(Change(at, "contract", str(data["contract_id"]), auto_pause=True))
        elif data.get("paused"):
            found.append(Change(at, "buyer", str(data["buyer_id"]), auto_pause=True))
    return sorted(found, key=lambda c: c.at)


def versions(live: Bodies, found: Sequence[Change], *, start: int) -> list[tuple[int, Bodies]]:
    """The bodies as they stood at `start`, then from each instant at which one changed: `[(start,
    bodies), (at, bodies), ...]`, oldest first. Changes before `start` are ignored; a change that
    changed nothing (a PATCH of equal fields) makes no version. Versions share unchanged bodies."""
    current: Bodies = {kind: dict(objects) for kind, objects in live.items()}
    later: list[tuple[int, Bodies]] = []
    for change in sorted((c for c in found if c.at >= start), key=lambda c: c.at, reverse=True):
        objects = current.get(change.kind)
        if objects is None:
            continue  # not a kind the auction reads
        now = objects.get(change.ident)
        was = _undo(change, now)
        if was == now:
            continue
        if not later or later[-1][0] != change.at:
            later.append((change.at, current))
        current = {**current, change.kind: dict(objects)}  # the version just kept stays as it was
        if was is None:
            del current[change.kind][change.ident]
        else:
            current[change.kind][change.ident] = was
    return [(start, current), *reversed(later)]


def _undo(change: Change, now: dict[str, Any] | None) -> dict[str, Any] | None:
    if change.auto_pause:
        return None if now is None else {**now, "status": "active", "paused_reason": None}
    if change.before is None:
        return None
    return body_from_view(change.kind, change.ident, change.before, now, at=change.at)


def body_from_view(
    kind: str, ident: str, view: dict[str, Any], secrets: dict[str, Any] | None, *, at: int
) -> dict[str, Any]:
    """The stored body of an audit entry's view: the resource's fields, secrets from `secrets` (the
    same object's newer body) where the view shows them redacted, validated as the admin API would."""
    resource = RESOURCES[kind]
    fields = resource.model.model_fields
    data = _restore({k: v for k, v in view.items() if k in fields and k != "id"}, secrets)
    try:
        return _dump(_validate(resource, data))
    except errors.ValidationFailed as failed:
        problems = failed.details.get("errors") or []
        raise errors.ValidationFailed(
            [
                {
                    "field": f"history.{kind}.{ident}.{p['field']}",
                    "message": f"{p['message']} (as it stood before {rfc3339(at)})",
                }
                for p in problems
            ]
        ) from None


def _restore(value: Any, source: Any) -> Any:
    if isinstance(value, dict):
        src = source if isinstance(source, dict) else {}
        return {
            name: _auth(item, src.get("auth"))
            if name == "auth" and isinstance(item, dict)
            else _restore(item, src.get(name))
            for name, item in value.items()
        }
    if isinstance(value, list):
        items = source if isinstance(source, list) else []
        return [_restore(item, items[i] if i < len(items) else None) for i, item in enumerate(value)]
    if value == REDACTED and source is not None:
        return source
    return value


def _auth(shown: dict[str, Any], stored: Any) -> dict[str, Any]:
    """A redacted auth block: the newer one when it is of the same type (and header name), else the
    shown one with its secrets `[redacted]`."""
    if isinstance(stored, dict) and all(stored.get(k) == v for k, v in shown.items()):
        return stored
    return {**shown, **dict.fromkeys(_AUTH_SECRETS.get(str(shown.get("type")), ()), REDACTED)}


def proposed(history: Sequence[tuple[int, Bodies]], live: Bodies, setup: Any) -> list[tuple[int, Bodies]]:
    """The setup over each version (validated against the live configuration first, by
    `config.overlay`): an object the setup changes that did not exist yet is left out of the versions
    before it existed; an object the setup adds is in every version in which what it names exists."""
    if not setup:
        return list(history)
    out = []
    for at, bodies in history:

        def keep(kind: str, ident: str, bodies: Bodies = bodies) -> bool:
            return ident in bodies[kind] or ident not in live[kind]

        try:
            merged = config.merge_setup(bodies, setup, keep)
        except errors.ValidationFailed as failed:
            problems = failed.details.get("errors") or []
            raise errors.ValidationFailed(
                [
                    {**p, "message": f"{p['message']} (against the configuration as it stood at {rfc3339(at)})"}
                    for p in problems
                ]
            ) from None
        for kind in ("offer", "campaign", "contract"):  # in the order objects name each other
            for ident in [i for i in merged[kind] if i not in bodies[kind]]:
                body = merged[kind][ident]
                if any(
                    body.get(name) is not None and body.get(name) not in merged[ref_kind]
                    for name, (_, ref_kind) in RESOURCES[kind].refs.items()
                ):
                    del merged[kind][ident]
        out.append((at, merged))
    return out
