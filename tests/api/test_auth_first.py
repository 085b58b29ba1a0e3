"""Authentication first (SPEC 12): every endpoint checks its key before it reads the body, so an
unknown or wrong-kind key is 401 whatever the body holds (invalid, malformed, not JSON at all)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest

from pingpost.app import create_app
from pingpost.config import Settings
from tests.api.setup_data import base_setup, campaign
from tests.conftest import ADMIN_TOKEN, Api

# Bodies FastAPI or pydantic would refuse with 400 or 422 if it looked at them before the key.
BAD_BODIES: list[tuple[str, dict[str, Any]]] = [
    ("malformed", {"content": b"{not json", "headers": {"content-type": "application/json"}}),
    ("not_an_object", {"json": []}),
    ("invalid", {"json": {"lead": 5, "ping_id": 7, "bid_id": None, "unknown_field": 1}}),
    ("empty", {"content": b"", "headers": {"content-type": "application/json"}}),
    ("too_large", {"content": b"x" * 300_000, "headers": {"content-type": "application/json"}}),
]
PUBLIC = {"/healthz", "/readyz", "/metrics"}


async def keys(api: Api) -> dict[str, str]:
    """One valid key of each kind, besides the admin token."""
    await base_setup(api)
    posting = await campaign(api)
    await api.ok("POST", "/v1/admin/buyers", 201, json={"id": "buyer-a", "name": "A"})
    made = {
        kind: (await api.ok("POST", "/v1/admin/api-keys", 201, json={"kind": kind, "name": kind, **extra}))["key"]
        for kind, extra in (("call_platform", {}), ("buyer", {"buyer": "buyer-a"}))
    }
    return {"posting": posting, **made}


def routes(settings: Settings) -> list[tuple[str, str]]:
    """Every (method, path) the app serves under /v1, path parameters filled in."""
    found = []
    for path, operations in create_app(settings).openapi()["paths"].items():
        if path.startswith("/v1/"):
            found += [(method.upper(), re.sub(r"\{[^}]+\}", "x-1", path)) for method in sorted(operations)]
    return found


def wrong_kinds(path: str, valid: dict[str, str]) -> list[str]:
    """The keys that must not open `path`: every kind but the one it takes."""
    right = (
        "posting"
        if path in ("/v1/ping", "/v1/post", "/v1/direct-post")
        else "call_platform"
        if path.startswith("/v1/calls/")
        else "buyer"
        if path.startswith("/v1/buyer/")
        else "admin"
    )
    every = {**valid, "admin": ADMIN_TOKEN}
    return [token for kind, token in every.items() if kind != right]


def test_every_v1_route_is_covered(settings: Settings) -> None:
    found = routes(settings)
    assert ("POST", "/v1/ping") in found and ("POST", "/v1/calls/x-1/connected") in found
    assert ("PATCH", "/v1/admin/campaigns/x-1") in found and ("GET", "/v1/buyer/sales") in found


@pytest.mark.parametrize(
    "path",
    [
        "/v1/ping",
        "/v1/post",
        "/v1/direct-post",
        "/v1/calls/png_1/connected",
        "/v1/calls/png_1/failed",
        "/v1/calls/png_1/completed",
        "/v1/admin/campaigns",
    ],
)
@pytest.mark.parametrize(("name", "body"), BAD_BODIES)
async def test_unknown_key_with_a_bad_body_is_401(api: Api, path: str, name: str, body: dict[str, Any]) -> None:
    for token in ("pp_unknown_key", None):
        r = await api.request("POST", path, token=token, **body)
        assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized"), (token, r.text)


async def test_wrong_kind_of_key_with_a_bad_body_is_401_on_every_route(api: Api, settings: Settings) -> None:
    valid = await keys(api)
    for method, path in routes(settings):
        kwargs: dict[str, Any] = (
            {} if method == "GET" else {"content": b"{not json", "headers": {"content-type": "application/json"}}
        )
        query = "?limit=0&cursor=" + "x" * 300  # invalid query parameters, too
        for token in [*wrong_kinds(path, valid), "pp_unknown_key"]:
            r = await api.request(method, path + query, token=token, **kwargs)
            assert (r.status_code, r.json()["error"]["code"]) == (401, "unauthorized"), (method, path, r.text)


async def test_right_key_still_gets_the_body_errors(api: Api) -> None:
    valid = await keys(api)
    for path in ("/v1/ping", "/v1/post", "/v1/direct-post"):
        r = await api.request(
            "POST", path, token=valid["posting"], content=b"{not json", headers={"content-type": "application/json"}
        )
        assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json"), (path, r.text)
        r = await api.request("POST", path, token=valid["posting"], json={"lead": 5})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error"), (path, r.text)
    r = await api.request("POST", "/v1/calls/png_1/connected", token=valid["call_platform"], json={"lead": 5})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "validation_error")
    r = await api.request(
        "POST", "/v1/admin/campaigns", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert (r.status_code, r.json()["error"]["code"]) == (400, "malformed_json")


async def test_paused_campaign_is_403_whatever_the_body(api: Api) -> None:
    valid = await keys(api)
    await api.ok("PATCH", "/v1/admin/campaigns/acme-med", json={"status": "paused"})
    for path in ("/v1/ping", "/v1/post", "/v1/direct-post"):
        r = await api.request("POST", path, token=valid["posting"], json={"lead": 5})
        assert (r.status_code, r.json()["error"]["code"]) == (403, "forbidden"), (path, r.text)


async def test_body_over_the_limit_is_413_once_the_key_is_good(api: Api) -> None:
    """Declared or streamed (chunked, no Content-Length), on the ping entry point and the routed ones."""
    valid = await keys(api)

    async def chunked() -> AsyncIterator[bytes]:
        for _ in range(40):
            yield b" " * 10_000

    for path, token in (
        ("/v1/ping", valid["posting"]),
        ("/v1/post", valid["posting"]),
        ("/v1/direct-post", valid["posting"]),
        ("/v1/calls/png_1/failed", valid["call_platform"]),
        ("/v1/admin/partners", ADMIN_TOKEN),
    ):
        for content in (b"x" * 300_000, chunked()):
            r = await api.request(
                "POST", path, token=token, content=content, headers={"content-type": "application/json"}
            )
            assert (r.status_code, r.json()["error"]["code"]) == (413, "payload_too_large"), (path, r.text)
