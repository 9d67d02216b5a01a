"""`python -m benchmarks [--quick] [--only NAME ...]`: run the benchmarks, print a table, write results.

Writes `benchmarks/results.json` (with `--only`, the other benchmarks' previous entries are
kept), `benchmarks/results.png` (needs matplotlib, the `bench` extra; skipped with a note
otherwise) and, from the cold-start benchmark, `benchmarks/importtime.txt`.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path
from typing import Any

from benchmarks import chart, cold_start, concurrency, large_accounts, latency, per_call
from benchmarks._common import HERE, fmt, kill_all, rounded, table

BENCHMARKS = {m.NAME: m for m in (cold_start, per_call, large_accounts, latency, concurrency)}
RESULTS = HERE / "results.json"
CHART = HERE / "results.png"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a fast smoke run: fewer repeats, smaller sizes")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(BENCHMARKS),
        metavar="NAME",
        help=f"run only this benchmark (repeatable): {', '.join(BENCHMARKS)}",
    )
    parser.add_argument("--no-chart", action="store_true", help="do not draw results.png")
    return parser.parse_args(argv)


def environment(quick: bool) -> dict[str, Any]:
    def version(name: str) -> str | None:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return None

    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_at_start": load,
        "packages": {n: version(n) for n in ("carto-mcp", "mcp", "httpx2", "starlette", "uvicorn", "pydantic")},
        "quick": quick,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def print_result(result: dict[str, Any]) -> None:
    print(f"\n=== {result['title']} ===")
    for block in result.get("tables", []):
        if block.get("title") and block["title"] != result["title"]:
            print(f"-- {block['title']}")
        print(table(block["headers"], block["rows"]))
    for note in result.get("notes", []):
        print(f"note: {note}")


def print_targets(results: dict[str, dict[str, Any]]) -> None:
    rows = []
    for name, result in results.items():
        if "error" in result:
            rows.append([name, "(failed)", "-", "-", result["error"][:60]])
            continue
        for t in result.get("targets", []):
            value = fmt(t["value"], 3) + (f" {t['unit']}" if t["unit"] and t["value"] is not None else "")
            rows.append([f"{name}: {t['name']}", t["target"], value, t["met"], t["note"]])
    print("\n=== Targets ===")
    print(table(["target", "goal", "measured", "met", "note"], rows))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    names = args.only or list(BENCHMARKS)
    previous: dict[str, Any] = {}
    if args.only and RESULTS.exists():
        try:
            previous = json.loads(RESULTS.read_text(encoding="utf-8")).get("benchmarks", {})
        except ValueError:
            previous = {}
    env = environment(args.quick)
    results: dict[str, dict[str, Any]] = {}
    began = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="carto-mcp-bench-") as tmp:
            for name in names:
                workdir = Path(tmp) / name
                workdir.mkdir()
                started = time.monotonic()
                try:
                    result = BENCHMARKS[name].run(args.quick, workdir)
                except Exception as exc:  # one failing benchmark must not lose the others' numbers
                    traceback.print_exc()
                    result = {"name": name, "title": name, "error": f"{type(exc).__name__}: {exc}"}
                finally:
                    kill_all()
                result["seconds"] = time.monotonic() - started
                results[name] = result
                if "error" not in result:
                    print_result(result)
                    sys.stdout.flush()
    finally:
        kill_all()
    env["seconds"] = time.monotonic() - began
    print_targets(results)
    merged = {**previous, **results}
    merged = {name: merged[name] for name in BENCHMARKS if name in merged}
    RESULTS.write_text(json.dumps(rounded({"environment": env, "benchmarks": merged}), indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}")
    if not args.no_chart:
        print(chart.draw(merged, CHART))
    failed = [n for n, r in results.items() if "error" in r]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
