"""Pydantic field types every API shares: cents, text without NULs, ids, URLs, leads as partners
send them. Bounds here keep every value storable (64-bit integers, no NUL) on both stores."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

MAX_CENTS = 10**12  # ten billion dollars: far below 2**63, refuses absurd amounts


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Text = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_nul)]
LongText = Annotated[str, StringConstraints(max_length=2000), AfterValidator(no_nul)]
Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
Cents = Annotated[int, Field(ge=0, le=MAX_CENTS)]
Status = Literal["active", "paused"]
Channel = Literal["form", "call", "callback"]
FieldType = Literal["string", "integer", "number", "boolean", "enum", "date", "zip", "state", "phone", "email"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_HTTP_URL = re.compile(r"^https?://[^\s/$.?#][^\s]*$", re.IGNORECASE)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _url(value: str) -> str:
    if len(value) > 2000 or not _HTTP_URL.match(value):
        raise ValueError("must be an http(s) URL")
    return value


Url = Annotated[str, AfterValidator(_url)]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


def _json_storable(value: Any) -> Any:
    """Integers anywhere in the value fit 64 bits (what is stored as JSON and in integer columns)."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError("integers must fit 64 bits")
    elif isinstance(value, dict):
        for item in value.values():
            _json_storable(item)
    elif isinstance(value, list):
        for item in value:
            _json_storable(item)
    return value


Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
# A lead as partners send it: up to 200 fields of any JSON value, checked against the vertical later.
LeadFields = Annotated[dict[Annotated[str, StringConstraints(max_length=64)], Any], Field(max_length=200),
                       AfterValidator(_json_storable)]

# Filter operands are lead attributes (age, zip, answers), never money.
Scalar = Annotated[str, StringConstraints(max_length=200), AfterValidator(no_nul)] | Int64 | bool | float


