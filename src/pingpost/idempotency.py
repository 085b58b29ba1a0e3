"""Idempotency-Key for partner POSTs, across processes and restarts (docs/security.md).

The first request with a key owns it (an `in_flight` row with a lease); the same key and body
replays the stored answer for 24 h; another body is 422; a live lease is 409; a lapsed lease (the
owner crashed) is taken over, and the taker answers from what was recorded, never repeating a
delivery. Only final answers are stored: a temporary refusal or a server error releases the key.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import orjson
from fastapi import Request, Response
from pydantic import BaseModel

from pingpost import errors
from pingpost.db import idempotency_repo
from pingpost.db.store import Store, Tx

DAY_MS = 86_400_000


def request_sha256(body: Any) -> str:
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True)
class KeyRef:
    """One Idempotency-Key of one campaign and endpoint, and the lease this request holds on it."""

    campaign_id: str
    endpoint: str
    key: str
    lease: int = 0

    @property
    def row_key(self) -> idempotency_repo.Key:
        return idempotency_repo.Key(self.campaign_id, self.endpoint, self.key)


@dataclass(frozen=True)
class Claim:
    """`replay` is a stored (status, body); else this request owns the key (`took_over` after a crash)
    under the lease `ref.lease`."""

    ref: KeyRef
    replay: tuple[int, bytes] | None = None
    took_over: bool = False
    progress: dict[str, Any] | None = None


class Idempotency:
    def __init__(self, store: Store, *, lease_ms: int) -> None:
        self.store = store
        self.lease_ms = lease_ms

    async def begin(self, ref: KeyRef, sha: str) -> Claim:
        """Own the key, replay its answer, or raise 422 idempotency_key_reused / 409 idempotency_in_flight."""

        async def unit(tx: Tx) -> Claim:
            now = await tx.now_ms()
            # The lease's end is also its fencing token: a take-over happens only after the previous
            # lease ended, so its lease ends strictly later.
            until = now + self.lease_ms
            owned = replace(ref, lease=until)
            key = ref.row_key
            if await idempotency_repo.claim(tx, key, sha=sha, now=now, until=until):
                return Claim(owned)
            row = await idempotency_repo.find(tx, key)
            if row is None or row["created_at"] <= now - DAY_MS:  # older than 24 h counts as absent
                await idempotency_repo.forget(tx, key)
                await idempotency_repo.claim(tx, key, sha=sha, now=now, until=until)
                return Claim(owned)
            if row["request_sha256"] != sha:
                raise errors.Unprocessable(
                    "this Idempotency-Key was used with another request body", code="idempotency_key_reused"
                )
            if row["state"] == "done":
                return Claim(ref, replay=(int(row["status"]), str(row["body"]).encode()))
            if not await idempotency_repo.take_over(tx, key, now=now, until=until):
                raise errors.Conflict("a request with this Idempotency-Key is in flight", code="idempotency_in_flight")
            return Claim(owned, took_over=True, progress=orjson.loads(row["body"]) if row["body"] else None)

        # The claim touches only idempotency_keys, so it leaves a write batch's shared auction state exact.
        # A ping's claim is no more durable than the ping decision it guards (both may be lost whole to an
        # OS crash, the claim never without the decision: the WAL loses only its tail).
        return await self.store.write(unit, batch_cache=True, durable=ref.endpoint != "ping")

    @staticmethod
    async def record_progress(tx: Tx, ref: KeyRef, progress: dict[str, Any]) -> None:
        """Note what the owner created (e.g. a direct post's ping id), so a taker can find it."""
        await idempotency_repo.note_progress(tx, ref.row_key, lease=ref.lease, body=orjson.dumps(progress).decode())

    @staticmethod
    async def record_answer(tx: Tx, ref: KeyRef, status: int, body: bytes) -> None:
        """Store the final answer, unless this owner's lease was taken over meanwhile."""
        await idempotency_repo.record(tx, ref.row_key, lease=ref.lease, status=status, body=body.decode())

    async def finish(self, ref: KeyRef, status: int, body: bytes) -> None:
        await self.store.write(lambda tx: self.record_answer(tx, ref, status, body))

    async def abandon(self, ref: KeyRef) -> None:
        """Forget the key after an answer that is not final (a server error, a temporary refusal), so
        the partner's retry runs afresh; nothing if another request took the lease over."""
        await self.store.write(lambda tx: idempotency_repo.release(tx, ref.row_key, lease=ref.lease))


# The refusals the same request would get again, whenever it is retried: stored and replayed like an
# answer. Every other refusal (401, 403, 409 but `already_posted`, 429, 503, 5xx) says "not now"; it
# releases the key, so the retry runs afresh (docs/security.md, "Idempotency-Key").
_FINAL_STATUSES = frozenset({400, 404, 410, 413, 422})


def is_final(exc: errors.PingpostError) -> bool:
    """Whether a refusal is the request's final answer, to be replayed under its Idempotency-Key."""
    return exc.status in _FINAL_STATUSES or (exc.status == 409 and exc.code == "already_posted")


KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
_KEY = re.compile(KEY_PATTERN)

# The header as the OpenAPI document states it (`openapi_extra` of the partner POSTs): FastAPI does not
# read it, `run_idempotent` does, after the body is validated (docs/protocol.md, Idempotency-Key).
KEY_HEADER: dict[str, Any] = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": "1 to 255 visible ASCII characters, scoped to the campaign and the endpoint, kept 24 h: the "
            "same key and body answers the stored answer (with `Idempotent-Replayed: true`), another body "
            "is 422 `idempotency_key_reused`, a request still running with it is 409 "
            "`idempotency_in_flight`.",
            "schema": {"type": "string", "pattern": KEY_PATTERN},
        }
    ]
}
REPLAYED: dict[str, Any] = {
    "headers": {
        "Idempotent-Replayed": {
            "description": "`true` when this is the stored answer of an earlier request with the same Idempotency-Key",
            "schema": {"type": "string", "enum": ["true"]},
        }
    }
}
Runner = Callable[[KeyRef | None, Claim | None], Awaitable[BaseModel]]


async def run_idempotent(  # noqa: PLR0913 - the request, its key and what runs under it
    request: Request,
    *,
    idem: Idempotency,
    campaign_id: str,
    endpoint: str,
    body: BaseModel,
    run: Runner,
    answer_in_unit: bool = False,
) -> Response:
    """Run a partner POST under its Idempotency-Key header, if it has one.

    With `answer_in_unit`, `run` stores the answer itself inside its effects' transaction (the ping);
    otherwise the answer is stored by one short transaction after the effects (post, direct post).
    """
    key = request.headers.get("idempotency-key")
    if key is None:
        return _json(200, (await run(None, None)).model_dump_json().encode())
    if not _KEY.match(key):
        raise errors.ValidationFailed.one("Idempotency-Key", "1 to 255 visible ASCII characters")
    claim = await idem.begin(KeyRef(campaign_id, endpoint, key), request_sha256(body.model_dump(mode="json")))
    ref = claim.ref
    if claim.replay is not None:
        status, stored = claim.replay
        response = _json(status, stored)
        response.headers["Idempotent-Replayed"] = "true"
        return response
    try:
        result = await run(ref, claim)
    except errors.PingpostError as exc:
        if is_final(exc):
            await idem.finish(ref, exc.status, orjson.dumps(exc.body()))
        else:
            await idem.abandon(ref)
        raise
    except BaseException:
        await idem.abandon(ref)
        raise
    answer = result.model_dump_json().encode()
    if not answer_in_unit:
        await idem.finish(ref, 200, answer)
    return _json(200, answer)


def _json(status: int, body: bytes) -> Response:
    return Response(content=body, status_code=status, media_type="application/json")
