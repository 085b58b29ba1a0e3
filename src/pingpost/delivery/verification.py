"""Verification at post (docs/verification.md): every configured check runs concurrently under one total
deadline, with no transaction open; the vendor calls go through the outbound seam (`VendorClient`).

TrustedForm v4 (claim a certificate: POST to its URL, `api-version: 4.0`, Basic auth `API:<key>`,
`match_lead` and `retain`), Jornaya (GET `/Authenticate?lac=&id=`), the operator's own `http` validator,
and the local `phone` and `email` checks. A certificate URL off `allowed_hosts` fails without any
request. The vendors' secrets come from settings and are never logged; results carry fixed codes only.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any
from urllib.parse import urlencode

import orjson
import structlog

from pingpost.config import Settings
from pingpost.domain import verification as rules
from pingpost.domain.model import Campaign, Offer, Vertical
from pingpost.domain.verification import ERROR, FAIL, Check, Result
from pingpost.metrics import VERIFICATIONS
from pingpost.outbound.client import HttpResult, VendorClient, auth_headers

log = structlog.get_logger("pingpost.verification")


@cache
def disposable_domains() -> frozenset[str]:
    """The shipped list of throwaway email domains (`disposable_domains.txt` beside this module)."""
    text = resources.files("pingpost.delivery").joinpath("disposable_domains.txt").read_text(encoding="utf-8")
    return frozenset(
        line.strip().lower() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")
    )


@dataclass(frozen=True)
class Vendors:
    """The vendors' account settings (`PINGPOST_TRUSTEDFORM_API_KEY`, `PINGPOST_JORNAYA_*`)."""

    trustedform_api_key: str | None = None
    jornaya_base_url: str = "https://api.leadid.com"
    jornaya_account_code: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Vendors:
        key, code = settings.trustedform_api_key, settings.jornaya_account_code
        return cls(
            trustedform_api_key=key.get_secret_value() if key else None,
            jornaya_base_url=settings.jornaya_base_url,
            jornaya_account_code=code.get_secret_value() if code else None,
        )


@dataclass(frozen=True)
class Subject:
    """What the checks read of one post: its ids, the full lead, the consent, and the lead's values of
    the vertical's phone and email fields."""

    ping_id: str
    partner_id: str
    lead: Mapping[str, Any]
    consent: Mapping[str, Any]
    phones: tuple[str, ...]
    emails: tuple[str, ...]

    @classmethod
    def of(
        cls, *, ping_id: str, partner_id: str, vertical: Vertical, lead: Mapping[str, Any], consent: Mapping[str, Any]
    ) -> Subject:
        def values(kind: str) -> tuple[str, ...]:
            return tuple(
                v for f in vertical.fields.values() if f.type == kind and isinstance(v := lead.get(f.name), str) and v
            )

        return cls(ping_id, partner_id, lead, consent, values("phone"), values("email"))


def _json(result: HttpResult) -> Any:
    try:
        return orjson.loads(result.body) if result.body else None
    except orjson.JSONDecodeError:
        return None


class Verifier:
    def __init__(self, *, client: VendorClient, vendors: Vendors) -> None:
        self.client = client
        self.vendors = vendors

    async def for_post(
        self,
        *,
        offer: Offer,
        campaign: Campaign,
        vertical: Vertical,
        ping_id: str,
        lead: Mapping[str, Any],
        consent: Mapping[str, Any],
    ) -> list[Result]:
        """Run a post's checks: the campaign's list, else the offer's, under one deadline."""
        checks, timeout_ms = rules.plan(
            offer_checks=offer.verification,
            offer_timeout_ms=offer.verification_timeout_ms,
            campaign_checks=campaign.verification,
            campaign_timeout_ms=campaign.verification_timeout_ms,
        )
        subject = Subject.of(
            ping_id=ping_id, partner_id=campaign.partner_id, vertical=vertical, lead=lead, consent=consent
        )
        return await self.run(checks, timeout_ms=timeout_ms, subject=subject)

    async def run(self, checks: Sequence[Check], *, timeout_ms: int, subject: Subject) -> list[Result]:
        """Every check's result, in the configured order, within `timeout_ms` in all: a check still
        running at the deadline is cancelled and recorded as `error` / `timeout`."""
        if not checks:
            return []
        deadline = time.perf_counter() + timeout_ms / 1000
        tasks = [asyncio.ensure_future(self._timed(check, subject, deadline)) for check in checks]
        done, pending = await asyncio.wait(tasks, timeout=max(deadline - time.perf_counter(), 0))
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        results = [
            task.result() if task in done else rules.decided(check, ERROR, "timeout", timeout_ms)
            for check, task in zip(checks, tasks, strict=True)
        ]
        for r in results:
            VERIFICATIONS.labels(r.type, r.result).inc()
        log.info(
            "verification",
            ping_id=subject.ping_id,
            results=",".join(f"{r.type}:{r.result}:{r.detail or '-'}" for r in results),
            refused=bool(rules.refusing(results)),
        )
        return results

    async def _timed(self, check: Check, subject: Subject, deadline: float) -> Result:
        started = time.perf_counter()
        try:
            result, detail = await self._check(check, subject, deadline)
        except Exception:  # a check must never break a post: an unexpected fault is an error result
            log.exception("verification_fault", ping_id=subject.ping_id, type=check.type)
            result, detail = ERROR, "internal_error"
        return rules.decided(check, result, detail, int((time.perf_counter() - started) * 1000))

    async def _check(self, check: Check, subject: Subject, deadline: float) -> tuple[str, str | None]:
        remaining_ms = max(int((deadline - time.perf_counter()) * 1000), 1)
        if check.type == "phone":
            return rules.local_result("phone", subject.phones, frozenset())
        if check.type == "email":
            return rules.local_result("email", subject.emails, disposable_domains())
        if check.type == "trustedform":
            return await self._trustedform(check, subject, remaining_ms)
        if check.type == "jornaya":
            return await self._jornaya(subject, remaining_ms)
        if check.type == "http":
            return await self._http(check, subject, remaining_ms)
        return ERROR, "unknown_type"

    async def _trustedform(self, check: Check, subject: Subject, timeout_ms: int) -> tuple[str, str | None]:
        allowed = check.params.get("allowed_hosts") or rules.DEFAULT_ALLOWED_HOSTS
        url, problem = rules.cert_url(subject.consent.get("trustedform_cert_url"), allowed)
        if url is None:
            return FAIL, problem  # never requested: the URL is not on an allowed host
        match = {"email": subject.emails[0]} if subject.emails else {}
        if subject.phones:
            match["phone"] = subject.phones[0]
        if not match:
            return FAIL, "no_email_or_phone"
        key = self.vendors.trustedform_api_key
        if not key:
            return ERROR, "not_configured"
        token = base64.b64encode(f"API:{key}".encode()).decode()
        result = await self.client.vendor_request(
            "POST",
            url,
            headers={"api-version": "4.0", "Accept": "application/json", "Authorization": f"Basic {token}"},
            json_body={
                "match_lead": match,
                "retain": {"reference": subject.ping_id, "vendor": subject.partner_id},
            },
            timeout_ms=timeout_ms,
        )
        return rules.trustedform_verdict(result.status, _json(result), result.error)

    async def _jornaya(self, subject: Subject, timeout_ms: int) -> tuple[str, str | None]:
        leadid = subject.consent.get("jornaya_leadid")
        problem = rules.leadid_problem(leadid)
        if problem is not None:
            return FAIL, problem
        code = self.vendors.jornaya_account_code
        if not code:
            return ERROR, "not_configured"
        query = urlencode({"lac": code, "id": leadid})
        result = await self.client.vendor_request(
            "GET",
            f"{self.vendors.jornaya_base_url.rstrip('/')}/Authenticate?{query}",
            headers={"Accept": "application/json"},
            timeout_ms=timeout_ms,
        )
        return rules.jornaya_verdict(result.status, _json(result), result.error)

    async def _http(self, check: Check, subject: Subject, timeout_ms: int) -> tuple[str, str | None]:
        result = await self.client.vendor_request(
            "POST",
            str(check.params["url"]),
            headers=auth_headers(check.params.get("auth")),
            json_body={"ping_id": subject.ping_id, "lead": dict(subject.lead), "consent": dict(subject.consent)},
            timeout_ms=timeout_ms,
        )
        return rules.http_verdict(result.status, _json(result), result.error)
