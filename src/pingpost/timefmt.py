"""Epoch milliseconds in storage, RFC 3339 UTC on the wire."""

from __future__ import annotations

from datetime import UTC, datetime


def rfc3339(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_rfc3339(value: str) -> int:
    """Parse an RFC 3339 / ISO 8601 time (naive means UTC) into epoch ms; ValueError when invalid."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
