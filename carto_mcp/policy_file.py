"""Reading a policy file: TOML in, the rules out — or an error that names the line.

A policy that cannot be read must never mean "no policy": `serve` stops with the file, the
line and what is wrong, and `carto-mcp policy check` says the same before anyone deploys it.
`tomllib` gives the line of a syntax error; for a key it parsed but the schema refuses (a
typo, a wrong type, an unknown rule under `warn`), the line is found by scanning the file
for the table header and key the error points at.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from carto_mcp.errors import PolicyError
from carto_mcp.files import MAX_CONFIG_BYTES
from carto_mcp.models.policy import PolicyFile, Section, describe

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - the same parser, as a package
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

__all__ = ["ActivePolicy", "load_policy", "parse_policy"]

_FIX = "fix the file (`carto-mcp policy check FILE` lists every problem), or start without --policy"
_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
_AT_LINE = re.compile(r"\s*\(at line (\d+), column \d+\)")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-.\"']+)\s*=")


@dataclass(frozen=True)
class ActivePolicy:
    """The policy a server enforces, and where it came from (for `doctor` and the resource)."""

    path: Path
    #: How it was chosen: "--policy" or "CARTO_MCP_POLICY".
    origin: str
    rules: PolicyFile

    def for_profile(self, name: str | None) -> Section:
        return self.rules.for_profile(name)

    def summary(self) -> str:
        sections = sorted(self.rules.profiles)
        extra = f"; own rules for profile(s) {', '.join(sections)}" if sections else ""
        count = sum(1 for line in describe(self.rules) if not line.startswith("No rules"))
        return f"{self.path} (from {self.origin}): {count} rule(s) for every profile{extra}"

    def as_json(self) -> dict[str, Any]:
        """The rules as set in the file (defaults left out), for scripts and the resource."""
        return {
            "path": str(self.path),
            "origin": self.origin,
            "rules": json.loads(self.rules.model_dump_json(exclude_defaults=True)),
        }

    def in_words(self) -> str:
        lines = [f"Policy {self.path} (from {self.origin})."]
        if self.rules.description:
            lines.append(self.rules.description.strip())
        lines += ["", "Every profile:", *(f"- {line}" for line in describe(self.rules))]
        for name in sorted(self.rules.profiles):
            lines += ["", f"Profile {name!r}:", *(f"- {line}" for line in describe(self.for_profile(name)))]
        lines += [
            "",
            "A request that breaks a rule is refused before it reaches CARTO (rules marked 'warning only' are "
            "reported with the result instead); dry_run lists every rule a request breaks. The policy cannot be "
            "changed through a tool.",
        ]
        return "\n".join(lines)


def load_policy(path: Path, origin: str) -> ActivePolicy:
    """The policy in `path`, checked whole; PolicyError names the line of every problem."""
    path = path.expanduser()
    try:
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise PolicyError(f"policy file {path} is larger than 1 MiB: not a policy file", fix=_FIX)
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(
            f"policy file {path} cannot be read ({exc.strerror or type(exc).__name__})", fix=_FIX
        ) from None
    except UnicodeDecodeError:
        raise PolicyError(f"policy file {path} is not UTF-8 text", fix=_FIX) from None
    return ActivePolicy(path, origin, parse_policy(text, str(path)))


def parse_policy(text: str, where: str = "policy") -> PolicyFile:
    """The rules in TOML `text`; PolicyError says `where:LINE: what is wrong` for every problem found."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        found = _AT_LINE.search(str(exc))
        line, message = (found.group(1), _AT_LINE.sub("", str(exc)).strip()) if found else ("?", str(exc))
        raise PolicyError(f"policy file {where}:{line}: not valid TOML: {message}", fix=_FIX) from None
    try:
        return PolicyFile.model_validate(data)
    except ValidationError as exc:
        lines = _key_lines(text)
        located = sorted((_line_of(err["loc"], lines), _what(err)) for err in exc.errors())
        problems = tuple(f"{where}:{line if line else '?'}: {what}" for line, what in located)
        head = f"policy file {problems[0]}" + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
        raise PolicyError(head, problems=problems, fix=_FIX) from None


def _what(error: Any) -> str:
    loc = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        return f"unknown key {loc!r} (a typo? see the README's Policy section for every rule)"
    return f"{loc}: {message}"


def _key_lines(text: str) -> dict[tuple[str, ...], int]:
    """(table, ..., key) -> the line that sets it, for plain `[table]` headers and `key = value` lines."""
    found: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _dotted(header.group(1))
            found.setdefault(table, number)
            continue
        key = _KEY.match(line)
        if key:
            found.setdefault((*table, *_dotted(key.group(1))), number)
    return found


def _dotted(name: str) -> tuple[str, ...]:
    return tuple(part.strip().strip("\"'") for part in name.split("."))


def _line_of(loc: tuple[Any, ...], lines: dict[tuple[str, ...], int]) -> int:
    """The line of the longest known prefix of an error's location (0 when none is known)."""
    path = tuple(str(part) for part in loc if not isinstance(part, int))
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return 0
