"""`carto-mcp policy check FILE`: is this policy file usable, and what does it say?

Run it before deploying a policy: `serve` refuses to start on a file this rejects, so a
typo never silently means "no policy". Exit status 0 when the file is valid, 1 when not.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path

from carto_mcp.errors import PolicyError

__all__ = ["add_policy_parser", "run_policy"]

EPILOG = """\
examples:
  carto-mcp policy check policy.toml
  carto-mcp policy check policy.toml --json

A valid file prints its rules in words; an invalid one prints each problem as FILE:LINE: what is
wrong, and exits 1. See the README's Policy section for every rule and two complete examples.
"""


def add_policy_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = sub.add_parser(
        "policy", help="check a policy file (the rules `serve --policy` enforces)", description=__doc__.split("\n")[0]
    )
    actions = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    check = actions.add_parser(
        "check",
        help="validate a policy file and print its rules",
        description="Validate a policy file the way `serve --policy` reads it, and print its rules.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("file", type=Path, help="the policy file (TOML)")
    check.add_argument("--json", action="store_true", help="print the rules (or the problem) as JSON")


def run_policy(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from carto_mcp.policy_file import load_policy

    try:
        policy = load_policy(args.file, "the command line")
    except PolicyError as exc:
        if args.json:
            print(json.dumps({"valid": False, "problems": list(exc.problems)}, indent=2, ensure_ascii=False))
        else:
            print("\n".join(exc.problems))
        return 1
    if args.json:
        print(json.dumps({"valid": True, **policy.as_json()}, indent=2, ensure_ascii=False))
    else:
        print(f"{args.file}: valid.\n")
        print(policy.in_words())
    return 0
