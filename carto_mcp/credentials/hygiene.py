"""A hygiene audit of what exists: every credential read once, findings ranked by risk.

The policy guards what is created from now on; this looks at what is already there — made
before the policy, by a person in the Workspace, by another tool. Each finding names the
credential, why it is a risk and the tool call that would fix it. The checks are pure
functions over the objects one listing walk returns (the listing cache is shared, so an
audit right after a list sends nothing).

A finding is recorded as what was found (its kind, the credential, the grant or rule or URL
concerned); its wording and suggested call are written only for the rows a report shows. A
10,000-token account can have tens of thousands of findings, and a report shows 50.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from carto_mcp.credentials.changes import client_urls
from carto_mcp.models.policy import Section, TokenFacts, Violation, client_violations, token_violations
from carto_mcp.models.results import AuditReport, FindingRow
from carto_mcp.models.wire import OAuthClient, Token, WireGrant

__all__ = ["FINDINGS", "Finding", "Risk", "audit"]

Risk = Literal["critical", "high", "medium", "low"]
_RANK: dict[Risk, int] = {"critical": 0, "high": 1, "medium": 2, "low": 3}

#: Every finding kind, its risk, and what it means (in the order a report explains them).
FINDINGS: dict[str, tuple[Risk, str]] = {
    "all_sources": ("critical", "a '*' grant reads every source of the connection, current and future"),
    "policy_violation": ("high", "breaks a rule of the active policy"),
    "broad_pattern": ("high", "a wildcard with fewer than two literal segments before '*' matches broadly"),
    "imports_token": ("medium", "an Import API token can write data into the connection"),
    "maps_without_referers": ("medium", "a Maps token without referers works from any web site"),
    "insecure_client_url": ("medium", "an OAuth client URL over http:// or on localhost"),
    "never_expires": ("medium", "a token without expiry works until someone revokes it"),
    "expired": ("low", "an expired token: nothing can use it, it only clutters the list"),
    "expiring_soon": ("low", "a token that expires within the audit's window: rotate it before apps break"),
    "duplicate": ("low", "the same grants and APIs as another token: one of them is probably unused"),
}

#: Most risky first; within a risk, in the order FINDINGS explains them (ties keep the listing order).
_ORDER = {kind: (_RANK[risk], i) for i, (kind, (risk, _)) in enumerate(FINDINGS.items())}


@dataclass(frozen=True)
class Finding:
    """One thing found: its kind, the credential, and what it concerns (a grant, a rule, a URL, a date, a token)."""

    finding: str
    kind: Literal["token", "spa", "m2m"]
    subject: Token | OAuthClient
    detail: Any = None

    @property
    def risk(self) -> Risk:
        return FINDINGS[self.finding][0]

    def row(self) -> FindingRow:
        """The finding as a tool reports it: the credential, the reason and the call that would fix it."""
        subject = self.subject
        ident, name = (subject.id, subject.name) if isinstance(subject, Token) else (subject.client_id, subject.title)
        reason, suggestion, note = _explain(self, ident)
        return FindingRow(
            risk=self.risk,
            finding=self.finding,
            kind=self.kind,
            id=ident,
            name=name,
            reason=reason,
            suggestion=suggestion,
            note=note,
        )


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=lambda: {"token": 0, "spa": 0, "m2m": 0})

    def ranked(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: _ORDER[f.finding])

    def report(self, limit: int, *, policy: str | None, notes: list[str]) -> AuditReport:
        """The result a tool returns: the `limit` most risky findings, and totals over all of them."""
        totals = Counter(f.finding for f in self.findings)
        risks: Counter[Risk] = Counter()
        for kind, n in totals.items():
            risks[FINDINGS[kind][0]] += n
        rows = [f.row() for f in self.ranked()[:limit]]
        return AuditReport(
            findings=rows,
            count=len(rows),
            total=len(self.findings),
            totals={kind: totals[kind] for kind in FINDINGS if totals[kind]},
            by_risk={risk: risks[risk] for risk in _RANK},
            scanned=dict(self.scanned),
            policy=policy,
            notes=notes,
        )


def audit(
    tokens: Iterable[Token],
    clients: Iterable[tuple[Literal["spa", "m2m"], OAuthClient]],
    *,
    now: datetime,
    soon: datetime,
    policy: Section | None,
) -> AuditResult:
    """Every finding about these credentials; `soon` is where "expiring soon" ends."""
    result = AuditResult()
    by_reach: dict[tuple[frozenset[tuple[str, str]], frozenset[str]], list[Token]] = defaultdict(list)
    for token in tokens:
        result.scanned["token"] += 1
        result.findings += _token_findings(token, now=now, soon=soon, policy=policy)
        grants = frozenset((g.connection_name, g.source.strip()) for g in token.grants)
        by_reach[(grants, frozenset(token.allowed_apis))].append(token)
    for same in by_reach.values():
        first, *rest = sorted(same, key=lambda t: t.created_at or "")  # stable: ties keep the listing order
        result.findings += (Finding("duplicate", "token", token, first) for token in rest)
    for kind, client in clients:
        result.scanned[kind] += 1
        result.findings += _client_findings(kind, client, policy)
    return result


def _token_findings(token: Token, *, now: datetime, soon: datetime, policy: Section | None) -> Iterator[Finding]:
    for grant in token.grants:
        if grant.kind == "all":
            yield Finding("all_sources", "token", token, grant)
        elif grant.kind == "pattern":
            source = grant.source.strip()
            if source[: source.index("*")].count(".") < 2:
                yield Finding("broad_pattern", "token", token, grant)
    if "imports" in token.allowed_apis:
        yield Finding("imports_token", "token", token)
    if "maps" in token.allowed_apis and not token.referers:
        yield Finding("maps_without_referers", "token", token)
    expires = token.expires_at
    if expires is None:
        yield Finding("never_expires", "token", token)
    elif expires <= now:
        yield Finding("expired", "token", token, expires)
    elif expires <= soon:
        yield Finding("expiring_soon", "token", token, expires)
    if policy is not None:
        for breach in token_violations(policy.tokens, TokenFacts.of_token(token), now=now):
            if breach.level == "deny":
                yield Finding("policy_violation", "token", token, (breach, policy.tokens.max_expiry))


def _client_findings(kind: Literal["spa", "m2m"], client: OAuthClient, policy: Section | None) -> Iterator[Finding]:
    urls = client_urls(client.model_dump())
    for name, url in urls:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme == "http" or host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost"):
            yield Finding("insecure_client_url", kind, client, (name, url))
    if policy is not None:
        for breach in client_violations(policy.oauth, kind, urls):
            if breach.level == "deny" and breach.rule not in ("oauth.allow_spa", "oauth.allow_m2m"):
                yield Finding("policy_violation", kind, client, (breach, None))


def _call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments}


def _explain(found: Finding, ident: str) -> tuple[str, dict[str, Any], str | None]:
    """What a finding says: (reason, the tool call that would fix it, what to fill in or check first)."""
    detail, kind = found.detail, found.kind
    match found.finding:
        case "all_sources":
            grant: WireGrant = detail
            return (
                f"grant '*' on {grant.connection_name!r}: every source, current and future",
                _call(
                    "update_credential",
                    kind="token",
                    id=ident,
                    remove_grants=[{"connection": grant.connection_name, "source": "*"}],
                ),
                "and add_grants the tables or queries the app reads",
            )
        case "broad_pattern":
            source = detail.source.strip()
            return (
                f"pattern {source[:80]!r} on {detail.connection_name!r} matches broadly",
                _call(
                    "update_credential",
                    kind="token",
                    id=ident,
                    remove_grants=[{"connection": detail.connection_name, "source": source}],
                ),
                "and add_grants a narrower pattern like 'project.dataset.prefix_*'",
            )
        case "imports_token":
            return (
                "allows the Import API, which writes data",
                _call("revoke_credential", kind="token", id=ident),
                "revoke it when the import is done",
            )
        case "maps_without_referers":
            return (
                "allows the Maps API and has no referers",
                _call(
                    "update_credential", kind="token", id=ident, referers=["https://YOUR-SITE", "https://YOUR-SITE/"]
                ),
                "list the sites that use it",
            )
        case "never_expires":
            return "never expires", _call("rotate_token", id=ident, expiration_date="90d"), None
        case "expired":
            return f"expired {detail:%Y-%m-%d}", _call("revoke_credential", kind="token", id=ident), None
        case "expiring_soon":
            return f"expires {detail:%Y-%m-%d %H:%M} UTC", _call("rotate_token", id=ident), None
        case "duplicate":
            first: Token = detail
            return (
                f"same grants and APIs as token {first.id}" + (f" ({first.name})" if first.name else ""),
                _call("revoke_credential", kind="token", id=ident),
                "revoke whichever of the two no app uses",
            )
        case "insecure_client_url":
            name, url = detail
            return (
                f"{name} {url[:120]!r}",
                _call("update_credential", kind=kind, id=ident),
                f"set {name} to the app's https URLs",
            )
        case "policy_violation":
            breach: Violation
            breach, max_expiry = detail
            if kind == "token" and breach.rule in ("tokens.max_expiry", "tokens.require_expiry"):
                return breach.text(), _call("rotate_token", id=ident, expiration_date=max_expiry or "90d"), None
            return breach.text(), _call("update_credential", kind=kind, id=ident), breach.fix
    raise AssertionError(f"no wording for finding {found.finding!r}")  # every FINDINGS kind is matched above
