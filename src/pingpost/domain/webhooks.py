"""Pure rules of webhooks and partner postbacks (docs/events.md): the retry schedule, the signature,
which events a subscription takes, and how a postback template is filled."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from urllib.parse import quote

SECOND_MS = 1000
# Delays after the 1st, 2nd... failed attempt, then every 6 h, for 3 days (as Stripe does).
RETRY_DELAYS_MS = (10 * SECOND_MS, 60 * SECOND_MS, 300 * SECOND_MS, 1800 * SECOND_MS, 7200 * SECOND_MS)
LATER_DELAY_MS = 6 * 3600 * SECOND_MS
GIVE_UP_AFTER_MS = 3 * 24 * 3600 * SECOND_MS
ATTEMPT_TIMEOUT_MS = 10 * SECOND_MS
# An attempt taken by a sender comes due again this long after it was taken when nothing was recorded
# (the sender crashed between taking it and recording its answer): at least once, never lost.
IN_FLIGHT_MS = 60 * SECOND_MS

# Postback statuses and the events that make them.
POSTBACK_STATUS = {"sale.created": "sold", "return.approved": "returned", "conversion.created": "converted"}
POSTBACK_FIELDS = (
    "ping_id",
    "partner_lead_id",
    "sale_id",
    "payout_cents",
    "payout",
    "status",
    "source",
    "sub1",
    "sub2",
    "sub3",
    "sub4",
    "sub5",
)


def retry_at(*, attempts: int, created_at: int, now: int) -> int | None:
    """When the next attempt is due after `attempts` failed ones, or None: give up (`failed`)."""
    index = attempts - 1
    delay = RETRY_DELAYS_MS[index] if 0 <= index < len(RETRY_DELAYS_MS) else LATER_DELAY_MS
    due = now + delay
    return None if due > created_at + GIVE_UP_AFTER_MS else due


def signature_header(*, secret: str, body: bytes, timestamp_s: int) -> str:
    """`t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>`."""
    signed = f"{timestamp_s}.".encode() + body
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp_s},v1={digest}"


def verify_signature(*, secret: str, body: bytes, header: str, now_s: int, tolerance_s: int = 300) -> bool:
    """What a receiver does: the header's timestamp is recent and its v1 matches (docs/events.md)."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now_s - timestamp) > tolerance_s:
        return False
    expected = signature_header(secret=secret, body=body, timestamp_s=timestamp).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))


def subscribed(events: Sequence[str], event_type: str) -> bool:
    return "*" in events or event_type in events


def dollars(cents: int) -> str:
    """63.70 for 6370: integer arithmetic, never a float."""
    sign = "-" if cents < 0 else ""
    whole, part = divmod(abs(cents), 100)
    return f"{sign}{whole}.{part:02d}"


def fill_postback(template: str, values: Mapping[str, object]) -> str:
    """The template with every `{name}` of POSTBACK_FIELDS replaced by its URL-encoded value (empty
    when absent); other text is left as written."""
    filled = template
    for name in POSTBACK_FIELDS:
        value = values.get(name)
        filled = filled.replace("{" + name + "}", "" if value is None else quote(str(value), safe=""))
    return filled
