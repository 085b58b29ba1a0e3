"""Shared steps of the call tests: an offer with three call buyers, a call-platform key, events."""

from __future__ import annotations

from typing import Any

from tests.api.setup_data import LEAD, base_setup, buyer, campaign, contract
from tests.api.test_post import FULL
from tests.conftest import Api, Sandbox

CALL_LEAD = {**LEAD, "age": 70}
CALLER = {**FULL, "age": 70}


async def call_setup(
    api: Api, sandbox: Sandbox, *, billable_after_s: int = 0, ping_ttl_s: int = 120, max_calls: int | None = None
) -> tuple[str, str]:
    """Contracts a (RTB, 9000), b (8000), c (7000) with transfers and one without; answers the posting
    key and a call_platform key."""
    await base_setup(api, channels=["form", "call", "callback"], call_standby=2, ping_ttl_s=ping_ttl_s)
    key = await campaign(api)
    caps = {"max_concurrent_calls": max_calls} if max_calls else None
    await buyer(api, "buyer-a", deposit=100_000)
    await contract(
        api,
        "a",
        "buyer-a",
        None,
        rtb={"url": sandbox.bid("a", "call", "cents=9000&phone=%2B13055550111")},
        delivery={"url": sandbox.deliver("a")},
        billable_after_s=billable_after_s,
        caps=caps,
    )
    await buyer(api, "buyer-b", deposit=100_000)
    await contract(
        api,
        "b",
        "buyer-b",
        8000,
        transfer={"sip": "sip:queue@b.example"},
        delivery={"url": sandbox.deliver("b")},
        billable_after_s=billable_after_s,
    )
    await buyer(api, "buyer-c", deposit=100_000)
    await contract(
        api,
        "c",
        "buyer-c",
        7000,
        transfer={"phone": "+13055550133"},
        delivery={"url": sandbox.deliver("c")},
        billable_after_s=billable_after_s,
    )
    await buyer(api, "buyer-x", deposit=100_000)
    await contract(api, "no-transfer", "buyer-x", 9500, delivery={"url": sandbox.deliver("x")})
    platform = await api.ok("POST", "/v1/admin/api-keys", 201, json={"kind": "call_platform", "name": "tel"})
    return key, str(platform["key"])


async def event(
    api: Api, platform: str, ping_id: str, kind: str, body: dict[str, Any], status: int = 200
) -> dict[str, Any]:
    result: dict[str, Any] = await api.ok("POST", f"/v1/calls/{ping_id}/{kind}", status, token=platform, json=body)
    return result
