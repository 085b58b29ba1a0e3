"""Who is calling: admin, partner (campaign posting key), call platform or buyer keys.

Every route checks its key before the body is read (docs/security.md, "Authentication first"):
a router takes `route_class=SomeKeyCheck.route`, and a route that needs the caller depends on the
check itself (`Depends(check)`), which answers what the route class found without asking again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import Request, Response, Security
from fastapi.params import Depends
from fastapi.routing import APIRoute
from fastapi.security import HTTPBearer

from pingpost import actors, errors
from pingpost.db import keys_repo
from pingpost.security import key_hash, same_secret
from pingpost.services import services


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
    store = services(request).store

    row = await store.read(lambda tx: keys_repo.api_key_by_hash(tx, digest))
    # Looked up by the SHA-256 of a 256-bit random key, then compared in constant time all the same.
    if row is None or not same_secret(row["key_sha256"], digest) or row["status"] != "active" or row["kind"] != kind:
        raise errors.Unauthorized(f"a valid {kind} key is required")
    actors.set_actor(actors.Actor(key_id=row["id"], kind=row["kind"], via="api"))  # for the audit log
    return ApiKey(id=row["id"], kind=row["kind"], buyer_id=row["buyer_id"])


async def require_admin(request: Request) -> ApiKey:
    return await api_key(request, "admin")


async def require_call_platform(request: Request) -> ApiKey:
    return await api_key(request, "call_platform")


async def require_buyer(request: Request) -> ApiKey:
    return await api_key(request, "buyer")


Caller = TypeVar("Caller")
_CALLER = "pingpost.caller"  # where a route's key check leaves the caller, in the request's scope


class KeyCheck(Generic[Caller]):
    """The key check of a group of routes, run before FastAPI reads, parses or validates the body.

    FastAPI reads and parses the JSON body before it solves any dependency, so a key checked in a
    dependency came after a 400 for malformed JSON; `route` is an `APIRoute` class that checks the
    key first, then reads the body itself, then hands over to FastAPI (docs/security.md).

    `documented` is a router's `dependencies`: the bearer scheme in the OpenAPI document (`security`),
    which never refuses anything itself (the route class checks the key)."""

    def __init__(self, check: Callable[[Request], Awaitable[Caller]], *, scheme: str, description: str) -> None:
        self.check = check
        self.route = _key_first_route(check)
        self.documented: list[Depends] = [
            Security(
                HTTPBearer(
                    scheme_name=scheme, description=f"`Authorization: Bearer <key>`: {description}", auto_error=False
                )
            )
        ]

    def __call__(self, request: Request) -> Caller:
        """As a dependency: the caller the route's key check found."""
        caller: Caller = request.scope[_CALLER]
        return caller


def _key_first_route(check: Callable[[Request], Awaitable[Any]]) -> type[APIRoute]:
    class KeyFirstRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def key_first(request: Request) -> Response:
                request.scope[_CALLER] = await check(request)
                # Read here, after the key: a body over the limit is refused with our 413 (inside FastAPI's
                # handler the limit's exception became a 400), and FastAPI reuses the bytes read.
                await request.body()
                return await handler(request)

            return key_first

    return KeyFirstRoute


admin_key = KeyCheck(require_admin, scheme="adminKey", description="an `admin` API key")
call_platform_key = KeyCheck(require_call_platform, scheme="callPlatformKey", description="a `call_platform` API key")
buyer_key = KeyCheck(require_buyer, scheme="buyerKey", description="a `buyer` API key")
POSTING_KEY = {"scheme": "postingKey", "description": "a campaign's posting key"}
