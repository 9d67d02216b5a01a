"""The `carto-mcp` process as a host sees it: signals, closed pipes, huge messages, bad flags.

Each test starts the real command as a subprocess and talks raw JSON-RPC lines over its pipes
(an SDK client would hide exactly what these tests look at). Every child is killed in
`finally`, and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from _procs import stop

from carto_mcp.masking import short_id
from carto_mcp.sandbox import running_sandbox

pytestmark = pytest.mark.slow

TIMEOUT = 30.0
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "carto_mcp", *args]


class Stdio:
    """A `carto-mcp serve` child spoken to in raw JSON-RPC lines."""

    def __init__(self, process: subprocess.Popen[bytes], stderr: Path) -> None:
        self.process = process
        self.stderr = stderr

    def send(self, message: dict[str, Any] | bytes) -> None:
        assert self.process.stdin is not None
        data = message if isinstance(message, bytes) else json.dumps(message).encode() + b"\n"
        self.process.stdin.write(data)
        self.process.stdin.flush()

    def read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line, f"no answer; stderr: {self.log()[-2000:]}"
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def handshake(self) -> None:
        self.send(INITIALIZE)
        assert self.read()["id"] == 1
        self.send(INITIALIZED)

    def log(self) -> str:
        return self.stderr.read_text(encoding="utf-8", errors="replace")


@contextmanager
def serving(tmp_path: Path, *args: str) -> Iterator[Stdio]:
    stderr = tmp_path / f"serve-{time.monotonic_ns()}.err"
    with stderr.open("wb") as err:
        process = subprocess.Popen(command("serve", *args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
    try:
        yield Stdio(process, stderr)
    finally:
        stop(process)


def run(*args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command(*args), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


# --- 11: signals and a host that goes away --------------------------------------------------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_while_idle_ends_the_server_within_a_second(tmp_path: Path, signum: int) -> None:
    """(11) Idle on stdio, then SIGINT/SIGTERM: the process exits within a second, with no traceback."""
    with serving(tmp_path, "--sandbox", "--throwaway") as server:
        server.handshake()
        time.sleep(0.3)
        started = time.monotonic()
        server.process.send_signal(signum)
        server.process.wait(timeout=5)
        elapsed = time.monotonic() - started
        assert elapsed < 1.2, f"took {elapsed:.2f} s"
        assert "Traceback" not in server.log()


def test_a_host_that_closes_our_stdout_mid_call_gets_a_quiet_exit(tmp_path: Path) -> None:
    """(11) The host closes the read end of our stdout, then stdin: no traceback on stderr, exit 0."""
    with serving(tmp_path, "--sandbox", "--throwaway") as server:
        server.handshake()
        assert server.process.stdout is not None
        server.process.stdout.close()
        for n in range(2, 6):
            server.send({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "list_credentials"}})
        time.sleep(0.5)
        assert server.process.stdin is not None
        server.process.stdin.close()
        assert server.process.wait(timeout=10) == 0
        assert "Traceback" not in server.log() and "BrokenPipe" not in server.log()


# --- 9: a message larger than the cap --------------------------------------------------------------------


def test_a_message_over_the_cap_is_refused_by_id_and_the_server_stays_small(tmp_path: Path) -> None:
    """(9) A 20 MB line of tiny array items: a JSON-RPC error for its id, the server keeps answering, RSS < 300 MB."""
    with serving(tmp_path, "--sandbox", "--throwaway") as server:
        server.handshake()
        items = ",".join(["0"] * 10_000_000)
        big = '{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"list_credentials","arguments":{"x":['
        server.send((big + items + "]}}}\n").encode())
        refused = server.read()
        server.send({"jsonrpc": "2.0", "id": 43, "method": "ping"})
        pong = server.read()
        rss = peak_rss_mb(server.process.pid)
    assert refused["id"] == 42 and refused["error"]["code"] == -32601
    assert "message too large" in refused["error"]["data"]
    assert pong == {"jsonrpc": "2.0", "id": 43, "result": {}}
    assert rss < 300, f"peak RSS {rss:.0f} MB"


# --- 12: prompts/get mistakes ---------------------------------------------------------------------------------


def test_prompt_mistakes_are_invalid_params_without_a_traceback(tmp_path: Path) -> None:
    """(12) An unknown prompt, and a known one without its arguments: -32602 naming the fix, nothing logged."""
    with serving(tmp_path, "--sandbox", "--throwaway") as server:
        server.handshake()
        server.send({"jsonrpc": "2.0", "id": 2, "method": "prompts/get", "params": {"name": "nope"}})
        unknown = server.read()
        server.send(
            {"jsonrpc": "2.0", "id": 3, "method": "prompts/get", "params": {"name": "least_privilege_map_token"}}
        )
        missing = server.read()
        assert unknown["error"]["code"] == -32602 and "least_privilege_map_token" in unknown["error"]["message"]
        assert missing["error"]["code"] == -32602 and "site" in missing["error"]["message"]
        assert "Traceback" not in server.log()


# --- 5: what the audit log says ---------------------------------------------------------------------------------


def test_an_unwritable_audit_log_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    """(5) --audit-log pointing at a directory: exit 1 at once, naming the flag, no traceback."""
    done = run("serve", "--sandbox", "--throwaway", "--audit-log", str(tmp_path))
    assert done.returncode == 1
    assert "--audit-log" in done.stderr and "not a regular file" in done.stderr and "Traceback" not in done.stderr


def test_a_create_cut_off_by_a_closed_stdin_is_audited_with_what_it_made(tmp_path: Path) -> None:
    """(5) The host closes stdin while a rotation waits on the old token's DELETE: the line names the new token."""
    audit = tmp_path / "audit.jsonl"
    with running_sandbox(tmp_path / "sb.db", faults=True) as sandbox:
        bearer = "process-test-bearer-1234"
        old = sandbox.store.seed_tokens(1)[0]
        httpx2.post(
            f"{sandbox.url}/_sandbox/faults",
            json={"mode": "stall", "stall_seconds": 20, "method": "DELETE", "path_prefix": "/v3/tokens"},
            timeout=5,
        ).raise_for_status()
        args = ("--token", bearer, "--base-url", sandbox.url, "--yes", "--audit-log", str(audit))
        with serving(tmp_path, *args) as server:
            server.handshake()
            call = {"name": "rotate_token", "arguments": {"id": short_id(old)}}
            server.send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": call})
            deadline = time.monotonic() + TIMEOUT
            while all(t["token"] == old for t in sandbox.store.list_tokens()[0]):  # wait for the replacement
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
            time.sleep(0.3)
            assert server.process.stdin is not None
            server.process.stdin.close()
            server.process.wait(timeout=10)
            assert "Traceback" not in server.log()
        new = [t["token"] for t in sandbox.store.list_tokens()[0] if t["token"] != old]
    lines = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert [(e["tool"], e["outcome"], e["id"]) for e in lines] == [("rotate_token", "cancelled", short_id(new[0]))]


# --- 14, 10: flags and arguments that cannot be used ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--transport", "sse", "--port", "99999"], ["--port", "99999", "not a TCP port"]),
        (["--sandbox", "--sandbox-db", "{tmp}"], ["--sandbox-db", "is a directory"]),
        (["--sandbox", "--sandbox-db", "{tmp}/not-a-db"], ["--sandbox-db", "not a sqlite database"]),
        (["--sandbox", "--sandbox-db", "{tmp}/missing/dir/x.db"], ["--sandbox-db", "does not exist"]),
    ],
    ids=["port", "db-is-a-directory", "db-not-sqlite", "db-in-a-missing-directory"],
)
def test_flags_that_cannot_be_used_are_clear_errors(tmp_path: Path, flags: list[str], words: list[str]) -> None:
    """(14) Bad --port or --sandbox-db: a non-zero exit naming the flag and the problem, never a traceback."""
    (tmp_path / "not-a-db").write_text("hello, I am a text file\n", encoding="utf-8")
    done = run("serve", *[f.replace("{tmp}", str(tmp_path)) for f in flags])
    assert done.returncode != 0
    for word in words:
        assert word in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "missing").exists()  # nothing was created on the way


def test_call_arguments_nested_too_deeply_are_a_clear_error(tmp_path: Path) -> None:
    """(10) `carto-mcp call` with 20,000 nested arrays: exit 2 with a sentence, not a RecursionError."""
    deep = '{"text": ' + "[" * 20_000 + "]" * 20_000 + "}"
    done = run("call", "list_credentials", deep, "--sandbox", "--throwaway")
    assert done.returncode == 2 and "nested too deeply" in done.stderr and "Traceback" not in done.stderr


def test_a_credentials_file_nested_too_deeply_is_a_clear_error(tmp_path: Path) -> None:
    """(10) The login file itself is 100,000 arrays deep: doctor names the file, no traceback."""
    home = tmp_path / "home"
    home.mkdir()
    (home / ".carto_credentials.json").write_text("[" * 100_000 + "]" * 100_000, encoding="utf-8")
    env = {**os.environ, "HOME": str(home)}
    env = {k: v for k, v in env.items() if not k.startswith("CARTO_")}
    done = subprocess.run(
        command("doctor", "--offline"),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 1
    assert ".carto_credentials.json" in done.stdout and "nested too deeply" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
