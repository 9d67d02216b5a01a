"""Shared pieces of the benchmarks: statistics, child processes, line-framed JSON-RPC over pipes, tables.

Everything here talks only to processes and loopback servers the benchmarks start themselves;
every child is registered so `kill_all()` (called in `finally` by `python -m benchmarks`)
reaps it even when a benchmark fails half-way.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable

#: Upper bound on any one server start (the machine is shared and noisy).
START_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0

_children: list[subprocess.Popen[bytes]] = []


# --- statistics -------------------------------------------------------------------------------


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile (numpy's default), without numpy."""
    if not values:
        return float("nan")
    data = sorted(values)
    pos = (len(data) - 1) * q
    low = int(pos)
    high = min(low + 1, len(data) - 1)
    return data[low] + (data[high] - data[low]) * (pos - low)


def summary(values: Sequence[float]) -> dict[str, float]:
    """Median and spread (IQR and min/max) of one arm's repeats."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median": statistics.median(values),
        "q1": quantile(values, 0.25),
        "q3": quantile(values, 0.75),
        "iqr": quantile(values, 0.75) - quantile(values, 0.25),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
    }


def ratio(a: float, b: float) -> float:
    return a / b if b else float("inf")


def rounded(value: Any, digits: int = 4) -> Any:
    """Round floats deep inside a JSON-able structure (results.json stays readable; NaN/inf become null)."""
    if isinstance(value, float):
        return round(value, digits) if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: rounded(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(v, digits) for v in value]
    return value


def interleaved(arms: Mapping[str, Callable[[], Any]], repeats: int, *, warmup: int = 1) -> dict[str, list[Any]]:
    """Run every arm `repeats` times, interleaved round by round (A,B / B,A / A,B ...).

    The order rotates each round so neither arm always runs first after the other; warm-up
    rounds run the same way and are thrown away.
    """
    names = list(arms)
    out: dict[str, list[Any]] = {name: [] for name in names}
    for round_no in range(warmup + repeats):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            value = arms[name]()
            if round_no >= warmup:
                out[name].append(value)
    return out


# --- processes --------------------------------------------------------------------------------


def child_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """The parent's environment without CARTO_* (no real profile may leak in), plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTO_")}
    if home is not None:
        env["HOME"] = str(home)
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra)
    return env


def spawn(
    command: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: Any = subprocess.DEVNULL,
    stdout: Any = None,
    stderr: Any = None,
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(list(command), stdin=stdin, stdout=stdout, stderr=stderr, env=dict(env), cwd=ROOT)
    _children.append(process)
    return process


def stop(process: subprocess.Popen[bytes], *, hard: bool = False) -> None:
    """Terminate (or kill) one child we started and reap it, bounded."""
    if process.poll() is None:
        if hard:
            process.kill()
        else:
            process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    if process in _children:
        _children.remove(process)


def kill_and_rusage(process: subprocess.Popen[bytes]) -> float | None:
    """SIGKILL a child and return the CPU seconds (user + system) it used, from wait4."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
    cpu: float | None = None
    try:
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = -signal.SIGKILL if os.WIFSIGNALED(status) else os.waitstatus_to_exitcode(status)
        cpu = usage.ru_utime + usage.ru_stime
    except ChildProcessError:  # already reaped
        process.returncode = process.returncode if process.returncode is not None else -signal.SIGKILL
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            stream.close()
    if process in _children:
        _children.remove(process)
    return cpu


def kill_all() -> None:
    """Stop every child still registered (the safety net behind each benchmark's own `finally`)."""
    for process in list(_children):
        stop(process, hard=True)


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) a live process has used so far, from /proc (Linux only)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mib(pid: int, field: str = "VmRSS") -> float | None:
    """Resident set size of a live process in MiB, from /proc (Linux only); `VmHWM` is its peak so far."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def child_pids(parent: int | None = None) -> dict[int, str]:
    """pid -> command line of the live children of `parent` (default: this process), from /proc."""
    parent = os.getpid() if parent is None else parent
    out: dict[int, str] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == parent:
                out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(
    url: str, process: subprocess.Popen[bytes], *, timeout: float = START_TIMEOUT, log: Path | None = None
) -> None:
    """Poll `url` until it answers 200, the process dies, or `timeout` passes."""
    import httpx2

    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            detail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
            raise RuntimeError(f"{process.args!r} exited with {process.returncode} before {url} answered. {detail}")
        try:
            if httpx2.get(url, timeout=2.0).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer within {timeout:.0f} s")
        time.sleep(0.05)


def start_sandbox_process(
    db: Path, *, seed: int = 0, log: Path, spread: str = "mixed", latency_ms: float = 0.0
) -> tuple[subprocess.Popen[bytes], str]:
    """The sandbox API in its own process (seeded first), so it shares no GIL with what is measured."""
    command = [PYTHON, "-m", "benchmarks.sandbox_server", "--db", str(db), "--seed", str(seed), "--spread", spread]
    command += ["--latency-ms", str(latency_ms)]
    with log.open("wb") as err:
        process = spawn(command, env=child_env(), stdout=subprocess.PIPE, stderr=err)
    assert process.stdout is not None
    reader = LineReader(process)
    line = reader.read_line(time.monotonic() + START_TIMEOUT).decode()
    # "CARTO sandbox API on http://127.0.0.1:PORT (db: PATH)"
    url = line.split(" on ", 1)[1].split(" ", 1)[0]
    return process, url


# --- JSON-RPC lines over a child's pipes ------------------------------------------------------


@dataclass
class LineReader:
    """Reads newline-framed messages from a child's stdout with a deadline (raw fd, own buffer)."""

    process: subprocess.Popen[bytes]
    buffer: bytes = b""
    fd: int = field(init=False)

    def __post_init__(self) -> None:
        assert self.process.stdout is not None
        self.fd = self.process.stdout.fileno()

    def read_line(self, deadline: float) -> bytes:
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no line from the child before the deadline")
            ready, _, _ = select.select([self.fd], [], [], left)
            if ready:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    raise EOFError(f"the child closed stdout (exit code {self.process.poll()})")
                self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def read_response(self, request_id: int, deadline: float) -> dict[str, Any]:
        """Skip notifications and anything else until the response to `request_id`."""
        while True:
            line = self.read_line(deadline).strip()
            if not line:
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("id") == request_id:
                return message


def send_line(process: subprocess.Popen[bytes], message: Mapping[str, Any]) -> None:
    assert process.stdin is not None
    process.stdin.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    process.stdin.flush()


INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "carto-mcp-bench", "version": "1"},
    },
}
INITIALIZED = {"jsonrpc": "2.0", "method": "notifications/initialized"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}


class ValidationClock:
    """Times `ClientSession.validate_tool_result` (the client's output-schema check) while installed."""

    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self) -> ValidationClock:
        from mcp.client.session import ClientSession

        self._original = original = ClientSession.validate_tool_result
        clock = self

        async def timed(session: Any, name: str, result: Any) -> None:
            started = time.perf_counter()
            try:
                await original(session, name, result)
            finally:
                clock.seconds += time.perf_counter() - started

        ClientSession.validate_tool_result = timed  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        from mcp.client.session import ClientSession

        ClientSession.validate_tool_result = self._original  # type: ignore[method-assign]


# --- output -----------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table (monospace), right-aligning numbers."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        out = []
        for i, (cell, width) in enumerate(zip(row, widths, strict=True)):
            numeric = i > 0 and cell.replace(".", "").replace(",", "").replace("-", "").replace("%", "").isdigit()
            out.append(cell.rjust(width) if numeric else cell.ljust(width))
        lines.append("  ".join(out))
    return "\n".join(lines)


def target(
    name: str, goal: str, value: float | None, met: bool | None, unit: str = "", note: str = ""
) -> dict[str, Any]:
    """One target line of a benchmark's result: what was asked, what was measured, whether it holds."""
    return {"name": name, "target": goal, "value": value, "unit": unit, "met": met, "note": note}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
