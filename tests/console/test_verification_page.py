"""The console's ping page shows a post's verification results (docs/verification.md), never PII."""

from __future__ import annotations

from tests.conftest import ADMIN_TOKEN, Api
from tests.console.conftest import Clients
from tests.support.console import LEAD, PERSON, build_world, sign_in, without_pii


async def test_the_ping_page_shows_a_refusing_check(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    world = await build_world(api)
    await api.ok(
        "PATCH", "/v1/admin/offers/med", json={"verification": [{"type": "phone"}, {"type": "email", "mode": "flag"}]}
    )
    answer = await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": LEAD})
    posted = await api.ok(
        "POST", "/v1/post", token=world.posting_key, json={"ping_id": answer["ping_id"], "lead": {**LEAD, **PERSON}}
    )
    assert posted["status"] == "unsold"  # the known person's phone is in the 555-01xx fiction range
    client = clients()
    await sign_in(client, ADMIN_TOKEN)
    page = await client.get(f"/console/pings/{answer['ping_id']}")
    assert page.status_code == 200
    table = page.text.split('<table id="verification">', 1)[1].split("</table>", 1)[0]
    assert 'data-check="phone"' in table and "fictional_555" in table and "verification-fail" in table
    assert 'data-check="email"' in table and "flag" in table and "verification-pass" in table
    assert "verification_failed" in page.text and without_pii(page.text)
    other = await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": LEAD})
    unposted = await client.get(f"/console/pings/{other['ping_id']}")
    assert "No verification checks ran" in unposted.text
