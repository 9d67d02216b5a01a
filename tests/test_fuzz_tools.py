"""Property: any arguments to any tool end as a result or a clean tool error — never a crash or hang.

A crash (an exception that is not a deliberate carto-mcp error) reaches the model as the SDK's
masked text, `Error executing tool <name>`, and nothing else: that text fails the property, so
a bug can no longer pass as a deliberate error.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.from_thread import start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mcp import Client

from carto_mcp.config import Settings
from carto_mcp.server.app import build_server

#: Arguments that touch the local disk are never fuzzed: a generated absolute path would write there.
UNSAFE = {"secret_output_file"}

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=500, max_size=5000),
    st.sampled_from(["token", "spa", "m2m", "all", "*", "carto.shared.*", "table*", "7d", "2020-01-01", "sql"]),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=12), inner, max_size=5)),
    max_leaves=20,
)


def tool_names() -> list[str]:
    tools = anyio.run(build_server(Settings(sandbox=True)).list_tools)
    return [t.name for t in tools]


def arguments_for(tool: str) -> st.SearchStrategy[dict[str, Any]]:
    schema = {t.name: t for t in anyio.run(build_server(Settings(sandbox=True)).list_tools)}[tool].input_schema
    known = [k for k in schema.get("properties", {}) if k not in UNSAFE]
    keys = st.one_of(st.sampled_from(known) if known else st.nothing(), st.text(min_size=1, max_size=20))
    return st.dictionaries(keys, json_values, max_size=6).filter(lambda d: not UNSAFE & set(d))


def crash_text(tool: str) -> str:
    """What the SDK shows the model for an unexpected exception: the tool's name, no detail."""
    return f"Error executing tool {tool}"


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> tuple[bool, str]:
    with anyio.fail_after(20):
        result = await client.call_tool(tool, arguments)
        text = " ".join(getattr(c, "text", "") for c in result.content)
        # The server still answers after whatever that was.
        follow = await client.call_tool("list_credentials", {"limit": 1})
    assert not follow.is_error
    return result.is_error, text


def test_a_crash_is_told_apart_from_a_deliberate_error(tmp_path: Path) -> None:
    """The check above is real: a tool body that raises a bug's exception yields exactly the crash text."""
    server = build_server(Settings(sandbox=True, sandbox_db=tmp_path / "sandbox.db"))

    async def buggy_tool() -> None:
        raise KeyError("a bug")

    server.add_tool(buggy_tool)

    async def run() -> tuple[bool, str]:
        async with Client(server) as client:
            result = await client.call_tool("buggy_tool", {})
            deliberate = await client.call_tool("get_credential", {"kind": "token", "id": "nope"})
        assert deliberate.is_error and " ".join(getattr(c, "text", "") for c in deliberate.content) != crash_text(
            "get_credential"
        )
        return bool(result.is_error), " ".join(getattr(c, "text", "") for c in result.content)

    is_error, text = anyio.run(run)
    assert is_error and text == crash_text("buggy_tool")


@pytest.mark.parametrize("tool", tool_names())
def test_any_arguments_end_as_a_result_or_a_clean_tool_error(tool: str, tmp_path: Path) -> None:
    """Wrong types, huge strings, unicode, nulls and extra fields: success or isError with a message, no traceback."""
    server = build_server(Settings(sandbox=True, sandbox_db=tmp_path / "sandbox.db"))
    with start_blocking_portal() as portal, portal.wrap_async_context_manager(Client(server)) as client:

        @settings(
            max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
        )
        @given(arguments=arguments_for(tool))
        def check(arguments: dict[str, Any]) -> None:
            is_error, text = portal.call(call, client, tool, arguments)
            if is_error:
                assert text.strip(), f"empty error text for {json.dumps(arguments)[:200]}"
                assert text.strip() != crash_text(tool), f"a crash for {json.dumps(arguments)[:200]}"
                assert "Traceback" not in text
                assert 'File "' not in text

        check()
