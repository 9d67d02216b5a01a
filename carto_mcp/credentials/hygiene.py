"""A hygiene audit of what exists: every credential read once, findings ranked by risk.

The policy guards what is created from now on; this looks at what is already there — made
before the policy, by a person in the Workspace, by another tool. Each finding names the
credential, why it is a risk and the tool call that would fix it. The checks are pure
functions over the objects one listing walk returns (the listing cache is shared, so an
audit right after a list sends nothing).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Literal
from urllib.parse import urlsplit

from carto_mcp.credentials.changes import client_urls
from carto_mcp.models.policy import Section, TokenFacts, client_violations, token_violations
from carto_mcp.models.results import AuditReport, FindingRow
from carto_mcp.models.wire import OAuthClient, Token

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

_KIND_ORDER = {kind: i for i, kind in enumerate(FINDINGS)}


@dataclass(frozen=True)
class Finding:
    """One finding; its fields are those of the `FindingRow` a tool returns, less the risk (its kind's)."""

    finding: str
    kind: Literal["token", "spa", "m2m"]
    id: str
    name: str | None
    reason: str
    #: The tool call that would fix it, as {"tool": ..., "arguments": {...}}; `note` says what to fill in.
    suggestion: dict[str, Any]
    note: str | None = None

    @property
    def risk(self) -> Risk:
        return FINDINGS[self.finding][0]

    def order(self) -> tuple[int, int, str]:
        """Most risky first; within a risk, in the order FINDINGS explains them."""
        return (_RANK[self.risk], _KIND_ORDER[self.finding], self.id)


@dataclass
class AuditResult:
    findings: list[Finding] = field(default_factory=list)
    scanned: dict[str, int] = field(default_factory=lambda: {"token": 0, "spa": 0, "m2m": 0})

    def ranked(self) -> list[Finding]:
        return sorted(self.findings, key=Finding.order)

    def report(self, limit: int, *, policy: str | None, notes: list[str]) -> AuditReport:
        """The result a tool returns: the `limit` most risky findings, and totals over all of them."""
        found = self.ranked()
        totals = Counter(f.finding for f in found)
        risks = Counter(f.risk for f in found)
        rows = [FindingRow(risk=f.risk, **asdict(f)) for f in found[:limit]]
        return AuditReport(
            findings=rows,
            count=len(rows),
            total=len(found),
            totals={kind: totals[kind] for kind in FINDINGS if totals[kind]},
            by_risk={risk: risks[risk] for risk in _RANK},
            scanned=dict(self.scanned),
            policy=policy,
            notes=notes,
        )


def _call(tool: str, **arguments: Any) -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments}


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
        for token in rest:
            result.findings.append(
                Finding(
                    "duplicate",
                    "token",
                    token.id,
                    token.name,
                    f"same grants and APIs as token {first.id}" + (f" ({first.name})" if first.name else ""),
                    _call("revoke_credential", kind="token", id=token.id),
                    "revoke whichever of the two no app uses",
                )
            )
    for kind, client in clients:
        result.scanned[kind] += 1
        result.findings += _client_findings(kind, client, policy)
    return result


def _token_findings(token: Token, *, now: datetime, soon: datetime, policy: Section | None) -> list[Finding]:
    out: list[Finding] = []

    def found(kind: str, reason: str, suggestion: dict[str, Any], note: str | None = None) -> None:
        out.append(Finding(kind, "token", token.id, token.name, reason, suggestion, note))

    for grant in token.grants:
        source = grant.source.strip()
        if grant.kind == "all":
            found(
                "all_sources",
                f"grant '*' on {grant.connection_name!r}: every source, current and future",
                _call(
                    "update_credential",
                    kind="token",
                    id=token.id,
                    remove_grants=[{"connection": grant.connection_name, "source": "*"}],
                ),
                "and add_grants the tables or queries the app reads",
            )
        elif grant.kind == "pattern" and source[: source.index("*")].count(".") < 2:
            found(
                "broad_pattern",
                f"pattern {source[:80]!r} on {grant.connection_name!r} matches broadly",
                _call(
                    "update_credential",
                    kind="token",
                    id=token.id,
                    remove_grants=[{"connection": grant.connection_name, "source": source}],
                ),
                "and add_grants a narrower pattern like 'project.dataset.prefix_*'",
            )
    if "imports" in token.allowed_apis:
        found(
            "imports_token",
            "allows the Import API, which writes data",
            _call("revoke_credential", kind="token", id=token.id),
            "revoke it when the import is done",
        )
    if "maps" in token.allowed_apis and not token.referers:
        found(
            "maps_without_referers",
            "allows the Maps API and has no referers",
            _call("update_credential", kind="token", id=token.id, referers=["https://YOUR-SITE", "https://YOUR-SITE/"]),
            "list the sites that use it",
        )
    expires = token.expires_at
    if expires is None:
        found("never_expires", "never expires", _call("rotate_token", id=token.id, expiration_date="90d"))
    elif expires <= now:
        found(
            "expired",
            f"expired {expires.strftime('%Y-%m-%d')}",
            _call("revoke_credential", kind="token", id=token.id),
        )
    elif expires <= soon:
        found(
            "expiring_soon",
            f"expires {expires.strftime('%Y-%m-%d %H:%M')} UTC",
            _call("rotate_token", id=token.id),
        )
    if policy is not None:
        for breach in token_violations(policy.tokens, TokenFacts.of_token(token), now=now):
            if breach.level == "deny":
                fix = (
                    _call("rotate_token", id=token.id, expiration_date=policy.tokens.max_expiry or "90d")
                    if breach.rule in ("tokens.max_expiry", "tokens.require_expiry")
                    else _call("update_credential", kind="token", id=token.id)
                )
                found("policy_violation", breach.text(), fix, None if "rotate" in fix["tool"] else breach.fix)
    return out


def _client_findings(kind: Literal["spa", "m2m"], client: OAuthClient, policy: Section | None) -> list[Finding]:
    out: list[Finding] = []
    urls = client_urls(client.model_dump())
    for name, url in urls:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme == "http" or host in ("localhost", "127.0.0.1", "::1") or host.endswith(".localhost"):
            out.append(
                Finding(
                    "insecure_client_url",
                    kind,
                    client.client_id,
                    client.title,
                    f"{name} {url[:120]!r}",
                    _call("update_credential", kind=kind, id=client.client_id),
                    f"set {name} to the app's https URLs",
                )
            )
    if policy is not None:
        for breach in client_violations(policy.oauth, kind, urls):
            if breach.level == "deny" and breach.rule not in ("oauth.allow_spa", "oauth.allow_m2m"):
                out.append(
                    Finding(
                        "policy_violation",
                        kind,
                        client.client_id,
                        client.title,
                        breach.text(),
                        _call("update_credential", kind=kind, id=client.client_id),
                        breach.fix,
                    )
                )
    return out
