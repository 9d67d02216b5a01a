"""`results.png`: one small panel per benchmark, drawn from results.json's data (matplotlib, optional)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def draw(results: dict[str, Any], path: Path) -> str:
    """Draw the chart; return a one-line note saying what happened (never raises for a missing matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "chart skipped: matplotlib is not installed (pip install 'carto-mcp[bench]')"

    panels = [
        (name, fn)
        for name, fn in (
            ("cold_start", _cold_start),
            ("per_call", _per_call),
            ("large_accounts", _large_accounts),
            ("latency", _latency),
            ("concurrency", _concurrency),
        )
        if name in results and "error" not in results[name]
    ]
    if not panels:
        return "chart skipped: no results to draw"
    cols = 2 if len(panels) > 1 else 1
    rows = (len(panels) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.4 * rows), dpi=80, squeeze=False)
    for ax, (name, fn) in zip(axes.flat, panels, strict=False):
        fn(ax, results[name])
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    fig.suptitle("carto-mcp benchmarks (median, bars = IQR or min/max)", fontsize=9)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, format="png")
    plt.close(fig)
    os.replace(tmp, path)
    return f"wrote {path.name}"


def _cold_start(ax: Any, result: dict[str, Any]) -> None:
    arms = result["arms"]
    names = list(arms)
    med = [arms[n]["wall_s"]["median"] for n in names]
    low = [m - arms[n]["wall_s"]["q1"] for m, n in zip(med, names, strict=True)]
    high = [arms[n]["wall_s"]["q3"] - m for m, n in zip(med, names, strict=True)]
    cpu = [arms[n]["cpu_s"]["median"] for n in names]
    x = range(len(names))
    ax.bar([i - 0.2 for i in x], med, 0.4, yerr=[low, high], capsize=3, label="wall", color="#4c72b0")
    ax.bar([i + 0.2 for i in x], cpu, 0.4, label="CPU", color="#aec7e8")
    ax.set_xticks(list(x), [n.replace(" (", "\n(") for n in names], fontsize=6)
    ax.set_ylabel("seconds", fontsize=8)
    ax.set_title("Cold start: spawn → tools/list", fontsize=9)
    ax.legend(fontsize=7)


def _per_call(ax: Any, result: dict[str, Any]) -> None:
    stats = result["arms_ms"]
    arms = ("carto", "floor", "direct")
    colors = {"carto": "#4c72b0", "floor": "#dd8452", "direct": "#55a868"}
    for j, arm in enumerate(arms):
        xs, med, low, high = [], [], [], []
        for i, op in enumerate(("get", "list")):
            s = stats[f"{op}/{arm}"]
            xs.append(i + (j - 1) * 0.27)
            med.append(s["median"])
            low.append(s["median"] - s["q1"])
            high.append(s["q3"] - s["median"])
        ax.bar(xs, med, 0.27, yerr=[low, high], capsize=3, label=arm, color=colors[arm])
    ax.set_xticks([0, 1], ["get_credential", "list_credentials(limit=50)"], fontsize=7)
    ax.set_ylabel("ms per call", fontsize=8)
    ax.set_title("Per call over stdio vs direct httpx2", fontsize=9)
    ax.legend(fontsize=7)


def _large_accounts(ax: Any, result: dict[str, Any]) -> None:
    sizes = [int(s) for s in result["sizes"]]
    first = result["sizes"][str(sizes[0])]
    names = [n for n in first if n != "resolution"] + ["resolution"]
    for name in names:
        label = "get_credential 1st" if name == "resolution" else name
        per1k = [result["sizes"][str(s)][name]["ms_per_1k_tokens"] for s in sizes]
        ax.plot(sizes, per1k, marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("tokens in the account", fontsize=8)
    ax.set_ylabel("ms per 1k tokens", fontsize=8)
    ax.set_title("Large accounts: cost per 1k tokens (flat = linear)", fontsize=9)
    ax.legend(fontsize=6)


def _latency(ax: Any, result: dict[str, Any]) -> None:
    cases = result["cases"]
    names = list(cases)
    x = range(len(names))
    for offset, key, label, color in (
        (-0.27, "sequential_s", "sequential (1)", "#dd8452"),
        (0.0, "concurrent_s", "concurrent (8)", "#4c72b0"),
    ):
        med = [cases[n][key]["median"] for n in names]
        ax.bar([i + offset for i in x], med, 0.27, label=label, color=color)
    ax.bar([i + 0.27 for i in x], [cases[n]["ideal_s"] for n in names], 0.27, label="ideal", color="#55a868")
    ax.set_xticks(list(x), [n.replace(" (", "\n(").replace(", ", ",\n") for n in names], fontsize=6)
    ax.set_ylabel("seconds", fontsize=8)
    ms = result["params"]["latency_ms"]
    ax.set_title(f"{result['params']['tokens']:,} tokens at {ms:g} ms per request", fontsize=9)
    ax.legend(fontsize=7)


def _concurrency(ax: Any, result: dict[str, Any]) -> None:
    levels = [int(x) for x in result["levels"]]
    for arm, color in (("carto", "#4c72b0"), ("floor", "#dd8452")):
        stats = [result["levels"][str(level)][arm]["throughput_rps"] for level in levels]
        med = [s["median"] for s in stats]
        low = [m - s["min"] for m, s in zip(med, stats, strict=True)]
        high = [s["max"] - m for m, s in zip(med, stats, strict=True)]
        ax.errorbar(levels, med, yerr=[low, high], marker="o", capsize=3, label=arm, color=color)
    ax.set_xscale("log")
    ax.set_xticks(levels, [str(level) for level in levels])
    ax.set_xlabel("concurrent clients", fontsize=8)
    ax.set_ylabel("requests / s", fontsize=8)
    ax.set_title("Stateless HTTP throughput (mixed workload)", fontsize=9)
    ax.legend(fontsize=7)
