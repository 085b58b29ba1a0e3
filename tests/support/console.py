"""Console steps shared by the page tests and the browser tests: a known setup (two buyers, a
fixed-price and an RTB contract, a campaign, a buyer key), a known person posted, sign-in."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import httpx

from tests.api.setup_data import base_setup, buyer, campaign, contract

# A person whose data must never appear on a console page.
PII_MARKERS = ("Zebulon", "Quixotic", "41555501", "555-01", "zebulon.quixotic")


def person(n: int = 47) -> dict[str, str]:
    """The known person, with the `n`th phone and email (a buyer's dedup refuses the same one twice)."""
    return {
        "first_name": "Zebulon",
        "last_name": "Quixotic",
        "phone": f"(415) 555-01{n % 100:02d}",
        "email": f"zebulon.quixotic+{n}@example.org",
    }


PERSON = person()
LEAD = {"state": "FL", "zip": "33109", "age": 67}

BID_URL = "http://buyers.test/bravo/bid"
DELIVER_ALPHA = "http://buyers.test/alpha/deliver"
DELIVER_BRAVO = "http://buyers.test/bravo/deliver"


@dataclass
class World:
    posting_key: str
    buyer_key: str


async def build_world(api: Any) -> World:
    """Offer `med`; buyer alpha (fixed $50, daily cap 10) and buyer bravo (RTB), each $1,000 funded;
    campaign acme-med; a buyer key of alpha. Buyers answer through `outbound` fakes or a sandbox."""
    await base_setup(api)
    key = await campaign(api)
    await buyer(api, "alpha", deposit=100_000)
    await buyer(api, "bravo", deposit=100_000)
    await contract(api, "alpha-fixed", "alpha", 5000, caps={"daily": 10}, delivery={"url": DELIVER_ALPHA})
    await contract(
        api, "bravo-rtb", "bravo", None, rtb={"url": BID_URL, "timeout_ms": 500}, delivery={"url": DELIVER_BRAVO}
    )
    made = await api.ok(
        "POST", "/v1/admin/api-keys", 201, json={"kind": "buyer", "buyer": "alpha", "name": "alpha console"}
    )
    return World(posting_key=key, buyer_key=made["key"])


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the page carries no CSRF token"
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, key: str) -> str:
    """Sign in and answer the session's CSRF token (from the landing page)."""
    r = await client.post("/console/login", data={"key": key})
    assert r.status_code == 303, (r.status_code, r.text[:300])
    landing = await client.get(r.headers["location"])
    assert landing.status_code == 200, landing.text[:300]
    return csrf_of(landing.text)


def without_pii(html: str) -> bool:
    return not any(marker.lower() in html.lower() for marker in PII_MARKERS)
