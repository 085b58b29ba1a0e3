"""The replays page (docs/console.md): the form starts a replay through the same service as the API
(CSRF first), the result shows actual against proposed, a chart per day and a table per buyer; a
bad setup is shown by field and starts nothing; buyers may not see it."""

from __future__ import annotations

import asyncio
import re

from tests.conftest import ADMIN_TOKEN, Api
from tests.console.conftest import Clients
from tests.support.console import LEAD, build_world, csrf_of, sign_in


async def test_start_a_replay_from_the_console_and_read_its_result(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    world = await build_world(api)
    answer = await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": LEAD})
    assert answer["bids"]
    client = clients()
    await sign_in(client, ADMIN_TOKEN)
    listing = await client.get("/console/replays")
    assert listing.status_code == 200 and 'name="setup"' in listing.text and "No replays yet." in listing.text
    csrf = csrf_of(listing.text)
    form = {"from": "2000-01-01", "to": "2000-12-31", "offer": "", "setup": ""}

    refused = await client.post("/console/replays", data=form)  # no CSRF token
    assert refused.status_code == 403
    bad = await client.post(
        "/console/replays",
        data={**form, "csrf": csrf, "setup": "contracts:\n  - id: alpha-fixed\n    price_cents: -5\n"},
    )
    assert bad.status_code == 422 and 'id="error-setup"' in bad.text and "price_cents" in bad.text, re.findall(
        r"(?:error|alert)[^<]*<", bad.text
    )
    assert "No replays yet." in bad.text  # nothing was started
    wide = await client.post("/console/replays", data={**form, "csrf": csrf, "to": "2001-06-01"})
    assert wide.status_code == 422 and 'id="error-to"' in wide.text

    started = await client.post("/console/replays", data={**form, "csrf": csrf})
    assert started.status_code == 303
    url = started.headers["location"]
    assert re.fullmatch(r"/console/replays/rpl_\w+", url)
    for _ in range(100):
        shown = await client.get(url)
        if "Running" not in shown.text:
            break
        await asyncio.sleep(0.02)
    assert shown.status_code == 200 and 'id="comparison"' in shown.text, shown.text[:500]
    assert 'id="chart-replay"' in shown.text and 'id="replay-chart-data"' in shown.text
    assert 'id="buyers"' in shown.text
    assert url.rsplit("/", 1)[1] in (await client.get("/console/replays")).text

    today = await client.post(
        "/console/replays",
        data={**form, "csrf": csrf, "from": answer["expires_at"][:10], "to": answer["expires_at"][:10]},
    )
    for _ in range(100):
        shown = await client.get(today.headers["location"])
        if "Running" not in shown.text:
            break
        await asyncio.sleep(0.02)
    assert re.search(r"<td>pings</td>\s*<td class=\"num\">1</td>", shown.text), shown.text
    # set up today, inside the replayed day: the page says the configuration was replayed as it stood
    assert re.search(
        r'id="configuration-changes">Replayed under the configuration as it stood: it changed \d+ time', shown.text
    ), shown.text

    buyer_key = await api.ok("POST", "/v1/admin/api-keys", 201, json={"kind": "buyer", "buyer": "alpha", "name": "a"})
    buyer = clients()
    await sign_in(buyer, buyer_key["key"])
    assert (await buyer.get("/console/replays")).status_code == 403
