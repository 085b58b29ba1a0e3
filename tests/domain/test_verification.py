"""Pure verification rules (docs/verification.md): phone plausibility, email, the certificate URL
allow-list, reading the vendors' answers, which results refuse a post."""

from __future__ import annotations

from typing import Any

import pytest

from pingpost.delivery.verification import disposable_domains
from pingpost.domain.verification import (
    Check,
    cert_url,
    decided,
    email_problem,
    http_verdict,
    jornaya_verdict,
    leadid_problem,
    nanp_problem,
    plan,
    refusing,
    trustedform_verdict,
)


@pytest.mark.parametrize(
    ("phone", "problem"),
    [
        ("(305) 867-5309", None),
        ("+1 305 867 5309", None),
        ("305-555-0100", "fictional_555"),
        ("305-555-0199", "fictional_555"),
        ("305-555-0200", None),
        ("105-867-5309", "area_code"),
        ("911-867-5309", "area_code"),
        ("305-067-5309", "exchange"),
        ("305-411-5309", "exchange"),
        ("867-5309", "not_10_digits"),
        ("2 305 867 5309", "not_10_digits"),
    ],
)
def test_nanp_plausibility(phone: str, problem: str | None) -> None:
    assert nanp_problem(phone) == problem


@pytest.mark.parametrize(
    ("email", "problem"),
    [
        ("ada@lovelace.test", None),
        ("Ada.Lovelace+leads@Example.COM", None),
        ("ada@mailinator.com", "disposable_domain"),
        ("ada@eu.mailinator.com", "disposable_domain"),  # a subdomain of a listed domain
        ("ada@notmailinator.com", None),
        ("ada@", "syntax"),
        ("ada..l@example.com", "syntax"),
        ("ada@example", "syntax"),
        ("a b@example.com", "syntax"),
    ],
)
def test_email_syntax_and_disposable_domains(email: str, problem: str | None) -> None:
    assert email_problem(email, disposable_domains()) == problem


def test_the_shipped_list_has_a_few_hundred_domains() -> None:
    domains = disposable_domains()
    assert len(domains) >= 300 and {"mailinator.com", "yopmail.com", "guerrillamail.com"} <= domains
    assert all(d == d.lower() and "." in d and " " not in d for d in domains)


ALLOWED = ["cert.trustedform.com", "http://127.0.0.1:8700"]


@pytest.mark.parametrize(
    ("url", "called", "problem"),
    [
        ("https://cert.trustedform.com/abc123", "https://cert.trustedform.com:443/abc123", None),
        ("https://CERT.trustedform.com/abc?x=1#frag", "https://cert.trustedform.com:443/abc?x=1", None),
        ("http://127.0.0.1:8700/trustedform/pass", "http://127.0.0.1:8700/trustedform/pass", None),
        ("http://cert.trustedform.com/abc", None, "https_required"),
        ("https://cert.trustedform.com:8443/abc", None, "host_not_allowed"),
        ("https://127.0.0.1:8700/x", None, "host_not_allowed"),
        ("http://127.0.0.1:8701/x", None, "host_not_allowed"),
        ("https://cert.trustedform.com.evil.test/abc", None, "host_not_allowed"),
        ("https://169.254.169.254/latest/meta-data", None, "host_not_allowed"),
        ("https://cert.trustedform.com@evil.test/abc", None, "invalid_url"),
        ("https://evil.test\\@cert.trustedform.com/abc", None, "invalid_url"),
        ("https://cert.trustedform.com /abc", None, "invalid_url"),
        ("ftp://cert.trustedform.com/abc", None, "invalid_url"),
        ("https://cert.trustedform.com:99999/abc", None, "invalid_url"),
        ("cert.trustedform.com/abc", None, "invalid_url"),
        ("", None, "missing_cert_url"),
        (None, None, "missing_cert_url"),
    ],
)
def test_certificate_urls_only_on_allowed_hosts(url: str | None, called: str | None, problem: str | None) -> None:
    assert cert_url(url, ALLOWED) == (called, problem)


@pytest.mark.parametrize(
    ("status", "body", "error", "verdict"),
    [
        (200, {"outcome": "success", "match_lead": {"result": {"email_match": True}}}, None, ("pass", "email_match")),
        (200, {"outcome": "success", "match_lead": {"result": {"phone_match": True}}}, None, ("pass", "phone_match")),
        (200, {"outcome": "success", "match_lead": {"result": {"email_match": False}}}, None, ("fail", "no_match")),
        (200, {"outcome": "failure", "match_lead": {"result": {"email_match": False}}}, None, ("fail", "no_match")),
        (200, {"outcome": "failure", "reason": "expired"}, None, ("fail", "outcome_failure")),
        (404, {"outcome": "failure", "reason": "certificate not found"}, None, ("fail", "http_404")),
        (200, {"outcome": "error", "reason": "x"}, None, ("error", "outcome_error")),
        (401, {"outcome": "error"}, None, ("error", "http_401")),
        (503, None, None, ("error", "http_503")),
        (200, None, None, ("error", "unparsable")),
        (200, {"match_lead": {}}, None, ("error", "unparsable")),
        (None, None, "timeout", ("error", "timeout")),
    ],
)
def test_trustedform_answers(status: int | None, body: Any, error: str | None, verdict: tuple[str, str]) -> None:
    assert trustedform_verdict(status, body, error) == verdict


def test_jornaya_and_validator_answers() -> None:
    assert jornaya_verdict(200, {"authenticate": {"authentic": 1, "token": "x"}}, None) == ("pass", "authentic")
    assert jornaya_verdict(200, {"authenticate": {"authentic": 0}}, None) == ("fail", "not_authentic")
    assert jornaya_verdict(200, {"authenticate": {}}, None) == ("error", "unparsable")
    assert jornaya_verdict(500, None, None) == ("error", "http_500")
    assert jornaya_verdict(None, None, "connection_error") == ("error", "connection_error")
    assert leadid_problem(None) == "missing_leadid"
    assert leadid_problem("short") == "invalid_leadid"
    assert leadid_problem("12345678-1234-1234-1234-123456789012") is None
    assert leadid_problem("12345678-1234-1234-1234-12345678901&") == "invalid_leadid"
    assert http_verdict(200, {"valid": True}, None) == ("pass", None)
    assert http_verdict(200, {"valid": False, "reason": "ada@example.com is banned"}, None) == ("fail", "invalid")
    assert http_verdict(200, {"valid": "yes"}, None) == ("error", "unparsable")


def test_which_results_refuse_and_which_list_runs() -> None:
    require, flag, lenient = Check("phone"), Check("email", mode="flag"), Check("jornaya", on_error="pass")
    assert refusing([decided(require, "pass", None, 1), decided(flag, "fail", "syntax", 1)]) == []
    assert [r.type for r in refusing([decided(require, "fail", "area_code", 1)])] == ["phone"]
    assert [r.type for r in refusing([decided(require, "error", "timeout", 1)])] == ["phone"]
    assert refusing([decided(lenient, "error", "timeout", 1), decided(flag, "error", "x", 1)]) == []
    assert [r.type for r in refusing([decided(lenient, "fail", "not_authentic", 1)])] == ["jornaya"]
    offer = (require,)
    assert plan(offer_checks=offer, offer_timeout_ms=None, campaign_checks=None, campaign_timeout_ms=None) == (
        offer,
        2000,
    )
    assert plan(offer_checks=offer, offer_timeout_ms=900, campaign_checks=(), campaign_timeout_ms=None) == ((), 900)
    assert plan(offer_checks=offer, offer_timeout_ms=900, campaign_checks=(flag,), campaign_timeout_ms=300) == (
        (flag,),
        300,
    )
