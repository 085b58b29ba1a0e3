"""Scenario files (docs/scenarios.md): read one, run it through the real app, compare what came out.

A scenario is a JSON file: a setup applied through the admin API, a state written into the store
(cap usage, live calls, holds, past sales, the round-robin pointer), the buyers' answers, one ping
and what it must answer and record. Everything runs on a fresh migrated SQLite file with the time
held still at the scenario's `now` (`pingpost.clock.ManualClock`), buyers answered by a fake
`BuyerClient`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI

from pingpost.app import create_app
from pingpost.clock import ManualClock, use_clock
from pingpost.config import Settings
from pingpost.db.store import Store, Tx, open_store
from pingpost.domain.consumer import email_sha256, phone_sha256
from pingpost.domain.eligibility import local_minute
from pingpost.outbound.client import HttpResult
from pingpost.outbound.fake import Handler, Sent
from pingpost.timefmt import parse_rfc3339
from tests.api.setup_data import VERTICAL
from tests.conftest import ADMIN_TOKEN, Api
from tests.support.buyers import FakeBuyerClient

ROOT = Path(__file__).parent
DEFAULT_NOW = "2026-12-02T15:00:00Z"  # a Wednesday
DEFAULT_OFFER: dict[str, Any] = {"id": "med", "name": "Medicare leads", "vertical": "medicare"}
DEFAULT_CAMPAIGN: dict[str, Any] = {
    "id": "acme-med",
    "name": "Acme on Medicare",
    "partner": "acme",
    "offer": "med",
    "payout": {"type": "revshare", "percent": 70},
}
DEFAULT_BUYER: dict[str, Any] = {"deposit_cents": 100_000, "credit_limit_cents": 0, "status": "active"}
DEFAULT_LEAD: dict[str, Any] = {"state": "FL", "zip": "33109", "age": 67}
DAY_MS = 86_400_000

TOP_KEYS = {"description", "now", "settings", "setup", "state", "bids", "ping", "post", "expect", "xfail"}
SETUP_KEYS = {"offer", "campaign", "buyers", "contracts", "suppression_lists"}
STATE_KEYS = {"usage", "live_calls", "holds", "sold_to", "round_robin_last", "buyer_spend"}
EXPECT_KEYS = {
    "status",
    "bids",
    "waterfall",
    "outcome_counts",
    "holds",
    "bid_requests",
    "expires_at",
    "error",
    "post",
}
SPENT = ("day_spent_cents", "week_spent_cents", "month_spent_cents")
USAGE_KEYS = {"day_used", "week_used", "month_used", "day_key", "week_key", "month_key", *SPENT}


class ScenarioError(ValueError):
    """The file itself is wrong (not the app): an unknown key, a contract without an expectation."""


def scenario_files() -> list[Path]:
    return sorted(ROOT.rglob("*.json"))


def merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """`over` on top of `base`; nested objects are merged, anything else replaced."""
    out = dict(base)
    for key, value in over.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass(frozen=True)
class Scenario:
    path: Path
    doc: dict[str, Any]

    @property
    def name(self) -> str:
        return self.path.relative_to(ROOT).as_posix()

    @property
    def now_ms(self) -> int:
        return parse_rfc3339(self.doc.get("now", DEFAULT_NOW))

    @property
    def setup(self) -> dict[str, Any]:
        setup: dict[str, Any] = self.doc.get("setup", {})
        return setup

    @property
    def offer(self) -> dict[str, Any]:
        return merged(DEFAULT_OFFER, self.setup.get("offer", {}))

    @property
    def rule(self) -> str:
        return str(self.offer.get("distribution", {}).get("rule", "exclusive"))

    @property
    def campaign(self) -> dict[str, Any]:
        return {**DEFAULT_CAMPAIGN, **self.setup.get("campaign", {})}  # a payout is replaced whole

    @property
    def contracts(self) -> list[dict[str, Any]]:
        """The contracts as created: `name` and `offer` filled in, an RTB contract's `rtb.url` made up."""
        out = []
        for raw in self.setup.get("contracts", []):
            body = {"name": raw["id"], "offer": DEFAULT_OFFER["id"], **raw}
            if "rtb" in body and "url" not in body["rtb"]:
                body["rtb"] = {"url": bid_url(raw["id"]), **body["rtb"]}
            out.append(body)
        return out

    @property
    def buyers(self) -> dict[str, dict[str, Any]]:
        """Every buyer named in `setup.buyers` or by a contract, with the defaults."""
        given: dict[str, dict[str, Any]] = self.setup.get("buyers", {})
        names = list(given) + [c["buyer"] for c in self.setup.get("contracts", []) if c["buyer"] not in given]
        return {name: {**DEFAULT_BUYER, **given.get(name, {})} for name in dict.fromkeys(names)}

    @property
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.doc.get("state", {})
        return state

    @property
    def expect(self) -> dict[str, Any]:
        expect: dict[str, Any] = self.doc["expect"]
        return expect

    def waterfall_outcomes(self) -> Iterator[tuple[str, str, str | None]]:
        """(contract, outcome, detail) of every exact `outcome` this file expects (coverage)."""
        for contract, entry in self.expect.get("waterfall", {}).items():
            if isinstance(entry.get("outcome"), str):
                detail = entry.get("detail")
                yield contract, entry["outcome"], detail if isinstance(detail, str) else None


def bid_url(contract_id: str) -> str:
    return f"http://{contract_id}.buyers.test/bid"


def load(path: Path) -> Scenario:
    """Read and check a scenario file; raises ScenarioError on a malformed one."""
    try:
        doc = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ScenarioError(f"{path.name}: not JSON: {exc}") from None
    scenario = Scenario(path, doc)
    _check_keys(scenario)
    contracts = {c["id"]: c for c in scenario.contracts}
    _check_state_and_bids(scenario, contracts)
    _check_expect(scenario, contracts)
    return scenario


def _check_keys(scenario: Scenario) -> None:
    """Every section known, the required ones present."""

    def unknown(where: str, obj: dict[str, Any], allowed: set[str]) -> None:
        extra = set(obj) - allowed
        if extra:
            raise ScenarioError(f"{scenario.name}: unknown keys in {where}: {sorted(extra)}")

    unknown("the file", scenario.doc, TOP_KEYS)
    for key in ("description", "setup", "ping", "expect"):
        if key not in scenario.doc:
            raise ScenarioError(f"{scenario.name}: `{key}` is required")
    unknown("setup", scenario.setup, SETUP_KEYS)
    unknown("state", scenario.state, STATE_KEYS)
    unknown("expect", scenario.expect, EXPECT_KEYS)
    for contract, usage in scenario.state.get("usage", {}).items():
        unknown(f"state.usage.{contract}", usage, USAGE_KEYS)


def _check_state_and_bids(scenario: Scenario, contracts: dict[str, dict[str, Any]]) -> None:
    """State and bids name contracts of the setup (bids: RTB ones)."""
    for section in ("usage", "live_calls"):
        for contract in scenario.state.get(section, {}):
            if contract not in contracts:
                raise ScenarioError(f"{scenario.name}: state.{section} names unknown contract {contract}")
    for contract in scenario.doc.get("bids", {}):
        if "rtb" not in contracts.get(contract, {}):
            raise ScenarioError(f"{scenario.name}: bids.{contract} is not an RTB contract of the setup")


def _check_expect(scenario: Scenario, contracts: dict[str, dict[str, Any]]) -> None:
    """A refused ping expects only its error; any other, a status and every contract's waterfall entry."""
    if "error" in scenario.expect:
        if set(scenario.expect) != {"error"}:
            raise ScenarioError(f"{scenario.name}: a refused ping expects only `error`")
        return
    for key in ("status", "waterfall"):
        if key not in scenario.expect:
            raise ScenarioError(f"{scenario.name}: `expect.{key}` is required")
    listed = set(scenario.expect["waterfall"])
    if listed != set(contracts):
        raise ScenarioError(
            f"{scenario.name}: expect.waterfall must list every contract of the setup; "
            f"missing {sorted(set(contracts) - listed)}, unknown {sorted(listed - set(contracts))}"
        )


# --- the buyers ------------------------------------------------------------------------------


ANSWERS = {
    "timeout": HttpResult(status=None, body=b"", latency_ms=1000, error="timeout"),
    "connection_error": HttpResult(status=None, body=b"", latency_ms=1, error="connection_error"),
    "error": HttpResult(status=500, body=b'{"error": "internal"}', latency_ms=1),
}


def bid_handler(answer: Any) -> Handler:
    """A buyer's answer as written in the file: "timeout", "connection_error", "error" (HTTP 500), or
    {"status" (200), "body" (JSON) or "raw" (text), "delay_ms" (real time, for the auction deadline)}."""
    if isinstance(answer, str) and answer in ANSWERS:
        result, delay_ms = ANSWERS[answer], 0
    elif isinstance(answer, dict) and set(answer) <= {"status", "body", "raw", "delay_ms"}:
        body = (
            answer["raw"].encode()
            if "raw" in answer
            else json.dumps(answer["body"]).encode()
            if "body" in answer
            else b""
        )
        delay_ms = answer.get("delay_ms", 0)
        result = HttpResult(status=answer.get("status", 200), body=body, latency_ms=max(delay_ms, 1))
    else:
        raise ScenarioError(f"unreadable buyer answer {answer!r}")

    async def handler(_: Sent) -> HttpResult:
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        return result

    return handler


# --- setup and state -------------------------------------------------------------------------


async def apply_setup(api: Api, scenario: Scenario) -> str:
    """Create everything through the admin API; answers the campaign's posting key."""
    await api.ok("POST", "/v1/admin/verticals", 201, json=VERTICAL)
    await api.ok("POST", "/v1/admin/offers", 201, json=scenario.offer)
    await api.ok("POST", "/v1/admin/partners", 201, json={"id": "acme", "name": "Acme"})
    campaign = await api.ok("POST", "/v1/admin/campaigns", 201, json=scenario.campaign)
    for ident, buyer in scenario.buyers.items():
        await api.ok(
            "POST",
            "/v1/admin/buyers",
            201,
            json={
                "id": ident,
                "name": ident.title(),
                "credit_limit_cents": buyer["credit_limit_cents"],
                "status": buyer["status"],
                **{k: buyer[k] for k in BUYER_FIELDS if k in buyer},
            },
        )
        if buyer["deposit_cents"]:
            await api.ok(
                "POST",
                f"/v1/admin/buyers/{ident}/deposits",
                201,
                json={"amount_cents": buyer["deposit_cents"], "reference": f"scenario-{ident}"},
            )
    for listed in scenario.setup.get("suppression_lists", []):
        entries = {k: listed[k] for k in ("phones", "emails") if k in listed}
        await api.ok(
            "POST", "/v1/admin/suppression-lists", 201, json={k: v for k, v in listed.items() if k not in entries}
        )
        if entries:
            await api.ok("POST", f"/v1/admin/suppression-lists/{listed['id']}/entries", json=entries)
    for contract in scenario.contracts:
        await api.ok("POST", "/v1/admin/contracts", 201, json=contract)
    return str(campaign["posting_key"])


# Buyer fields a scenario may set besides its deposit, credit limit and status.
BUYER_FIELDS = ("timezone", "caps", "low_balance_cents", "pause_on_low_balance")


def consumer_hashes(consumer: dict[str, str]) -> dict[str, str]:
    """A ping's consumer: plain `email` / `phone` are hashed as a partner would; `*_sha256` pass."""
    out = {k: v for k, v in consumer.items() if k.endswith("_sha256")}
    if "email" in consumer:
        out["email_sha256"] = email_sha256(consumer["email"])
    if "phone" in consumer:
        hashed = phone_sha256(consumer["phone"])
        if hashed is None:
            raise ScenarioError(f"not a NANP phone: {consumer['phone']}")
        out["phone_sha256"] = hashed
    return out


async def apply_state(
    store: Store, keyed: Callable[[dict[str, str | None]], dict[str, str]], scenario: Scenario
) -> None:
    """Write the scenario's state the way the app would have left it. `keyed` is the app's
    `consumer_hmacs` (past sales are stored as keyed hashes only)."""
    state, now = scenario.state, scenario.now_ms
    contracts = {c["id"]: c for c in scenario.contracts}
    rows: list[tuple[str, dict[str, Any]]] = []
    for contract, usage in state.get("usage", {}).items():
        keys = local_minute(now, ZoneInfo(contracts[contract].get("timezone", "UTC")))[1]
        rows.append(
            (
                "UPDATE contract_usage SET day_key = :dk, day_used = :du, week_key = :wk, week_used = :wu, "
                "month_key = :mk, month_used = :mu, day_spent_cents = :ds, week_spent_cents = :ws, "
                "month_spent_cents = :ms WHERE contract_id = :c",
                {
                    "ds": usage.get("day_spent_cents", 0),
                    "ws": usage.get("week_spent_cents", 0),
                    "ms": usage.get("month_spent_cents", 0),
                    "c": contract,
                    "dk": usage.get("day_key", keys.day),
                    "du": usage.get("day_used", 0),
                    "wk": usage.get("week_key", keys.week),
                    "wu": usage.get("week_used", 0),
                    "mk": usage.get("month_key", keys.month),
                    "mu": usage.get("month_used", 0),
                },
            )
        )
    for buyer, spent in state.get("buyer_spend", {}).items():  # in the buyer's own time zone
        zone = scenario.buyers.get(buyer, {}).get("timezone", "UTC")
        keys = local_minute(now, ZoneInfo(zone))[1]
        rows.append(
            (
                "UPDATE buyer_funds SET spend_day_key = :dk, spend_week_key = :wk, spend_month_key = :mk, "
                "day_spent_cents = :ds, week_spent_cents = :ws, month_spent_cents = :ms WHERE buyer_id = :b",
                {
                    "b": buyer,
                    "dk": keys.day,
                    "wk": keys.week,
                    "mk": keys.month,
                    "ds": spent.get("day_spent_cents", 0),
                    "ws": spent.get("week_spent_cents", 0),
                    "ms": spent.get("month_spent_cents", 0),
                },
            )
        )
    for contract, live in state.get("live_calls", {}).items():
        rows.append(("UPDATE contract_usage SET live_calls = :n WHERE contract_id = :c", {"c": contract, "n": live}))
    for buyer, holds in state.get("holds", {}).items():
        rows.append(("UPDATE buyer_funds SET holds_cents = :h WHERE buyer_id = :b", {"b": buyer, "h": holds}))
    for buyer, sales in state.get("sold_to", {}).items():
        for i, sale in enumerate(sales):
            sale = sale if isinstance(sale, dict) else {"consumer": sale}
            value = sale["consumer"]
            by_kind = {"email": value} if "@" in value else {"phone": value}
            plain: dict[str, str | None] = {**consumer_hashes(by_kind)}
            for hashed in keyed(plain).values():
                rows.append(
                    (
                        "INSERT INTO dedup_records (buyer_id, hash_hmac, sold_at, sale_id) VALUES (:b, :h, :t, :s)",
                        {
                            "b": buyer,
                            "h": hashed,
                            "t": now - sale.get("days_ago", 1) * DAY_MS,
                            "s": f"sal_scenario_{buyer}_{i}",
                        },
                    )
                )
    if "round_robin_last" in state:
        last = contracts[state["round_robin_last"]]
        rows.append(
            (
                "INSERT INTO rr_pointer (offer_id, last_key) VALUES (:o, :k) "
                "ON CONFLICT (offer_id) DO UPDATE SET last_key = excluded.last_key",
                {"o": scenario.offer["id"], "k": f"{last.get('priority', 100):010d}:{last['id']}"},
            )
        )

    async def write_state(tx: Tx) -> None:
        for sql, params in rows:
            assert await tx.execute(sql, params) == 1, (sql, params)

    if rows:
        await store.write(write_state)


# --- the run ---------------------------------------------------------------------------------


def mismatches(expected: Any, actual: Any, where: str) -> list[str]:
    """Only what the file wrote is compared; `{"one_of": [...]}` accepts any of its values."""
    if isinstance(expected, dict) and set(expected) == {"one_of"}:
        return [] if actual in expected["one_of"] else [f"{where}: {actual!r} is not one of {expected['one_of']!r}"]
    if isinstance(expected, dict) and isinstance(actual, dict):
        out: list[str] = []
        for key, value in expected.items():
            out += mismatches(value, actual.get(key), f"{where}.{key}")
        return out
    if isinstance(expected, list) and isinstance(actual, list) and any(isinstance(e, dict) for e in expected):
        if len(expected) != len(actual):  # a list of objects: as many, each compared on the keys written
            return [f"{where}: expected {len(expected)} items, got {actual!r}"]
        return [
            p for i, (e, a) in enumerate(zip(expected, actual, strict=True)) for p in mismatches(e, a, f"{where}[{i}]")
        ]
    return [] if expected == actual else [f"{where}: expected {expected!r}, got {actual!r}"]


class ScenarioStore:
    """The store of the scenario being run, behind an app shared by the scenarios of the same settings.

    FastAPI builds an app's routes on its first requests, which cost more than the rest of a scenario
    (measured: 0.24 s a scenario with an app each, 0.10 s shared). Each scenario still gets its own
    database, store and lifespan (fresh services and configuration snapshot); this forwards the app's
    store calls to that store."""

    target: Store | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


@dataclass
class SharedApp:
    app: FastAPI
    store: ScenarioStore
    buyers: FakeBuyerClient


_APPS: dict[str, SharedApp] = {}


def shared_app(overrides: dict[str, Any]) -> SharedApp:
    key = json.dumps(overrides, sort_keys=True)
    if key not in _APPS:
        settings = Settings(
            **{
                "admin_token": ADMIN_TOKEN,
                "secret_key": "test-secret-key",
                "json_logs": True,
                "static_fallback": True,
                **overrides,
            }
        )
        store, buyers = ScenarioStore(), FakeBuyerClient()
        _APPS[key] = SharedApp(create_app(settings, store=store, client=buyers), store, buyers)
    return _APPS[key]


async def run(scenario: Scenario, *, database_url: str) -> None:
    """Set up, write the state, ping, and compare; raises AssertionError listing every difference."""
    clock = ManualClock(scenario.now_ms)
    shared = shared_app(scenario.doc.get("settings", {}))
    buyers = shared.buyers
    buyers.handlers.clear()
    buyers.sent.clear()
    urls = {c["rtb"]["url"]: c["id"] for c in scenario.contracts if "rtb" in c}
    for contract in scenario.contracts:
        if contract["id"] in scenario.doc.get("bids", {}):
            buyers.handlers[contract["rtb"]["url"]] = bid_handler(scenario.doc["bids"][contract["id"]])
    app = shared.app
    with use_clock(clock):
        store = shared.store.target = await open_store(database_url, shared_clock=clock)
        try:
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
            ):
                api = Api(client)
                posting_key = await apply_setup(api, scenario)
                await apply_state(store, app.state.services.auction.consumer_hmacs, scenario)
                problems = await ping_and_compare(api, scenario, posting_key, buyers, urls)
        finally:
            shared.store.target = None
            await store.close()
    assert not problems, f"{scenario.name}: {scenario.doc['description']}\n  " + "\n  ".join(problems)


async def ping_and_compare(
    api: Api, scenario: Scenario, posting_key: str, buyers: FakeBuyerClient, urls: dict[str, str]
) -> list[str]:
    ping = dict(scenario.doc["ping"])
    ping.setdefault("lead", DEFAULT_LEAD)
    if "consumer" in ping:
        ping["consumer"] = consumer_hashes(ping["consumer"])
    response = await api.request("POST", "/v1/ping", token=posting_key, json=ping)
    expect = scenario.expect
    if "error" in expect:
        body = response.json()
        actual_error = {"status": response.status_code, "code": body.get("error", {}).get("code")}
        return mismatches(expect["error"], actual_error, "error")
    if response.status_code != 200:
        return [f"ping answered {response.status_code}: {response.text}"]
    answer = response.json()
    problems = await post_and_compare(api, scenario, posting_key, answer["ping_id"]) if "post" in scenario.doc else []
    view = await api.ok("GET", f"/v1/admin/pings/{answer['ping_id']}")
    waterfall = {entry["contract_id"]: entry for entry in view["waterfall"]}
    if len(waterfall) != len(view["waterfall"]):
        problems.append(f"waterfall: {len(view['waterfall'])} entries for {len(waterfall)} contracts")
    if set(waterfall) != set(expect["waterfall"]):
        problems.append(f"waterfall contracts: expected {sorted(expect['waterfall'])}, got {sorted(waterfall)}")
    problems += mismatches(expect["waterfall"], waterfall, "waterfall")
    problems += mismatches(expect["status"], answer["status"], "status")
    if "bids" in expect:
        by_bid = {entry["bid_id"]: contract for contract, entry in waterfall.items() if entry.get("bid_id")}
        actual_bids = [{"contract": by_bid.get(b["bid_id"]), **b} for b in answer["bids"]]
        if len(actual_bids) != len(expect["bids"]):
            problems.append(f"bids: expected {len(expect['bids'])}, got {actual_bids}")
        for i, (want, got) in enumerate(zip(expect["bids"], actual_bids, strict=False)):
            problems += mismatches(want, got, f"bids[{i}]")
    if "outcome_counts" in expect:
        counts: dict[str, int] = {}
        for entry in waterfall.values():
            counts[entry["outcome"]] = counts.get(entry["outcome"], 0) + 1
        problems += mismatches(
            expect["outcome_counts"], {k: counts.get(k, 0) for k in expect["outcome_counts"]}, "outcome_counts"
        )
    for buyer, holds in expect.get("holds", {}).items():
        view_buyer = await api.ok("GET", f"/v1/admin/buyers/{buyer}")
        problems += mismatches(holds, view_buyer["holds_cents"], f"holds.{buyer}")
    if "expires_at" in expect:
        problems += mismatches(expect["expires_at"], answer["expires_at"], "expires_at")
    problems += bid_requests_compared(scenario, buyers, urls)
    return problems


async def post_and_compare(api: Api, scenario: Scenario, posting_key: str, ping_id: str) -> list[str]:
    """Post the ping (`post.lead` over the ping's lead, `post.consent`) and compare `expect.post`: the
    answer's keys, and `verification`, the results the ping view shows (docs/verification.md)."""
    post = scenario.doc["post"]
    lead = {**scenario.doc["ping"].get("lead", DEFAULT_LEAD), **post.get("lead", {})}
    body = {"ping_id": ping_id, "lead": lead, **({"consent": post["consent"]} if "consent" in post else {})}
    response = await api.request("POST", "/v1/post", token=posting_key, json=body)
    if response.status_code != 200:
        return [f"post answered {response.status_code}: {response.text}"]
    answer = response.json()
    view = await api.ok("GET", f"/v1/admin/pings/{ping_id}")
    return mismatches(scenario.expect.get("post", {}), {**answer, "verification": view["verification"]}, "post")


def bid_requests_compared(scenario: Scenario, buyers: FakeBuyerClient, urls: dict[str, str]) -> list[str]:
    """The bid requests the buyers received (deliveries of a `post` step are not bid requests)."""
    delivery_urls = {c["delivery"]["url"] for c in scenario.contracts if c.get("delivery")}
    asked = {urls.get(sent.url, sent.url): sent.body for sent in buyers.sent if sent.url not in delivery_urls}
    problems: list[str] = []
    expect = scenario.expect
    if "bid_requests" in expect:
        if set(asked) != set(expect["bid_requests"]):
            problems.append(f"bid_requests: expected {sorted(expect['bid_requests'])}, got {sorted(asked)}")
        problems += mismatches(expect["bid_requests"], asked, "bid_requests")
    unanswered = sorted(c for c in asked if c not in scenario.doc.get("bids", {}))
    if unanswered:
        problems.append(f"buyers asked for a bid without an answer in `bids`: {unanswered}")
    return problems
