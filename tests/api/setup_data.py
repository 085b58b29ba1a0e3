"""Small building blocks for API tests: a vertical, an offer, a partner, a campaign, buyers."""

from __future__ import annotations

from typing import Any

from tests.conftest import Api

VERTICAL: dict[str, Any] = {
    "id": "medicare",
    "name": "Medicare",
    "fields": [
        {"name": "state", "type": "state", "required": True},
        {"name": "zip", "type": "zip", "required": True},
        {"name": "age", "type": "integer", "required": True},
        {"name": "coverage", "type": "enum", "values": ["none", "original", "advantage"]},
        {"name": "smoker", "type": "boolean"},
        {"name": "first_name", "type": "string", "required": True, "pii": True},
        {"name": "last_name", "type": "string", "pii": True},
        {"name": "phone", "type": "phone", "required": True, "pii": True},
        {"name": "email", "type": "email", "pii": True},
    ],
}


async def base_setup(api: Api, *, rule: str = "exclusive", max_winners: int = 3, **offer: Any) -> None:
    await api.ok("POST", "/v1/admin/verticals", 201, json=VERTICAL)
    await api.ok(
        "POST",
        "/v1/admin/offers",
        201,
        json={
            "id": "med",
            "name": "Medicare leads",
            "vertical": "medicare",
            "distribution": {"rule": rule, "max_winners": max_winners},
            **offer,
        },
    )
    await api.ok("POST", "/v1/admin/partners", 201, json={"id": "acme", "name": "Acme"})


async def buyer(api: Api, ident: str, *, deposit: int = 0, credit: int = 0) -> None:
    await api.ok(
        "POST", "/v1/admin/buyers", 201, json={"id": ident, "name": ident.title(), "credit_limit_cents": credit}
    )
    if deposit:
        await api.ok("POST", f"/v1/admin/buyers/{ident}/deposits", 201, json={"amount_cents": deposit})


POSTING_KEY = "pp_test_acme_key"


async def campaign(
    api: Api, *, ident: str = "acme-med", offer: str = "med", payout: dict[str, Any] | None = None
) -> str:
    """Create a campaign and answer its posting key."""
    body = await api.ok(
        "POST",
        "/v1/admin/campaigns",
        201,
        json={
            "id": ident,
            "name": ident,
            "partner": "acme",
            "offer": offer,
            "payout": payout or {"type": "revshare", "percent": 70},
        },
    )
    return str(body["posting_key"])


async def contract(api: Api, ident: str, buyer_id: str, price: int | None, **extra: Any) -> dict[str, Any]:
    body = {"id": ident, "name": ident, "buyer": buyer_id, "offer": "med", **extra}
    if price is not None:
        body["price_cents"] = price
    result: dict[str, Any] = await api.ok("POST", "/v1/admin/contracts", 201, json=body)
    return result


LEAD = {"state": "FL", "zip": "33109", "age": 67}


async def ping(
    api: Api, key: str, lead: dict[str, Any] | None = None, status: int = 200, **extra: Any
) -> dict[str, Any]:
    result: dict[str, Any] = await api.ok(
        "POST", "/v1/ping", status, token=key, json={"lead": lead if lead is not None else LEAD, **extra}
    )
    return result


async def waterfall(api: Api, ping_id: str) -> dict[str, dict[str, Any]]:
    record = await api.ok("GET", f"/v1/admin/pings/{ping_id}")
    return {w["contract_id"]: w for w in record["waterfall"]}
