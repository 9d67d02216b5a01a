"""The HTTP door: Host and Origin parsed exactly, bodies checked before routing, no traceback for any of it.

Each test starts the real `carto-mcp serve` over streamable HTTP or SSE and sends requests a
browser, an attacker or a sloppy client would. The server's stderr is read at the end: a
refused request leaves no traceback and none of its body there.
"""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from .test_transports import INITIALIZE, MCP_HEADERS, TIMEOUT, http_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: A body marker that must never reach the server's log.
MARKER = "body-marker-that-must-not-be-logged-7f3a"


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_host_headers_with_userinfo_a_path_or_another_port_are_foreign(tmp_path: Path, transport: str) -> None:
    """(15) `localhost:1@evil.com`, `127.0.0.1:PORT@evil.com`, a path, a bad port, another port: 421 each."""
    with http_server(tmp_path, "--transport", transport) as server:
        port = server.base.rsplit(":", 1)[1]
        path = "/mcp" if transport == "streamable-http" else "/messages/?session_id=x"
        foreign = [
            "localhost:1@evil.com",
            f"127.0.0.1:{port}@evil.com",
            f"localhost:{port}/x",
            "127.0.0.1:99999",
            "127.0.0.1:1",
            "evil.example",
        ]
        async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
            statuses = {
                host: (
                    await http.post(server.base + path, json=INITIALIZE, headers={**MCP_HEADERS, "Host": host})
                ).status_code
                for host in foreign
            }
            own = await http.post(
                server.base + path, json=INITIALIZE, headers={**MCP_HEADERS, "Host": f"localhost:{port}"}
            )
        assert statuses == dict.fromkeys(foreign, 421)
        assert own.status_code != 421
        assert "Traceback" not in server.log()


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_origins_are_compared_exactly_and_checked_before_routing(tmp_path: Path, transport: str) -> None:
    """(15) Userinfo, a path, `null` or a foreign host in Origin: 403 on every method and path, DELETE too."""
    with http_server(tmp_path, "--transport", transport) as server:
        foreign = [
            "http://127.0.0.1:@evil.example",
            "http://user@localhost:3000",
            "http://localhost:3000/path",
            "null",
            "http://evil.example",
            "https://127.0.0.1.evil.example",
        ]
        async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
            refused = []
            for origin in foreign:
                for method, path in (("POST", "/mcp"), ("DELETE", "/mcp"), ("GET", "/sse"), ("GET", "/nowhere")):
                    response = await http.request(
                        method, server.base + path, headers={**MCP_HEADERS, "Origin": origin}, json=INITIALIZE
                    )
                    refused.append((origin, method, path, response.status_code))
            local = await http.get(f"{server.base}/healthz", headers={"Origin": "http://localhost:5173"})
        assert {status for *_, status in refused} == {403}, refused
        assert local.status_code == 200
        assert "Traceback" not in server.log()


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_malformed_bodies_are_400_without_a_traceback_or_the_body_in_the_log(
    tmp_path: Path, transport: str
) -> None:
    """(13) Bad JSON, empty, a batch, invalid UTF-8, deep nesting: 400, a JSON-RPC error that echoes nothing."""
    with http_server(tmp_path, "--transport", transport) as server:
        async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
            if transport == "sse":
                async with http.stream("GET", f"{server.base}/sse") as stream:
                    async for line in stream.aiter_lines():
                        if line.startswith("data: "):
                            endpoint = server.base + line[len("data: ") :].strip()
                            break
                    responses = await post_bad_bodies(http, endpoint)
            else:
                responses = await post_bad_bodies(http, server.url)
        log = server.log()
    for name, response in responses.items():
        assert response.status_code == 400, (name, response.status_code, response.text)
        body = response.json()
        assert body["jsonrpc"] == "2.0" and body["id"] is None and body["error"]["code"] in (-32700, -32600)
        assert MARKER not in response.text, name
    assert "Traceback" not in log and MARKER not in log


async def post_bad_bodies(http: httpx2.AsyncClient, url: str) -> dict[str, httpx2.Response]:
    bodies = {
        "not json": f"not json {MARKER}".encode(),
        "empty": b"",
        "batch": f'[{{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {{"x": "{MARKER}"}}}}]'.encode(),
        "invalid utf-8": b"\xff\xfe" + MARKER.encode(),
        "too deep": b"[" * 100_000 + b"]" * 100_000,
    }
    headers = {**MCP_HEADERS, "Content-Type": "application/json"}
    return {name: await http.post(url, content=body, headers=headers) for name, body in bodies.items()}


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
async def test_a_body_over_the_message_cap_is_413(tmp_path: Path, transport: str) -> None:
    """(9) Over HTTP the same 1 MiB cap answers 413 before anything parses the body."""
    with http_server(tmp_path, "--transport", transport) as server:
        path = "/mcp" if transport == "streamable-http" else "/messages/?session_id=x"
        body = b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"x": "' + b"a" * (2 * 1024 * 1024) + b'"}}'
        async with httpx2.AsyncClient(timeout=TIMEOUT) as http:
            response = await http.post(server.base + path, content=body, headers=MCP_HEADERS)
        assert response.status_code == 413
        assert "Traceback" not in server.log()
