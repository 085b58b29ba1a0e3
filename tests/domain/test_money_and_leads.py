"""Money arithmetic and lead validation, pure."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pingpost.domain.consumer import email_sha256, normalise_phone, phone_sha256
from pingpost.domain.leads import LeadProblem, validate_lead
from pingpost.domain.model import Vertical
from pingpost.domain.money import (
    Entry,
    UnbalancedTransaction,
    balanced,
    deposit_entries,
    payout_cents,
    reversal_entries,
    sale_entries,
)


@pytest.mark.parametrize(
    ("payout", "price", "expected"),
    [
        ({"type": "fixed", "amount_cents": 4000}, 9100, 4000),
        ({"type": "revshare", "percent": "70"}, 9100, 6370),
        ({"type": "revshare", "percent": "62.5"}, 999, 624),  # 624.375 rounds down
        ({"type": "revshare", "percent": "33.33"}, 100, 33),
        ({"type": "revshare", "percent": "100"}, 1, 1),
        ({"type": "revshare", "percent": "0"}, 5000, 0),
    ],
)
def test_payouts(payout: dict[str, Any], price: int, expected: int) -> None:
    assert payout_cents(payout, price) == expected


@given(price=st.integers(0, 10**12), percent=st.decimals(0, 100, places=2), payout=st.integers(0, 10**12))
def test_sale_and_reversal_sum_to_zero(price: int, percent: Decimal, payout: int) -> None:
    paid = payout_cents({"type": "revshare", "percent": str(percent)}, price)
    assert 0 <= paid <= price
    entries = sale_entries(buyer_id="b", partner_id="p", price_cents=price, payout_cents=paid)
    assert sum(e.amount_cents for e in entries) == 0
    assert sum(e.amount_cents for e in reversal_entries(entries)) == 0
    assert sum(e.amount_cents for e in deposit_entries("b", payout)) == 0


def test_unbalanced_is_refused() -> None:
    with pytest.raises(UnbalancedTransaction):
        balanced([Entry("buyer:b", 5), Entry("house:cash", -4)])
    with pytest.raises(UnbalancedTransaction):
        balanced([Entry("buyer:b", 0.5), Entry("house:cash", -0.5)])  # type: ignore[arg-type]


def test_consumer_hashes_normalise() -> None:
    digest = hashlib.sha256(b"3055550100").hexdigest()
    assert phone_sha256("+1 (305) 555-0100") == phone_sha256("305.555.0100") == digest
    assert normalise_phone("0555550100") is None and normalise_phone("12345") is None
    assert email_sha256("  Ada@Example.COM ") == hashlib.sha256(b"ada@example.com").hexdigest()


VERTICAL = Vertical.from_body(
    "v",
    {
        "fields": [
            {"name": "state", "type": "state", "required": True, "pii": False},
            {"name": "age", "type": "integer", "required": True, "pii": False},
            {"name": "dob", "type": "date", "required": False, "pii": True},
            {"name": "phone", "type": "phone", "required": True, "pii": True},
            {"name": "email", "type": "email", "required": False, "pii": True},
            {"name": "plan", "type": "enum", "values": ["a", "b"], "required": False, "pii": False},
            {"name": "score", "type": "number", "required": False, "pii": False},
        ]
    },
)


def test_post_lead_normalises_and_requires() -> None:
    lead = validate_lead(
        VERTICAL, {"state": "FL", "age": 70, "phone": "+1 305 555 0100", "score": 2.5}, allow_pii=True, require=True
    )
    assert lead["phone"] == "3055550100"
    with pytest.raises(LeadProblem) as problem:
        validate_lead(VERTICAL, {"state": "FL"}, allow_pii=True, require=True)
    assert {p["field"] for p in problem.value.problems} == {"lead.age", "lead.phone"}


@pytest.mark.parametrize(
    ("lead", "kind"),
    [
        ({"phone": "3055550100"}, "pii_in_ping"),
        ({"nope": 1}, "unknown_field"),
        ({"age": True}, "invalid"),
        ({"age": 2**60}, "invalid"),
        ({"plan": "c"}, "invalid"),
        ({"score": "1"}, "invalid"),
        ({"state": "FL\x00"}, "invalid"),
    ],
)
def test_ping_lead_problems(lead: dict[str, Any], kind: str) -> None:
    with pytest.raises(LeadProblem) as problem:
        validate_lead(VERTICAL, lead, allow_pii=False, require=False)
    assert problem.value.kind == kind
    assert all(str(v) not in str(problem.value.problems) for v in lead.values() if v not in (True,))


def test_bad_dates_and_emails() -> None:
    for lead in ({"dob": "2026-02-30"}, {"dob": "20260101"}, {"email": "not-an-email"}):
        with pytest.raises(LeadProblem):
            validate_lead(VERTICAL, lead, allow_pii=True, require=False)
