"""The console's audit log and events pages (docs/console.md): filters, `via: console` for the
console's own actions, secrets never rendered, operators only."""

from __future__ import annotations

from tests.conftest import ADMIN_TOKEN, Api
from tests.console.conftest import Clients
from tests.support.console import build_world, csrf_of, sign_in


async def test_audit_page_filters_and_records_console_actions(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    world = await build_world(api)
    hook = await api.ok("POST", "/v1/admin/webhooks", 201, json={"url": "https://crm.example/h", "events": ["*"]})
    client = clients()
    csrf = await sign_in(client, ADMIN_TOKEN)
    r = await client.post("/console/buyers/alpha/status", data={"status": "paused", "csrf": csrf})
    assert r.status_code == 303
    page = await client.get("/console/audit", params={"object_id": "alpha"})
    assert page.status_code == 200
    assert "console" in page.text and "buyer alpha" in page.text and "bravo" not in page.text
    everything = (await client.get("/console/audit")).text
    assert (
        hook["secret"] not in everything and world.posting_key not in everything and world.buyer_key not in everything
    )
    assert "[redacted]" in everything
    assert "No entries." in (await client.get("/console/audit", params={"actor": "cli"})).text
    assert (await client.get("/console/audit", params={"day": "not-a-day"})).status_code == 422
    events = await client.get("/console/events", params={"webhook": hook["id"]})
    assert events.status_code == 200 and "deposit.created" in events.text and "No deliveries yet." in events.text
    buyer = clients()
    await sign_in(buyer, world.buyer_key)
    assert (await buyer.get("/console/audit")).status_code == 403
    assert csrf_of(page.text) == csrf
