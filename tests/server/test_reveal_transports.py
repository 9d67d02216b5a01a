"""Reveal pages over the real transports: the stdio process's loopback listener, the HTTP route, and `call`.

The stdio listener must be bound to 127.0.0.1 and nothing else, and be gone when the server
exits; over streamable HTTP the page is a route of the same server, behind the same Origin,
Host and bearer checks; `carto-mcp call` at a terminal prints the page's URL to stderr and
never the secret to stdout.
"""

from __future__ import annotations

import os
import pty
import re
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx2
import pytest
from _procs import stop
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from .conftest import TIMEOUT, grant, ok
from .test_reveal import Browser, page_secret
from .test_transports import AUTH, child_env, http_server

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

MAPS = {"grants": [grant()], "apis": ["maps"]}


def listeners(port: int) -> list[str]:
    """The local addresses in LISTEN state on `port`, from the kernel's own tables (IPv4 and IPv6)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, state = fields[1], fields[3]
            host, hex_port = address.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:
                found.append(host)
    return found


def refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return False
    except OSError:
        return True


async def test_the_stdio_listener_is_bound_to_loopback_only_and_gone_when_the_server_exits(tmp_path: Path) -> None:
    browser = Browser()
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "carto_mcp", "serve", "--sandbox", "--sandbox-db", str(tmp_path / "stdio.db"), "--debug"],
        env=child_env(),
    )
    errlog = tmp_path / "serve.err"
    with errlog.open("w", encoding="utf-8") as err, anyio.fail_after(TIMEOUT * 2):
        async with Client(
            stdio_client(params, errlog=err),
            mode="legacy",
            elicitation_callback=browser,
            read_timeout_seconds=TIMEOUT,
        ) as client:
            created = ok(await client.call_tool("create_token", MAPS))
            [url] = browser.urls
            port = int(re.match(r"http://127\.0\.0\.1:(\d+)/reveal/", url).group(1))  # type: ignore[union-attr]
            bound = listeners(port)
            page = httpx2.get(url, timeout=5)
            again = httpx2.get(url, timeout=5)
    assert created["delivery"] == "reveal" and again.status_code == 410
    secret = page_secret(page, "CARTO_API_ACCESS_TOKEN")
    assert secret not in errlog.read_text(encoding="utf-8")  # --debug logs every CARTO request, never the value
    assert bound == ["0100007F"]  # 127.0.0.1, and no other address, v4 or v6
    assert page.status_code == 200 and secret.startswith("eyJ")
    deadline = time.monotonic() + 10
    while listeners(port) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert listeners(port) == [] and refused(port)


async def test_over_streamable_http_the_page_is_a_route_behind_the_same_checks(tmp_path: Path) -> None:
    env = child_env(CARTO_MCP_AUTH_TOKEN=AUTH)
    with http_server(tmp_path, "--secrets", "reveal", "--debug", env=env) as server:
        browser = Browser()
        headers = {"Authorization": f"Bearer {AUTH}"}
        with anyio.fail_after(TIMEOUT * 2):
            async with httpx2.AsyncClient(headers=headers, timeout=TIMEOUT) as authed:
                transport = streamable_http_client(server.url, http_client=authed)
                async with Client(
                    transport, mode="legacy", elicitation_callback=browser, read_timeout_seconds=TIMEOUT
                ) as client:
                    created = ok(await client.call_tool("create_token", MAPS))
        [url] = browser.urls
        assert url.startswith(f"{server.base}/reveal/")
        assert any("bearer" in w for w in created["warnings"])
        no_bearer = httpx2.get(url, timeout=5)
        foreign_origin = httpx2.get(url, headers={**headers, "Origin": "https://evil.example"}, timeout=5)
        foreign_host = httpx2.get(url, headers={**headers, "Host": "evil.example"}, timeout=5)
        page = httpx2.get(url, headers=headers, timeout=5)
        again = httpx2.get(url, headers=headers, timeout=5)
    assert (no_bearer.status_code, foreign_origin.status_code, foreign_host.status_code) == (401, 403, 421)
    assert page.status_code == 200 and again.status_code == 410
    secret = page_secret(page, "CARTO_API_ACCESS_TOKEN")
    assert secret not in server.log() and secret not in no_bearer.text + again.text
    # The page's id opens it: the --debug log (uvicorn's access lines included) never names it, even
    # for the refused requests made while the page was still waiting.
    ident = url.rsplit("/", 1)[1]
    assert "/reveal/" in server.log() and ident not in server.log()


async def test_over_http_without_a_bearer_the_default_is_a_reveal_page(tmp_path: Path) -> None:
    with http_server(tmp_path) as server:
        browser = Browser()
        with anyio.fail_after(TIMEOUT * 2):
            async with Client(
                server.url, mode="legacy", elicitation_callback=browser, read_timeout_seconds=TIMEOUT
            ) as client:
                created = ok(await client.call_tool("create_token", MAPS))
        page = httpx2.get(browser.urls[0], timeout=5)
    assert created["delivery"] == "reveal" and created.get("token") is None
    assert page.status_code == 200


def test_call_at_a_terminal_prints_the_page_url_to_stderr_and_no_secret_to_stdout(tmp_path: Path) -> None:
    """`carto-mcp call` with a terminal: the URL on stderr, the result (no value) on stdout, then it waits."""
    primary, secondary = pty.openpty()
    command = [
        sys.executable,
        "-m",
        "carto_mcp",
        "call",
        "create_token",
        '{"grants": [{"connection": "carto_dw", "source": "carto.shared.demo_table"}], "apis": ["maps"]}',
        "--sandbox",
        "--throwaway",
    ]
    process = subprocess.Popen(
        command, stdin=secondary, stdout=subprocess.PIPE, stderr=secondary, env=child_env(), close_fds=True
    )
    os.close(secondary)
    try:
        terminal = b""
        deadline = time.monotonic() + TIMEOUT
        while b"/reveal/" not in terminal or b"Waiting" not in terminal:
            assert time.monotonic() < deadline, terminal.decode(errors="replace")
            ready, _, _ = select.select([primary], [], [], 0.5)
            if ready:
                terminal += os.read(primary, 65536)
        url = re.search(rb"http://127\.0\.0\.1:\d+/reveal/[A-Za-z0-9_-]+", terminal).group(0).decode()  # type: ignore[union-attr]
        page = httpx2.get(url, timeout=5)
        out, _ = process.communicate(timeout=TIMEOUT)
    finally:
        stop(process)
        os.close(primary)
    assert page.status_code == 200
    secret = page_secret(page, "CARTO_API_ACCESS_TOKEN")
    assert process.returncode == 0
    assert b'"delivery": "reveal"' in out and secret.encode() not in out
    assert secret.encode() not in terminal
