"""The console in a real browser: Playwright for Python driving Debian's Chromium
(`/usr/bin/chromium`; never `playwright install`) against a live `pingpost serve` on SQLite with
the sandbox buyers. One browser for the module, one context (cookies) per test."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN_TOKEN
from tests.servers import pingpost_server, sandbox_server
from tests.support.console import LEAD, person, without_pii

CHROMIUM = "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="Debian's chromium is not installed")

if os.path.exists(CHROMIUM):
    from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright


@dataclass
class Live:
    base: str
    admin: httpx.Client
    posting_key: str
    buyer_key: str
    people: Iterator[int] = field(default_factory=lambda: itertools.count(1))

    def ping(self, lead: dict[str, Any] | None = None) -> dict[str, Any]:
        r = self.admin.post(
            "/v1/ping", json={"lead": lead or LEAD}, headers={"Authorization": f"Bearer {self.posting_key}"}
        )
        assert r.status_code == 200, r.text
        answer: dict[str, Any] = r.json()
        return answer

    def sold(self) -> tuple[str, str]:
        """A ping bravo wins, posted with the known person: (ping id, sale id)."""
        answer = self.ping()
        r = self.admin.post(
            "/v1/post",
            headers={"Authorization": f"Bearer {self.posting_key}"},
            json={
                "ping_id": answer["ping_id"],
                "lead": {**LEAD, **person(next(self.people))},
                "consent": {"tcpa": True},
            },
        )
        assert r.status_code == 200 and r.json()["status"] == "sold", r.text
        return answer["ping_id"], r.json()["sales"][0]["sale_id"]

    def get(self, path: str) -> Any:
        r = self.admin.get(path)
        assert r.status_code == 200, r.text
        return r.json()


def _setup(admin: httpx.Client, sandbox: str) -> tuple[str, str]:
    def create(path: str, body: dict[str, Any]) -> Any:
        r = admin.post(path, json=body)
        assert r.status_code == 201, r.text
        return r.json()

    from tests.api.setup_data import VERTICAL

    create("/v1/admin/verticals", VERTICAL)
    create("/v1/admin/offers", {"id": "med", "name": "Medicare leads", "vertical": "medicare"})
    create("/v1/admin/partners", {"id": "acme", "name": "Acme"})
    key = create(
        "/v1/admin/campaigns",
        {
            "id": "acme-med",
            "name": "acme-med",
            "partner": "acme",
            "offer": "med",
            "payout": {"type": "revshare", "percent": 70},
        },
    )["posting_key"]
    for buyer in ("alpha", "bravo"):
        create("/v1/admin/buyers", {"id": buyer, "name": buyer.title()})
        create(f"/v1/admin/buyers/{buyer}/deposits", {"amount_cents": 1_000_000})
    create(
        "/v1/admin/contracts",
        {
            "id": "alpha-fixed",
            "name": "Alpha fixed",
            "buyer": "alpha",
            "offer": "med",
            "price_cents": 5000,
            "delivery": {"url": f"{sandbox}/deliver/alpha/accept"},
        },
    )
    create(
        "/v1/admin/contracts",
        {
            "id": "bravo-rtb",
            "name": "Bravo RTB",
            "buyer": "bravo",
            "offer": "med",
            "rtb": {"url": f"{sandbox}/bid/bravo/fixed?cents=6000", "timeout_ms": 1000},
            "delivery": {"url": f"{sandbox}/deliver/bravo/accept"},
        },
    )
    buyer_key = create("/v1/admin/api-keys", {"kind": "buyer", "buyer": "alpha", "name": "alpha console"})["key"]
    return key, buyer_key


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    workdir = tmp_path_factory.mktemp("console-browser")
    with (
        sandbox_server(workdir) as sandbox,
        pingpost_server(f"sqlite:///{workdir / 'pingpost.db'}", workdir=workdir) as base,
        httpx.Client(base_url=base, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30) as admin,
    ):
        posting_key, buyer_key = _setup(admin, sandbox)
        yield Live(base, admin, posting_key, buyer_key)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


VISITED: list[tuple[str, str]] = []  # (url, html) of every page a test looked at, checked for PII last


@pytest.fixture
def context(browser: Browser, live: Live) -> Iterator[BrowserContext]:
    made = browser.new_context(base_url=live.base)
    made.set_default_timeout(5000)
    made.on(
        "response",
        lambda r: (
            VISITED.append((r.url, r.text()))
            if "text/html" in r.headers.get("content-type", "") and r.request.resource_type == "document"
            else None
        ),
    )
    yield made
    made.close()


def signed_in(context: BrowserContext, key: str) -> Page:
    page = context.new_page()
    page.goto("/console/login")
    page.fill("input[name=key]", key)
    page.get_by_role("button", name="Sign in").click()
    return page


def test_sign_in_a_wrong_key_and_sign_out(context: BrowserContext) -> None:
    page = context.new_page()
    page.goto("/console/pings")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    page.fill("input[name=key]", "not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("does not open the console")
    page.fill("input[name=key]", ADMIN_TOKEN)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("Overview")
    cookie = next(c for c in context.cookies() if c["name"] == "pingpost_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.click("text=Sign out")
    expect(page).to_have_url(re.compile(r"/console/login$"))
    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/login$"))


def test_a_ping_appears_live_and_its_waterfall(context: BrowserContext, live: Live) -> None:
    page = signed_in(context, ADMIN_TOKEN)
    page.goto("/console/pings")
    page.wait_for_load_state("networkidle")
    answer = live.ping()
    row = page.locator(f"#ping-rows a[href='/console/pings/{answer['ping_id']}']")
    expect(row).to_be_visible(timeout=2500)  # new pings within 2 s (polled every second), no reload
    row.click()
    expect(page.locator("#waterfall tr[data-contract='bravo-rtb']")).to_contain_text("won")
    expect(page.locator("#waterfall tr[data-contract='bravo-rtb']")).to_contain_text("$60.00")
    expect(page.locator("#waterfall tr[data-contract='alpha-fixed']")).to_contain_text("lost_to_higher_bid")
    expect(page.locator("#timeline")).to_contain_text("bids")


def test_pausing_a_contract_from_its_page_skips_it_on_the_next_ping(context: BrowserContext, live: Live) -> None:
    page = signed_in(context, ADMIN_TOKEN)
    page.goto("/console/contracts/bravo-rtb")
    page.click("h1 >> text=Pause")
    expect(page.locator("#contract-status")).to_have_text("paused")
    try:
        answer = live.ping()
        page.goto(f"/console/pings/{answer['ping_id']}")
        expect(page.locator("#waterfall tr[data-contract='bravo-rtb']")).to_contain_text("contract_paused")
        expect(page.locator("#waterfall tr[data-contract='alpha-fixed']")).to_contain_text("won")
    finally:
        page.goto("/console/contracts/bravo-rtb")
        page.click("h1 >> text=Resume")
        expect(page.locator("#contract-status")).to_have_text("active")


def test_a_deposit(context: BrowserContext, live: Live) -> None:
    before = live.get("/v1/admin/buyers/alpha")["balance_cents"]
    page = signed_in(context, ADMIN_TOKEN)
    page.goto("/console/buyers/alpha")
    page.fill("#amount", "125.50")
    page.click("button:has-text('Deposit')")
    expect(page.get_by_role("status")).to_contain_text("Deposited 125.50")
    assert live.get("/v1/admin/buyers/alpha")["balance_cents"] == before + 12_550
    expect(page.locator("#balance")).to_have_text(f"${(before + 12_550) // 100:,}.50")


def test_a_reversal(context: BrowserContext, live: Live) -> None:
    _, sale_id = live.sold()
    page = signed_in(context, ADMIN_TOKEN)
    page.goto("/console/sales")
    row = page.locator(f"#sale-{sale_id}")
    row.locator("input[name=reason]").fill("the consumer asked us to")
    row.locator("text=Reverse").click()
    expect(page.get_by_role("status")).to_contain_text(f"Sale {sale_id} reversed")
    expect(page.locator(f"#sale-{sale_id}")).to_contain_text("reversed")
    assert live.get(f"/v1/admin/sales/{sale_id}")["status"] == "reversed"


def test_the_buyer_view_shows_only_its_buyer(context: BrowserContext, live: Live) -> None:
    live.sold()  # a sale of bravo's
    page = signed_in(context, live.buyer_key)
    expect(page).to_have_url(re.compile(r"/console/buyer$"))
    expect(page.locator("h1")).to_contain_text("Alpha")
    expect(page.locator("body")).to_contain_text("alpha-fixed")
    assert "bravo" not in page.content()
    page.goto("/console/buyer/sales")
    assert "bravo" not in page.content()
    for url in ("/console", "/console/buyers/bravo", "/console/pings", "/console/sales"):
        response = page.goto(url)
        assert response is not None and response.status == 403, url
        assert "bravo" not in page.content()


def test_a_post_without_the_csrf_token_is_refused(context: BrowserContext, live: Live) -> None:
    before = live.get("/v1/admin/buyers/alpha")["balance_cents"]
    page = signed_in(context, ADMIN_TOKEN)
    page.goto("/console/buyers/alpha")
    status = page.evaluate("""async () => {
        const r = await fetch('/console/buyers/alpha/deposit', {method: 'POST',
            headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'amount=5000'});
        return r.status; }""")
    assert status == 403
    assert live.get("/v1/admin/buyers/alpha")["balance_cents"] == before


def test_a_buyer_returns_a_sale_an_operator_approves_it_and_the_statement_shows_it(
    context: BrowserContext, browser: Browser, live: Live
) -> None:
    assert live.admin.patch("/v1/admin/contracts/alpha-fixed", json={"return_policy": {"window_days": 7}}).is_success
    assert live.admin.patch("/v1/admin/contracts/bravo-rtb", json={"status": "paused"}).is_success
    try:
        _, sale_id = live.sold()  # alpha's $50 sale
    finally:
        assert live.admin.patch("/v1/admin/contracts/bravo-rtb", json={"status": "active"}).is_success
    buyer = signed_in(context, live.buyer_key)
    buyer.goto("/console/buyer/sales")
    buyer.locator(f"#sale-{sale_id}").get_by_role("link", name="Open a return").click()
    buyer.fill("#amount", "20")
    buyer.select_option("#reason", "duplicate")
    buyer.get_by_role("button", name="Open the return").click()
    expect(buyer.get_by_role("status")).to_contain_text("opened for $20.00: pending")
    return_id = live.get(f"/v1/admin/returns?sale={sale_id}")["items"][0]["id"]
    operators = browser.new_context(base_url=live.base)
    try:
        admin = signed_in(operators, ADMIN_TOKEN)
        admin.goto("/console/returns?status=pending")
        admin.locator(f"#return-{return_id}").get_by_role("button", name="Approve").click()
        expect(admin.get_by_role("status")).to_contain_text("approved: the buyer is refunded $20.00")
    finally:
        operators.close()
    assert live.get(f"/v1/admin/sales/{sale_id}")["status"] == "partially_returned"
    buyer.goto("/console/buyer/statement")
    expect(buyer.locator("#statement-lines tr", has_text="return")).to_contain_text("$20.00")


def test_no_page_shows_personal_data(context: BrowserContext, live: Live) -> None:
    ping_id, _ = live.sold()
    page = signed_in(context, ADMIN_TOKEN)
    for url in (
        "/console",
        "/console/pings",
        f"/console/pings/{ping_id}",
        "/console/buyers",
        "/console/buyers/bravo",
        "/console/contracts",
        "/console/contracts/bravo-rtb",
        "/console/partners",
        "/console/campaigns/acme-med",
        "/console/sales",
        "/console/reconciliation",
        "/console/reports?group_by=buyer",
    ):
        page.goto(url)
    page.get_by_role("button", name="Sign out").click()
    buyer = signed_in(context, live.buyer_key)
    buyer.goto("/console/buyer/sales")
    seen = [(url, html) for url, html in VISITED if "/console" in url]
    assert len(seen) >= 14
    assert [url for url, html in seen if not without_pii(html)] == []


def test_screenshots_for_the_readme(context: BrowserContext, live: Live) -> None:
    """Only with PINGPOST_SCREENSHOTS=dir: the overview and a ping's waterfall as PNGs."""
    target = os.environ.get("PINGPOST_SCREENSHOTS")
    if not target:
        pytest.skip("PINGPOST_SCREENSHOTS is not set")
    ping_id, _ = live.sold()
    page = signed_in(context, ADMIN_TOKEN)
    page.set_viewport_size({"width": 1360, "height": 900})
    page.goto("/console")
    page.wait_for_timeout(500)
    page.screenshot(path=str(Path(target) / "console-overview.png"), full_page=True)
    page.goto(f"/console/pings/{ping_id}")
    page.screenshot(path=str(Path(target) / "console-ping.png"), full_page=True)
