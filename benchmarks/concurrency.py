"""Concurrency over stateless streamable HTTP (JSON responses): carto-mcp versus the floor server.

One sandbox process (~100 tokens), one carto-mcp process (`serve --transport streamable-http
--stateless --yes --base-url URL --token x`) and one floor process (benchmarks/floor_http_server.py,
tools that send the same requests through one shared httpx2.AsyncClient). 1, 10 and 50
concurrent clients — each its own httpx2.AsyncClient POSTing JSON-RPC `tools/call` (the
stateless legacy path needs no `initialize`: `Accept: application/json, text/event-stream` and
`MCP-Protocol-Version: 2025-06-18`) — run a fixed number of requests of a seeded mixed workload:
35 % list_credentials(limit=20), 35 % get_credential, 30 % writes (create_token, then revoke of a
token this client created). Both arms get the same operation sequence; runs alternate between
arms. Any HTTP error, JSON-RPC error or tool error counts as an error.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx2

from benchmarks._common import (
    HERE,
    PYTHON,
    child_env,
    cpu_seconds,
    free_port,
    log,
    quantile,
    ratio,
    rss_mib,
    spawn,
    start_sandbox_process,
    stop,
    summary,
    target,
    wait_http,
)

NAME = "concurrency"
TITLE = "Concurrency, stateless streamable HTTP (carto-mcp vs floor)"
TARGET_RATIO = 0.7
SEEDED = 100
TIMEOUT = 60.0
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}
GRANT = {"connection": "carto_dw", "source": "carto.shared.bench_table"}


@dataclass
class Arm:
    """How one server spells each operation, and how to read a created token's handle back."""

    name: str
    url: str
    process: Any
    pool: list[str]  # what get_credential takes: short ids (carto) or token values (floor)

    def params(self, op: str, handle: str | None = None) -> dict[str, Any]:
        carto = self.name == "carto"
        if op == "list":
            return {"name": "list_credentials", "arguments": {"kind": "token", "limit": 20} if carto else {"limit": 20}}
        if op == "get":
            args = {"kind": "token", "id": handle} if carto else {"token": handle}
            return {"name": "get_credential", "arguments": args}
        if op == "create":
            if carto:
                return {"name": "create_token", "arguments": {"grants": [GRANT], "apis": ["maps"], "name": "bench"}}
            return {"name": "create_token", "arguments": {"body": WIRE_BODY}}
        if op == "revoke":
            args = {"kind": "token", "id": handle} if carto else {"token": handle}
            return {"name": "revoke_credential", "arguments": args}
        raise ValueError(op)

    def created(self, structured: dict[str, Any]) -> str:
        return str(structured["id"] if self.name == "carto" else structured["token"])


def _wire_body() -> dict[str, Any]:
    """The create body carto-mcp sends for the same arguments (so the floor posts identical JSON)."""
    from carto_mcp.models import TokenCreate

    return TokenCreate(grants=[GRANT], apis=["maps"], name="bench").to_wire()  # type: ignore[arg-type]


WIRE_BODY: dict[str, Any] = {}


@dataclass
class RunResult:
    latencies: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    server_cpu: float | None = None
    sandbox_cpu: float | None = None
    loadgen_cpu: float = 0.0
    server_rss_mib: float | None = None
    ops: dict[str, int] = field(default_factory=dict)


async def call(http: httpx2.AsyncClient, arm: Arm, params: dict[str, Any], request_id: int) -> dict[str, Any]:
    """One tools/call; returns structuredContent, raises RuntimeError on any kind of failure."""
    body = json.dumps({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params})
    response = await http.post(arm.url, content=body, headers=HEADERS)
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {response.text[:160]}")
    message = response.json()
    if "error" in message:
        raise RuntimeError(f"JSON-RPC error: {message['error']}")
    result = message.get("result") or {}
    if result.get("isError"):
        texts = " ".join(c.get("text", "") for c in result.get("content", []))
        raise RuntimeError(f"tool error: {texts[:200]}")
    return result.get("structuredContent") or {}


def operations(seed: int, count: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(count)]


async def load(arm: Arm, clients: int, total: int, seed: int, sandbox_pid: int) -> RunResult:
    out = RunResult()
    per_client = total // clients
    leftovers: list[tuple[httpx2.AsyncClient, str]] = []
    https = [httpx2.AsyncClient(timeout=TIMEOUT) for _ in range(clients)]

    async def worker(index: int) -> None:
        http = https[index]
        draws = operations(seed * 1000 + index, per_client)
        rng = random.Random(seed * 7919 + index)
        mine: list[str] = []
        for n, draw in enumerate(draws):
            if draw < 0.35:
                op, handle = "list", None
            elif draw < 0.70:
                op, handle = "get", rng.choice(arm.pool)
            elif mine:
                op, handle = "revoke", mine.pop()
            else:
                op, handle = "create", None
            out.ops[op] = out.ops.get(op, 0) + 1
            started = time.perf_counter()
            try:
                structured = await call(http, arm, arm.params(op, handle), n)
                if op == "create":
                    mine.append(arm.created(structured))
            except (RuntimeError, httpx2.HTTPError, ValueError) as exc:
                out.errors.append(f"{op}: {type(exc).__name__}: {exc}"[:300])
            out.latencies.append(time.perf_counter() - started)
        leftovers.extend((http, h) for h in mine)

    server_before, sandbox_before = cpu_seconds(arm.process.pid), cpu_seconds(sandbox_pid)
    cpu_before = time.process_time()
    started = time.perf_counter()
    try:
        with anyio.fail_after(TIMEOUT + total):
            async with anyio.create_task_group() as group:
                for index in range(clients):
                    group.start_soon(worker, index)
        out.elapsed = time.perf_counter() - started
        out.loadgen_cpu = time.process_time() - cpu_before
        server_after, sandbox_after = cpu_seconds(arm.process.pid), cpu_seconds(sandbox_pid)
        if server_before is not None and server_after is not None:
            out.server_cpu = server_after - server_before
        if sandbox_before is not None and sandbox_after is not None:
            out.sandbox_cpu = sandbox_after - sandbox_before
        out.server_rss_mib = rss_mib(arm.process.pid)
        for http, handle in leftovers:  # untimed: keep the account at its seeded size
            await call(http, arm, arm.params("revoke", handle), 0)
    finally:
        for http in https:
            await http.aclose()
    return out


async def requests_per_op(arm: Arm, sandbox_url: str) -> dict[str, dict[str, int]]:
    """Which sandbox requests one call of each operation sends (both arms must match)."""
    out: dict[str, dict[str, int]] = {}
    async with httpx2.AsyncClient(timeout=TIMEOUT) as http:

        async def counts() -> dict[str, int]:
            return (await http.get(f"{sandbox_url}/_sandbox/requests")).json()  # type: ignore[no-any-return]

        created = ""
        for op in ("list", "get", "create", "revoke"):
            handle = arm.pool[0] if op == "get" else created if op == "revoke" else None
            before = await counts()
            structured = await call(http, arm, arm.params(op, handle), 1)
            after = await counts()
            out[op] = {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}
            if op == "create":
                created = arm.created(structured)
    return out


async def measure(
    arms: list[Arm], sandbox_url: str, sandbox_pid: int, levels: list[int], total: int, reps: int
) -> dict[str, Any]:
    checks = {arm.name: await requests_per_op(arm, sandbox_url) for arm in arms}
    for arm in arms:  # warm-up: connection pools, carto-mcp's id index, the SDK's lazy imports
        await load(arm, 10, 40, seed=999, sandbox_pid=sandbox_pid)
    runs: dict[str, dict[int, list[RunResult]]] = {arm.name: {level: [] for level in levels} for arm in arms}
    for level in levels:
        log(f"[{NAME}] {level} clients: {reps} x {total} requests per arm, alternating")
        for rep in range(reps):
            order = arms if rep % 2 == 0 else arms[::-1]
            for arm in order:
                runs[arm.name][level].append(
                    await load(arm, level, total, seed=rep * 31 + level, sandbox_pid=sandbox_pid)
                )
    return {"checks": checks, "runs": runs}


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    WIRE_BODY.update(_wire_body())
    levels = [1, 10, 50]
    total = 100 if quick else 500
    reps = 1 if quick else 3
    sandbox, sandbox_url = start_sandbox_process(workdir / "sb.db", seed=SEEDED, log=workdir / "sandbox.log")
    servers = []
    try:
        tokens = httpx2.get(
            f"{sandbox_url}/v3/tokens", params={"per_page": "100"}, headers={"Authorization": "Bearer x"}
        ).json()["data"]
        from carto_mcp.masking import short_id

        values = [t["token"] for t in tokens]
        env = child_env(home=workdir)
        carto_port, floor_port = free_port(), free_port()
        commands = {
            "carto": [
                *(PYTHON, "-m", "carto_mcp", "serve", "--transport", "streamable-http", "--stateless"),
                *("--port", str(carto_port), "--yes", "--base-url", sandbox_url, "--token", "x"),
            ],
            "floor": [
                *(PYTHON, str(HERE / "floor_http_server.py"), "--base-url", sandbox_url, "--token", "x"),
                *("--port", str(floor_port)),
            ],
        }
        arms = []
        for name, port in (("carto", carto_port), ("floor", floor_port)):
            log_path = workdir / f"{name}.log"
            with log_path.open("wb") as err:
                process = spawn(commands[name], env=env, stdout=err, stderr=err)
            servers.append(process)
            wait_http(f"http://127.0.0.1:{port}/healthz", process, log=log_path)
            pool = [short_id(v) for v in values] if name == "carto" else values
            arms.append(Arm(name, f"http://127.0.0.1:{port}/mcp", process, pool))
        measured = anyio.run(measure, arms, sandbox_url, sandbox.pid, levels, total, reps)
    finally:
        for process in servers:
            stop(process)
        stop(sandbox)
    return report(measured, levels, total, reps)


def _stats(results: list[RunResult]) -> dict[str, Any]:
    latencies = [x for r in results for x in r.latencies]
    done = sum(len(r.latencies) for r in results)
    throughputs = [len(r.latencies) / r.elapsed for r in results if r.elapsed]
    server_cpu = [r.server_cpu for r in results if r.server_cpu is not None]
    sandbox_cpu = [r.sandbox_cpu for r in results if r.sandbox_cpu is not None]
    rss = [r.server_rss_mib for r in results if r.server_rss_mib is not None]
    return {
        "requests": done,
        "throughput_rps": summary(throughputs),
        "p50_ms": quantile(latencies, 0.50) * 1000,
        "p99_ms": quantile(latencies, 0.99) * 1000,
        "max_ms": max(latencies) * 1000 if latencies else None,
        "errors": sum(len(r.errors) for r in results),
        "error_samples": [e for r in results for e in r.errors][:5],
        "server_cpu_ms_per_request": sum(server_cpu) * 1000 / done if server_cpu and done else None,
        "sandbox_cpu_ms_per_request": sum(sandbox_cpu) * 1000 / done if sandbox_cpu and done else None,
        "loadgen_cpu_ms_per_request": sum(r.loadgen_cpu for r in results) * 1000 / done if done else None,
        "ops": {op: sum(r.ops.get(op, 0) for r in results) for op in ("list", "get", "create", "revoke")},
        "server_rss_mib_max": max(rss) if rss else None,
    }


def report(measured: dict[str, Any], levels: list[int], total: int, reps: int) -> dict[str, Any]:
    runs = measured["runs"]
    data: dict[str, Any] = {}
    rows = []
    targets = []
    for level in levels:
        entry = {arm: _stats(runs[arm][level]) for arm in ("carto", "floor")}
        carto_rps = entry["carto"]["throughput_rps"]["median"]
        floor_rps = entry["floor"]["throughput_rps"]["median"]
        entry["throughput_ratio"] = ratio(carto_rps, floor_rps)
        data[str(level)] = entry
        for arm in ("carto", "floor"):
            s = entry[arm]
            rows.append(
                [
                    level,
                    arm,
                    s["requests"],
                    s["throughput_rps"]["median"],
                    s["throughput_rps"]["min"],
                    s["throughput_rps"]["max"],
                    s["p50_ms"],
                    s["p99_ms"],
                    s["errors"],
                    s["server_cpu_ms_per_request"],
                    s["sandbox_cpu_ms_per_request"],
                    s["loadgen_cpu_ms_per_request"],
                    s["server_rss_mib_max"],
                ]
            )
        targets.append(
            target(
                f"throughput carto / floor at {level} clients",
                f"≥ {TARGET_RATIO:g}×",
                entry["throughput_ratio"],
                entry["throughput_ratio"] >= TARGET_RATIO,
                "×",
                note=f"{carto_rps:.0f} vs {floor_rps:.0f} req/s; server CPU/request "
                f"{entry['carto']['server_cpu_ms_per_request'] or 0:.2f} vs "
                f"{entry['floor']['server_cpu_ms_per_request'] or 0:.2f} ms",
            )
        )
    errors = sum(data[str(level)][arm]["errors"] for level in levels for arm in ("carto", "floor"))
    targets.append(target("errors (all levels, both arms)", "= 0", float(errors), errors == 0))
    same = measured["checks"]["carto"] == measured["checks"]["floor"]
    targets.append(
        target(
            "both arms send the same sandbox requests per operation",
            "equal",
            None,
            same,
            note=json.dumps(measured["checks"]["carto"], separators=(",", ":")),
        )
    )
    return {
        "name": NAME,
        "title": TITLE,
        "params": {"levels": levels, "requests_per_run": total, "repeats": reps, "seeded_tokens": SEEDED},
        "levels": data,
        "requests_per_operation": measured["checks"],
        "targets": targets,
        "tables": [
            {
                "title": TITLE,
                "headers": [
                    "clients",
                    "arm",
                    "requests",
                    "req/s",
                    "min",
                    "max",
                    "p50 ms",
                    "p99 ms",
                    "errors",
                    "srv cpu ms/req",
                    "sbx cpu ms/req",
                    "gen cpu ms/req",
                    "srv RSS MiB",
                ],
                "rows": rows,
            }
        ],
        "notes": [
            "req/s = median over runs (min/max beside it); p50/p99 over every request of every run; "
            "cpu ms/req = CPU time of the server, the sandbox and the load generator per request",
        ],
    }
