"""Per-call overhead: a tool call through a stdio MCP session versus the same HTTP request made directly.

Three arms, interleaved call by call, against one loopback sandbox (`running_sandbox`, ~100
tokens): carto-mcp over stdio (`serve --base-url URL --token x`), the floor server over stdio
(benchmarks/floor_http_server.py: an MCPServer whose tool makes the same request and returns
the JSON as is; it separates what the SDK costs from what carto-mcp adds), and httpx2 directly.
Each arm's sandbox request count per call is checked to be the same.

Two reference arms measure what the SDK costs when the tool does nothing at all (`ping`, no
HTTP): benchmarks/floor_server.py over stdio, and the same MCPServer driven in this process
through the SDK's in-memory transport (no pipes, no second process). Neither involves
carto-mcp; they show how much an SDK round trip costs before any tool does anything.

Next to wall time, two attributions per call: the stdio server process's CPU time (from /proc,
summed over all calls of an op, so clock-tick rounding averages out) and the time the SDK
*client* spends re-validating `structuredContent` against the tool's output schema
(`ClientSession.validate_tool_result`, pure-Python jsonschema), which a host pays per call.

Also profiles the carto-mcp side in-process (`build_server` + in-memory legacy client, cProfile)
and writes the top entries to `benchmarks/profile_per_call.txt`.
"""

from __future__ import annotations

import cProfile
import io
import pstats
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import httpx2

from benchmarks._common import (
    HERE,
    PYTHON,
    ValidationClock,
    child_env,
    child_pids,
    cpu_seconds,
    log,
    summary,
    target,
)

NAME = "per_call"
TITLE = "Per-call overhead (stdio session vs direct httpx2)"
#: Budget over the SDK floor making the same request (the floor: benchmarks/floor_http_server.py).
TARGET_MS = {"get": 1.0, "list": 2.0}
TOKENS = 100
TIMEOUT = 60.0


def _json_size(result: Any) -> int:
    return len(result.model_dump_json(by_alias=True, exclude_none=True).encode())


async def _counts(http: httpx2.AsyncClient, url: str) -> dict[str, int]:
    return (await http.get(f"{url}/_sandbox/requests")).json()  # type: ignore[no-any-return]


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def _server_pid(marker: str, known: set[int]) -> int | None:
    for pid, command in child_pids().items():
        if pid not in known and marker in command:
            return pid
    return None


def _noop_server() -> Any:
    """floor_server.py's MCPServer, built here at WARNING: importing that module would log at INFO."""
    from mcp.server.mcpserver import MCPServer

    server = MCPServer("floor", log_level="WARNING")

    @server.tool()
    def ping() -> str:
        """Answer pong."""
        return "pong"

    return server


async def measure(url: str, tokens: list[str], repeats: int, warmup: int, workdir: Path) -> dict[str, Any]:
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    from carto_mcp.masking import short_id

    env = child_env(home=workdir)
    carto_params = StdioServerParameters(
        command=PYTHON, args=["-m", "carto_mcp", "serve", "--base-url", url, "--token", "x"], env=env
    )
    floor_params = StdioServerParameters(
        command=PYTHON, args=[str(HERE / "floor_http_server.py"), "--base-url", url, "--token", "x"], env=env
    )
    noop_params = StdioServerParameters(command=PYTHON, args=[str(HERE / "floor_server.py")], env=env)
    noop_server = _noop_server()
    target_token = tokens[len(tokens) // 2]
    target_id = short_id(target_token)

    with anyio.fail_after(TIMEOUT + repeats * 2.0):
        async with (
            Client(carto_params, mode="legacy", read_timeout_seconds=TIMEOUT) as carto,
            Client(floor_params, mode="legacy", read_timeout_seconds=TIMEOUT) as floor,
            Client(noop_params, mode="legacy", read_timeout_seconds=TIMEOUT) as noop_stdio,
            Client(noop_server, mode="legacy", read_timeout_seconds=TIMEOUT) as noop_inmem,
            httpx2.AsyncClient(
                base_url=url, headers={"Authorization": "Bearer x", "Accept": "application/json"}, timeout=TIMEOUT
            ) as direct,
        ):

            async def checked(result: Any) -> Any:
                if result.is_error:
                    raise RuntimeError(f"tool error: {result.content}")
                return result

            async def direct_get() -> Any:
                response = await direct.get(f"/v3/tokens/{target_token}")
                response.raise_for_status()
                return response.json()

            async def direct_list() -> Any:
                response = await direct.get("/v3/tokens", params={"page": "1", "per_page": "100"})
                response.raise_for_status()
                return response.json()

            ops: dict[str, Callable[[], Awaitable[Any]]] = {
                "get/carto": lambda: carto.call_tool("get_credential", {"kind": "token", "id": target_id}),
                "get/floor": lambda: floor.call_tool("get_credential", {"token": target_token}),
                "get/direct": direct_get,
                "list/carto": lambda: carto.call_tool("list_credentials", {"limit": 50}),
                "list/floor": lambda: floor.call_tool("list_credentials", {"limit": 50}),
                "list/direct": direct_list,
                "noop/stdio": lambda: noop_stdio.call_tool("ping", {}),
                "noop/inmem": lambda: noop_inmem.call_tool("ping", {}),
            }
            arm_pids = {
                "carto": _server_pid("carto_mcp serve", set()),
                "floor": _server_pid("floor_http_server.py", set()),
                "stdio": _server_pid("floor_server.py", set()),
            }
            pids = {name: arm_pids.get(name.split("/")[1]) for name in ops}
            # Warm-up also fills carto-mcp's id index (the first get by short id walks the list once).
            sizes: dict[str, int] = {}
            for _ in range(warmup):
                for name, op in ops.items():
                    result = await op()
                    if not name.endswith("direct"):
                        await checked(result)
                        sizes[name] = _json_size(result)
            requests_per_call: dict[str, dict[str, int]] = {}
            for name, op in ops.items():
                before = await _counts(direct, url)
                await op()
                requests_per_call[name] = _delta(await _counts(direct, url), before)

            names = list(ops)
            samples: dict[str, list[float]] = {name: [] for name in names}
            server_cpu: dict[str, float] = dict.fromkeys(names, 0.0)
            validation: dict[str, float] = dict.fromkeys(names, 0.0)
            for i in range(repeats):
                shift = i % len(names)
                for name in names[shift:] + names[:shift]:
                    pid = pids[name]
                    cpu_before = cpu_seconds(pid) if pid else None
                    with ValidationClock() as clock:
                        started = time.perf_counter()
                        result = await ops[name]()
                        elapsed = time.perf_counter() - started
                    cpu_after = cpu_seconds(pid) if pid else None
                    if cpu_before is not None and cpu_after is not None:
                        server_cpu[name] += cpu_after - cpu_before
                    validation[name] += clock.seconds
                    if not name.endswith("direct"):
                        await checked(result)
                    samples[name].append(elapsed * 1000)
    return {
        "samples": samples,
        "requests_per_call": requests_per_call,
        "result_bytes": sizes,
        "server_cpu_ms": {n: v * 1000 / repeats for n, v in server_cpu.items() if pids[n]},
        "client_validation_ms": {n: v * 1000 / repeats for n, v in validation.items() if not n.endswith("direct")},
    }


async def profile_in_process(url: str, tokens: list[str], calls: int) -> str:
    """cProfile of carto-mcp's own side: build_server + in-memory client, get and list calls."""
    from mcp import Client

    from carto_mcp.config import Settings
    from carto_mcp.masking import short_id
    from carto_mcp.profiles import ProfileInputs
    from carto_mcp.server.app import build_server

    server = build_server(Settings(profile=ProfileInputs(token="x", base_url=url)), environ={})
    ident = short_id(tokens[len(tokens) // 2])
    profiler = cProfile.Profile()
    with anyio.fail_after(TIMEOUT + calls):
        async with Client(server, mode="legacy", read_timeout_seconds=TIMEOUT) as client:
            await client.call_tool("get_credential", {"kind": "token", "id": ident})
            await client.call_tool("list_credentials", {"limit": 50})
            profiler.enable()
            for _ in range(calls):
                await client.call_tool("get_credential", {"kind": "token", "id": ident})
                await client.call_tool("list_credentials", {"limit": 50})
            profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(45)
    out.write("\n--- carto_mcp functions only, by cumulative time ---\n")
    stats.sort_stats("cumulative").print_stats("carto_mcp", 30)
    out.write("\n--- by own (tottime) time ---\n")
    stats.sort_stats("tottime").print_stats(30)
    header = (
        f"cProfile of {calls} get_credential + {calls} list_credentials(limit=50) calls, in-process\n"
        "(build_server + in-memory legacy Client; the sandbox runs in another thread and is not profiled).\n"
        "Client-side SDK work is included; paths are shortened.\n\n"
    )
    text = out.getvalue().replace(str(Path(anyio.__file__).parents[1]) + "/", "")
    return header + text


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    from carto_mcp.sandbox import running_sandbox

    repeats = 40 if quick else 300
    warmup = 3 if quick else 10
    with running_sandbox(workdir / "sb.db", faults=True) as sandbox:
        tokens = sandbox.store.seed_tokens(TOKENS)
        log(f"[{NAME}] {repeats} interleaved calls per arm (carto stdio, floor stdio, direct httpx2)")
        measured = anyio.run(measure, sandbox.url, tokens, repeats, warmup, workdir)
        log(f"[{NAME}] in-process profile")
        profile = anyio.run(profile_in_process, sandbox.url, tokens, 30 if quick else 200)
    (HERE / "profile_per_call.txt").write_text(profile, encoding="utf-8")

    samples = measured["samples"]
    stats = {name: summary(values) for name, values in samples.items()}
    rows = []
    targets = []
    added: dict[str, dict[str, float]] = {}
    noop = {arm: stats[f"noop/{arm}"]["median"] for arm in ("stdio", "inmem")}
    noop_note = (
        f"; an SDK round trip to a tool that does nothing takes {noop['stdio']:.2f} ms over stdio "
        f"and {noop['inmem']:.2f} ms in-process"
    )
    for op in ("get", "list"):
        direct = stats[f"{op}/direct"]["median"]
        floor = stats[f"{op}/floor"]["median"]
        carto = stats[f"{op}/carto"]["median"]
        # Paired differences (same round, back to back) are steadier than a difference of medians.
        paired = [c - d for c, d in zip(samples[f"{op}/carto"], samples[f"{op}/direct"], strict=True)]
        added[op] = {
            "carto_minus_direct_ms": carto - direct,
            "carto_minus_direct_paired_median_ms": summary(paired)["median"],
            "floor_minus_direct_ms": floor - direct,
            "carto_minus_floor_ms": carto - floor,
        }
        for arm in ("carto", "floor", "direct"):
            s = stats[f"{op}/{arm}"]
            reqs = measured["requests_per_call"].get(f"{op}/{arm}", {})
            rows.append(
                [
                    f"{op} / {arm}",
                    s["median"],
                    s["q1"],
                    s["q3"],
                    s["median"] - direct,
                    measured["server_cpu_ms"].get(f"{op}/{arm}"),
                    measured["client_validation_ms"].get(f"{op}/{arm}"),
                    sum(reqs.values()),
                    measured["result_bytes"].get(f"{op}/{arm}"),
                ]
            )
        value = carto - floor
        cpu = measured["server_cpu_ms"]
        check = measured["client_validation_ms"]
        added[op]["server_cpu_carto_minus_floor_ms"] = cpu[f"{op}/carto"] - cpu[f"{op}/floor"]
        added[op]["client_validation_carto_minus_floor_ms"] = check[f"{op}/carto"] - check[f"{op}/floor"]
        label = "get_credential" if op == "get" else "list_credentials(limit=50)"
        budget = TARGET_MS[op]
        targets.append(
            target(
                f"{label}: median per call over the SDK floor",
                f"≤ +{budget:g} ms",
                value,
                value <= budget,
                "ms",
                note=f"of which server CPU {added[op]['server_cpu_carto_minus_floor_ms']:.2f} and client schema check "
                f"{added[op]['client_validation_carto_minus_floor_ms']:.2f}; the floor itself adds "
                f"{floor - direct:.2f} ms over direct httpx2 ({carto - direct:.2f} ms for carto)" + noop_note,
            )
        )
    for arm in ("stdio", "inmem"):
        s = stats[f"noop/{arm}"]
        rows.append(
            [
                f"no-op / SDK {arm}",
                s["median"],
                s["q1"],
                s["q3"],
                None,
                measured["server_cpu_ms"].get(f"noop/{arm}"),
                measured["client_validation_ms"].get(f"noop/{arm}"),
                0,
                measured["result_bytes"].get(f"noop/{arm}"),
            ]
        )
    same = all(
        measured["requests_per_call"][f"{op}/carto"] == measured["requests_per_call"][f"{op}/direct"]
        for op in ("get", "list")
    )
    return {
        "name": NAME,
        "title": TITLE,
        "params": {"repeats": repeats, "warmup": warmup, "tokens": TOKENS, "list_limit": 50},
        "arms_ms": stats,
        "added_ms": added,
        "sdk_noop_round_trip_ms": noop,
        "requests_per_call": measured["requests_per_call"],
        "result_bytes": measured["result_bytes"],
        "server_cpu_ms_per_call": measured["server_cpu_ms"],
        "client_output_validation_ms_per_call": measured["client_validation_ms"],
        "same_requests_as_direct": same,
        "targets": targets,
        "tables": [
            {
                "title": TITLE,
                "headers": [
                    "call / arm",
                    "median ms",
                    "q1",
                    "q3",
                    "added ms",
                    "server cpu ms",
                    "client check ms",
                    "requests",
                    "result bytes",
                ],
                "rows": rows,
            }
        ],
        "notes": [
            "added = arm median - direct median; floor = MCPServer whose tool sends the same request "
            "(the SDK's own cost); server cpu = the stdio server process's CPU per call; client check = the "
            "SDK client's output-schema validation per call; in-process profile in benchmarks/profile_per_call.txt",
            "no-op = the SDK alone (benchmarks/floor_server.py's `ping`, no HTTP, no carto-mcp): over stdio, and "
            "in this process through the in-memory transport",
            "targets: carto's median minus the floor's (the same request through the same SDK, returning the API's "
            "JSON untyped), client schema check included",
        ],
    }
