"""The `carto-mcp` command as a person runs it: sandbox, version, tools, call and serve --help."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2
from _procs import free_port, stop

from carto_mcp import __version__, contract
from carto_mcp.sandbox import running_sandbox
from carto_mcp.server.tools import TOOLS

ALL_TOOLS = [spec.name for spec in TOOLS]

TIMEOUT = 30


def carto_mcp(*args: str) -> list[str]:
    return [sys.executable, "-m", "carto_mcp", *args]


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`carto-mcp ARGS` to completion, as a script runs it (no stdin), output captured as text."""
    return subprocess.run(
        carto_mcp(*args), capture_output=True, text=True, timeout=TIMEOUT, stdin=subprocess.DEVNULL, env=env
    )


def start_sandbox(port: int, db: Path, *flags: str) -> subprocess.Popen[str]:
    """`carto-mcp sandbox --port PORT --db DB FLAGS` in the background, its output readable as text."""
    return subprocess.Popen(
        carto_mcp("sandbox", "--port", str(port), "--db", str(db), *flags),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )


def test_sandbox_command_serves_the_tokens_api_over_loopback(tmp_path: Path) -> None:
    """`carto-mcp sandbox --port N` prints its URL, and `GET /v3/tokens` with any bearer answers the list shape."""
    port = free_port()
    process = start_sandbox(port, tmp_path / "sb.db")
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith(f"CARTO sandbox API on http://127.0.0.1:{port}")
        deadline = time.monotonic() + TIMEOUT
        while True:
            try:
                response = httpx2.get(
                    f"http://127.0.0.1:{port}/v3/tokens", headers={"Authorization": "Bearer x"}, timeout=2
                )
                break
            except httpx2.TransportError:
                assert time.monotonic() < deadline, "sandbox did not answer"
                time.sleep(0.1)
        anonymous = httpx2.get(f"http://127.0.0.1:{port}/v3/tokens", timeout=2)
    finally:
        stop(process)
    assert response.status_code == 200 and response.json() == {"data": [], "total": 0}
    assert anonymous.status_code == 401 and anonymous.json() == {"error": "Token not defined", "status": 401}


def test_version_prints_the_package_version() -> None:
    """`carto-mcp --version`."""
    done = run("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"carto-mcp {__version__}"


def test_tools_lists_every_tool_with_its_arguments() -> None:
    """`carto-mcp tools` reads as a person's reference: each tool, then its arguments with kinds."""
    done = run("tools")
    assert done.returncode == 0
    for name in ALL_TOOLS:
        assert f"\n{name} — " in f"\n{done.stdout}"
    assert "apis (list of sql|maps|imports|lds, required)" in done.stdout


def test_call_refuses_arguments_that_are_not_a_json_object() -> None:
    """Bad JSON or a non-object exits 2 with a message saying what to pass; no traceback."""
    bad = run("call", "list_credentials", "{kind: token}", "--sandbox", "--throwaway")
    listed = run("call", "list_credentials", "[1]", "--sandbox", "--throwaway")
    assert bad.returncode == 2 and "not JSON" in bad.stderr and "Traceback" not in bad.stderr
    assert listed.returncode == 2 and "JSON object" in listed.stderr


def test_serve_help_teaches_the_flags_and_their_environment_variables() -> None:
    """`serve --help` shows each policy flag with the environment variable desktop configs can set instead."""
    done = run("serve", "--help")
    assert done.returncode == 0
    for text in (
        "CARTO_MCP_READ_ONLY",
        "CARTO_MCP_TOOLS",
        "CARTO_MCP_YES",
        "CARTO_MCP_AUDIT_LOG",
        "CARTO_MCP_AUTH_TOKEN",
        "--profiles",
        "examples:",
    ):
        assert text in done.stdout


# --- serve as a host starts it, with the environment that host passes ---------------------------


def call_over_stdio(env: dict[str, str], tool: str, *flags: str) -> tuple[bool, str]:
    """Start `carto-mcp serve` on stdio with exactly `env` (plus PATH), call one tool: (is_error, text)."""
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "carto_mcp", "serve", *flags],
        env={"PATH": os.environ.get("PATH", ""), **env},
    )

    async def call() -> Any:
        with anyio.fail_after(60):
            async with Client(params, read_timeout_seconds=60) as client:
                return await client.call_tool(tool, {})

    result = anyio.run(call)
    return bool(result.is_error), " ".join(getattr(c, "text", "") for c in result.content)


def sandbox_requests(url: str) -> dict[str, int]:
    counts: dict[str, int] = httpx2.get(f"{url}/_sandbox/requests", timeout=5).json()
    return counts


def test_under_gemini_a_stripped_client_secret_is_explained_and_nothing_is_sent(tmp_path: Path) -> None:
    """What Gemini CLI passes when CARTO_CLIENT_ID and CARTO_CLIENT_SECRET were exported (the secret removed)."""
    with running_sandbox(tmp_path / "sb.db", faults=True) as sandbox:
        env = {
            "HOME": str(tmp_path),
            "GEMINI_CLI": "1",
            "CARTO_CLIENT_ID": "fake-client-id",
            "CARTO_MCP_BASE_URL": sandbox.url,
            "CARTO_MCP_AUTH_URL": sandbox.url + contract.AUTH_TOKEN_PATH,
        }
        is_error, text = call_over_stdio(env, "list_credentials")
        assert sandbox_requests(sandbox.url) == {}
    assert is_error and "client secret is missing" in text
    assert "Gemini CLI" in text and '"CARTO_CLIENT_SECRET": "$CARTO_CLIENT_SECRET"' in text
    assert "carto-mcp install gemini" in text


def test_an_unsubstituted_placeholder_token_is_refused_and_nothing_is_sent(tmp_path: Path) -> None:
    """`${input:x}` via --token (a client without VS Code's `inputs`) and `$CARTO_API_TOKEN` via the variable."""
    with running_sandbox(tmp_path / "sb.db", faults=True) as sandbox:
        home = {"HOME": str(tmp_path)}
        flag = call_over_stdio(home, "list_credentials", "--token", "${input:x}", "--base-url", sandbox.url)
        env = {**home, "CARTO_API_TOKEN": "$CARTO_API_TOKEN", "CARTO_MCP_BASE_URL": sandbox.url}
        variable = call_over_stdio(env, "whoami")
        assert sandbox_requests(sandbox.url) == {}  # refused before any request reached the API
    assert flag[0] and "the token in --token is `${input:x}`" in flag[1] and "did not substitute" in flag[1]
    assert variable[0] and "the token in CARTO_API_TOKEN is `$CARTO_API_TOKEN`" in variable[1]
    assert "VS Code" in variable[1] and "inputs" in variable[1]


# --- large accounts: --max-concurrency, --cache-ttl; sandbox --latency-ms, --instrument ------


def test_the_large_account_flags_and_variables_reach_the_settings() -> None:
    """A flag wins over its variable; the variable over the default; 0 is a valid cache TTL."""
    from carto_mcp.cli import build_parser
    from carto_mcp.config import DEFAULT_CACHE_TTL, DEFAULT_MAX_CONCURRENCY, settings_from

    parser = build_parser()
    default = settings_from(parser.parse_args(["serve"]), {})
    from_env = settings_from(
        parser.parse_args(["serve"]), {"CARTO_MCP_MAX_CONCURRENCY": "3", "CARTO_MCP_CACHE_TTL": "0"}
    )
    from_flags = settings_from(
        parser.parse_args(["serve", "--max-concurrency", "16", "--cache-ttl", "5"]),
        {"CARTO_MCP_MAX_CONCURRENCY": "3", "CARTO_MCP_CACHE_TTL": "0"},
    )

    assert (default.max_concurrency, default.cache_ttl) == (DEFAULT_MAX_CONCURRENCY, DEFAULT_CACHE_TTL)
    assert (from_env.max_concurrency, from_env.cache_ttl) == (3, 0.0)
    assert (from_flags.max_concurrency, from_flags.cache_ttl) == (16, 5.0)


def test_a_bad_concurrency_or_ttl_is_refused_naming_the_flag_or_variable() -> None:
    """Out-of-range values stop `serve` with a sentence, not a traceback, whether flag or variable."""
    flag = run("serve", "--sandbox", "--throwaway", "--max-concurrency", "0")
    variable = run("serve", "--sandbox", "--throwaway", env={**os.environ, "CARTO_MCP_CACHE_TTL": "soon"})

    assert flag.returncode == 2 and "--max-concurrency: 0 is not between 1 and 32" in flag.stderr
    assert variable.returncode != 0 and "CARTO_MCP_CACHE_TTL: 'soon' is not a number of seconds" in variable.stderr
    assert "Traceback" not in flag.stderr + variable.stderr


def test_an_instrumented_slow_sandbox_says_so_and_answers_late(tmp_path: Path) -> None:
    """`sandbox --latency-ms 200 --instrument` warns loudly, serves /_sandbox/stats, and answers 200 ms late."""
    port = free_port()
    process = start_sandbox(port, tmp_path / "sb.db", "--latency-ms", "200", "--instrument")
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        base = f"http://127.0.0.1:{port}"
        started = time.monotonic()
        listed = httpx2.get(f"{base}/v3/tokens", headers={"Authorization": "Bearer x"}, timeout=5)
        took = time.monotonic() - started
        stats = httpx2.get(f"{base}/_sandbox/stats", timeout=5).json()
    finally:
        stop(process)

    assert lines[0].startswith(f"CARTO sandbox API on http://127.0.0.1:{port}")
    assert "delayed 200 ms" in lines[1]
    assert "WARNING: instrumented" in lines[2] and "unauthenticated" in lines[2]
    assert listed.status_code == 200 and took >= 0.2
    assert stats["requests"] == {"GET /v3/tokens": 1} and stats["peak_in_flight"] == 1


def test_an_uninstrumented_sandbox_has_no_test_routes(tmp_path: Path) -> None:
    """Without --instrument, /_sandbox/ is not served: nobody can switch faults on or read counters."""
    with running_sandbox(tmp_path / "plain.db") as sandbox:
        stats = httpx2.get(f"{sandbox.url}/_sandbox/stats", timeout=5)
        fault = httpx2.post(f"{sandbox.url}/_sandbox/faults", json={"mode": "drop"}, timeout=5)
    assert stats.status_code in (401, 404) and fault.status_code in (401, 404, 405)
