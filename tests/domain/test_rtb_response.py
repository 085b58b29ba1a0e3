"""Reading buyers' bid answers (SPEC 3 rtb.response, 5.3), as a table."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from pingpost.domain.rtb_response import ParsedBid, parse_bid

FOREIGN = {
    "bid_path": "response.price",
    "bid_unit": "dollars",
    "bid_ref_path": "response.ref",
    "transfer_path": "response.dest",
    "exclusive_bid_path": "response.excl",
    "no_bid_when": {"path": "response.decision", "values": ["PASS", "NO"]},
}


def parse(body: Any, mapping: dict[str, Any] | None = None, status: int = 200) -> ParsedBid:
    raw = body if isinstance(body, bytes) else orjson.dumps(body)
    return parse_bid(status=status, body=raw, error=None, mapping=mapping)


@pytest.mark.parametrize(
    ("body", "mapping", "expected"),
    [
        ({"bid_cents": 9100}, None, (None, 9100, None)),
        ({"bid_cents": 9100, "exclusive_bid_cents": 20000, "bid_ref": "r-1"}, None, (None, 9100, 20000)),
        ({"bid_cents": 0}, None, ("no_bid", None, None)),
        ({"no_bid": True, "reason": "full"}, None, ("no_bid", None, None)),
        ({"bid_cents": -5}, None, ("bid_invalid", None, None)),
        ({"bid_cents": 91.5}, None, ("bid_invalid", None, None)),
        ({"bid_cents": True}, None, ("bid_invalid", None, None)),
        ({"bid_cents": 10**12}, None, ("bid_invalid", None, None)),
        ({"price": 5}, None, ("bid_invalid", None, None)),
        ([1, 2], None, ("bid_invalid", None, None)),
        (b"<html>", None, ("bid_invalid", None, None)),
        ({"bid_cents": 100, "transfer": {"phone": "305-555"}}, None, ("bid_invalid", None, None)),
        (
            {"response": {"price": "85.00", "ref": "F-1", "dest": {"phone": "+13055550199"}}},
            FOREIGN,
            (None, 8500, None),
        ),
        ({"response": {"price": "85.129", "excl": 120}}, FOREIGN, (None, 8512, 12000)),
        ({"response": {"price": 85.5}}, FOREIGN, (None, 8550, None)),
        ({"response": {"price": "$12.34"}}, FOREIGN, (None, 1234, None)),
        ({"response": {"price": "abc"}}, FOREIGN, ("bid_invalid", None, None)),
        ({"response": {"price": "NaN"}}, FOREIGN, ("bid_invalid", None, None)),
        ({"response": {"decision": "PASS", "price": "85.00"}}, FOREIGN, ("no_bid", None, None)),
        ({"response": {"price": "0.00"}}, FOREIGN, ("no_bid", None, None)),
    ],
)
def test_parse_bid(body: Any, mapping: dict[str, Any] | None, expected: tuple[Any, ...]) -> None:
    parsed = parse(body, mapping)
    outcome = parsed.outcome.value if parsed.outcome else None
    assert (outcome, parsed.bid_cents, parsed.exclusive_bid_cents) == expected


def test_transfer_and_ref() -> None:
    parsed = parse({"response": {"price": "85.00", "ref": "F-1", "dest": "sip:agent@example.com"}}, FOREIGN)
    assert (parsed.bid_ref, parsed.transfer) == ("F-1", {"sip": "sip:agent@example.com"})
    parsed = parse({"bid_cents": 100, "transfer": {"phone": "+13055550100"}})
    assert parsed.transfer == {"phone": "+13055550100"}


@pytest.mark.parametrize(
    ("status", "error", "outcome", "detail"),
    [
        (None, "timeout", "bid_timeout", "timeout"),
        (None, "connection_error", "bid_error", "connection_error"),
        (204, None, "no_bid", "204"),
        (500, None, "bid_error", "http_500"),
        (302, None, "bid_error", "http_302"),
        (200, "too_large", "bid_error", "too_large"),
    ],
)
def test_transport_outcomes(status: int | None, error: str | None, outcome: str, detail: str) -> None:
    parsed = parse_bid(status=status, body=b"", error=error, mapping=None)
    assert (parsed.outcome.value if parsed.outcome else None, parsed.detail) == (outcome, detail)
