"""The bench's setup (docs/performance.md): the vertical, offer, campaign and contracts of each
scenario, created through the admin API of the server under test."""

from __future__ import annotations

from typing import Any

import aiohttp

LEAD = {"state": "FL", "zip": "33109", "age": 67}
VERTICAL = {
    "id": "medicare",
    "name": "Medicare",
    "fields": [
        {"name": "state", "type": "state", "required": True},
        {"name": "zip", "type": "zip", "required": True},
        {"name": "age", "type": "integer", "required": True},
        {"name": "first_name", "type": "string", "required": True, "pii": True},
        {"name": "phone", "type": "phone", "required": True, "pii": True},
    ],
}


def admin_session(base: str, token: str) -> aiohttp.ClientSession:
    """The admin API of the server under test (aiohttp: the bench runs on a plain install, without httpx)."""
    return aiohttp.ClientSession(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=aiohttp.ClientTimeout(total=60)
    )


async def admin_call(c: aiohttp.ClientSession, method: str, path: str, body: dict[str, Any], status: int) -> Any:
    async with c.request(method, path, json=body) as r:
        if r.status != status:
            raise RuntimeError(f"setup failed: {method} {path}: {r.status} {await r.text()}")
        return await r.json()


# The fixed-price scenarios: `fixed` (one lead, no consumer), `fixed_hashes` (a source and a consumer
# hash on every ping) and `fixed_controls` (the same pings with every traffic control configured),
# so the controls' cost is the ratio of the last two in one run (docs/performance.md).
FIXED = ("fixed", "fixed_hashes", "fixed_controls")


async def setup_scenario(base: str, token: str, sandbox: str, scenario: str) -> str:
    async with admin_session(base, token) as c:

        async def post(path: str, body: dict[str, Any]) -> Any:
            return await admin_call(c, "POST", path, body, 201)

        await post("/v1/admin/verticals", VERTICAL)
        fixed = scenario in FIXED
        controls = scenario == "fixed_controls"
        rule = {"rule": "multisell", "max_winners": 3} if fixed else {"rule": "exclusive"}
        offer = {"id": "bench", "name": "bench", "vertical": "medicare", "distribution": rule, "ping_ttl_s": 60}
        campaign: dict[str, Any] = {
            "id": "c",
            "name": "c",
            "partner": "p",
            "offer": "bench",
            "payout": {"type": "revshare", "percent": 70},
        }
        if controls:  # every traffic control of docs/protocol.md configured (none refusing bench traffic)
            offer["min_margin_cents"] = 100
            campaign |= {
                "payout": {
                    "type": "margin_percent",
                    "percent": 30,
                    "overrides": [
                        {"buyer": f"b{i}", "payout": {"type": "margin", "amount_cents": 200}} for i in (3, 7)
                    ],
                },
                "sources": {"allow": None, "block": ["blocked.src"]},
                "duplicate_ping_window_s": 600,
            }
            await post("/v1/admin/suppression-lists", {"id": "house", "name": "house", "scope": "global"})
            phones = [f"30555{n:05d}" for n in range(1000)]
            await admin_call(c, "POST", "/v1/admin/suppression-lists/house/entries", {"phones": phones}, 200)
        await post("/v1/admin/offers", offer)
        await post("/v1/admin/partners", {"id": "p", "name": "p"})
        key = (await post("/v1/admin/campaigns", campaign))["posting_key"]
        count = {"rtb": 10, "hang": 2}.get(scenario, 30)
        for i in range(count):
            buyer: dict[str, Any] = {"id": f"b{i}", "name": f"b{i}"}
            if controls:
                buyer |= {
                    "timezone": "America/New_York" if i % 2 else "UTC",
                    "caps": {"spend_daily_cents": 10**11},
                    "low_balance_cents": 1000,
                }
            await post("/v1/admin/buyers", buyer)
            await post(f"/v1/admin/buyers/b{i}/deposits", {"amount_cents": 10**11})
            body: dict[str, Any] = {
                "id": f"k{i:02d}",
                "name": f"k{i}",
                "buyer": f"b{i}",
                "offer": "bench",
                "dedup_days": 0,
                "delivery": {"url": f"{sandbox}/deliver/b{i}/accept"},
            }
            if controls:
                body |= {
                    "rank_factor_pct": 80 + i,
                    "suppression_lists": ["house"],
                    "auto_pause": {"max_consecutive_failures": 10},
                    "caps": {"daily": 10**6, "spend_daily_cents": 10**10},
                }
            if fixed:
                body |= {"price_cents": 1000 + 10 * i, "filters": [{"field": "age", "op": "gte", "value": 18}]}
            elif scenario == "rtb":
                body["rtb"] = {"url": f"{sandbox}/bid/b{i}/slow?ms=50&cents={2000 + i}", "timeout_ms": 1000}
            else:
                behaviour = "hang" if i == 0 else "fixed?cents=1500"
                body["rtb"] = {"url": f"{sandbox}/bid/b{i}/{behaviour}", "timeout_ms": 300}
            await post("/v1/admin/contracts", body)
        return str(key)
