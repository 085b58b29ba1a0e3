"""Traffic controls in the console (docs/console.md): sources on the campaign page and in the ping
list's filter, suppression lists (counts only, uploads through the API's service), auto-paused
contracts flagged with their reason."""

from __future__ import annotations

from tests.conftest import ADMIN_TOKEN, Api
from tests.console.conftest import Clients
from tests.support.console import LEAD, build_world, sign_in


async def test_sources_suppression_lists_and_auto_paused_contracts(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    world = await build_world(api)
    await api.ok("PATCH", "/v1/admin/campaigns/acme-med", json={"sources": {"allow": None, "block": ["spammy"]}})
    tagged = await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": LEAD, "source": "google.cpc"})
    plain = await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": LEAD})
    client = clients()
    csrf = await sign_in(client, ADMIN_TOKEN)
    campaign_page = (await client.get("/console/campaigns/acme-med")).text
    assert "spammy" in campaign_page and "blocked" in campaign_page
    listed = (await client.get("/console/pings?source=google.cpc")).text
    assert tagged["ping_id"] in listed and plain["ping_id"] not in listed
    assert 'name="source"' in listed and "disabled" not in listed.split('id="f-source"')[1].split(">")[0]
    live = (await client.get(f"/console/pings/live?source=google.cpc&after={plain['ping_id']}")).status_code
    assert live == 200
    await api.ok("POST", "/v1/admin/suppression-lists", 201, json={"id": "dnc", "name": "House DNC"})
    r = await client.post(
        "/console/suppression-lists/entries",
        data={"csrf": csrf, "list": "dnc", "values": "ada@example.com\n(305) 555-0100\n", "action": "add"},
    )
    assert r.status_code == 303
    shown = (await client.get(r.headers["location"])).text
    assert "House DNC" in shown and "1 phones, 1 emails" in shown
    assert "ada@example.com" not in shown and "555-0100" not in shown
    forged = await client.post("/console/suppression-lists/entries", data={"list": "dnc", "values": "x@y.z"})
    assert forged.status_code == 403
    # an auto-paused contract is flagged with its reason
    await api.ok(
        "PATCH",
        "/v1/admin/contracts/bravo-rtb",
        json={"auto_pause": {"max_consecutive_failures": 1}, "rtb": {"url": "http://buyers.test/gone/bid"}},
    )
    await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": LEAD})
    contract = await api.ok("GET", "/v1/admin/contracts/bravo-rtb")
    assert contract["status"] == "paused"
    for url in ("/console/contracts/bravo-rtb", "/console/contracts", "/console/buyers/bravo"):
        page = (await client.get(url)).text
        assert "auto-paused" in page and "consecutive failures" in page, url
