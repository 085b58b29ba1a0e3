"""Pydantic field types every API shares: cents, text without NULs, ids, URLs, leads as partners
send them. Bounds here keep every value storable (64-bit integers, no NUL) on both stores."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

MAX_CENTS = 10**12  # ten billion dollars: far below 2**63, refuses absurd amounts


@dataclass(frozen=True, eq=False)  # hashed by identity: typing hashes Annotated metadata
class Documented:
    """Adds JSON Schema keywords to a type's schema, for a rule a validator enforces that pydantic does
    not state itself (the OpenAPI document must say what the code refuses; docs/protocol.md)."""

    keywords: dict[str, Any]

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


def no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NO_NUL = Documented({"pattern": r"^[^\x00]*$"})
Text = Annotated[str, StringConstraints(min_length=1, max_length=200), AfterValidator(no_nul), NO_NUL]
LongText = Annotated[str, StringConstraints(max_length=2000), AfterValidator(no_nul), NO_NUL]
Slug = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
FieldName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
Cents = Annotated[int, Field(ge=0, le=MAX_CENTS)]
Status = Literal["active", "paused"]
Channel = Literal["form", "call", "callback"]
FieldType = Literal["string", "integer", "number", "boolean", "enum", "date", "zip", "state", "phone", "email"]
Day = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
# An http(s) URL without whitespace. The whitespace is spelled out: Python's `\s` (what the code used)
# also matches \x1c-\x1f, which a JSON Schema (ECMA-262) `\s` does not, and the document must refuse
# what the code refuses.
_SPACE = r"\t-\r\x1c- \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://[^{_SPACE}/$.?#][^{_SPACE}]*$"
_HTTP_URL = re.compile(URL_PATTERN)


class Strict(BaseModel):
    """A request body: unknown keys and wrong JSON types are refused (docs/protocol.md).

    JSON has one number type, and JSON Schema counts 2.0 as the integer 2: an integer field takes it as
    2 (2.5, "2" and true are still refused)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _whole_numbers(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(isinstance(value, float) for value in data.values()):
            integers = _integer_fields(cls)
            return {name: whole_number(value) if name in integers else value for name, value in data.items()}
        return data


def whole_number(value: Any) -> Any:
    """2.0 as 2; anything else as it is (for the type check to judge)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


@cache
def _integer_fields(model: type[BaseModel]) -> frozenset[str]:
    return frozenset(name for name, info in model.model_fields.items() if _integer_only(info.annotation))


def _integer_only(annotation: Any) -> bool:
    """`int` or `int | None`, constrained or not (not a union that also takes floats: 2.0 stays 2.0)."""
    if get_origin(annotation) is Annotated:
        return _integer_only(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        members = [get_args(a)[0] if get_origin(a) is Annotated else a for a in get_args(annotation)]
        return int in members and set(members) <= {int, type(None)}
    return annotation is int


def _url(value: str) -> str:
    if len(value) > 2000 or not _HTTP_URL.match(value):
        raise ValueError("must be an http(s) URL")
    return value


Url = Annotated[str, AfterValidator(_url), Documented({"maxLength": 2000, "pattern": URL_PATTERN})]

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


# `lt=2**63` rather than `le=INT64_MAX`: the OpenAPI document carries bounds as floats, which spell 2**63
# exactly but round 2**63 - 1 up to it.
Int64 = Annotated[int, Field(ge=INT64_MIN, lt=2**63)]
# A lead as partners send it: up to 200 fields of any JSON value, checked against the vertical later.
LeadFields = Annotated[
    dict[Annotated[str, StringConstraints(max_length=64)], Any], Field(max_length=200), AfterValidator(_json_storable)
]

# Filter operands are lead attributes (age, zip, answers), never money.
Scalar = Annotated[str, StringConstraints(max_length=200), AfterValidator(no_nul), NO_NUL] | Int64 | bool | float

# The partner's sub-ID of a ping (docs/protocol.md, Traffic controls).
SOURCE_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
Source = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=SOURCE_PATTERN)]
SubValue = Annotated[str, StringConstraints(max_length=128), AfterValidator(no_nul), NO_NUL]


class Subs(BaseModel):
    """`sub1`..`sub5`: the partner's own tracking values (never PII), each at most 128 characters."""

    model_config = ConfigDict(extra="forbid", strict=True)
    sub1: SubValue | None = None
    sub2: SubValue | None = None
    sub3: SubValue | None = None
    sub4: SubValue | None = None
    sub5: SubValue | None = None

    def given(self) -> dict[str, str]:
        """Only the subs that have a value (what is stored and sent)."""
        return {name: value for name, value in self.model_dump().items() if value is not None}
