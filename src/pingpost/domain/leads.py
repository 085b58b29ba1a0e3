"""Lead validation against a vertical's field schema (pure; errors name fields, never values)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from pingpost.domain.consumer import normalise_phone
from pingpost.domain.model import Vertical

US_STATES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND "
    "OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR VI GU AS MP".split()
)
_ZIP = re.compile(r"^\d{5}$")
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[A-Za-z]{2,63}$")
MAX_STRING = 1000
MAX_INT = 2**53


class LeadProblem(Exception):
    """A lead that does not fit its vertical: `kind` is pii_in_ping, unknown_field or invalid."""

    def __init__(self, kind: str, problems: list[dict[str, str]]) -> None:
        super().__init__(kind)
        self.kind = kind
        self.problems = problems


def _coerce(ftype: str, values: tuple[str, ...], value: Any) -> tuple[Any, str | None]:
    """Answer (normalised value, None) or (None, message)."""
    if ftype == "boolean":
        return (value, None) if isinstance(value, bool) else (None, "must be true or false")
    if ftype == "integer":
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) > MAX_INT:
            return None, "must be an integer"
        return value, None
    if ftype == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or abs(value) > MAX_INT or value != value:
            return None, "must be a number"
        return value, None
    if not isinstance(value, str):
        return None, "must be a string"
    if len(value) > MAX_STRING or "\x00" in value:
        return None, f"must be a string of at most {MAX_STRING} characters without NUL"
    if ftype == "enum":
        return (value, None) if value in values else (None, f"must be one of {', '.join(values)}")
    if ftype == "zip":
        return (value, None) if _ZIP.match(value) else (None, "must be 5 digits")
    if ftype == "state":
        return (value, None) if value in US_STATES else (None, "must be a US state code like FL")
    if ftype == "date":
        try:
            date.fromisoformat(value)
        except ValueError:
            return None, "must be a date YYYY-MM-DD"
        return (value, None) if len(value) == 10 else (None, "must be a date YYYY-MM-DD")
    if ftype == "phone":
        phone = normalise_phone(value)
        return (phone, None) if phone else (None, "must be a 10-digit NANP phone number")
    if ftype == "email":
        return (value.strip(), None) if _EMAIL.match(value.strip()) else (None, "must be an email address")
    return value, None


def validate_lead(vertical: Vertical, lead: dict[str, Any], *, allow_pii: bool, require: bool) -> dict[str, Any]:
    """Check `lead` against the vertical; answer it normalised.

    A ping (`allow_pii=False`) refuses PII fields outright; a post (`require=True`) needs every
    required field. Raises LeadProblem; messages never contain the submitted values.
    """
    unknown = [name for name in lead if name not in vertical.fields]
    if unknown:
        raise LeadProblem(
            "unknown_field",
            [{"field": f"lead.{n}"[:100], "message": "not a field of this vertical"} for n in unknown[:20]],
        )
    if not allow_pii:
        pii = [name for name in lead if vertical.fields[name].pii]
        if pii:
            raise LeadProblem(
                "pii_in_ping", [{"field": f"lead.{n}", "message": "PII is not allowed in a ping"} for n in pii]
            )
    out: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for name, value in lead.items():
        spec = vertical.fields[name]
        if value is None:
            continue
        norm, message = _coerce(spec.type, spec.values, value)
        if message:
            problems.append({"field": f"lead.{name}", "message": message})
        else:
            out[name] = norm
    if require:
        for spec in vertical.fields.values():
            if spec.required and spec.name not in out and not any(p["field"] == f"lead.{spec.name}" for p in problems):
                problems.append({"field": f"lead.{spec.name}", "message": "is required"})
    if problems:
        raise LeadProblem("invalid", problems)
    return out
