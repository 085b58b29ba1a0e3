"""Consumer normalisation and hashes (docs/protocol.md)."""

from __future__ import annotations

import hashlib
import re

_NON_DIGITS = re.compile(r"\D")


def normalise_phone(raw: str) -> str | None:
    """10 NANP digits: formatting removed and a leading country code 1 dropped; None if not a NANP number."""
    digits = _NON_DIGITS.sub("", raw)
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    if len(digits) != 10 or digits[0] in "01" or digits[3] in "01":
        return None
    return digits


def normalise_email(raw: str) -> str:
    return raw.strip().lower()


def phone_sha256(raw: str) -> str | None:
    phone = normalise_phone(raw)
    return None if phone is None else hashlib.sha256(phone.encode()).hexdigest()


def email_sha256(raw: str) -> str:
    return hashlib.sha256(normalise_email(raw).encode()).hexdigest()
