"""`carto-mcp audit`: the `audit_credentials` tool at a terminal or in a CI job.

It runs the tool through an in-process MCP client on the same settings `serve` takes (the
credential flags, `--policy`), prints the findings most risky first with the call that would
fix each, or the same rows as JSON for scripts; `--fail-on` makes a CI job fail on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from carto_mcp.config import add_credential_flags, add_tuning_flags, settings_from

__all__ = ["add_audit_parser", "run_audit"]

RISKS = ("critical", "high", "medium", "low")
EPILOG = """\
examples:
  carto-mcp audit                                   # your `carto auth login` profile
  carto-mcp audit --policy policy.toml --json       # policy breaches too, as JSON
  carto-mcp audit --fail-on high                    # exit 1 when anything high or critical is found

Findings: all_sources (critical); policy_violation, broad_pattern (high); imports_token,
maps_without_referers, insecure_client_url, never_expires (medium); expired, expiring_soon,
duplicate (low). Nothing is changed: each finding names the tool call that would fix it.
"""


def add_audit_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser(
        "audit",
        help="audit every credential and report risks, most serious first",
        description="Read every credential once and report what is risky — all-sources grants, broad patterns, "
        "policy breaches, tokens without referers or expiry, expired or expiring tokens, duplicates, insecure "
        "OAuth client URLs — each with the tool call that would fix it. Changes nothing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--expiring-within", default="14d", help="report tokens expiring within this span (14d)")
    parser.add_argument("--limit", type=int, default=500, help="findings to show, most risky first (default 500)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--fail-on", choices=RISKS, help="exit 1 when a finding of this risk or worse is found")
    parser.add_argument("--policy", type=Path, help="also report breaches of this policy file (CARTO_MCP_POLICY)")
    add_credential_flags(parser)
    add_tuning_flags(parser)


def run_audit(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import anyio

    settings = settings_from(args, environ)
    arguments = {"expiring_within": args.expiring_within, "limit": max(1, min(args.limit, 500))}
    report, error = anyio.run(_audit, settings, arguments)
    if error is not None:
        print(f"carto-mcp audit: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    else:
        print(render(report))
    if args.fail_on is not None:
        worst = RISKS[: RISKS.index(args.fail_on) + 1]
        if any(report["by_risk"].get(risk) for risk in worst):
            return 1
    return 0


async def _audit(settings: Any, arguments: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    from mcp import Client

    from carto_mcp.server.app import build_server

    async with Client(build_server(settings)) as client:
        result = await client.call_tool("audit_credentials", arguments)
    if result.is_error or result.structured_content is None:
        return {}, " ".join(getattr(c, "text", "") for c in result.content)
    return result.structured_content, None


def render(report: dict[str, Any]) -> str:
    """The report as a person reads it: the summary, then each finding and the call that would fix it."""
    from carto_mcp.models.results import scanned_text

    lines = [
        f"Audited {scanned_text(report['scanned'])}"
        + (f" against {report['policy']}" if report.get("policy") else "")
        + "."
    ]
    if not report["total"]:
        return "\n".join([*lines, "No findings.", *report.get("notes", [])])
    risks = ", ".join(f"{n} {risk}" for risk, n in report["by_risk"].items() if n)
    lines.append(f"{report['total']} finding(s): {risks}.")
    for row in report["findings"]:
        name = f" ({row['name']})" if row.get("name") else ""
        lines.append(f"\n{row['risk'].upper():8} {row['finding']}: {row['kind']} {row['id']}{name}")
        lines.append(f"         {row['reason']}")
        call = row["suggestion"]
        note = f" — {row['note']}" if row.get("note") else ""
        lines.append(f"         fix: {call['tool']} {json.dumps(call['arguments'], ensure_ascii=False)}{note}")
    if report["count"] < report["total"]:
        lines.append(f"\n(showing {report['count']} of {report['total']}: raise --limit for more)")
    lines += [f"note: {note}" for note in report.get("notes", [])]
    return "\n".join(lines)
