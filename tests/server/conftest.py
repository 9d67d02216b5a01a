"""Shared pieces for the end-to-end server tests: a loopback sandbox, settings bound to it, a client.

Every server here talks to the sandbox over real HTTP (or the in-process sandbox), and every
test talks to the server through a real MCP client; nothing is mocked.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp_types import CallToolResult

from carto_mcp.config import Settings
from carto_mcp.profiles import ProfileInputs
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.app import CartoMCP, build_server

#: The bearer the servers under test send to the sandbox; it must never show up anywhere else.
BEARER = "test-bearer-value-0001"
#: Upper bound on any one test's conversation with a server.
TIMEOUT = 30.0

TABLE = "carto.shared.demo_table"


def grant(source: str = TABLE, connection: str = "carto_dw") -> dict[str, str]:
    return {"connection": connection, "source": source}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    """The sandbox API on a loopback port, backed by a sqlite file in tmp_path."""
    with running_sandbox(tmp_path / "sb.db") as running:
        yield running


def settings_for(sandbox: RunningSandbox, **overrides: Any) -> Settings:
    """Server settings whose profile is the loopback sandbox (token flag + base URL, as the CLI passes them)."""
    return Settings(profile=ProfileInputs(token=BEARER, base_url=sandbox.url), **overrides)


def server_for(settings: Settings) -> CartoMCP:
    return build_server(settings, environ={})


@asynccontextmanager
async def connect(
    target: Settings | CartoMCP, *, timeout: float = TIMEOUT, **client_options: Any
) -> AsyncIterator[Client]:
    """An in-memory MCP client on a server (built from settings if needed); the whole session is bounded."""
    server = server_for(target) if isinstance(target, Settings) else target
    with anyio.fail_after(timeout):
        async with Client(server, read_timeout_seconds=timeout, **client_options) as client:
            yield client


def ok(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful call (fails the test with the error text otherwise)."""
    assert not result.is_error, text_of(result)
    assert result.structured_content is not None
    return result.structured_content


def error_text(result: CallToolResult) -> str:
    """The text of a tool error; a tool error is never a traceback."""
    assert result.is_error, f"expected a tool error, got {result.structured_content}"
    text = text_of(result)
    assert "Traceback" not in text
    return text


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


def dump(result: CallToolResult) -> str:
    """Everything a result carries, as text, for secret greps."""
    return json.dumps(result.model_dump(mode="json"), ensure_ascii=False)


def token_count(sandbox: RunningSandbox) -> int:
    return sandbox.store.list_tokens(limit=1)[1]


def client_count(sandbox: RunningSandbox, kind: str | None = None) -> int:
    return sandbox.store.list_clients(app_type=kind, limit=1)[1]
