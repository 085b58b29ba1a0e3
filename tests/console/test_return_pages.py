"""Returns, statements and payouts in the console through the real ASGI app on both stores: the
buyer's "open a return" form, the operators' queue, statements with their CSV, the partner's payout
form; who may see and do what, and the CSRF token (docs/console.md)."""

from __future__ import annotations

import csv
import io
import re

from pingpost.console import figures
from pingpost.db.store import Store
from pingpost.domain.statements import DAY_MS, day_of
from pingpost.ids import now_ms
from tests.conftest import ADMIN_TOKEN, Api
from tests.console.conftest import Clients
from tests.support.console import LEAD, World, build_world, csrf_of, person, sign_in, without_pii

POLICY = {"window_days": 7, "reasons": ["disconnected", "duplicate"]}


async def alpha_sales(api: Api, world: World, count: int) -> list[str]:
    """`count` sales of alpha's $50 contract (bravo's RTB contract paused), the partner paid 70 %."""
    await api.ok("PATCH", "/v1/admin/contracts/alpha-fixed", json={"return_policy": POLICY})
    await api.ok("PATCH", "/v1/admin/contracts/bravo-rtb", json={"status": "paused"})
    sales = []
    for n in range(count):
        answer = await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": LEAD})
        result = await api.ok(
            "POST",
            "/v1/post",
            token=world.posting_key,
            json={"ping_id": answer["ping_id"], "lead": {**LEAD, **person(60 + n)}, "consent": {"tcpa": True}},
        )
        assert result["status"] == "sold", result
        sales.append(result["sales"][0]["sale_id"])
    return sales


def row_of(html: str, ident: str) -> str:
    found = re.search(rf'<tr id="return-{ident}">.*?</tr>', html, re.S)
    assert found, f"no row of {ident}"
    return found.group(0)


async def test_a_buyer_opens_returns_and_an_operator_decides_them(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    world = await build_world(api)
    partial, full = await alpha_sales(api, world, 2)
    buyer = clients()
    buyer_csrf = await sign_in(buyer, world.buyer_key)
    listing = (await buyer.get("/console/buyer/sales")).text
    assert f'href="/console/buyer/sales/{partial}/return"' in listing
    form = (await buyer.get(f"/console/buyer/sales/{partial}/return")).text
    assert "<option>disconnected</option>" in form and "<option>duplicate</option>" in form and "7 days" in form
    url = f"/console/buyer/sales/{partial}/return"
    refused = await buyer.post(url, data={"reason": "duplicate", "amount": "20"})
    assert refused.status_code == 403 and "CSRF" in refused.text
    for data, status, text in (
        ({"reason": "fraud"}, 422, "does not take this reason"),
        ({"reason": "duplicate", "amount": "50.01"}, 422, "at most the sale&#39;s price"),
        ({"reason": "duplicate", "amount": "1.234"}, 422, "two decimals"),
    ):
        r = await buyer.post(url, data={**data, "csrf": buyer_csrf})
        assert r.status_code == status and text in r.text, (data, r.status_code, r.text[-800:])
    assert (await api.ok("GET", "/v1/admin/returns"))["items"] == []  # nothing opened by a refused form
    opened = await buyer.post(
        url, data={"reason": "duplicate", "amount": "20", "note": "same lead", "csrf": buyer_csrf}
    )
    assert opened.status_code == 303 and opened.headers["location"].startswith("/console/buyer/returns")
    mine = (await buyer.get(opened.headers["location"])).text
    assert "opened for $20.00: pending" in mine
    again = await buyer.post(url, data={"reason": "duplicate", "csrf": buyer_csrf})
    assert again.status_code == 409 and "already has a return" in again.text
    (ret,) = (await api.ok("GET", "/v1/admin/returns"))["items"]
    assert (ret["amount_cents"], ret["opened_by"], ret["status"]) == (2000, "buyer", "pending")

    # the buyer sees no operator page and decides nothing
    for path in ("/console/returns", "/console/statements", "/console/partners/acme"):
        assert (await buyer.get(path)).status_code == 403, path
    assert (await buyer.post(f"/console/returns/{ret['id']}/approve", data={"csrf": buyer_csrf})).status_code == 403

    admin = clients()
    csrf = await sign_in(admin, ADMIN_TOKEN)
    queue = (await admin.get("/console/returns?status=pending")).text
    assert "$20.00" in row_of(queue, ret["id"]) and "Approve" in row_of(queue, ret["id"])
    decide = f"/console/returns/{ret['id']}"
    assert (await admin.post(f"{decide}/approve", data={"csrf": "forged"})).status_code == 403
    denied_blank = await admin.post(f"{decide}/deny", data={"csrf": csrf, "status": "pending"})
    assert "a denial needs a reason" in (await admin.get(denied_blank.headers["location"])).text
    assert (await api.ok("GET", f"/v1/admin/returns/{ret['id']}"))["status"] == "pending"
    for _ in range(2):  # a repeated approval answers the same and moves money once
        done = await admin.post(f"{decide}/approve", data={"csrf": csrf, "status": "pending"})
        assert done.status_code == 303 and done.headers["location"].startswith("/console/returns?status=pending")
        assert "approved: the buyer is refunded $20.00" in (await admin.get(done.headers["location"])).text
    other = await admin.post(f"{decide}/deny", data={"csrf": csrf, "note": "too late"})
    assert "already approved" in (await admin.get(other.headers["location"])).text
    assert (await api.ok("GET", f"/v1/admin/sales/{partial}"))["status"] == "partially_returned"
    ledger = await api.ok("GET", "/v1/admin/ledger?account=buyer:alpha")
    assert [e["kind"] for e in ledger["items"]].count("return") == 1

    # a full return denied with a reason: the buyer sees the decision
    r = await buyer.post(f"/console/buyer/sales/{full}/return", data={"reason": "disconnected", "csrf": buyer_csrf})
    assert r.status_code == 303
    full_ret = (await api.ok("GET", f"/v1/admin/returns?sale={full}"))["items"][0]
    assert full_ret["amount_cents"] == 5000
    r = await admin.post(f"/console/returns/{full_ret['id']}/deny", data={"csrf": csrf, "note": "the lead answered"})
    assert r.status_code == 303
    mine = (await buyer.get("/console/buyer/returns")).text
    assert "denied" in row_of(mine, full_ret["id"]) and "the lead answered" in row_of(mine, full_ret["id"])
    assert "clawback" not in mine  # a buyer never sees the partner's side
    assert "denied" in row_of((await admin.get("/console/returns?status=denied")).text, full_ret["id"])
    assert full_ret["id"] not in (await admin.get("/console/returns?status=approved")).text

    # the buyer's statement shows the return's line; opening + lines = closing
    statement = (await buyer.get("/console/buyer/statement")).text
    assert re.search(r"<td>return</td><td class=\"num\">1</td><td class=\"num\">\$20\.00</td>", statement), statement
    lines = list(csv.reader(io.StringIO((await buyer.get("/console/buyer/statement.csv")).text)))
    assert lines[0] == ["date", "kind", "count", "amount_cents"] and ["return", "1", "2000"] in [ln[1:] for ln in lines]
    assert "bravo" not in statement and without_pii(statement) and without_pii(queue)


async def test_statements_and_payouts(console_app: tuple[Api, Clients], store: Store) -> None:
    api, clients = console_app
    world = await build_world(api)
    (sale,) = await alpha_sales(api, world, 1)
    admin = clients()
    csrf = await sign_in(admin, ADMIN_TOKEN)
    partner = (await admin.get("/console/partners/acme")).text
    assert re.search(r'id="owed">\$35\.00<', partner) and 'action="/console/partners/acme/payouts"' in partner
    url = "/console/partners/acme/payouts"
    assert (await admin.post(url, data={"amount": "10", "reference": "wire-1"})).status_code == 403
    for data, status, text in (
        ({"amount": "35.01", "reference": "wire-1"}, 422, "more than the partner is owed"),
        ({"amount": "0", "reference": "wire-1"}, 422, "greater than 0"),
        ({"amount": "10", "reference": ""}, 422, "reference"),
    ):
        r = await admin.post(url, data={**data, "csrf": csrf})
        assert r.status_code == status and text in r.text, (data, r.status_code)
    for _ in range(2):  # the same reference pays once
        r = await admin.post(url, data={"amount": "10", "reference": "wire-1", "csrf": csrf})
        assert r.status_code == 303 and "Paid 10 dollars" in (await admin.get(r.headers["location"])).text
    r = await admin.post(url, data={"amount": "11", "reference": "wire-1", "csrf": csrf})
    assert r.status_code == 409 and "reference already used" in r.text
    assert (await api.ok("GET", "/v1/admin/ledger?account=partner:acme"))["balance_cents"] == 2500

    today = day_of(now_ms() // DAY_MS)
    page = (await admin.get(f"/console/statements?account=partner:acme&from={today}&to={today}")).text
    assert re.search(r'id="opening">\$0\.00<', page) and re.search(r'id="closing">\$25\.00<', page)
    assert '<td>payout</td><td class="num">1</td><td class="num">-$10.00</td>' in page
    assert f'href="/console/statements.csv?account=partner%3Aacme&amp;from={today}&amp;to={today}"' in page
    got = await admin.get(f"/console/statements.csv?account=partner:acme&from={today}&to={today}")
    assert got.headers["content-type"].startswith("text/csv") and f"{today},payout,1,-1000" in got.text
    assert (await admin.get("/console/statements?account=buyer:bravo")).status_code == 200  # any account
    bad = await admin.get(f"/console/statements?account=partner:acme&from={today}&to=2000-01-01")
    assert bad.status_code == 422 and "must not be before" in bad.text
    assert (await admin.get("/console/statements?account=partner:nobody")).status_code == 404
    assert (await admin.get("/console/statements?account=nonsense")).status_code == 422

    buyer = clients()
    await sign_in(buyer, world.buyer_key)
    mine = (await buyer.get("/console/buyer/statement")).text
    assert "buyer:alpha" in mine and "-$50.00" in mine  # the sale's charge
    for path in ("/console/statements?account=buyer:bravo", "/console/statements.csv?account=buyer:bravo"):
        assert (await buyer.get(path)).status_code == 403, path
    # the overview's stored totals of a closed day are forgotten when a sale of that day is returned
    later = now_ms() + 3 * figures.DAY_MS
    day = day_of(now_ms() // DAY_MS)
    before = next(d for d in (await figures.overview(store, now=later))["days"] if d["day"] == day)
    assert before["revenue_cents"] == 5000 and before["payout_cents"] == 3500
    opened = await api.ok("POST", f"/v1/admin/sales/{sale}/returns", 201, json={"reason": "duplicate"})
    await api.ok("POST", f"/v1/admin/returns/{opened['id']}/approve")
    after = next(d for d in (await figures.overview(store, now=later))["days"] if d["day"] == day)
    assert (after["sales"], after["revenue_cents"], after["payout_cents"]) == (1, 0, 0)
    assert (
        "$0.00" in (await admin.get("/console")).text
        and "net of approved returns" in (await admin.get("/console")).text
    )
    await api.ok("PATCH", "/v1/admin/contracts/bravo-rtb", json={"status": "active"})
    answer = await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": LEAD})
    await api.ok(
        "POST",
        "/v1/post",
        token=world.posting_key,
        json={"ping_id": answer["ping_id"], "lead": {**LEAD, **person(90)}, "consent": {"tcpa": True}},
    )
    (bravo_sale,) = (await api.ok("GET", "/v1/admin/sales?buyer=bravo"))["items"]
    other = f"/console/buyer/sales/{bravo_sale['sale_id']}/return"  # another buyer's: as if it did not exist
    assert (await buyer.get(other)).status_code == 404
    buyer_csrf = csrf_of((await buyer.get("/console/buyer")).text)
    assert (await buyer.post(other, data={"reason": "duplicate", "csrf": buyer_csrf})).status_code == 404
    assert (await api.ok("GET", "/v1/admin/returns?buyer=bravo"))["items"] == []
