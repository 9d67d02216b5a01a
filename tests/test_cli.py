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


# --- audit-log verify ---------------------------------------------------------------------------

AUDIT_KEY = "cli-test-audit-key-0123456789"


def audit_log_of(path: Path, lines: int, key: bytes | None = None) -> Path:
    from carto_mcp.server.audit import AuditLog

    log = AuditLog(path, key=key)
    for n in range(lines):
        log.record(profile="p", tool="create_spa", kind="spa", ident=f"spa-{n}", outcome="ok")
    return path


def env_with(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CARTO_")}, **extra}


def test_audit_log_verify_passes_an_intact_log_and_prints_the_last_hash(tmp_path: Path) -> None:
    """Exit 0, the verdict, the line count and times, and the last hash with the advice to keep it."""
    import json

    log = audit_log_of(tmp_path / "audit.jsonl", 3)
    last = json.loads(log.read_text(encoding="utf-8").splitlines()[-1])
    done = run("audit-log", "verify", str(log))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{log}: intact\n") and "lines: 3 (3 sealed)" in done.stdout
    assert f"last hash: {last['hash']}" in done.stdout and "Keep the last hash somewhere else" in done.stdout
    assert last["time"] in done.stdout


def test_audit_log_verify_names_an_edited_line_and_exits_1(tmp_path: Path) -> None:
    """Line 2 edited: exit 1 and the line number with what is wrong."""
    log = audit_log_of(tmp_path / "audit.jsonl", 3)
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[1] = lines[1].replace('"outcome":"ok"', '"outcome":"declined"')
    log.write_text("".join(lines), encoding="utf-8")
    done = run("audit-log", "verify", str(log))
    assert done.returncode == 1
    assert f"{log}: NOT intact — 1 problem" in done.stdout
    assert "line 2: hash does not match its content (edited?)" in done.stdout


def test_audit_log_verify_with_the_key_from_a_file_or_the_variable(tmp_path: Path) -> None:
    """An HMAC log: the key by --key-file or CARTO_MCP_AUDIT_KEY passes; no key is exit 2; a wrong key exit 1."""
    log = audit_log_of(tmp_path / "audit.jsonl", 2, key=AUDIT_KEY.encode())
    key_file = tmp_path / "audit.key"
    key_file.write_text(AUDIT_KEY + "\n", encoding="utf-8")
    wrong_file = tmp_path / "wrong.key"
    wrong_file.write_text("a-different-key-0123456789", encoding="utf-8")
    env = env_with()

    by_file = run("audit-log", "verify", str(log), "--key-file", str(key_file), env=env)
    by_env = run("audit-log", "verify", str(log), env=env_with(CARTO_MCP_AUDIT_KEY=AUDIT_KEY))
    keyless = run("audit-log", "verify", str(log), env=env)
    wrong = run("audit-log", "verify", str(log), "--key-file", str(wrong_file), env=env)

    assert by_file.returncode == 0 and by_env.returncode == 0, by_file.stdout + by_env.stdout
    assert "HMAC-SHA256 with key id" in by_file.stdout
    assert keyless.returncode == 2 and "NOT CHECKED" in keyless.stdout and "--key-file" in keyless.stdout
    assert wrong.returncode == 1 and "but the key given has id" in wrong.stdout
    for done in (by_file, by_env, keyless, wrong):
        assert AUDIT_KEY not in done.stdout + done.stderr and "Traceback" not in done.stderr


def test_audit_log_verify_json_is_one_object_for_scripts(tmp_path: Path) -> None:
    """--json: intact, counts, key ids, last hash and the problems as data."""
    import json

    log = audit_log_of(tmp_path / "audit.jsonl", 4)
    lines = log.read_text(encoding="utf-8").splitlines(keepends=True)
    log.write_text("".join(lines[:1] + lines[2:]), encoding="utf-8")
    done = run("audit-log", "verify", str(log), "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 1 and report["intact"] is False and report["lines"] == 3
    assert report["problems"] == [
        {
            "line": 2,
            "last": None,
            "message": "line 2: prev does not match line 1's hash (a line was deleted or reordered)",
        }
    ]
    assert report["key_ids"] == [] and report["plain"] == 3 and len(report["last_hash"]) == 64


def test_audit_log_verify_usage_errors_exit_2_with_a_sentence(tmp_path: Path) -> None:
    """A missing file, a directory, a file that is no audit log, an unreadable key file: exit 2, no traceback."""
    text = tmp_path / "notes.txt"
    text.write_text("hello\nworld\n", encoding="utf-8")
    log = audit_log_of(tmp_path / "audit.jsonl", 1)
    missing = run("audit-log", "verify", str(tmp_path / "nope.jsonl"))
    directory = run("audit-log", "verify", str(tmp_path))
    not_a_log = run("audit-log", "verify", str(text))
    bad_key = run("audit-log", "verify", str(log), "--key-file", str(tmp_path / "no.key"))
    no_path = run("audit-log", "verify")

    assert missing.returncode == 2 and "cannot read" in missing.stderr and "No such file" in missing.stderr
    assert directory.returncode == 2 and "is not a regular file" in directory.stderr
    assert not_a_log.returncode == 2 and "is not a carto-mcp audit log" in not_a_log.stdout
    assert bad_key.returncode == 2 and "--key-file: cannot read" in bad_key.stderr
    assert no_path.returncode == 2 and "PATH" in no_path.stderr
    for done in (missing, directory, not_a_log, bad_key, no_path):
        assert "Traceback" not in done.stderr


def test_audit_log_verify_help_says_what_is_checked_and_what_cannot_be_proved() -> None:
    """--help teaches: hash and prev, keys, torn lines, the cut end and the last hash, the exit codes."""
    done = run("audit-log", "verify", "--help")
    assert done.returncode == 0
    for text in ("prev", "CARTO_MCP_AUDIT_KEY", "key_id", "chain_break", "What it cannot prove", "--last-hash"):
        assert text in done.stdout
    assert "exit status: 0 intact" in done.stdout and "2 not checked" in done.stdout


def test_serve_refuses_a_short_audit_key_without_showing_it(tmp_path: Path) -> None:
    """A key shorter than 16 characters stops start-up naming its length and how to make one; the key stays unsaid."""
    key_file = tmp_path / "short.key"
    key_file.write_text("tiny-key", encoding="utf-8")
    audit = str(tmp_path / "audit.jsonl")
    by_file = run("serve", "--sandbox", "--throwaway", "--audit-log", audit, "--audit-key-file", str(key_file))
    by_env = run("serve", "--sandbox", "--throwaway", "--audit-log", audit, env=env_with(CARTO_MCP_AUDIT_KEY="tiny"))
    stray = run("serve", "--sandbox", "--throwaway", "--audit-key-file", str(key_file))

    assert by_file.returncode == 1 and "the audit key is 8 characters long" in by_file.stderr
    assert "secrets.token_hex" in by_file.stderr and "tiny-key" not in by_file.stderr
    assert by_env.returncode == 1 and "CARTO_MCP_AUDIT_KEY: the audit key is 4 characters long" in by_env.stderr
    assert stray.returncode == 1 and "--audit-key-file only applies with an audit log" in stray.stderr


def test_the_audit_key_comes_from_its_file_or_variable_and_never_shows_in_the_settings(tmp_path: Path) -> None:
    """--audit-key-file wins over CARTO_MCP_AUDIT_KEY; surrounding whitespace is dropped; repr shows no key."""
    from carto_mcp.cli import build_parser
    from carto_mcp.config import settings_from

    parser = build_parser()
    key_file = tmp_path / "audit.key"
    key_file.write_text(f"  {AUDIT_KEY}-file\n", encoding="utf-8")
    log = ["serve", "--audit-log", str(tmp_path / "audit.jsonl")]
    from_env = settings_from(parser.parse_args(log), {"CARTO_MCP_AUDIT_KEY": f"{AUDIT_KEY}\n"})
    from_file = settings_from(
        parser.parse_args([*log, "--audit-key-file", str(key_file)]), {"CARTO_MCP_AUDIT_KEY": AUDIT_KEY}
    )
    no_log = settings_from(parser.parse_args(["serve"]), {"CARTO_MCP_AUDIT_KEY": AUDIT_KEY})

    assert from_env.audit_key == AUDIT_KEY.encode() and from_file.audit_key == f"{AUDIT_KEY}-file".encode()
    assert no_log.audit_key is None
    assert AUDIT_KEY not in repr(from_env) + repr(from_file)
