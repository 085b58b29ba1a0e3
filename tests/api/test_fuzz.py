"""schemathesis against our own /openapi.json: no 5xx, every error in the SPEC shape (bounded)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.core.result import Err

from tests.api.setup_data import VERTICAL
from tests.conftest import ADMIN_TOKEN
from tests.servers import admin_session, pingpost_server

# schemathesis leaves an operation's parameters open (they describe our JSON API)
Case = schemathesis.Case[schemathesis.APIOperation[Any, Any, Any, Any]]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
TOKENS: dict[str, str] = {}


async def seed(base: str) -> None:
    """An exchange for the fuzzer to poke at: one of everything, with readable ids."""
    async with admin_session(base) as post:

        await post("/v1/admin/verticals", VERTICAL)
        await post("/v1/admin/offers", {"id": "med", "name": "M", "vertical": "medicare",
                                        "channels": ["form", "call", "callback"]})
        await post("/v1/admin/partners", {"id": "acme", "name": "Acme"})
        TOKENS["partner"] = (await post("/v1/admin/campaigns", {
            "id": "cmp", "name": "C", "partner": "acme", "offer": "med",
            "payout": {"type": "revshare", "percent": 50}}))["posting_key"]
        await post("/v1/admin/buyers", {"id": "b", "name": "B"})
        await post("/v1/admin/contracts", {"id": "k", "name": "K", "buyer": "b", "offer": "med", "price_cents": 100,
                                           "transfer": {"phone": "+13055550100"}})
        TOKENS["call"] = (await post("/v1/admin/api-keys", {"kind": "call_platform", "name": "t"}))["key"]
        TOKENS["buyer"] = (await post("/v1/admin/api-keys", {"kind": "buyer", "buyer": "b", "name": "b"}))["key"]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[schemathesis.BaseSchema]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    with pingpost_server(f"sqlite:///{workdir / 'fuzz.db'}", workdir=workdir) as base:
        asyncio.run(seed(base))
        schema = schemathesis.openapi.from_url(f"{base}/openapi.json")
        schema.config.update(base_url=base)
        yield schema


def token_for(path: str) -> str:
    if path.startswith("/v1/admin"):
        return ADMIN_TOKEN
    if path.startswith("/v1/calls"):
        return TOKENS["call"]
    if path.startswith("/v1/buyer"):
        return TOKENS["buyer"]
    return TOKENS["partner"]


def check(case: Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {token_for(case.path)}"}, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
        assert isinstance(body["error"]["details"], dict)


def test_no_server_errors_and_one_error_shape(api_schema: schemathesis.BaseSchema) -> None:
    """Every operation of our OpenAPI document, a bounded number of generated requests each.

    (Driven through Hypothesis directly: schemathesis' pytest plugin does not run on pytest 9.)"""
    operations = []
    for result in api_schema.get_all_operations():
        assert not isinstance(result, Err), result.err()
        operations.append(result.ok())
    assert len(operations) > 30
    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=8, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        def run(case: Case) -> None:
            check(case)

        run()
