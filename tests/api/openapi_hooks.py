"""Schemathesis hooks for tests/api/test_openapi.py: the rules no JSON Schema can state.

The OpenAPI document states every rule of a request body it can (patterns, formats, enums, the rules of
the model validators as `anyOf`). What it cannot state depends on what the exchange holds at run time:
a reference must name an existing object, a contract's filters and RTB fields must be non-PII fields of
its offer's vertical, a vertical's field names must be unique, `between` bounds must be ordered, a PATCH
is judged on the merged object, a payout must not be more than the partner is owed, and a statement's
`to` (and a replay's) must not be before its `from` nor more than 366 days after it, and a replay's
setup must be valid for the configuration. The operation descriptions say so.

For the positive-acceptance check, a positive case (one the schema accepts) is pointed at the objects
the test seeded, the way any client names objects it knows; the rest of the case is left as generated.
Negative cases are never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import schemathesis

# What tests/api/test_openapi.py seeds.
VERTICAL, OFFER, PARTNER, BUYER = "medicare", "med", "acme", "b"
NON_PII_FIELD = "age"  # a non-PII field of the seeded vertical
# The seeded partner is owed what one seeded sale paid it; the seed pays it PAYOUT_CENTS under PAYOUT_REFERENCE,
# so the same payout answers that one again (payouts are idempotent by reference).
PAYOUT_CENTS, PAYOUT_REFERENCE = 1, "st-payout"

Body = dict[str, Any]


def _unique_field_names(body: Body) -> None:
    seen: set[str] = set()
    for i, field in enumerate(body.get("fields") or []):
        if isinstance(field, dict) and isinstance(field.get("name"), str):
            if field["name"] in seen:
                field["name"] = f"{field['name'][:56]}_{i}"
            seen.add(field["name"])


def _contract_rules(body: Body) -> None:
    for flt in body.get("filters") or []:
        if not isinstance(flt, dict):
            continue
        flt["field"] = NON_PII_FIELD
        value = flt.get("value")
        if flt.get("op") == "between" and isinstance(value, list) and len(value) == 2:
            flt["value"] = sorted(value)
    if isinstance(body.get("suppression_lists"), list):
        body["suppression_lists"] = []  # lists are named by id: none exists in the seeded run
    rtb = body.get("rtb")
    if isinstance(rtb, dict) and isinstance(rtb.get("required_fields"), list):
        rtb["required_fields"] = [NON_PII_FIELD for _ in rtb["required_fields"]]


def _create_contract(body: Body) -> None:
    body.update(buyer=BUYER, offer=OFFER)
    _contract_rules(body)


def _patch_contract(body: Body) -> None:
    _contract_rules(body)
    # A contract needs a price or RTB: clearing one is refused when the stored contract lacks the other.
    for name in ("price_cents", "rtb"):
        if name in body and body[name] is None:
            del body[name]


def _create_api_key(body: Body) -> None:
    if body.get("kind") == "buyer":
        body["buyer"] = BUYER


def _statement_period(query: Body) -> None:
    """`to` not before `from`, 366 days at most: the generated days, ordered, and `to` moved in if need be."""
    try:
        first, last = sorted(date.fromisoformat(query[name]) for name in ("from", "to"))
    except (KeyError, TypeError, ValueError):
        return
    last = min(last, first + timedelta(days=365))
    query["from"], query["to"] = first.isoformat(), last.isoformat()


def _replay(body: Body) -> None:
    """A replay of the seeded offer over an ordered period, with no setup (a setup is judged against the
    configuration, like any apply file)."""
    _statement_period(body)
    if "offer" in body:
        body["offer"] = OFFER
    body.pop("setup", None)


QUERY_RULES: dict[tuple[str, str], Callable[[Body], None]] = {
    ("GET", "/v1/admin/statements"): _statement_period,
    ("GET", "/v1/buyer/statement"): _statement_period,
}


def _suppression_list(body: Body) -> None:
    if body.get("scope") == "buyer":
        body["buyer"] = BUYER


def _suppression_entries(case: Any) -> None:
    # phones and emails are checked as such (a JSON Schema cannot), on a list that exists
    case.path_parameters = {**(case.path_parameters or {}), "ident": "seeded-dnc"}
    if isinstance(case.body, dict):
        case.body.update(phones=["3055550100" for _ in case.body.get("phones") or []])
        case.body.update(emails=["a@example.com" for _ in case.body.get("emails") or []])


def _payout(case: Any) -> None:
    case.path_parameters = {**(case.path_parameters or {}), "ident": PARTNER}
    if isinstance(case.body, dict):
        case.body.update(amount_cents=PAYOUT_CENTS, reference=PAYOUT_REFERENCE)


CASE_RULES: dict[tuple[str, str], Callable[[Any], None]] = {
    ("POST", "/v1/admin/partners/{ident}/payouts"): _payout,
    ("POST", "/v1/admin/suppression-lists/{ident}/entries"): _suppression_entries,
    ("DELETE", "/v1/admin/suppression-lists/{ident}/entries"): _suppression_entries,
}


RULES: dict[tuple[str, str], Callable[[Body], None]] = {
    ("POST", "/v1/admin/verticals"): _unique_field_names,
    ("PATCH", "/v1/admin/verticals/{ident}"): _unique_field_names,
    ("POST", "/v1/admin/offers"): lambda body: body.update(vertical=VERTICAL),
    ("POST", "/v1/admin/campaigns"): lambda body: body.update(partner=PARTNER, offer=OFFER),
    ("POST", "/v1/admin/contracts"): _create_contract,
    ("PATCH", "/v1/admin/contracts/{ident}"): _patch_contract,
    ("POST", "/v1/admin/api-keys"): _create_api_key,
    ("POST", "/v1/admin/replays"): _replay,
    ("POST", "/v1/admin/suppression-lists"): _suppression_list,
}


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive:
        return case
    operation = (case.method.upper(), case.operation.path)
    rule = RULES.get(operation)
    if rule is not None and isinstance(case.body, dict):
        rule(case.body)
    query_rule = QUERY_RULES.get(operation)
    if query_rule is not None and isinstance(case.query, dict):
        query_rule(case.query)
    case_rule = CASE_RULES.get(operation)
    if case_rule is not None:
        case_rule(case)
    return case
