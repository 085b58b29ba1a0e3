"""Epoch milliseconds in storage, RFC 3339 UTC on the wire."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_EPOCH = datetime(1970, 1, 1)
_MS = timedelta(milliseconds=1)


def parse_rfc3339(value: str) -> int:
    """Parse an RFC 3339 / ISO 8601 time (naive means UTC; `Z` or `z` is UTC) into epoch ms, rounded
    down to the millisecond; ValueError when invalid. Every RFC 3339 time is read, even one whose UTC
    instant falls outside years 1-9999 (`0001-01-01T00:00:00+01:00`)."""
    parsed = datetime.fromisoformat(value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value)
    offset = parsed.utcoffset() or timedelta(0)
    return ((parsed.replace(tzinfo=None) - _EPOCH) - offset) // _MS
