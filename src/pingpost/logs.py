"""Structured JSON logs (structlog) with a redaction processor for PII and secret field names."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from pingpost.config import Settings

REDACTED_KEYS = frozenset(
    {
        "lead",
        "consent",
        "phone",
        "email",
        "first_name",
        "last_name",
        "name_first",
        "name_last",
        "address",
        "street",
        "dob",
        "date_of_birth",
        "ssn",
        "ip",
        "token",
        "password",
        "authorization",
        "posting_key",
        "key",
        "secret",
        "value",
        "username",
        "api_key",  # verification vendors' secrets (docs/verification.md), should one ever be logged
        "account_code",
        "lac",
    }
)


def redact(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for name in list(event):
        if name.lower() in REDACTED_KEYS:
            event[name] = "[redacted]"
    return event


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the moment (so redirections and test capture see logs)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(settings: Settings) -> None:
    level = getattr(logging, settings.log_level.upper(), logging.INFO)
    renderer: Any = structlog.processors.JSONRenderer() if settings.json_logs else structlog.dev.ConsoleRenderer()
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso"), redact, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(_CurrentStderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
