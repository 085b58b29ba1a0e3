"""The console's pages through the real ASGI app on both stores, without a browser: what each page
shows, who may see it, and the rules of sessions, CSRF and sign-in (docs/console.md)."""

from __future__ import annotations

import re

import httpx
import pytest

from pingpost.clock import ManualClock, use_clock
from pingpost.config import Settings
from pingpost.console.sessions import LoginThrottle
from pingpost.ids import now_ms
from tests.conftest import ADMIN_TOKEN, Api
from tests.console.conftest import Clients
from tests.support.console import LEAD, PERSON, World, build_world, csrf_of, sign_in, without_pii

ADMIN_PAGES = [
    "/console",
    "/console/pings",
    "/console/buyers",
    "/console/buyers/alpha",
    "/console/contracts",
    "/console/contracts/alpha-fixed",
    "/console/partners",
    "/console/partners/acme",
    "/console/campaigns/acme-med",
    "/console/sales",
    "/console/reconciliation",
    "/console/reports",
    "/console/reports.csv",
    "/console/leases",
    "/console/returns",
    "/console/statements",
    "/console/replays",
    "/console/audit",
    "/console/events",
]


async def sold_ping(api: Api, world: World) -> tuple[str, str]:
    """A ping bravo wins with its $60 RTB bid over alpha's $50, posted with PERSON: (ping id, sale id)."""
    answer = await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": LEAD})
    result = await api.ok(
        "POST",
        "/v1/post",
        token=world.posting_key,
        json={"ping_id": answer["ping_id"], "lead": {**LEAD, **PERSON}, "consent": {"tcpa": True}},
    )
    assert result["status"] == "sold", result
    return answer["ping_id"], result["sales"][0]["sale_id"]


async def test_without_a_session_every_console_url_answers_303_to_the_sign_in(console_app: tuple[Api, Clients]) -> None:
    _, clients = console_app
    client = clients()
    for url in [*ADMIN_PAGES, "/console/pings/png_x", "/console/pings/live", "/console/buyer", "/console/buyer/sales"]:
        r = await client.get(url)
        assert (r.status_code, r.headers.get("location")) == (303, "/console/login"), url
    for url in [
        "/console/logout",
        "/console/buyers/alpha/deposit",
        "/console/contracts/alpha-fixed",
        "/console/sales/sal_x/reverse",
    ]:
        r = await client.post(url, data={"csrf": "x"})
        assert (r.status_code, r.headers.get("location")) == (303, "/console/login"), url
    client.cookies.set("pingpost_session", "not-a-session", path="/console")
    assert (await client.get("/console")).status_code == 303
    poll = await client.get("/console/pings/live", headers={"HX-Request": "true"})
    assert poll.headers["hx-redirect"] == "/console/login" and poll.text == ""  # htmx leaves the page


async def test_sign_in_form_a_wrong_key_and_the_cookie(
    console_app: tuple[Api, Clients], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LoginThrottle, "FREE_FAILURES", 10)  # the slowdown has its own tests below
    api, clients = console_app
    world = await build_world(api)
    client = clients()
    form = (await client.get("/console/login")).text
    assert re.search(r'<input[^>]+name="key"', form) and ">Sign in</button>" in form
    assert len(re.findall(r"<input[^>]+name=", form)) == 1  # one field
    for wrong in ("nope", world.posting_key, ADMIN_TOKEN + "x", ""):
        r = await client.post("/console/login", data={"key": wrong})
        assert r.status_code == 401 and "does not open the console" in r.text and "set-cookie" not in r.headers
    r = await client.post("/console/login", data={"key": ADMIN_TOKEN})
    assert (r.status_code, r.headers["location"]) == (303, "/console")
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("pingpost_session=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Path=/console" in cookie and "Secure" not in cookie
    assert (await client.get("/console/login")).headers["location"] == "/console"  # already signed in
    buyer = clients()
    r = await buyer.post("/console/login", data={"key": world.buyer_key})
    assert (r.status_code, r.headers["location"]) == (303, "/console/buyer")


async def test_the_cookie_is_secure_when_configured(settings: Settings, console_app: tuple[Api, Clients]) -> None:
    _, clients = console_app
    settings.cookie_secure = True  # the app's own settings object (PINGPOST_COOKIE_SECURE=true)
    r = await clients().post("/console/login", data={"key": ADMIN_TOKEN})
    assert "Secure" in r.headers["set-cookie"]


async def test_every_admin_page_shows_its_data(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    world = await build_world(api)
    ping_id, sale_id = await sold_ping(api, world)
    client = clients()
    await sign_in(client, ADMIN_TOKEN)
    pages = {url: (await client.get(url)) for url in [*ADMIN_PAGES, f"/console/pings/{ping_id}"]}
    assert all(r.status_code == 200 for r in pages.values()), {u: r.status_code for u, r in pages.items()}
    overview = pages["/console"].text
    assert 'id="chart-data"' in overview and "bravo-rtb" in overview  # charts' data and the RTB health row
    assert "$60.00" in overview  # today's revenue
    assert ping_id in pages["/console/pings"].text
    detail = pages[f"/console/pings/{ping_id}"].text
    assert "won" in detail and "lost_to_higher_bid" in detail and "post_accepted" in detail and sale_id in detail
    assert "$990.00" in pages["/console/buyers/alpha"].text or "$1,000.00" in pages["/console/buyers/alpha"].text
    assert "daily" in pages["/console/contracts/alpha-fixed"].text
    assert "acme-med" in pages["/console/partners"].text and "70" in pages["/console/campaigns/acme-med"].text
    assert sale_id in pages["/console/sales"].text and "Reverse" in pages["/console/sales"].text
    assert "bravo" in (await client.get("/console/reports?group_by=buyer")).text
    csv = (await client.get("/console/reports.csv?group_by=buyer")).text.splitlines()
    assert csv[0].startswith("buyer,pings,bids,wins") and any(line.startswith("bravo,") for line in csv[1:])
    assert "No returns." in pages["/console/returns"].text and "Name an account" in pages["/console/statements"].text
    bad = await client.get("/console/pings?cursor=" + "x" * 100)
    assert bad.status_code == 422 and "cursor" in bad.text and bad.headers["content-type"].startswith("text/html")
    missing = await client.get("/console/pings/png_missing")
    assert missing.status_code == 404 and "ping not found" in missing.text
    assert all(without_pii(r.text) for r in pages.values())


async def test_the_live_list_brings_only_newer_pings(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    world = await build_world(api)
    first = await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": LEAD})
    client = clients()
    await sign_in(client, ADMIN_TOKEN)
    listing = (await client.get("/console/pings")).text
    assert f"after={first['ping_id']}" in listing and 'hx-trigger="every 1s"' in listing
    assert (await client.get(f"/console/pings/live?after={first['ping_id']}")).text.count("<tr") == 0
    second = await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": {**LEAD, "state": "TX"}})
    fresh = (await client.get(f"/console/pings/live?after={first['ping_id']}")).text
    assert fresh.count("<tr") == 1 and f'href="/console/pings/{second["ping_id"]}"' in fresh
    assert f"after={second['ping_id']}" in fresh  # the next poll starts from the newest
    filtered = (await client.get(f"/console/pings/live?after={first['ping_id']}&status=sold")).text
    assert filtered.count("<tr") == 0 and "status=sold" in filtered  # the poller keeps its filters


async def test_a_buyer_sees_only_its_own(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    world = await build_world(api)
    await sold_ping(api, world)  # bravo's sale
    client = clients()
    await sign_in(client, world.buyer_key)
    home = (await client.get("/console/buyer")).text
    assert "alpha-fixed" in home and "$1,000.00" in home and "bravo" not in home
    assert "bravo" not in (await client.get("/console/buyer/sales")).text
    for url in [*ADMIN_PAGES, "/console/buyers/bravo", "/console/pings/png_x"]:
        r = await client.get(url)
        assert r.status_code == 403 and "bravo" not in r.text, url
    r = await client.post("/console/buyers/bravo/deposit", data={"csrf": csrf_of(home), "amount": "5"})
    assert r.status_code == 403
    assert (await api.ok("GET", "/v1/admin/buyers/bravo"))["balance_cents"] < 100_000 + 500


async def test_state_changes_need_the_csrf_token(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    await build_world(api)
    client = clients()
    csrf = await sign_in(client, ADMIN_TOKEN)
    for data in ({"amount": "25"}, {"amount": "25", "csrf": "forged"}):
        r = await client.post("/console/buyers/alpha/deposit", data=data)
        assert r.status_code == 403 and "CSRF" in r.text
    assert (await api.ok("GET", "/v1/admin/buyers/alpha"))["balance_cents"] == 100_000
    other = clients()
    other_csrf = await sign_in(other, ADMIN_TOKEN)
    assert other_csrf != csrf
    r = await client.post("/console/buyers/alpha/deposit", data={"amount": "25", "csrf": other_csrf})
    assert r.status_code == 403  # a token is its own session's
    r = await client.post(
        "/console/buyers/alpha/deposit", data={"amount": "25.50", "csrf": csrf, "reference": "wire-1"}
    )
    assert r.status_code == 303
    assert (await api.ok("GET", "/v1/admin/buyers/alpha"))["balance_cents"] == 102_550
    r = await client.post("/console/buyers/alpha/deposit", data={"amount": "2.555", "csrf": csrf})
    assert r.status_code == 422 and "two decimals" in r.text
    r = await client.post("/console/logout", data={})
    assert r.status_code == 403  # sign-out changes state too


async def test_pausing_a_contract_skips_it_on_the_next_ping(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    world = await build_world(api)
    client = clients()
    csrf = await sign_in(client, ADMIN_TOKEN)
    r = await client.post("/console/contracts/bravo-rtb/status", data={"csrf": csrf, "status": "paused"})
    assert r.status_code == 303
    assert "paused" in (await client.get(r.headers["location"])).text
    answer = await api.ok("POST", "/v1/ping", token=world.posting_key, json={"lead": LEAD})
    detail = (await client.get(f"/console/pings/{answer['ping_id']}")).text
    row = re.search(r'<tr data-contract="bravo-rtb">.*?</tr>', detail, re.S)
    assert row and "contract_paused" in row.group(0)
    await client.post("/console/contracts/bravo-rtb/status", data={"csrf": csrf, "status": "active"})
    assert (await api.ok("GET", "/v1/admin/contracts/bravo-rtb"))["status"] == "active"
    for kind, ident in (("buyers", "alpha"), ("campaigns", "acme-med"), ("partners", "acme")):
        assert (
            await client.post(f"/console/{kind}/{ident}/status", data={"csrf": csrf, "status": "paused"})
        ).status_code == 303
        assert (await api.ok("GET", f"/v1/admin/{kind}/{ident}"))["status"] == "paused"


async def test_the_contract_form_saves_through_the_api_validation(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    await build_world(api)
    client = clients()
    csrf = await sign_in(client, ADMIN_TOKEN)
    bad = await client.post(
        "/console/contracts/alpha-fixed", data={"csrf": csrf, "price": "abc", "caps_daily": "10", "schedule": ""}
    )
    assert bad.status_code == 422 and 'id="error-price"' in bad.text
    bad = await client.post(
        "/console/contracts/alpha-fixed",
        data={"csrf": csrf, "price": "50", "caps_daily": "ten", "schedule": "mon 25:00-26:00"},
    )
    assert bad.status_code == 422 and 'id="error-caps_daily"' in bad.text
    bad = await client.post(
        "/console/contracts/alpha-fixed",
        data={"csrf": csrf, "price": "50", "caps_daily": "10", "schedule": "mon 25:00-26:00"},
    )
    assert bad.status_code == 422 and 'id="error-schedule"' in bad.text and "HH:MM" in bad.text
    assert 'value="50"' in bad.text  # what was typed stays in the form
    bad = await client.post("/console/contracts/alpha-fixed", data={"csrf": csrf, "price": "", "caps_daily": ""})
    assert bad.status_code == 422 and "price_cents" in bad.text  # neither a price nor RTB
    ok = await client.post(
        "/console/contracts/alpha-fixed",
        data={
            "csrf": csrf,
            "price": "55.25",
            "caps_daily": "7",
            "caps_weekly": "30",
            "schedule": "mon,tue,wed,thu,fri 09:00-17:00\nsat 10:00-12:00",
        },
    )
    assert ok.status_code == 303
    saved = await api.ok("GET", "/v1/admin/contracts/alpha-fixed")
    assert saved["price_cents"] == 5525 and saved["caps"] == {
        "daily": 7,
        "weekly": 30,
        "monthly": None,
        "max_concurrent_calls": None,
        "spend_daily_cents": None,
        "spend_weekly_cents": None,
        "spend_monthly_cents": None,
    }
    assert saved["schedule"]["windows"][1] == {"days": ["sat"], "start": "10:00", "end": "12:00"}
    page = (await client.get("/console/contracts/alpha-fixed")).text
    assert "sat 10:00-12:00" in page and 'value="55.25"' in page


async def test_a_reversal_refunds_through_the_shared_service(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    world = await build_world(api)
    ping_id, sale_id = await sold_ping(api, world)
    client = clients()
    csrf = await sign_in(client, ADMIN_TOKEN)
    r = await client.post(f"/console/sales/{sale_id}/reverse", data={"csrf": csrf, "reason": ""})
    assert "needs a reason" in (await client.get(r.headers["location"])).text
    r = await client.post(f"/console/sales/{sale_id}/reverse", data={"csrf": csrf, "reason": "consumer complaint"})
    assert r.status_code == 303 and "reversed" in (await client.get(r.headers["location"])).text
    assert (await api.ok("GET", f"/v1/admin/sales/{sale_id}"))["status"] == "reversed"
    assert (await api.ok("GET", "/v1/admin/buyers/bravo"))["balance_cents"] == 100_000
    again = await client.post(f"/console/sales/{sale_id}/reverse", data={"csrf": csrf, "reason": "twice"})
    assert "cannot be reversed" in (await client.get(again.headers["location"])).text
    assert "consumer complaint" in (await client.get(f"/console/pings/{ping_id}")).text
    r = await client.post("/console/reconciliation/dlv_unknown/void", data={"csrf": csrf})
    assert r.status_code == 404


async def test_sessions_end_on_sign_out_idle_time_and_revoked_keys(console_app: tuple[Api, Clients]) -> None:
    api, clients = console_app
    world = await build_world(api)
    client = clients()
    csrf = await sign_in(client, ADMIN_TOKEN)
    old = client.cookies.get("pingpost_session")
    r = await client.post("/console/logout", data={"csrf": csrf})
    assert (r.status_code, r.headers["location"]) == (303, "/console/login")
    stale = clients()
    stale.cookies.set("pingpost_session", old or "", path="/console")
    assert (await stale.get("/console")).status_code == 303

    buyer = clients()
    await sign_in(buyer, world.buyer_key)
    keys = await api.ok("GET", "/v1/admin/api-keys?kind=buyer")
    await api.ok("PATCH", f"/v1/admin/api-keys/{keys['items'][0]['id']}", json={"status": "revoked"})
    assert (await buyer.get("/console/buyer")).status_code == 303

    with use_clock(ManualClock(now_ms())) as clock:
        idle = clients()
        await sign_in(idle, ADMIN_TOKEN)
        clock.advance(11 * 3600 * 1000)
        assert (await idle.get("/console")).status_code == 200  # and that request counts as activity
        clock.advance(11 * 3600 * 1000)
        assert (await idle.get("/console")).status_code == 200
        clock.advance(12 * 3600 * 1000)
        assert (await idle.get("/console")).status_code == 303


def test_failed_sign_ins_slow_the_next_attempts_from_that_address() -> None:
    throttle = LoginThrottle()
    assert throttle.delay_s("10.0.0.1") == 0
    for _ in range(2):
        throttle.failed("10.0.0.1")
    assert throttle.delay_s("10.0.0.1") == 0  # two mistakes are free
    delays = []
    for _ in range(8):
        throttle.failed("10.0.0.1")
        delays.append(throttle.delay_s("10.0.0.1"))
    assert delays == [1, 2, 4, 8, 16, 16, 16, 16]
    assert throttle.delay_s("10.0.0.2") == 0  # per address
    throttle.succeeded("10.0.0.1")
    assert throttle.delay_s("10.0.0.1") == 0


async def test_the_sign_in_waits_once_an_address_failed_repeatedly(
    console_app: tuple[Api, Clients], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pingpost.console import account_pages

    waited: list[float] = []

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    monkeypatch.setattr(account_pages.asyncio, "sleep", sleep)  # type: ignore[attr-defined]
    _, clients = console_app
    client = clients()
    for _ in range(4):
        await client.post("/console/login", data={"key": "wrong"})
    r = await client.post("/console/login", data={"key": ADMIN_TOKEN})
    assert r.status_code == 303 and waited == [1.0, 2.0]  # the 4th and 5th attempts waited
    await clients().post("/console/login", data={"key": "wrong"})
    assert waited == [1.0, 2.0]  # the success forgot the address


async def test_static_files_ship_in_the_package(console_app: tuple[Api, Clients]) -> None:
    _, clients = console_app
    client: httpx.AsyncClient = clients()
    for name in ("htmx.min.js", "uPlot.iife.min.js", "console.css", "console.js", "htmx.LICENSE", "uPlot.LICENSE"):
        assert (await client.get(f"/console/static/{name}")).status_code == 200, name
