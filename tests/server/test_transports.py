"""The real `carto-mcp serve` process over stdio and streamable HTTP, and the HTTP hardening."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import httpx2
import pytest
from _procs import free_port, stop
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from carto_mcp.server.tools import TOOLS

from .conftest import TIMEOUT, error_text, grant, ok

READ_TOOLS = [spec.name for spec in TOOLS if spec.read_only]

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

START_TIMEOUT = 30.0
AUTH = "mcp-endpoint-secret-0042"
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}


def serve_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "carto_mcp", "serve", *args]


def child_env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", **extra}


@dataclass
class HttpServer:
    url: str
    base: str
    process: subprocess.Popen[bytes]
    stderr: Path

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


@contextmanager
def http_server(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[HttpServer]:
    """`carto-mcp serve --transport streamable-http` on a free loopback port, up within START_TIMEOUT, always killed."""
    port = free_port()
    stderr = tmp_path / f"serve-{port}.err"
    command = serve_command(
        "--transport",
        "streamable-http",
        "--port",
        str(port),
        "--sandbox",
        "--sandbox-db",
        str(tmp_path / "http.db"),
        *args,
    )
    with stderr.open("wb") as err:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env or child_env())
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(f"server exited with {process.returncode}: {stderr.read_text()}")
            try:
                if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"server not up within {START_TIMEOUT} s: {stderr.read_text()}")
            time.sleep(0.1)
        yield HttpServer(url=f"{base}/mcp", base=base, process=process, stderr=stderr)
    finally:
        stop(process)


async def round_trip(client: Client) -> None:
    """Create, list, get, update and revoke (two-step) a token, an SPA client and an M2M client."""
    token = ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"], "name": "t"}))
    spa = ok(await client.call_tool("create_spa", {"title": "web", "callbacks": ["https://a.example/cb"]}))
    m2m = ok(await client.call_tool("create_m2m", {"title": "svc"}))
    assert token["token"] and m2m["client_secret"]
    rows = ok(await client.call_tool("list_credentials", {}))["rows"]
    assert [(r["kind"], r["id"]) for r in rows] == [("token", token["id"]), ("spa", spa["id"]), ("m2m", m2m["id"])]
    for kind, created in (("token", token), ("spa", spa), ("m2m", m2m)):
        got = ok(await client.call_tool("get_credential", {"kind": kind, "id": created["id"]}))
        assert got["id"] == created["id"]
        change = {"name": "renamed"} if kind == "token" else {"title": "renamed"}
        updated = ok(await client.call_tool("update_credential", {"kind": kind, "id": created["id"], **change}))
        assert updated["status"] == "updated"
        args = {"kind": kind, "id": created["id"]}
        preview = ok(await client.call_tool("revoke_credential", args))
        assert preview["status"] == "confirmation_required"
        done = ok(await client.call_tool("revoke_credential", {**args, "confirm": preview["confirmation_code"]}))
        assert done["status"] == "revoked" and done["name"] == "renamed"
    assert ok(await client.call_tool("list_credentials", {}))["rows"] == []


# --- stdio -----------------------------------------------------------------------------------


async def test_stdio_subprocess_initializes_lists_tools_and_round_trips(tmp_path: Path) -> None:
    """`carto-mcp serve --sandbox` over stdio: initialize, the tools, and a full round trip for every kind."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "carto_mcp", "serve", "--sandbox", "--sandbox-db", str(tmp_path / "stdio.db")],
        env=child_env(),
    )
    with anyio.fail_after(TIMEOUT * 2):
        async with Client(params, mode="legacy", read_timeout_seconds=TIMEOUT) as client:
            assert client.server_capabilities is not None and client.server_capabilities.tools is not None
            names = {t.name for t in (await client.list_tools()).tools}
            assert {
                "list_credentials",
                "get_credential",
                "create_token",
                "create_spa",
                "create_m2m",
                "update_credential",
                "revoke_credential",
            } <= names
            await round_trip(client)
            assert "Traceback" not in error_text(await client.call_tool("get_credential", {"kind": "x", "id": "y"}))


async def test_stdio_subprocess_with_yes_revokes_in_one_call(tmp_path: Path) -> None:
    """`serve --yes` skips the confirmation step over stdio."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "carto_mcp", "serve", "--sandbox", "--sandbox-db", str(tmp_path / "y.db"), "--yes"],
        env=child_env(),
    )
    with anyio.fail_after(TIMEOUT * 2):
        async with Client(params, mode="legacy", read_timeout_seconds=TIMEOUT) as client:
            m2m = ok(await client.call_tool("create_m2m", {"title": "svc"}))
            done = ok(await client.call_tool("revoke_credential", {"kind": "m2m", "id": m2m["id"]}))
    assert done["status"] == "revoked"


# --- streamable HTTP -------------------------------------------------------------------------


async def test_streamable_http_lists_tools_and_round_trips(tmp_path: Path) -> None:
    """`serve --transport streamable-http`: a URL client lists the tools and completes a round trip."""
    with http_server(tmp_path) as server:
        with anyio.fail_after(TIMEOUT * 2):
            async with Client(server.url, read_timeout_seconds=TIMEOUT) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert {"list_credentials", "create_token", "revoke_credential"} <= names
                await round_trip(client)


async def test_stateless_streamable_http_round_trips_with_codes(tmp_path: Path) -> None:
    """`--stateless` (replicas behind a balancer) still completes the two-step confirmation."""
    with http_server(tmp_path, "--stateless") as server:
        with anyio.fail_after(TIMEOUT * 2):
            async with Client(server.url, mode="legacy", read_timeout_seconds=TIMEOUT) as client:
                await round_trip(client)


async def test_sse_lists_tools_and_round_trips(tmp_path: Path) -> None:
    """`serve --transport sse` (older clients): an SSE client lists the tools and completes a round trip."""
    with http_server(tmp_path, "--transport", "sse") as server:
        with anyio.fail_after(TIMEOUT * 2):
            async with Client(sse_client(f"{server.base}/sse"), mode="legacy", read_timeout_seconds=TIMEOUT) as client:
                names = {t.name for t in (await client.list_tools()).tools}
                assert {"list_credentials", "create_token", "revoke_credential"} <= names
                await round_trip(client)


async def test_sse_refuses_a_foreign_origin(tmp_path: Path) -> None:
    """The SSE endpoint has the same DNS-rebinding protection: a foreign Origin gets 403."""
    with http_server(tmp_path, "--transport", "sse") as server:
        async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
            evil = await http.get(f"{server.base}/sse", headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403


async def test_a_foreign_origin_is_refused_with_403(tmp_path: Path) -> None:
    """DNS-rebinding protection: a browser Origin we do not trust gets 403; our own loopback origin is served."""
    with http_server(tmp_path) as server:
        async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
            evil = await http.post(
                server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": "http://evil.example"}
            )
            own = await http.post(server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": server.base})
            none = await http.post(server.url, json=INITIALIZE, headers=MCP_HEADERS)
            host = await http.post(server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Host": "evil.example"})
    assert evil.status_code == 403
    assert own.status_code == 200
    assert none.status_code == 200
    assert host.status_code == 421


async def test_an_allowed_origin_flag_admits_that_origin(tmp_path: Path) -> None:
    """`--allow-origin` adds a trusted browser origin; others stay refused."""
    with http_server(tmp_path, "--allow-origin", "https://app.example") as server:
        async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
            allowed = await http.post(
                server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": "https://app.example"}
            )
            other = await http.post(server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Origin": "https://x.example"})
    assert allowed.status_code == 200
    assert other.status_code == 403


@pytest.mark.parametrize("how", ["env", "file"])
async def test_the_mcp_endpoint_bearer_is_required(tmp_path: Path, how: str) -> None:
    """With an endpoint secret, a missing or wrong bearer gets 401 and the right one gets through."""
    env = child_env()
    args: list[str] = []
    if how == "env":
        env["CARTO_MCP_AUTH_TOKEN"] = AUTH
    else:
        secret_file = tmp_path / "auth-token"
        secret_file.write_text(AUTH + "\n", encoding="utf-8")
        args = ["--auth-token-file", str(secret_file)]
    with http_server(tmp_path, *args, env=env) as server:
        async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
            missing = await http.post(server.url, json=INITIALIZE, headers=MCP_HEADERS)
            wrong = await http.post(
                server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": "Bearer not-the-secret"}
            )
            basic = await http.post(server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": AUTH})
            right = await http.post(
                server.url, json=INITIALIZE, headers={**MCP_HEADERS, "Authorization": f"Bearer {AUTH}"}
            )
            health = await http.get(f"{server.base}/healthz")
        assert (missing.status_code, wrong.status_code, basic.status_code) == (401, 401, 401)
        assert "bearer" in missing.headers.get("www-authenticate", "").lower()
        assert AUTH not in missing.text + wrong.text
        assert right.status_code == 200
        assert health.status_code == 200

        headers = {"Authorization": f"Bearer {AUTH}"}
        with anyio.fail_after(TIMEOUT * 2):
            async with httpx2.AsyncClient(headers=headers, timeout=TIMEOUT) as authed:
                transport = streamable_http_client(server.url, http_client=authed)
                async with Client(transport, read_timeout_seconds=TIMEOUT) as client:
                    token = ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"]}))
                    rows = ok(await client.call_tool("list_credentials", {"kind": "token"}))["rows"]
        assert [r["id"] for r in rows] == [token["id"]]
    assert AUTH not in server.log()


def test_a_non_loopback_bind_without_an_endpoint_secret_refuses_to_start(tmp_path: Path) -> None:
    """`--host 0.0.0.0` with no bearer secret exits non-zero at once, naming --auth-token-file."""
    command = serve_command(
        "--transport", "streamable-http", "--host", "0.0.0.0", "--port", str(free_port()),
        "--sandbox", "--sandbox-db", str(tmp_path / "x.db"),
    )  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=START_TIMEOUT, env=child_env())
    assert done.returncode != 0
    assert "--auth-token-file" in done.stderr
    assert "Traceback" not in done.stderr
    assert time.monotonic() - started < START_TIMEOUT


async def test_a_wildcard_bind_with_an_endpoint_secret_serves_remote_host_names(tmp_path: Path) -> None:
    """`--host 0.0.0.0` with a bearer secret serves clients that address the machine by its own IP or name."""
    env = child_env(CARTO_MCP_AUTH_TOKEN=AUTH)
    with http_server(tmp_path, "--host", "0.0.0.0", env=env) as server:
        port = server.base.rsplit(":", 1)[1]
        headers = {**MCP_HEADERS, "Authorization": f"Bearer {AUTH}", "Host": f"192.0.2.10:{port}"}
        async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.post(server.url, json=INITIALIZE, headers=headers)
            foreign = await http.post(server.url, json=INITIALIZE, headers={**headers, "Origin": "http://evil.example"})
    assert response.status_code == 200
    assert foreign.status_code == 403


async def test_allow_host_restricts_the_host_names_of_a_remote_bind(tmp_path: Path) -> None:
    """With --allow-host, a non-loopback bind checks Host again: the named host passes, others get 421."""
    env = child_env(CARTO_MCP_AUTH_TOKEN=AUTH)
    with http_server(tmp_path, "--host", "0.0.0.0", "--allow-host", "mcp.example.com", env=env) as server:
        port = server.base.rsplit(":", 1)[1]
        base = {**MCP_HEADERS, "Authorization": f"Bearer {AUTH}"}
        async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
            named = await http.post(server.url, json=INITIALIZE, headers={**base, "Host": f"mcp.example.com:{port}"})
            other = await http.post(server.url, json=INITIALIZE, headers={**base, "Host": f"192.0.2.10:{port}"})
    assert named.status_code == 200
    assert other.status_code == 421


async def test_policy_environment_variables_reach_a_stdio_server(tmp_path: Path) -> None:
    """Desktop configs set CARTO_MCP_READ_ONLY / CARTO_MCP_SANDBOX in env: the spawned server honours them."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "carto_mcp", "serve"],
        env=child_env(CARTO_MCP_SANDBOX="1", CARTO_MCP_SANDBOX_DB=str(tmp_path / "env.db"), CARTO_MCP_READ_ONLY="true"),
    )
    with anyio.fail_after(TIMEOUT * 2):
        async with Client(params, mode="legacy", read_timeout_seconds=TIMEOUT) as client:
            names = {t.name for t in (await client.list_tools()).tools}
            refused = await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"]})
            listed = ok(await client.call_tool("list_credentials", {}))
    assert names == set(READ_TOOLS)
    assert "create_token" in error_text(refused)
    assert listed["rows"] == []
    assert (tmp_path / "env.db").exists()


def test_serve_help_names_every_transport() -> None:
    """The serve command offers stdio, streamable-http and sse."""
    done = subprocess.run(serve_command("--help"), capture_output=True, text=True, timeout=START_TIMEOUT)
    assert done.returncode == 0
    for word in ("stdio", "streamable-http", "sse", "--auth-token-file", "--read-only"):
        assert word in done.stdout
