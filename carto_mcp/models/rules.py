"""The option-table rules as pure functions, shared by the models and the sandbox.

Each check returns what is wrong (an error that refuses the request) or what is merely
useless (a warning returned with the result). Sources: the CARTO CLI reference, the API
Access Tokens user manual, and the decisions recorded in `carto_mcp.contract`.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Literal
from urllib.parse import urlsplit

from carto_mcp import contract
from carto_mcp.errors import RuleError

GrantKind = Literal["table", "pattern", "query", "named_source", "all"]
GRANT_KINDS: tuple[GrantKind, ...] = ("table", "pattern", "query", "named_source", "all")

#: The JSON-schema pattern an expiry argument must match before it is parsed.
EXPIRY_PATTERN = r"^\s*(\d+[dwmyDWMY]|\d{4}-\d{2}-\d{2}([Tt ][0-9:.]+([Zz]|[+-]\d{2}:?\d{2})?)?)\s*$"
_SHORTHAND = re.compile(r"^\s*(\d+)([dwmy])\s*$", re.IGNORECASE)
_MAX_SHORTHAND = {"d": 36500, "w": 5200, "m": 1200, "y": 100}


def classify_source(source: str) -> GrantKind:
    """Tell a grant's kind from its source text (contract: A).

    `*` is all sources; any other `*` is a pattern; SELECT/WITH is a query; no dot and the
    Named Sources naming rule is a named source; anything else is a fully qualified name.
    """
    text = source.strip()
    if text == "*":
        return "all"
    if contract.QUERY_RE.match(text):
        return "query"
    if "*" in text:
        return "pattern"
    if "." not in text and contract.NAMED_SOURCE_RE.match(text):
        return "named_source"
    return "table"


def check_grant(source: str, kind: GrantKind | None) -> tuple[GrantKind, list[str]]:
    """Validate one grant's source against its (stated or inferred) kind.

    Returns the effective kind and warnings; raises RuleError for a source the service
    would refuse.
    """
    text = source.strip()
    if not text:
        raise RuleError("source is empty: give a table name, a pattern, a SQL query, a named source or '*'")
    inferred = classify_source(text)
    effective = kind or inferred
    warnings: list[str] = []
    if effective == "all":
        if text != "*":
            raise RuleError(f"kind 'all' needs source '*' (got {text[:60]!r})")
    elif effective == "pattern":
        warnings.extend(check_pattern(text))
    elif effective == "query":
        if kind == "query" and inferred != "query":
            warnings.append(f"source {text[:40]!r} is marked as a query but does not start with SELECT or WITH")
    elif effective == "named_source":
        if not contract.NAMED_SOURCE_RE.match(text):
            raise RuleError(
                f"named source {text[:60]!r} is not a valid name: use 3-51 lowercase letters, digits, '_' or '-'"
            )
    else:  # table
        if "*" in text:
            raise RuleError(f"source {text[:60]!r} contains '*': a wildcard makes it a pattern, not a table")
        if "." not in text:
            raise RuleError(
                f"source {text[:60]!r} is neither a fully qualified name (like 'project.dataset.table') "
                "nor a valid named source (3-51 lowercase letters, digits, '_' or '-')"
            )
    return effective, warnings


def check_pattern(pattern: str) -> list[str]:
    """Refuse invalid wildcard patterns; warn on broad ones.

    The user manual rejects `*`, `**` and `table*` (a pattern must contain a dot). The CLI
    asks for two dot-separated segments before the wildcard; the manual shows
    `carto.*.demo_*` as valid, so fewer than two draws a warning, not an error.
    """
    if "**" in pattern:
        raise RuleError(f"pattern {pattern!r} is refused: '**' is not a valid wildcard; use a single '*'")
    if "." not in pattern:
        raise RuleError(
            f"pattern {pattern!r} is refused: a wildcard pattern must contain at least one dot, "
            "like 'carto.shared.CARTO_*'"
        )
    head = pattern[: pattern.index("*")]
    if head.count(".") < 2:
        return [
            f"pattern {pattern!r} has fewer than two dot-separated segments before the wildcard; "
            "it matches broadly (current and future resources) — prefer e.g. 'project.dataset.prefix_*'"
        ]
    return []


def check_apis(apis: Sequence[str], grant_kinds: Sequence[GrantKind]) -> list[str]:
    """Cross-field rules between allowed APIs and grants; returns warnings, raises on errors."""
    if not apis:
        raise RuleError("apis: empty; allow at least one of sql, maps, imports, lds")
    unknown = [a for a in apis if a not in contract.ALLOWED_APIS]
    if unknown:
        raise RuleError(f"apis: unknown API {unknown[0]!r}; allowed values are {', '.join(contract.ALLOWED_APIS)}")
    if "imports" in apis and len(set(apis)) > 1:
        raise RuleError(
            "apis: 'imports' cannot be combined with other APIs (it writes data and its grants differ): "
            "create a separate token for the Import API"
        )
    needs_grant = [a for a in ("sql", "maps") if a in apis]
    if needs_grant and not grant_kinds:
        verb = "needs" if len(needs_grant) == 1 else "need"
        raise RuleError(f"grants: {' and '.join(needs_grant)} {verb} at least one grant (a connection and a source)")
    warnings: list[str] = []
    if set(apis) == {"lds"} and grant_kinds:
        warnings.append("the LDS API needs no grants: the grants on this token are not used")
    if "sql" in apis and any(k in ("table", "pattern") for k in grant_kinds):
        only = "" if "maps" in apis else " — this token allows no other API that could use them"
        warnings.append(
            "table and pattern grants are not used by the SQL API (it accepts query, named-source and "
            f"all-sources grants){only}"
        )
    return warnings


def check_url(value: str, *, what: str = "URL") -> str:
    """A URL list entry must be an absolute http(s) URL with a host."""
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc or " " in text:
        raise RuleError(f"{what} {text[:80]!r} is not an absolute http(s) URL like 'https://myapp.com/'")
    return text


def referer_warnings(referers: Iterable[str]) -> list[str]:
    """A neutral note when a site is listed in one form only (with or without the trailing '/').

    CARTO's own documents disagree on that slash (the user manual asks for it; CARTO's agent
    skills report that a stored slash makes every tile 403), so nothing here pushes one form:
    it says what is known and suggests listing both when unsure.
    """
    listed = set(referers)
    alone: list[str] = []
    for ref in listed:
        parts = urlsplit(ref)
        if parts.query or parts.fragment or parts.path not in ("", "/"):
            continue
        twin = ref[:-1] if ref.endswith("/") else ref + "/"
        if twin not in listed:
            alone.append(f"{ref.rstrip('/')!r} and {ref.rstrip('/') + '/'!r}")
    if not alone:
        return []
    return [
        "Referers are compared with the browser's Referer header, and CARTO's documents disagree on whether a "
        "stored referer should end in '/'. If you are not sure which form your site's requests match, list "
        f"both: {'; '.join(sorted(alone))}."
    ]


def parse_expiry(value: str, *, now: datetime | None = None) -> datetime:
    """Parse an expiry: ISO date or datetime, or the CLI shorthand Nd, Nw, Nm, Ny.

    Dates mean midnight UTC; datetimes without an offset are taken as UTC. The result is
    timezone-aware UTC and must lie in the future.
    """
    now = now or datetime.now(timezone.utc)
    text = value.strip()
    match = _SHORTHAND.match(text)
    if match:
        count, unit = int(match.group(1)), match.group(2).lower()
        if count < 1 or count > _MAX_SHORTHAND[unit]:
            raise RuleError(f"expiration_date {text!r} is out of range: use 1-{_MAX_SHORTHAND[unit]}{unit}")
        if unit == "d":
            when = now + timedelta(days=count)
        elif unit == "w":
            when = now + timedelta(weeks=count)
        else:
            when = _add_months(now, count if unit == "m" else count * 12)
    else:
        when = _parse_iso(text)
    if when <= now:
        raise RuleError(
            f"expiration_date {when.strftime('%Y-%m-%dT%H:%M:%SZ')} is in the past: give a future date or a "
            "shorthand like 7d, 2w, 6m, 1y"
        )
    return when


def format_expiry(when: datetime) -> str:
    """The wire form of an expiry (contract: A): ISO 8601 UTC with a Z."""
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: object) -> datetime | None:
    """Read a timestamp from the service leniently (None when absent or unreadable)."""
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        return _parse_iso(value.strip())
    except RuleError:
        return None


def _parse_iso(text: str) -> datetime:
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
        when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise RuleError(
            f"expiration_date {text[:40]!r} is not a date: use an ISO date (2027-01-01), an ISO datetime "
            "(2027-01-01T12:00:00Z) or a shorthand (1d, 2w, 6m, 1y)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc)


def _add_months(when: datetime, months: int) -> datetime:
    index = when.month - 1 + months
    year, month = when.year + index // 12, index % 12 + 1
    day = min(when.day, calendar.monthrange(year, month)[1])
    return when.replace(year=year, month=month, day=day)
