"""Cold start: spawn → initialize → reply → initialized → tools/list → reply, versus the SDK floor.

Timed with raw JSON-RPC lines over the pipes (an SDK client would add its own import cost to
the measurement). Each start is SIGKILLed right after the tools/list reply and its CPU time
(user + system, from wait4) is recorded next to the wall time: on a shared machine CPU time is
the steadier of the two. Also writes `benchmarks/importtime.txt`: `-X importtime` of the same
start, split into what the floor imports too and what only carto-mcp adds.
"""

from __future__ import annotations

import re
import shutil
import statistics
import subprocess
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks._common import (
    HERE,
    INITIALIZE,
    INITIALIZED,
    PYTHON,
    TOOLS_LIST,
    LineReader,
    child_env,
    interleaved,
    kill_and_rusage,
    log,
    ratio,
    send_line,
    spawn,
    summary,
    target,
)

NAME = "cold_start"
TITLE = "Cold start (spawn → tools/list reply)"
TARGET_RATIO = 1.25  # the "one clear shape" issue: at most 1.25x the one-tool SDK floor
STEP_TIMEOUT = 60.0

SERVE_ARGS = ["serve", "--sandbox", "--throwaway"]


def commands() -> dict[str, list[str]]:
    out = {
        "carto (python -m carto_mcp)": [PYTHON, "-m", "carto_mcp", *SERVE_ARGS],
        "floor (MCPServer, 1 tool)": [PYTHON, str(HERE / "floor_server.py")],
    }
    script = Path(PYTHON).with_name("carto-mcp")
    if not script.exists():
        found = shutil.which("carto-mcp")
        script = Path(found) if found else script
    if script.exists():
        out["carto (carto-mcp script)"] = [str(script), *SERVE_ARGS]
    return out


def start_once(command: list[str], env: dict[str, str], *, stderr: Any = subprocess.DEVNULL) -> dict[str, Any]:
    """One cold start; returns wall seconds to the tools/list reply, the child's CPU seconds, tool count."""
    started = time.perf_counter()
    process = spawn(command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
    tools = -1
    try:
        reader = LineReader(process)
        deadline = time.monotonic() + STEP_TIMEOUT
        send_line(process, INITIALIZE)
        init = reader.read_response(1, deadline)
        if "result" not in init:
            raise RuntimeError(f"initialize failed: {init}")
        send_line(process, INITIALIZED)
        send_line(process, TOOLS_LIST)
        listed = reader.read_response(2, deadline)
        wall = time.perf_counter() - started
        tools = len(listed.get("result", {}).get("tools", []))
    finally:
        cpu = kill_and_rusage(process)
    return {"wall": wall, "cpu": cpu, "tools": tools}


# --- importtime -------------------------------------------------------------------------------

_LINE = re.compile(r"import time:\s+(\d+)\s*\|\s*(\d+)\s*\|(\s*)(\S+)")


def parse_importtime(text: str) -> dict[str, tuple[int, int]]:
    """module -> (self µs, cumulative µs) from `-X importtime` stderr (first import of each module)."""
    out: dict[str, tuple[int, int]] = {}
    for line in text.splitlines():
        match = _LINE.match(line)
        if match and match.group(4) not in out:
            out[match.group(4)] = (int(match.group(1)), int(match.group(2)))
    return out


def importtime_runs(
    command: list[str], env: dict[str, str], runs: int, workdir: Path
) -> list[dict[str, tuple[int, int]]]:
    out = []
    for i in range(runs):
        path = workdir / f"importtime-{i}.err"
        with path.open("wb") as err:
            start_once([command[0], "-X", "importtime", *command[1:]], env, stderr=err)
        out.append(parse_importtime(path.read_text(errors="replace")))
    return out


def median_times(runs: list[dict[str, tuple[int, int]]]) -> dict[str, tuple[float, float]]:
    """Per module, the median self and cumulative µs over the runs that imported it."""
    seen: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for run in runs:
        for module, times in run.items():
            seen[module].append(times)
    return {
        m: (statistics.median(t[0] for t in ts), statistics.median(t[1] for t in ts))
        for m, ts in seen.items()
        if len(ts) * 2 > len(runs)
    }


def top_package(module: str) -> str:
    parts = module.split(".")
    if parts[0] == "carto_mcp" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def importtime_report(carto: dict[str, tuple[float, float]], floor: dict[str, tuple[float, float]], runs: int,
                      version_ms: float) -> tuple[str, dict[str, Any]]:  # fmt: skip
    """The text of importtime.txt and its summary for results.json."""
    extra = {m: t for m, t in carto.items() if m not in floor}
    total_carto = sum(t[0] for t in carto.values()) / 1000
    total_floor = sum(t[0] for t in floor.values()) / 1000
    total_extra = sum(t[0] for t in extra.values()) / 1000
    by_package: dict[str, float] = defaultdict(float)
    counts: dict[str, int] = defaultdict(int)
    for module, (self_us, _) in extra.items():
        by_package[top_package(module)] += self_us / 1000
        counts[top_package(module)] += 1
    packages = sorted(by_package.items(), key=lambda kv: -kv[1])
    ours = sorted(((m, t) for m, t in carto.items() if m.startswith("carto_mcp")), key=lambda kv: -kv[1][1])
    lines = [
        "carto-mcp cold start: -X importtime of `python -m carto_mcp serve --sandbox --throwaway`",
        f"(killed after the tools/list reply), median over {runs} runs per module; versus the floor",
        "(benchmarks/floor_server.py: MCPServer with one tool, same Python and SDK). Times in ms.",
        "Note: -X importtime itself slows imports; compare the columns with each other, not with wall time.",
        "",
        f"total import time (sum of self times):  carto {total_carto:8.1f}   floor {total_floor:8.1f}",
        f"imported only by carto-mcp:              {total_extra:8.1f} ms in {len(extra)} modules",
        f"`python -m carto_mcp --version`, total import time: {version_ms:.1f} ms",
        "",
        "== imported only by carto-mcp, by package (sum of self times) ==",
        f"{'package':40} {'self ms':>9} {'modules':>8}",
    ]
    lines += [f"{name:40} {ms:9.1f} {counts[name]:8d}" for name, ms in packages]
    lines += ["", "== carto_mcp modules (self and cumulative, ms) ==", f"{'module':50} {'self':>8} {'cumul.':>8}"]
    lines += [f"{m:50} {t[0] / 1000:8.1f} {t[1] / 1000:8.1f}" for m, t in ours]
    lines += [
        "",
        "== modules only carto-mcp imports, top 40 by self time ==",
        f"{'module':60} {'self':>8} {'cumul.':>8}",
    ]
    lines += [
        f"{m:60} {t[0] / 1000:8.1f} {t[1] / 1000:8.1f}" for m, t in sorted(extra.items(), key=lambda kv: -kv[1][0])[:40]
    ]
    lines += ["", "== carto-mcp start, top 40 by cumulative time ==", f"{'module':60} {'self':>8} {'cumul.':>8}"]
    lines += [
        f"{m:60} {t[0] / 1000:8.1f} {t[1] / 1000:8.1f}" for m, t in sorted(carto.items(), key=lambda kv: -kv[1][1])[:40]
    ]
    data = {
        "total_ms": {"carto": total_carto, "floor": total_floor, "only_carto": total_extra},
        "only_carto_by_package_ms": dict(packages),
        "carto_mcp_modules_ms": {m: {"self": t[0] / 1000, "cumulative": t[1] / 1000} for m, t in ours},
        "version_total_ms": version_ms,
    }
    return "\n".join(lines) + "\n", data


def version_import_ms(env: dict[str, str]) -> float:
    done = subprocess.run(
        [PYTHON, "-X", "importtime", "-m", "carto_mcp", "--version"],
        env=env,
        capture_output=True,
        timeout=STEP_TIMEOUT,
        check=False,
    )
    return sum(s for s, _ in parse_importtime(done.stderr.decode(errors="replace")).values()) / 1000


def phases(env: dict[str, str], runs: int) -> dict[str, dict[str, dict[str, float]]]:
    """Import / build / tools/list seconds for each arm, in fresh interpreters, interleaved."""
    import json

    def once(arm: str) -> dict[str, float]:
        done = subprocess.run(
            [PYTHON, "-m", "benchmarks._phases", arm],
            env=env,
            capture_output=True,
            timeout=STEP_TIMEOUT,
            check=True,
            cwd=HERE.parent,
        )
        return json.loads(done.stdout.decode().strip().splitlines()[-1])  # type: ignore[no-any-return]

    samples = interleaved({"carto": lambda: once("carto"), "floor": lambda: once("floor")}, runs, warmup=0)
    subprocess.run(
        [PYTHON, "-m", "benchmarks._phases", "carto", "--profile", str(HERE / "profile_build_server.txt")],
        env=env,
        capture_output=True,
        timeout=STEP_TIMEOUT,
        check=True,
        cwd=HERE.parent,
    )
    return {
        arm: {key: summary([v[key] for v in values]) for key in ("import_s", "build_s", "list_s")}
        for arm, values in samples.items()
    }


# --- the benchmark ----------------------------------------------------------------------------


def run(quick: bool, workdir: Path) -> dict[str, Any]:
    repeats = 3 if quick else 12
    env = child_env(home=workdir)
    arms = commands()
    log(f"[{NAME}] {len(arms)} arms x {repeats} interleaved starts")
    samples = interleaved({name: (lambda c=cmd: start_once(c, env)) for name, cmd in arms.items()}, repeats, warmup=1)

    carto, floor = "carto (python -m carto_mcp)", "floor (MCPServer, 1 tool)"
    # Paired ratios: the two starts of one round ran seconds apart, under the same background load.
    paired = {
        name: [ratio(a["wall"], b["wall"]) for a, b in zip(samples[name], samples[floor], strict=True)]
        for name in arms
        if name != floor
    }
    paired_cpu = {
        name: [ratio(a["cpu"], b["cpu"]) for a, b in zip(samples[name], samples[floor], strict=True)]
        for name in arms
        if name != floor
    }
    stats = {
        name: {
            "wall_s": summary([s["wall"] for s in values]),
            "cpu_s": summary([s["cpu"] for s in values if s["cpu"] is not None]),
            "tools": values[0]["tools"],
        }
        for name, values in samples.items()
    }
    floor_wall = stats[floor]["wall_s"]["median"]
    floor_cpu = stats[floor]["cpu_s"]["median"]

    log(f"[{NAME}] -X importtime ({2 if quick else 5} runs per arm)")
    it_runs = 2 if quick else 5
    carto_it = median_times(importtime_runs(arms[carto], env, it_runs, workdir))
    floor_it = median_times(importtime_runs(arms[floor], env, it_runs, workdir))
    text, it_data = importtime_report(carto_it, floor_it, it_runs, version_import_ms(env))
    (HERE / "importtime.txt").write_text(text, encoding="utf-8")
    log(f"[{NAME}] start phases in-process ({it_runs} runs per arm)")
    split = phases(env, it_runs)

    rows = []
    for name in arms:
        s = stats[name]
        rows.append(
            [
                name,
                s["tools"],
                s["wall_s"]["median"],
                s["wall_s"]["q1"],
                s["wall_s"]["q3"],
                ratio(s["wall_s"]["median"], floor_wall),
                statistics.median(paired[name]) if name in paired else 1.0,
                s["cpu_s"]["median"],
                ratio(s["cpu_s"]["median"], floor_cpu),
            ]
        )
    targets = []
    for name in paired:
        value = ratio(stats[name]["wall_s"]["median"], floor_wall)
        targets.append(
            target(
                f"wall-time ratio {name} / floor",
                f"≤ {TARGET_RATIO:.2f}",
                value,
                value <= TARGET_RATIO,
                note=f"paired-median {statistics.median(paired[name]):.3f}; "
                f"CPU-time ratio {ratio(stats[name]['cpu_s']['median'], floor_cpu):.3f}",
            )
        )
    packages = it_data["only_carto_by_package_ms"]
    top = ", ".join(f"{k} {v:.0f} ms" for k, v in list(packages.items())[:6])
    return {
        "name": NAME,
        "title": TITLE,
        "params": {"repeats": repeats, "warmup": 1, "serve_args": SERVE_ARGS, "importtime_runs": it_runs},
        "arms": stats,
        "paired_wall_ratio": {k: summary(v) for k, v in paired.items()},
        "paired_cpu_ratio": {k: summary(v) for k, v in paired_cpu.items()},
        "importtime": it_data,
        "phases_s": split,
        "targets": targets,
        "tables": [
            {
                "title": TITLE,
                "headers": ["arm", "tools", "wall s", "q1", "q3", "ratio", "paired", "cpu s", "cpu ratio"],
                "rows": rows,
            }
        ],
        "notes": [
            f"imports only carto-mcp adds (importtime, self ms): {top}; details in benchmarks/importtime.txt",
            "in-process phases, median ms carto / floor: "
            + ", ".join(
                f"{key[:-2]} {split['carto'][key]['median'] * 1000:.0f} / {split['floor'][key]['median'] * 1000:.0f}"
                for key in ("import_s", "build_s", "list_s")
            )
            + " (build profile: benchmarks/profile_build_server.txt)",
        ],
    }
