"""Who is calling: admin, partner (campaign posting key), call platform or buyer keys."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from pingpost import errors
from pingpost.db import keys_repo
from pingpost.security import key_hash, same_secret


def bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise errors.Unauthorized("missing bearer token")
    return token.strip()


@dataclass(frozen=True)
class ApiKey:
    id: str
    kind: str
    buyer_id: str | None


async def api_key(request: Request, kind: str) -> ApiKey:
    """The active API key of `kind` presented in the Authorization header, or 401."""
    digest = key_hash(bearer(request))
    store = request.app.state.store

    row = await store.read(lambda tx: keys_repo.api_key_by_hash(tx, digest))
    # Looked up by the SHA-256 of a 256-bit random key, then compared in constant time all the same.
    if row is None or not same_secret(row["key_sha256"], digest) or row["status"] != "active" \
            or row["kind"] != kind:
        raise errors.Unauthorized(f"a valid {kind} key is required")
    return ApiKey(id=row["id"], kind=row["kind"], buyer_id=row["buyer_id"])


async def require_admin(request: Request) -> ApiKey:
    return await api_key(request, "admin")


async def require_call_platform(request: Request) -> ApiKey:
    return await api_key(request, "call_platform")


async def require_buyer(request: Request) -> ApiKey:
    return await api_key(request, "buyer")
