"""Large accounts at a real API's round-trip time: concurrent page walks against sequential ones and the ideal.

Loopback answers in a millisecond and hides what a user waits for: a CARTO API 100 ms away,
walked one page after another. The sandbox runs in its own process, every request delayed
`LATENCY_MS`, seeded with 10,000 tokens of which 1 in 500 expires within 7 days (so every
case below must read every page). Each case is run, interleaved, by two in-process servers
(`build_server` + in-memory client) that differ only in `max_concurrency`: 8 (the default)
and 1 (the sequential walk carto-mcp did before). Both have the listing cache off, so each
call walks; one more row shows the default server answering the same list from its cache.

The ideal is what no client can beat: the first page (which tells the total), then the
rest 8 at a time, each batch one round trip — ⌈pages/8⌉ + 1 round trips — times the latency.
(`get_credential` of an id not seen before needs no more: the walk that finds the token has
just read it.)

Memory: a stdio server process (`python -m carto_mcp serve`, cache on as by default) walks
the whole account and resolves the last id; its peak RSS (VmHWM) is compared with its RSS
once started.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import anyio
import httpx2

from benchmarks._common import PYTHON, child_env, child_pids, log, ratio, rss_mib, start_sandbox_process, stop, summary
from benchmarks._common import target as target_line

NAME = "latency"
TITLE = "Large accounts at 100 ms latency (concurrent walk vs sequential vs ideal)"
LATENCY_MS = 100.0
PER_PAGE = 100
CONCURRENCY = 8
TIMEOUT = 300.0
TARGET_SPEEDUP = 6.0
TARGET_IDEAL = 1.5
TARGET_RSS = 1.5
TOKENS_PAGES = "GET /v3/tokens"


def build(url: str, concurrency: int, cache_ttl: float) -> Any:
    from carto_mcp.config import Settings
    from carto_mcp.profiles import ProfileInputs
    from carto_mcp.server.app import build_server

    settings = Settings(
        profile=ProfileInputs(token="x", base_url=url), max_concurrency=concurrency, cache_ttl=cache_ttl
    )
    return build_server(settings, environ={})


def ideal_round_trips(pages: int) -> int:
    """The first page, then the rest `CONCURRENCY` at a time: the issue's ⌈pages/8⌉ + 1."""
    return math.ceil(pages / CONCURRENCY) + 1


class Sandbox:
    def __init__(self, url: str) -> None:
        self.http = httpx2.AsyncClient(base_url=url, headers={"Authorization": "Bearer x"}, timeout=TIMEOUT)

    async def stats(self) -> dict[str, Any]:
        return (await self.http.get("/_sandbox/stats")).json()  # type: ignore[no-any-return]

    async def reset(self) -> None:
        (await self.http.delete("/_sandbox/requests")).raise_for_status()

    async def last_token(self, size: int) -> dict[str, Any]:
        page = -(-size // PER_PAGE)
        response = await self.http.get("/v3/tokens", params={"page": str(page), "per_page": str(PER_PAGE)})
        response.raise_for_status()
        return response.json()["data"][-1]  # type: ignore[no-any-return]


def _ok(result: Any) -> Any:
    if result.is_error:
        raise RuntimeError(f"tool error: {' '.join(getattr(c, 'text', '') for c in result.content)}")
    return result.structured_content


async def measure(url: str, size: int, repeats: int) -> dict[str, Any]:
    from mcp import Client

    from carto_mcp.masking import short_id

    sandbox = Sandbox(url)
    last = await sandbox.last_token(size)
    last_id = short_id(last["token"])
    cases: dict[str, dict[str, Any]] = {
        "text (1 match, last page)": {"tool": "list_credentials", "args": {"kind": "token", "text": last["name"]}},
        'expiring_within="7d"': {"tool": "list_credentials", "args": {"kind": "token", "expiring_within": "7d"}},
        "get_credential, last token's id": {"tool": "get_credential", "args": {"kind": "token", "id": last_id}},
    }
    arms = {"concurrent": CONCURRENCY, "sequential": 1}
    out: dict[str, Any] = {name: {arm: [] for arm in arms} | {"requests": {}, "peak": {}} for name in cases}

    async def once(case: str, arm: str) -> float:
        spec = cases[case]
        # A server per call: get_credential's id index, and the connection pool, start empty each time.
        async with Client(build(url, arms[arm], 0), mode="legacy", read_timeout_seconds=TIMEOUT) as client:
            await client.list_tools()
            await sandbox.reset()
            started = time.perf_counter()
            _ok(await client.call_tool(spec["tool"], spec["args"]))
            elapsed = time.perf_counter() - started
        stats = await sandbox.stats()
        served = stats["pages_served"]
        if any(n != 1 for n in served.values()):
            raise RuntimeError(f"{case} / {arm}: a page was served more than once: {served}")
        out[case]["requests"][arm] = stats["requests"]
        out[case]["peak"][arm] = stats["peak_in_flight"]
        return elapsed

    for rep in range(repeats):
        for case in cases:
            order = list(arms) if rep % 2 == 0 else list(arms)[::-1]
            for arm in order:
                out[case][arm].append(await once(case, arm))
        log(f"[{NAME}] {size:,} tokens: repeat {rep + 1}/{repeats} done")

    # The same text list again on a default server (cache on): served from memory.
    cached: list[float] = []
    async with Client(build(url, CONCURRENCY, 30.0), mode="legacy", read_timeout_seconds=TIMEOUT) as client:
        spec = cases["text (1 match, last page)"]
        _ok(await client.call_tool(spec["tool"], spec["args"]))
        await sandbox.reset()
        for _ in range(max(repeats, 3)):
            started = time.perf_counter()
            _ok(await client.call_tool(spec["tool"], spec["args"]))
            cached.append(time.perf_counter() - started)
        cached_requests = (await sandbox.stats())["requests"]
    await sandbox.http.aclose()
    return {"cases": out, "cached_s": cached, "cached_requests": cached_requests}


async def memory(url: str, size: int, last_name: str, workdir: Path) -> dict[str, float]:
    """A stdio server's RSS once started, and its peak after walking every token and resolving the last id."""
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    params = StdioServerParameters(
        command=PYTHON,
        args=["-m", "carto_mcp", "serve", "--base-url", url, "--token", "x"],
        env=child_env(home=workdir),
    )
    async with Client(params, mode="legacy", read_timeout_seconds=TIMEOUT) as client:
        await client.list_tools()
        await client.call_tool("whoami", {})
        pid = next(p for p, command in child_pids().items() if "carto_mcp serve" in command)
        started = rss_mib(pid) or 0.0
        _ok(await client.call_tool("list_credentials", {"kind": "token", "text": last_name}))
        _ok(await client.call_tool("list_credentials", {"kind": "token", "expiring_within": "7d"}))
        peak = rss_mib(pid, "VmHWM") or 0.0
        after = rss_mib(pid) or 0.0
    return {"startup_mib": started, "peak_mib": peak, "after_mib": after, "tokens": size}


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    size = 1000 if quick else 10_000
    repeats = 1 if quick else 3
    log(f"[{NAME}] {size:,} tokens at {LATENCY_MS:g} ms: seeding and starting the sandbox process")
    process, url = start_sandbox_process(
        workdir / "sb.db", seed=size, log=workdir / "sb.log", spread="rare", latency_ms=LATENCY_MS
    )
    try:
        measured = anyio.run(measure, url, size, repeats)
        log(f"[{NAME}] memory of a stdio server walking {size:,} tokens")

        async def last_name() -> str:
            sandbox = Sandbox(url)
            try:
                return str((await sandbox.last_token(size))["name"])
            finally:
                await sandbox.http.aclose()

        mem = anyio.run(memory, url, size, anyio.run(last_name), workdir)
    finally:
        stop(process)
    return report(measured, mem, size, repeats)


def report(measured: dict[str, Any], mem: dict[str, float], size: int, repeats: int) -> dict[str, Any]:
    latency = LATENCY_MS / 1000
    rows: list[list[Any]] = []
    targets: list[dict[str, Any]] = []
    data: dict[str, Any] = {}
    pages = -(-size // PER_PAGE)
    for case, rec in measured["cases"].items():
        rts = ideal_round_trips(pages)  # get_credential too: the walk reads the token, no lookup follows
        ideal = rts * latency
        concurrent, sequential = summary(rec["concurrent"]), summary(rec["sequential"])
        speedup = ratio(sequential["median"], concurrent["median"])
        to_ideal = ratio(concurrent["median"], ideal)
        data[case] = {
            "concurrent_s": concurrent,
            "sequential_s": sequential,
            "ideal_s": ideal,
            "ideal_round_trips": rts,
            "speedup": speedup,
            "ratio_to_ideal": to_ideal,
            "requests": rec["requests"],
            "peak_in_flight": rec["peak"],
        }
        for arm, s in (("concurrent (8)", concurrent), ("sequential (1)", sequential)):
            key = "concurrent" if arm.startswith("concurrent") else "sequential"
            rows.append(
                [
                    case,
                    arm,
                    sum(rec["requests"][key].values()),
                    rec["peak"][key],
                    s["median"] * 1000,
                    s["median"] / latency,
                    ideal * 1000 if key == "concurrent" else None,
                    speedup if key == "concurrent" else None,
                    to_ideal if key == "concurrent" else None,
                ]
            )
        targets.append(
            target_line(
                f"{case}: sequential / concurrent",
                f"≥ {TARGET_SPEEDUP:g}×",
                speedup,
                speedup >= TARGET_SPEEDUP,
                "×",
                note=f"{sequential['median']:.2f} s vs {concurrent['median']:.2f} s",
            )
        )
        targets.append(
            target_line(
                f"{case}: concurrent / ideal",
                f"≤ {TARGET_IDEAL:g}×",
                to_ideal,
                to_ideal <= TARGET_IDEAL,
                "×",
                note=f"ideal {rts} round trips = {ideal:.1f} s",
            )
        )
    cached = summary(measured["cached_s"])
    rows.append(
        [
            "text, again (listing cache)",
            "concurrent (8)",
            sum(measured["cached_requests"].values()),
            None,
            cached["median"] * 1000,
            None,
            None,
            None,
            None,
        ]
    )
    rss = ratio(mem["peak_mib"], mem["startup_mib"])
    targets.append(
        target_line(
            f"peak RSS after a {size:,}-token walk / RSS after start-up",
            f"≤ {TARGET_RSS:g}×",
            rss,
            rss <= TARGET_RSS,
            "×",
            note=f"{mem['startup_mib']:.1f} MiB at start-up, peak {mem['peak_mib']:.1f} MiB, "
            f"{mem['after_mib']:.1f} MiB after (the listing cache holds the walk for its TTL)",
        )
    )
    return {
        "name": NAME,
        "title": TITLE,
        "params": {
            "tokens": size,
            "latency_ms": LATENCY_MS,
            "per_page": PER_PAGE,
            "max_concurrency": CONCURRENCY,
            "repeats": repeats,
        },
        "cases": data,
        "cached_s": cached,
        "memory": mem,
        "targets": targets,
        "tables": [
            {
                "title": TITLE,
                "headers": [
                    "case",
                    "walk",
                    "reqs",
                    "peak in flight",
                    "ms",
                    "≈ round trips",
                    "ideal ms",
                    "speedup",
                    "×ideal",
                ],
                "rows": rows,
            }
        ],
        "notes": [
            f"every sandbox answer leaves {LATENCY_MS:g} ms after its request arrived; ≈ round trips = time / "
            "latency; ideal = ⌈pages/8⌉ + 1 round trips; every page was checked to be served exactly once",
            "both walking servers run with the listing cache off (--cache-ttl 0), so every call walks",
        ],
    }
