"""Verification at post (docs/verification.md): which checks run, what each local check decides, how a
vendor's answer is read, and whether the results refuse the post. Pure: the vendor calls live in
`delivery/verification.py`.

Every `detail` here is a fixed code (`area_code`, `host_not_allowed`, `http_503`...): never a value of
the lead, a URL or a vendor's own text, so a result can be stored and shown without PII.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from pingpost.domain.consumer import normalise_email

DEFAULT_TIMEOUT_MS = 2000
DEFAULT_ALLOWED_HOSTS = ("cert.trustedform.com",)
PASS, FAIL, ERROR = "pass", "fail", "error"


@dataclass(frozen=True)
class Check:
    """One configured check: `type`, `mode` (require | flag), `on_error` (fail | pass) and its own
    settings (`allowed_hosts` for trustedform, `url` and `auth` for http)."""

    type: str
    mode: str = "require"
    on_error: str = "fail"
    params: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> Check:
        params = {k: v for k, v in body.items() if k not in ("type", "mode", "on_error")}
        return cls(body["type"], body.get("mode", "require"), body.get("on_error", "fail"), params)


@dataclass(frozen=True)
class Result:
    type: str
    mode: str
    result: str  # pass | fail | error
    detail: str | None
    latency_ms: int
    refuses: bool = False

    def view(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "mode": self.mode,
            "result": self.result,
            "detail": self.detail,
            "latency_ms": self.latency_ms,
        }


def checks_from_body(raw: Iterable[Mapping[str, Any]] | None) -> tuple[Check, ...] | None:
    return None if raw is None else tuple(Check.from_body(c) for c in raw)


def plan(
    *,
    offer_checks: Sequence[Check],
    offer_timeout_ms: int | None,
    campaign_checks: Sequence[Check] | None,
    campaign_timeout_ms: int | None,
) -> tuple[tuple[Check, ...], int]:
    """The checks a post runs and their one deadline: a campaign's list replaces its offer's (an empty
    list turns verification off for the campaign); its timeout, where set, replaces the offer's."""
    checks = tuple(campaign_checks if campaign_checks is not None else offer_checks)
    timeout = campaign_timeout_ms or offer_timeout_ms or DEFAULT_TIMEOUT_MS
    return checks, timeout


def refusing(results: Sequence[Result]) -> list[Result]:
    """The results that refuse the post: a `require` check that failed, or errored unless its
    `on_error` is `pass`. `flag` checks only record."""
    return [r for r in results if r.refuses]


def decided(check: Check, result: str, detail: str | None, latency_ms: int) -> Result:
    """A check's result as recorded. An error under `on_error: pass` is still recorded as `error` (what
    happened); it just does not refuse the post."""
    refuses = check.mode == "require" and (result == FAIL or (result == ERROR and check.on_error != PASS))
    return Result(check.type, check.mode, result, detail, latency_ms, refuses)


# --- local checks -----------------------------------------------------------------------------


def nanp_problem(raw: str) -> str | None:
    """Why a phone is not a plausible NANP number (docs/verification.md), or None: 10 digits (after a
    leading 1), area code and exchange not starting with 0 or 1 and not an N11 service code, and not in
    the 555-0100..0199 range kept for fiction."""
    digits = re.sub(r"\D", "", raw)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) != 10:
        return "not_10_digits"
    if digits[0] in "01" or digits[1:3] == "11":
        return "area_code"
    if digits[3] in "01" or digits[4:6] == "11":
        return "exchange"
    if digits[3:6] == "555" and digits[6:8] == "01":
        return "fictional_555"
    return None


_EMAIL = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@([A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}$"
)


def email_problem(raw: str, disposable: frozenset[str]) -> str | None:
    """`syntax`, `disposable_domain` (the domain or a parent domain is on the list), or None."""
    value = normalise_email(raw)
    if len(value) > 254 or not _EMAIL.match(value) or ".." in value.split("@")[0]:
        return "syntax"
    domain = value.rsplit("@", 1)[1]
    labels = domain.split(".")
    if any(".".join(labels[i:]) in disposable for i in range(len(labels) - 1)):
        return "disposable_domain"
    return None


def local_result(check_type: str, values: Sequence[str], disposable: frozenset[str]) -> tuple[str, str | None]:
    """A phone or email check over the lead's values of that type: fail `missing` without any."""
    if not values:
        return FAIL, "missing"
    for value in values:
        problem = nanp_problem(value) if check_type == "phone" else email_problem(value, disposable)
        if problem is not None:
            return FAIL, problem
    return PASS, None


# --- TrustedForm --------------------------------------------------------------------------------

_URL_CHARS = re.compile(r"^[A-Za-z0-9._~:/?#\[\]!$&'()*+,;=%-]+$")  # no '@', '\\', spaces or controls


@dataclass(frozen=True)
class AllowedHost:
    scheme: str  # https, or http only where the entry says so (tests, a sandbox)
    host: str
    port: int

    @classmethod
    def parse(cls, entry: str) -> AllowedHost:
        entry = entry.strip().lower()
        scheme = "https"
        if "://" in entry:
            scheme, entry = entry.split("://", 1)
        host, _, port = entry.partition(":")
        return cls(scheme, host, int(port) if port else (443 if scheme == "https" else 80))


def cert_url(raw: str | None, allowed: Sequence[str]) -> tuple[str | None, str | None]:
    """(the URL to call, None) for a certificate URL on an allowed host, or (None, why not):
    `missing_cert_url`, `invalid_url`, `https_required`, `host_not_allowed`. The URL called is rebuilt
    from the parsed parts, so what was checked is what is requested."""
    if not raw:
        return None, "missing_cert_url"
    if len(raw) > 2000 or not _URL_CHARS.match(raw):
        return None, "invalid_url"
    try:
        parts: SplitResult = urlsplit(raw)
        port = parts.port
    except ValueError:
        return None, "invalid_url"
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("http", "https") or not host or not parts.path.startswith("/"):
        return None, "invalid_url"
    port = port or (443 if parts.scheme == "https" else 80)
    entries = [AllowedHost.parse(e) for e in allowed]
    if not any(e.host == host and e.port == port and e.scheme == parts.scheme for e in entries):
        if parts.scheme == "http" and any(e.host == host and e.scheme == "https" for e in entries):
            return None, "https_required"
        return None, "host_not_allowed"
    query = f"?{parts.query}" if parts.query else ""
    return f"{parts.scheme}://{host}:{port}{parts.path}{query}", None


def trustedform_verdict(status: int | None, body: Any, error: str | None) -> tuple[str, str | None]:
    """Read a TrustedForm v4 answer: pass when `outcome` is `success` and the lead matched by email or
    phone. A vendor fault (timeout, connection, 5xx, 401/403/429, unreadable) is an error; a
    certificate that is unknown, expired or does not match the lead is a fail."""
    if error is not None:
        return ERROR, error
    assert status is not None
    if status >= 500 or status in (401, 403, 407, 429):
        return ERROR, f"http_{status}"
    if not isinstance(body, dict):
        return ERROR, "unparsable"
    outcome = body.get("outcome")
    if outcome == "error":
        return ERROR, "outcome_error"
    if not 200 <= status < 300:
        return FAIL, f"http_{status}"
    match = body.get("match_lead")
    result = match.get("result") if isinstance(match, dict) else None
    result = result if isinstance(result, dict) else {}
    matched = [name for name in ("email_match", "phone_match") if result.get(name) is True]
    if outcome == "success":
        return (PASS, ",".join(matched)) if matched else (FAIL, "no_match")
    if outcome == "failure":
        # the certificate is real but the lead is not the one it recorded, or it cannot be retained
        return FAIL, "no_match" if result and not matched else "outcome_failure"
    return ERROR, "unparsable"


# --- Jornaya ------------------------------------------------------------------------------------

_LEADID = re.compile(r"^[A-Za-z0-9-]{36}$")


def leadid_problem(raw: str | None) -> str | None:
    """A LeadiD token is 36 characters (letters, digits, dashes): else `missing_leadid` / `invalid_leadid`."""
    if not raw:
        return "missing_leadid"
    return None if _LEADID.match(raw) else "invalid_leadid"


def jornaya_verdict(status: int | None, body: Any, error: str | None) -> tuple[str, str | None]:
    """Pass when `authenticate.authentic` is 1; 0 is a fail; anything unreadable an error."""
    if error is not None:
        return ERROR, error
    assert status is not None
    if not 200 <= status < 300:
        return ERROR, f"http_{status}"
    auth = body.get("authenticate") if isinstance(body, dict) else None
    authentic = auth.get("authentic") if isinstance(auth, dict) else None
    if authentic in (1, "1", True):
        return PASS, "authentic"
    if authentic in (0, "0", False):
        return FAIL, "not_authentic"
    return ERROR, "unparsable"


# --- the operator's own validator ---------------------------------------------------------------


def http_verdict(status: int | None, body: Any, error: str | None) -> tuple[str, str | None]:
    """Pass on `{"valid": true}`, fail on `{"valid": false}` (its reason is not kept: it may quote the
    lead); anything else an error."""
    if error is not None:
        return ERROR, error
    assert status is not None
    if not 200 <= status < 300:
        return ERROR, f"http_{status}"
    valid = body.get("valid") if isinstance(body, dict) else None
    if valid is True:
        return PASS, None
    if valid is False:
        return FAIL, "invalid"
    return ERROR, "unparsable"
