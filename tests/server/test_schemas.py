"""Schemas every host can map: one plain type per property, no null branches, optional means absent.

Single-type dialects (Gemini's OpenAPI subset, the Inspector's strict mode) reject or drop
`"type": [...]` arrays and `null` branches, and a generic client shows such a field as unknown.
Results leave out fields that have no value, so their output schemas need no null either.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from carto_mcp.config import Settings
from carto_mcp.server.app import build_server

from .conftest import connect, grant, ok, settings_for


def problems(node: Any, path: str) -> Iterator[str]:
    """Every place in a JSON schema that is not portable, by its JSON pointer."""
    if isinstance(node, dict):
        if isinstance(node.get("type"), list):
            yield f"{path}: a type array"
        if node.get("type") == "null":
            yield f"{path}: a null type"
        for key in ("anyOf", "oneOf"):
            if any(isinstance(o, dict) and o.get("type") == "null" for o in node.get(key, ())):
                yield f"{path}: a null branch in {key}"
        if "default" in node and node["default"] is None:
            yield f"{path}: a null default"
        for key, value in node.items():
            yield from problems(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from problems(value, f"{path}/{index}")


@pytest.mark.parametrize("read_only", [False, True], ids=["all-tools", "read-only"])
def test_no_input_or_output_schema_holds_a_type_array_or_a_null_branch(read_only: bool) -> None:
    """Every tool's inputSchema and outputSchema, as tools/list serves them, is portable."""
    tools = anyio.run(build_server(Settings(sandbox=True, read_only=read_only)).list_tools)
    found = [
        problem
        for tool in tools
        for which, schema in (("inputSchema", tool.input_schema), ("outputSchema", tool.output_schema or {}))
        for problem in problems(schema, f"{tool.name}/{which}")
    ]
    assert found == []
    assert all(tool.output_schema for tool in tools)  # still typed: every tool has an output schema


def test_the_checker_sees_what_pydantic_writes_for_an_optional_field() -> None:
    """The check is real: a plain `str | None` schema is reported, in both of pydantic's spellings."""
    nullable = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
    assert sorted(problems({"properties": {"x": nullable}}, "m")) == [
        "m/properties/x/anyOf/1: a null type",
        "m/properties/x: a null branch in anyOf",
        "m/properties/x: a null default",
    ]
    assert list(problems({"properties": {"x": {"type": ["string", "null"]}}}, "m")) == ["m/properties/x: a type array"]


@pytest.mark.anyio
async def test_an_explicit_null_from_a_client_is_read_as_not_given(sandbox: Any, tmp_path: Path) -> None:
    """A client that still sends null for an optional argument is accepted, as if it had left it out."""
    async with connect(settings_for(sandbox)) as client:
        listed = ok(await client.call_tool("list_credentials", {"text": None, "cursor": None, "profile": None}))
        created = ok(
            await client.call_tool(
                "create_token",
                {"grants": [{**grant(), "kind": None}], "apis": ["maps"], "name": None, "expiration_date": None},
            )
        )
    assert listed["rows"] == [] and created["status"] == "created"
    assert "expiration_date" not in created["detail"]  # no value: left out, not null
