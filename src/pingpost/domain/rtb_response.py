"""How a buyer's bid answer is read (docs/protocol.md, Buyers): pure, no I/O."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

import orjson

from pingpost.domain.delivery_rules import dig
from pingpost.domain.outcomes import Outcome

MAX_BID_CENTS = 10**9
_E164 = re.compile(r"^\+[1-9]\d{7,14}$")
_SIP = re.compile(r"^sips?:[^\s]{1,200}$")


@dataclass(frozen=True)
class ParsedBid:
    outcome: Outcome | None  # None: a bid
    bid_cents: int | None = None
    exclusive_bid_cents: int | None = None
    bid_ref: str | None = None
    transfer: dict[str, str] | None = None
    detail: str | None = None


class Invalid(ValueError):
    pass


def to_cents(value: Any, unit: str) -> int:
    """A price in cents from an integer of cents, or dollars as a number or a string like "85.00"
    (rounded down to the cent). Raises Invalid."""
    if isinstance(value, bool) or value is None:
        raise Invalid("not a price")
    if unit == "cents":
        if isinstance(value, int):
            cents = value
        elif isinstance(value, str) and value.isdigit():
            cents = int(value)
        else:
            raise Invalid("cents must be an integer")
    else:
        # A JSON number like 85.5 arrives from the parser as a binary fraction; its shortest repr
        # ("85.5") is what the buyer wrote, so it is read through str() into a Decimal, never computed on.
        if not isinstance(value, (int, str, float)):
            raise Invalid("not a dollar amount")
        try:
            amount = Decimal(str(value).strip().lstrip("$"))
        except InvalidOperation:
            raise Invalid("not a dollar amount") from None
        if not amount.is_finite():
            raise Invalid("not a dollar amount")
        cents = int((amount * 100).to_integral_value(ROUND_FLOOR))
    if cents < 0 or cents > MAX_BID_CENTS:
        raise Invalid("price out of range")
    return cents


def to_transfer(value: Any) -> dict[str, str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = {"sip": value} if value.startswith(("sip:", "sips:")) else {"phone": value}
    if not isinstance(value, dict):
        raise Invalid("transfer must be a phone, a SIP URI or an object")
    phone, sip = value.get("phone"), value.get("sip")
    if isinstance(phone, str) and _E164.match(phone):
        return {"phone": phone}
    if isinstance(sip, str) and _SIP.match(sip):
        return {"sip": sip}
    raise Invalid("transfer is not an E.164 phone or SIP URI")


def _ref(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise Invalid("bid_ref must be a string")
    return str(value).replace("\x00", "")[:200]


def parse_bid(*, status: int | None, body: bytes, error: str | None, mapping: dict[str, Any] | None) -> ParsedBid:
    if error == "timeout":
        return ParsedBid(Outcome.BID_TIMEOUT, detail="timeout")
    if error is not None:
        return ParsedBid(Outcome.BID_ERROR, detail=error)
    if status == 204:
        return ParsedBid(Outcome.NO_BID, detail="204")
    if status is None or not 200 <= status < 300:
        return ParsedBid(Outcome.BID_ERROR, detail=f"http_{status}")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ParsedBid(Outcome.BID_INVALID, detail="unparsable")
    if not isinstance(doc, dict):
        return ParsedBid(Outcome.BID_INVALID, detail="not an object")
    try:
        return _read(doc, mapping)
    except Invalid as exc:
        return ParsedBid(Outcome.BID_INVALID, detail=str(exc))


def _read(doc: dict[str, Any], mapping: dict[str, Any] | None) -> ParsedBid:
    if mapping is None:
        if doc.get("no_bid") is True:
            reason = doc.get("reason")
            return ParsedBid(Outcome.NO_BID, detail=str(reason)[:200] if reason is not None else None)
        bid = to_cents(doc.get("bid_cents"), "cents")
        exclusive = doc.get("exclusive_bid_cents")
        return _bid(
            bid,
            to_cents(exclusive, "cents") if exclusive is not None else None,
            _ref(doc.get("bid_ref")),
            to_transfer(doc.get("transfer")),
        )
    rule = mapping.get("no_bid_when")
    if rule and dig(doc, rule["path"]) in rule["values"]:
        return ParsedBid(Outcome.NO_BID, detail="no_bid_when")
    unit = mapping.get("bid_unit", "cents")
    bid = to_cents(dig(doc, mapping.get("bid_path") or "bid_cents"), unit)
    exclusive_path = mapping.get("exclusive_bid_path")
    exclusive_value = dig(doc, exclusive_path) if exclusive_path else None
    ref_path, transfer_path = mapping.get("bid_ref_path"), mapping.get("transfer_path")
    return _bid(
        bid,
        to_cents(exclusive_value, unit) if exclusive_value is not None else None,
        _ref(dig(doc, ref_path)) if ref_path else None,
        to_transfer(dig(doc, transfer_path)) if transfer_path else None,
    )


def _bid(bid: int, exclusive: int | None, ref: str | None, transfer: dict[str, str] | None) -> ParsedBid:
    if bid == 0:
        return ParsedBid(Outcome.NO_BID, detail="zero")
    return ParsedBid(None, bid, exclusive, ref, transfer)
