"""What an audit entry may show of an object (docs/events.md): secrets never, their shape only."""

from __future__ import annotations

from typing import Any

REDACTED = "[redacted]"
# Names whose values are secrets wherever they appear in an object's body.
SECRET_NAMES = frozenset(
    {"secret", "token", "password", "key", "posting_key", "key_sha256", "posting_key_sha256", "api_key"}
)


def redact(value: Any) -> Any:
    """A deep copy of `value` with every secret replaced: auth blocks keep only `type` and `name`
    (the header's name, not its value), and any field named like a secret is `[redacted]`."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for name, item in value.items():
            if name == "auth" and isinstance(item, dict):
                out[name] = {k: item[k] for k in ("type", "name") if k in item}
            elif name in SECRET_NAMES and item is not None:
                out[name] = REDACTED
            else:
                out[name] = redact(item)
        return out
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value
