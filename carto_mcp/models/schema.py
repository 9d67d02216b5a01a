"""How an optional value appears in a JSON schema: as a plain property that may be absent.

pydantic writes `str | None` as `anyOf: [{type: string}, {type: null}]` (or, flattened, a
`type` array): single-type dialects (Gemini's OpenAPI subset, for one) reject or drop that,
and a generic client shows the field as "unknown". `Maybe[T]` keeps the schema of `T` alone,
with no `null` default: absent means "not given". A client that sends `null` anyway is still
accepted, as not given. Results leave such fields out when they have no value.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar, Union

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

__all__ = ["Maybe"]

T = TypeVar("T")


def _no_null_default(schema: dict[str, Any]) -> None:
    if "default" in schema and schema["default"] is None:
        del schema["default"]


#: An optional value: the schema of T, not required, with no null branch and no null default.
Maybe = Annotated[Union[T, SkipJsonSchema[None]], Field(json_schema_extra=_no_null_default)]
