"""Small building blocks for API tests: a vertical, an offer, a partner, a campaign, buyers."""

from __future__ import annotations

from typing import Any

VERTICAL: dict[str, Any] = {
    "id": "medicare", "name": "Medicare",
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


async def base_setup(api: Any, *, rule: str = "exclusive", max_winners: int = 3, **offer: Any) -> None:
    await api.ok("POST", "/v1/admin/verticals", 201, json=VERTICAL)
    await api.ok("POST", "/v1/admin/offers", 201, json={
        "id": "med", "name": "Medicare leads", "vertical": "medicare",
        "distribution": {"rule": rule, "max_winners": max_winners}, **offer})
    await api.ok("POST", "/v1/admin/partners", 201, json={"id": "acme", "name": "Acme"})


async def buyer(api: Any, ident: str, *, deposit: int = 0, credit: int = 0) -> None:
    await api.ok("POST", "/v1/admin/buyers", 201, json={"id": ident, "name": ident.title(),
                                                        "credit_limit_cents": credit})
    if deposit:
        await api.ok("POST", f"/v1/admin/buyers/{ident}/deposits", 201, json={"amount_cents": deposit})
