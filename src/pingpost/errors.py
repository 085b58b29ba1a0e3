"""One error type for the whole service: every failure a client can see is a PingpostError."""

from __future__ import annotations

from typing import Any

from pingpost.domain.leads import LeadProblem


class PingpostError(Exception):
    """An error with a stable code, an HTTP status and a details object (never PII)."""

    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        code: str | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = details or {}
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class MalformedJson(PingpostError):
    status, code = 400, "malformed_json"


class Unauthorized(PingpostError):
    status, code = 401, "unauthorized"


class Forbidden(PingpostError):
    status, code = 403, "forbidden"


class NotFound(PingpostError):
    status, code = 404, "not_found"

    def __init__(self, kind: str, ident: str) -> None:
        super().__init__(f"{kind} not found", details={"resource": kind, "id": ident})


class Conflict(PingpostError):
    status, code = 409, "conflict"


class Gone(PingpostError):
    status, code = 410, "ping_expired"


class PayloadTooLarge(PingpostError):
    status, code = 413, "payload_too_large"


class Unprocessable(PingpostError):
    status, code = 422, "unprocessable"


class ValidationFailed(PingpostError):
    """422 validation_error naming each offending field (values are never echoed)."""

    status, code = 422, "validation_error"

    def __init__(self, errors: list[dict[str, str]], message: str = "request failed validation") -> None:
        super().__init__(message, details={"errors": errors})

    @classmethod
    def one(cls, field: str, message: str) -> ValidationFailed:
        return cls([{"field": field, "message": message}], message=f"{field}: {message}")


class RateLimited(PingpostError):
    status, code = 429, "rate_limited"


class Overloaded(PingpostError):
    status, code = 503, "overloaded"


def lead_problem_error(problem: LeadProblem) -> PingpostError:
    """A lead that does not fit its vertical: 422 with what is wrong (never the values themselves)."""
    if problem.kind == "invalid":
        return ValidationFailed(problem.problems, message="the lead does not fit the vertical")
    message = {
        "pii_in_ping": "a ping must not carry PII fields",
        "unknown_field": "the lead has fields the vertical does not define",
    }[problem.kind]
    return Unprocessable(message, code=problem.kind, details={"errors": problem.problems})
