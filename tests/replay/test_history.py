"""The configuration as it stood, rebuilt from the audit log (docs/replay.md, The configuration): the
pure undo of changes over the live bodies, the redacted secrets, and a setup laid over each version."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pingpost import errors
from pingpost.admin.schemas import public_auth
from pingpost.admin.service import RESOURCES, _dump, _validate
from pingpost.domain.audit import REDACTED, redact
from pingpost.replay import config
from pingpost.replay.config import Bodies
from pingpost.replay.history import Change, changes, proposed, versions


def body(kind: str, **fields: Any) -> dict[str, Any]:
    return _dump(_validate(RESOURCES[kind], fields))


def contract(ident: str, buyer: str, price: int, **extra: Any) -> dict[str, Any]:
    return body("contract", name=ident, buyer=buyer, offer="med", price_cents=price, **extra)


def view(ident: str, stored: dict[str, Any], **around: Any) -> dict[str, Any]:
    """What an audit entry keeps of an object: the admin API's view (auth shown by type), redacted."""
    shown = {"id": ident, **stored, "created_at": "2026-11-01T00:00:00Z", "updated_at": "2026-11-01T00:00:00Z"}
    for block in ("rtb", "delivery"):
        if shown.get(block):
            shown[block] = {**shown[block], "auth": public_auth(shown[block].get("auth"))}
    result: dict[str, Any] = redact({**shown, **around})
    return result


def live(**contracts: dict[str, Any]) -> Bodies:
    return {
        "vertical": {"medicare": body("vertical", name="M", fields=[{"name": "state", "type": "state"}])},
        "offer": {"med": body("offer", name="Med", vertical="medicare", distribution={"rule": "exclusive"})},
        "partner": {"acme": body("partner", name="Acme")},
        "campaign": {},
        "buyer": {"alpha": body("buyer", name="Alpha"), "beta": body("buyer", name="Beta")},
        "contract": dict(contracts),
    }


def prices(history: list[tuple[int, Bodies]]) -> list[tuple[int, dict[str, int]]]:
    return [(at, {k: c["price_cents"] for k, c in b["contract"].items()}) for at, b in history]


def test_several_changes_to_one_object_are_undone_newest_first() -> None:
    now = live(a=contract("a", "alpha", 6000))
    found = [
        Change(200, "contract", "a", view("a", contract("a", "alpha", 5500))),
        Change(100, "contract", "a", view("a", contract("a", "alpha", 5000))),
    ]
    assert prices(versions(now, found, start=50)) == [(50, {"a": 5000}), (100, {"a": 5500}), (200, {"a": 6000})]
    # a range starting between the two changes begins with the state the first one left
    assert prices(versions(now, found, start=150)) == [(150, {"a": 5500}), (200, {"a": 6000})]
    assert now["contract"]["a"]["price_cents"] == 6000  # the live bodies are not touched


def test_creates_deletes_and_entries_before_the_range() -> None:
    now = live(a=contract("a", "alpha", 5000), b=contract("b", "beta", 3000))
    now["buyer"]["gamma"] = body("buyer", name="Gamma")
    found = [
        Change(10, "contract", "a", view("a", contract("a", "alpha", 1))),  # before the range: ignored
        Change(100, "contract", "b", None),  # created at 100
        Change(150, "contract", "gone", view("gone", contract("gone", "beta", 4000))),  # deleted at 150
        Change(300, "buyer", "gamma", None),  # created after the range's last ping: still undone
    ]
    history = versions(now, found, start=50)
    assert prices(history) == [
        (50, {"a": 5000, "gone": 4000}),
        (100, {"a": 5000, "gone": 4000, "b": 3000}),
        (150, {"a": 5000, "b": 3000}),
        (300, {"a": 5000, "b": 3000}),
    ]
    assert "gamma" not in history[2][1]["buyer"] and "gamma" in history[3][1]["buyer"]
    # versions share the bodies that did not change, and each is a whole configuration
    assert history[0][1]["offer"] is history[3][1]["offer"]
    for _, bodies in history:
        config.build_snapshot(bodies)


def test_a_change_that_changed_nothing_makes_no_version_and_changes_of_one_instant_make_one() -> None:
    now = live(a=contract("a", "alpha", 6000), b=contract("b", "beta", 3000))
    found = [
        Change(100, "contract", "a", view("a", contract("a", "alpha", 5000))),  # a PATCH of equal fields
        Change(200, "contract", "a", view("a", contract("a", "alpha", 5000))),
        Change(200, "contract", "b", view("b", contract("b", "beta", 2000))),
    ]
    assert prices(versions(now, found, start=0)) == [(0, {"a": 5000, "b": 2000}), (200, {"a": 6000, "b": 3000})]


def test_a_view_becomes_a_body_with_the_newer_secrets() -> None:
    rtb = {"url": "http://r.test/bid", "auth": {"type": "header", "name": "X-Key", "value": "s3cret"}}
    delivery = {"url": "http://r.test/post", "auth": {"type": "bearer", "token": "tok-live"}}
    now = live(a=contract("a", "alpha", 6000, rtb=rtb, delivery=delivery))
    older = contract(
        "a",
        "alpha",
        5000,
        rtb=rtb,
        delivery={"url": "http://r.test/post", "auth": {"type": "basic", "username": "u", "password": "p"}},
    )
    shown = view("a", older)
    assert shown["rtb"]["auth"] == {"type": "header", "name": "X-Key"}  # what the audit log holds
    buyer_view = view("alpha", body("buyer", name="Alpha", credit_limit_cents=900), balance_cents=5, holds_cents=0)
    found = [Change(100, "contract", "a", shown), Change(100, "buyer", "alpha", buyer_view)]
    first = versions(now, found, start=0)[0][1]
    a = first["contract"]["a"]
    assert a["price_cents"] == 5000
    assert a["rtb"]["auth"] == rtb["auth"]  # the same type and name: the live secret
    # another type: nothing to take the secret from, shown `[redacted]`, and still a valid body
    assert a["delivery"]["auth"] == {"type": "basic", "username": REDACTED, "password": REDACTED}
    assert first["buyer"]["alpha"] == body("buyer", name="Alpha", credit_limit_cents=900)  # view fields dropped
    assert config.credit_limits(first) == {"alpha": 900, "beta": 0}
    assert config.build_snapshot(first).contracts["a"].price_cents == 5000


def test_a_view_that_no_longer_validates_names_the_object_and_the_instant() -> None:
    now = live(a=contract("a", "alpha", 6000))
    broken = {**view("a", contract("a", "alpha", 5000)), "price_cents": -1}
    with pytest.raises(errors.ValidationFailed) as failed:
        versions(now, [Change(86_400_000, "contract", "a", broken)], start=0)
    (problem,) = failed.value.details["errors"]
    assert problem["field"] == "history.contract.a.price_cents"
    assert "1970-01-02T00:00:00" in problem["message"]


def test_auto_pauses_from_events_are_undone() -> None:
    paused = contract("a", "alpha", 5000) | {"status": "paused", "paused_reason": "auto_pause: 3"}
    now = live(a=paused)
    now["buyer"]["beta"] = now["buyer"]["beta"] | {"status": "paused", "paused_reason": "low_balance"}
    events = [
        {"created_at": 100, "type": "contract.auto_paused", "data": orjson.dumps({"contract_id": "a"})},
        {"created_at": 110, "type": "buyer.low_balance", "data": orjson.dumps({"buyer_id": "alpha", "paused": False})},
        {"created_at": 120, "type": "buyer.low_balance", "data": orjson.dumps({"buyer_id": "beta", "paused": True})},
    ]
    audit = [{"at": 90, "object_type": "contract", "object_id": "a", "before": None}]
    found = changes(audit, events)
    # a pause applies from the millisecond after the decision that caused it (written at the same one)
    assert [(c.at, c.kind, c.ident, c.auto_pause) for c in found] == [
        (90, "contract", "a", False),
        (101, "contract", "a", True),
        (121, "buyer", "beta", True),
    ]
    history = versions(now, found, start=0)
    assert [at for at, _ in history] == [0, 90, 101, 121]
    assert "a" not in history[0][1]["contract"]
    assert history[1][1]["contract"]["a"]["status"] == "active"
    assert history[1][1]["contract"]["a"]["paused_reason"] is None
    assert history[2][1]["contract"]["a"]["status"] == "paused"
    assert [b["buyer"]["beta"]["status"] for _, b in history] == ["active", "active", "active", "paused"]


def test_a_setup_over_each_version() -> None:
    now = live(a=contract("a", "alpha", 5000), late=contract("late", "gamma", 2000))
    now["buyer"]["gamma"] = body("buyer", name="Gamma")
    found = [Change(100, "buyer", "gamma", None), Change(200, "contract", "late", None)]
    history = versions(now, found, start=0)
    setup = {
        "contracts": [
            {"id": "a", "price_cents": 5100},  # changes an object of every version
            {"id": "late", "price_cents": 6000},  # changes one that exists from 200 on
            {"id": "new", "name": "New", "buyer": "beta", "offer": "med", "price_cents": 4000},  # adds one
            {"id": "g", "name": "G", "buyer": "gamma", "offer": "med", "price_cents": 4500},  # names gamma (from 100)
        ]
    }
    config.overlay(now, setup)  # valid against the live configuration
    laid = proposed(history, now, setup)
    assert prices(laid) == [
        (0, {"a": 5100, "new": 4000}),
        (100, {"a": 5100, "new": 4000, "g": 4500}),
        (200, {"a": 5100, "late": 6000, "new": 4000, "g": 4500}),
    ]
    assert prices(history) == [(0, {"a": 5000}), (100, {"a": 5000}), (200, {"a": 5000, "late": 2000})]
    assert proposed(history, now, None) == history


def test_a_setup_that_fails_on_an_older_version_says_which() -> None:
    now = live(a=contract("a", "alpha", 5000, rtb={"url": "http://r.test/bid"}))
    found = [Change(86_400_000, "contract", "a", view("a", contract("a", "alpha", 5000)))]
    setup = {"contracts": [{"id": "a", "price_cents": None}]}  # bids by RTB only: valid live, not before
    config.overlay(now, setup)
    with pytest.raises(errors.ValidationFailed) as failed:
        proposed(versions(now, found, start=0), now, setup)
    (problem,) = failed.value.details["errors"]
    assert problem["field"] == "setup.contracts.0.body"
    assert problem["message"].endswith("(against the configuration as it stood at 1970-01-01T00:00:00.000Z)")
