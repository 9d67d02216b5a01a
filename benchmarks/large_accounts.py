"""Large accounts: list_credentials with filters and id → token resolution at 100 / 1,000 / 10,000 tokens.

The sandbox runs in its own process (seeded with expiries spread so `expiring_within="7d"`
matches 2 tokens in 7), so the in-process measurements — wall time, and tracemalloc peak in a
separate pass, since tracing slows everything — cover only the MCP server and its in-memory
client: `build_server(Settings(profile=ProfileInputs(token="x", base_url=url), cache_ttl=0))`
driven by `mcp.Client(server)`, with the listing cache off so every call walks. Each case is
compared with fetching the same pages (counted by the sandbox's request counter) raw with
httpx2 and decoding them, interleaved with it.
"""

from __future__ import annotations

import time
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx2

from benchmarks._common import HERE, ValidationClock, log, ratio, start_sandbox_process, stop, summary, target

NAME = "large_accounts"
TITLE = "Large accounts (in-process server vs raw page fetches)"
PER_PAGE = 100
TIMEOUT = 120.0
#: Linear growth: time per 1k tokens at the largest size may be at most this times that at 1,000.
LINEAR_SLACK = 1.5
TARGET_RAW_RATIO = 2.0
TARGET_AUDIT_RATIO = 2.0
TOKENS_PAGES = "GET /v3/tokens"
TOKEN_GET = "GET /v3/tokens/{token}"
CLIENT_PAGES = "GET /v3/oauth-clients"


@dataclass(frozen=True)
class Case:
    name: str
    arguments: dict[str, Any]
    limit: int
    full_walk: bool


def cases(last_name: str) -> list[Case]:
    return [
        # One match, on the last page: the whole account is read (all kinds).
        Case("text (1 match, last page)", {"text": last_name}, 50, True),
        # 2 in 7 match: the walk stops once 500 rows are found (page 18 at 10,000 tokens).
        Case('expiring_within="7d" limit=500', {"kind": "token", "expiring_within": "7d", "limit": 500}, 500, False),
        # A kind filter: SPA clients only; 10,000 tokens must not be read at all.
        Case('kind="spa"', {"kind": "spa"}, 50, False),
    ]


def _bytes(result: Any) -> tuple[int, int]:
    """(whole CallToolResult JSON, structuredContent JSON) in bytes."""
    import json

    whole = len(result.model_dump_json(by_alias=True, exclude_none=True).encode())
    structured = len(json.dumps(result.structured_content, separators=(",", ":")).encode())
    return whole, structured


class Account:
    """One seeded sandbox process and what the benchmark needs to know about it."""

    def __init__(self, url: str, size: int, http: httpx2.AsyncClient) -> None:
        self.url = url
        self.size = size
        self.http = http
        self.first = ""
        self.last = ""
        self.middle = ""

    async def discover(self) -> None:
        last_page = max(1, -(-self.size // PER_PAGE))
        self.first = (await self.page("/v3/tokens", 1))["data"][0]["token"]
        rows = (await self.page("/v3/tokens", last_page))["data"]
        self.last = rows[-1]["token"]
        self.last_name = rows[-1]["name"]
        mid_page = max(1, (self.size // 2) // PER_PAGE)
        self.middle = (await self.page("/v3/tokens", mid_page))["data"][0]["token"]

    async def page(self, path: str, page: int, **params: str) -> Any:
        response = await self.http.get(path, params={**params, "page": str(page), "per_page": str(PER_PAGE)})
        response.raise_for_status()
        return response.json()

    async def counts(self) -> dict[str, int]:
        return (await self.http.get("/_sandbox/requests")).json()  # type: ignore[no-any-return]

    async def raw(self, requests: dict[str, int], token: str | None = None) -> None:
        """The same requests a tool call made (by route), sent raw and decoded."""
        unknown = set(requests) - {TOKENS_PAGES, CLIENT_PAGES, TOKEN_GET}
        if unknown:
            raise RuntimeError(f"no raw equivalent for {sorted(unknown)}")
        for page in range(1, requests.get(TOKENS_PAGES, 0) + 1):
            await self.page("/v3/tokens", page)
        for page in range(1, requests.get(CLIENT_PAGES, 0) + 1):
            await self.page("/v3/oauth-clients", page)
        for _ in range(requests.get(TOKEN_GET, 0)):
            response = await self.http.get(f"/v3/tokens/{token}")
            response.raise_for_status()
            response.json()


def build(url: str) -> Any:
    from carto_mcp.config import Settings
    from carto_mcp.profiles import ProfileInputs
    from carto_mcp.server.app import build_server

    # The listing cache off: every call here must walk, or the comparison with raw pages means nothing.
    return build_server(Settings(profile=ProfileInputs(token="x", base_url=url), cache_ttl=0), environ={})


async def timed(call: Callable[[], Awaitable[Any]], checks: list[float] | None = None) -> tuple[float, Any]:
    """Wall seconds of one call; with `checks`, also append the client's output-schema check seconds."""
    with ValidationClock() as clock:
        started = time.perf_counter()
        value = await call()
        elapsed = time.perf_counter() - started
    if checks is not None:
        checks.append(clock.seconds)
    return elapsed, value


async def traced(call: Callable[[], Awaitable[Any]]) -> int:
    """Peak bytes traced by tracemalloc during one call (tracing started just before)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        await call()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v - before.get(k, 0)}


def _ok(result: Any) -> Any:
    if result.is_error:
        raise RuntimeError(f"tool error: {' '.join(getattr(c, 'text', '') for c in result.content)}")
    return result


async def profile_call(call: Callable[[], Awaitable[Any]], title: str) -> str:
    """cProfile of one call (server and client in-process; the sandbox is another process)."""
    import cProfile
    import io
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    await call()
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(40)
    out.write("\n--- by own time ---\n")
    stats.sort_stats("tottime").print_stats(25)
    return f"=== {title} ===\n{out.getvalue()}\n"


async def measure_size(url: str, size: int, repeats: int, profile: bool = False) -> dict[str, Any]:
    from mcp import Client

    from carto_mcp.masking import short_id

    out: dict[str, Any] = {"cases": {}, "resolution": {}}
    headers = {"Authorization": "Bearer x", "Accept": "application/json"}
    async with httpx2.AsyncClient(base_url=url, headers=headers, timeout=TIMEOUT) as http:
        account = Account(url, size, http)
        await account.discover()
        all_cases = cases(account.last_name)

        # --- list_credentials with filters: one server, calls interleaved with raw fetches ---
        async with Client(build(url), mode="legacy", read_timeout_seconds=TIMEOUT) as client:

            def call(case: Case) -> Callable[[], Awaitable[Any]]:
                return lambda: client.call_tool("list_credentials", case.arguments)

            plans: dict[str, dict[str, int]] = {}
            for case in all_cases:  # warm-up, and which requests each case sends
                before = await account.counts()
                result = _ok(await call(case)())
                plans[case.name] = _delta(await account.counts(), before)
                whole, structured = _bytes(result)
                out["cases"][case.name] = {
                    "requests": plans[case.name],
                    "rows": result.structured_content["count"],
                    "limit": case.limit,
                    "result_bytes": whole,
                    "structured_bytes": structured,
                    "full_walk": case.full_walk,
                    "mcp_s": [],
                    "check_s": [],
                    "raw_s": [],
                }
            for rep in range(repeats):
                for case in all_cases:
                    record = out["cases"][case.name]
                    pair = [("mcp_s", call(case)), ("raw_s", lambda c=case: account.raw(plans[c.name]))]
                    for key, fn in pair if rep % 2 == 0 else pair[::-1]:
                        elapsed, value = await timed(fn, record["check_s"] if key == "mcp_s" else None)
                        if key == "mcp_s":
                            _ok(value)
                        record[key].append(elapsed)
            # The hygiene audit against the plain full listing it is built on (both walk every kind once).
            audit, listing = [], []
            for rep in range(repeats):
                pair = [
                    (audit, lambda: client.call_tool("audit_credentials", {})),
                    (listing, call(all_cases[0])),
                ]
                for samples, fn in pair if rep % 2 == 0 else pair[::-1]:
                    elapsed, value = await timed(fn)
                    _ok(value)
                    samples.append(elapsed)
            out["audit"] = {"audit_s": audit, "listing_s": listing}
            if profile:
                out["profile"] = await profile_call(call(all_cases[0]), f"{all_cases[0].name}, {size:,} tokens")
            for case in all_cases:  # memory, in a pass of its own
                record = out["cases"][case.name]
                record["mcp_peak_bytes"] = await traced(call(case))
                record["raw_peak_bytes"] = await traced(lambda c=case: account.raw(plans[c.name]))

        # --- id -> token resolution: a fresh server each time (its id index starts empty) ---
        first_id, second_id = short_id(account.last), short_id(account.middle)
        resolution: dict[str, Any] = {
            "first_s": [],
            "second_s": [],
            "raw_first_s": [],
            "raw_second_s": [],
            "check_s": [],
        }
        for rep in range(repeats + 1):
            async with Client(build(url), mode="legacy", read_timeout_seconds=TIMEOUT) as client:
                # A get by full value first: the client lists the tools and compiles its output-schema
                # validator, and the server opens its connection, without filling the id index.
                _ok(await client.call_tool("get_credential", {"kind": "token", "id": account.first}))
                if rep == repeats:  # the memory pass
                    resolution["first_peak_bytes"] = await traced(
                        lambda: client.call_tool("get_credential", {"kind": "token", "id": first_id})
                    )
                    break
                raw_first = {TOKENS_PAGES: -(-size // PER_PAGE)}
                if rep % 2:
                    elapsed, _ = await timed(lambda plan=raw_first: account.raw(plan, account.last))
                    resolution["raw_first_s"].append(elapsed)
                before = await account.counts()
                elapsed, result = await timed(
                    lambda: client.call_tool("get_credential", {"kind": "token", "id": first_id}),
                    resolution["check_s"],
                )
                _ok(result)
                resolution["first_s"].append(elapsed)
                middle = await account.counts()
                elapsed, result = await timed(
                    lambda: client.call_tool("get_credential", {"kind": "token", "id": second_id})
                )
                _ok(result)
                resolution["second_s"].append(elapsed)
                after = await account.counts()
                resolution["first_requests"] = _delta(middle, before)
                resolution["second_requests"] = _delta(after, middle)
                if resolution["first_requests"] != raw_first:
                    raise RuntimeError(f"the raw side would not send what the call did: {resolution['first_requests']}")
                if rep % 2 == 0:
                    elapsed, _ = await timed(lambda plan=raw_first: account.raw(plan, account.last))
                    resolution["raw_first_s"].append(elapsed)
                elapsed, _ = await timed(lambda: account.raw({TOKEN_GET: 1}, account.middle))
                resolution["raw_second_s"].append(elapsed)
        resolution["result_bytes"] = _bytes(result)[0]
        resolution["raw_first_peak_bytes"] = await traced(
            lambda: account.raw({TOKENS_PAGES: -(-size // PER_PAGE)}, account.last)
        )
        out["resolution"] = resolution
    return out


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    sizes = [100, 1000] if quick else [100, 1000, 10000]
    repeats = {100: 7, 1000: 5, 10000: 3} if not quick else {100: 2, 1000: 2}
    by_size: dict[int, dict[str, Any]] = {}
    for size in sizes:
        log(f"[{NAME}] {size} tokens: seeding and starting the sandbox process")
        process, url = start_sandbox_process(workdir / f"sb-{size}.db", seed=size, log=workdir / f"sb-{size}.log")
        try:
            log(f"[{NAME}] {size} tokens: {repeats[size]} interleaved repeats")
            by_size[size] = anyio.run(measure_size, url, size, repeats[size], size == sizes[-1])
        finally:
            stop(process)
    (HERE / "profile_large_accounts.txt").write_text(
        "cProfile of list_credentials(text=<last token's name>) at the largest size: in-process server and\n"
        "in-memory client (the sandbox is another process). Profiling inflates pure-Python costs.\n\n"
        + by_size[sizes[-1]].get("profile", ""),
        encoding="utf-8",
    )
    return report(by_size, sizes, repeats)


def report(by_size: dict[int, dict[str, Any]], sizes: list[int], repeats: dict[int, int]) -> dict[str, Any]:
    rows = []
    data: dict[str, Any] = {}
    largest = sizes[-1]
    reference = 1000 if 1000 in sizes and largest != 1000 else sizes[0]
    case_names = list(by_size[sizes[0]]["cases"])
    for size in sizes:
        entry: dict[str, Any] = {}
        for name in case_names:
            rec = by_size[size]["cases"][name]
            mcp, raw = summary(rec["mcp_s"]), summary(rec["raw_s"])
            check = summary(rec["check_s"])["median"]
            entry[name] = {
                "mcp_s": mcp,
                "raw_s": raw,
                "client_check_s": check,
                "ratio_to_raw": ratio(mcp["median"], raw["median"]),
                "ratio_to_raw_without_client_check": ratio(mcp["median"] - check, raw["median"]),
                "ms_per_1k_tokens": mcp["median"] * 1000 / (size / 1000),
                **{k: rec[k] for k in ("requests", "rows", "limit", "result_bytes", "structured_bytes")},
                "mcp_peak_kib": rec["mcp_peak_bytes"] / 1024,
                "raw_peak_kib": rec["raw_peak_bytes"] / 1024,
            }
            rows.append(
                [
                    size,
                    name,
                    sum(rec["requests"].values()),
                    rec["rows"],
                    mcp["median"] * 1000,
                    check * 1000,
                    raw["median"] * 1000,
                    entry[name]["ratio_to_raw"],
                    entry[name]["ratio_to_raw_without_client_check"],
                    entry[name]["ms_per_1k_tokens"],
                    entry[name]["mcp_peak_kib"],
                    entry[name]["raw_peak_kib"],
                    rec["result_bytes"],
                ]
            )
        res = by_size[size]["resolution"]
        first, second = summary(res["first_s"]), summary(res["second_s"])
        check = summary(res["check_s"])["median"]
        raw_first, raw_second = summary(res["raw_first_s"]), summary(res["raw_second_s"])
        entry["resolution"] = {
            "first_s": first,
            "second_s": second,
            "raw_first_s": raw_first,
            "raw_second_s": raw_second,
            "first_requests": res["first_requests"],
            "second_requests": res["second_requests"],
            "client_check_s": check,
            "ratio_to_raw": ratio(first["median"], raw_first["median"]),
            "ratio_to_raw_without_client_check": ratio(first["median"] - check, raw_first["median"]),
            "ms_per_1k_tokens": first["median"] * 1000 / (size / 1000),
            "first_peak_kib": res["first_peak_bytes"] / 1024,
            "raw_first_peak_kib": res["raw_first_peak_bytes"] / 1024,
            "result_bytes": res["result_bytes"],
        }
        rows.append(
            [
                size,
                "get_credential by id: 1st",
                sum(res["first_requests"].values()),
                1,
                first["median"] * 1000,
                check * 1000,
                raw_first["median"] * 1000,
                entry["resolution"]["ratio_to_raw"],
                entry["resolution"]["ratio_to_raw_without_client_check"],
                entry["resolution"]["ms_per_1k_tokens"],
                entry["resolution"]["first_peak_kib"],
                entry["resolution"]["raw_first_peak_kib"],
                res["result_bytes"],
            ]
        )
        rows.append(
            [
                size,
                "get_credential by id: 2nd",
                sum(res["second_requests"].values()),
                1,
                second["median"] * 1000,
                None,
                raw_second["median"] * 1000,
                ratio(second["median"], raw_second["median"]),
                None,
                None,
                None,
                None,
                None,
            ]
        )
        data[str(size)] = entry

    targets = []
    walks = [n for n in case_names if by_size[largest]["cases"][n]["full_walk"]] + ["resolution"]
    for name in walks:
        ref = data[str(reference)][name]["ms_per_1k_tokens"]
        big = data[str(largest)][name]["ms_per_1k_tokens"]
        label = "get_credential 1st (walk)" if name == "resolution" else name
        targets.append(
            target(
                f"linear: ms per 1k tokens, {label}",
                f"{largest:,} ≤ {LINEAR_SLACK}× {reference:,}",
                big,
                big <= LINEAR_SLACK * ref,
                "ms/1k",
                note=" / ".join(f"{s:,}: {data[str(s)][name]['ms_per_1k_tokens']:.1f}" for s in sizes),
            )
        )
    for name in [*case_names, "resolution"]:
        value = data[str(largest)][name]["ratio_to_raw"]
        label = "get_credential 1st (walk)" if name == "resolution" else name
        targets.append(
            target(
                f"{largest:,} tokens vs raw pages, {label}",
                f"≤ {TARGET_RAW_RATIO:g}×",
                value,
                value <= TARGET_RAW_RATIO,
                "×",
                note="without the SDK client's output-schema check: "
                f"{data[str(largest)][name]['ratio_to_raw_without_client_check']:.2f}×",
            )
        )
    bounded = all(data[str(s)][n]["rows"] <= data[str(s)][n]["limit"] for s in sizes for n in case_names)
    biggest = max(data[str(largest)][n]["result_bytes"] for n in case_names)
    targets.append(
        target(
            "result bounded by limit",
            "rows ≤ limit at every size",
            float(biggest),
            bounded,
            "B",
            note="largest result at the largest size (bytes of the CallToolResult JSON); per case in the table",
        )
    )
    audit = by_size[largest]["audit"]
    audit_s, listing_s = summary(audit["audit_s"]), summary(audit["listing_s"])
    audit_ratio = ratio(audit_s["median"], listing_s["median"])
    audit_result = {"tokens": largest, "audit_s": audit_s, "listing_s": listing_s, "ratio": audit_ratio}
    targets.append(
        target(
            f"{largest:,} tokens: audit_credentials vs a plain full listing",
            f"≤ {TARGET_AUDIT_RATIO:g}×",
            audit_ratio,
            audit_ratio <= TARGET_AUDIT_RATIO,
            "×",
            note=f"{audit_s['median'] * 1000:.0f} ms vs {listing_s['median'] * 1000:.0f} ms "
            "(list_credentials text filter: every page of every kind)",
        )
    )
    no_refetch = all(data[str(s)]["resolution"]["second_requests"] == {TOKEN_GET: 1} for s in sizes)
    targets.append(
        target(
            "2nd id resolution does not refetch pages",
            f"only `{TOKEN_GET}` (1 request)",
            float(max(sum(data[str(s)]["resolution"]["second_requests"].values()) for s in sizes)),
            no_refetch,
            "requests",
        )
    )
    return {
        "name": NAME,
        "title": TITLE,
        "params": {"sizes": sizes, "repeats": {str(k): v for k, v in repeats.items()}, "per_page": PER_PAGE},
        "sizes": data,
        "audit": audit_result,
        "targets": targets,
        "tables": [
            {
                "title": TITLE,
                "headers": [
                    "tokens",
                    "case",
                    "reqs",
                    "rows",
                    "mcp ms",
                    "check ms",
                    "raw ms",
                    "×raw",
                    "×raw w/o check",
                    "ms/1k",
                    "peak KiB",
                    "raw KiB",
                    "bytes",
                ],
                "rows": rows,
            }
        ],
        "notes": [
            "mcp = in-process server + in-memory client; check = the part of it the SDK client spends validating "
            "structuredContent against the output schema; raw = the same pages fetched with httpx2 and decoded; "
            "peak = tracemalloc peak during one call (separate pass)",
        ],
    }
