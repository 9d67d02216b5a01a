"""An organization's rules for what an agent may create, as pure data and pure checks.

A policy file (TOML, `--policy`) says what a platform team means: "maps-only tokens on
`carto_dw`, never all sources, always with referers and at most 90 days; no M2M clients;
20 creations an hour". These models are that file's schema; the functions below check a
credential — one about to be created, a token as an update would leave it, or one that
exists — and return every rule it breaks, each with what would pass. Nothing here reads a
file or keeps state: loading is `carto_mcp.policy_file`, counting is the credentials layer.

A rule is `deny` (the request is refused) unless its section lists it under `warn` (the
request goes ahead and the breach is reported with the result).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from carto_mcp.errors import RuleError
from carto_mcp.models import rules
from carto_mcp.models.rules import GrantKind
from carto_mcp.models.tokens import TokenCreate, TokenState
from carto_mcp.models.wire import Token

__all__ = [
    "GrantFacts",
    "Level",
    "Limits",
    "OAuthRules",
    "PolicyFile",
    "Section",
    "TokenFacts",
    "TokenRules",
    "Violation",
    "client_violations",
    "describe",
    "token_violations",
]

Level = Literal["deny", "warn"]
ApiName = Literal["sql", "maps", "imports", "lds"]
_Glob = Annotated[str, Field(min_length=1, max_length=512)]
#: Hosts a URL may name and still mean "this machine".
_LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0")


@dataclass(frozen=True)
class Violation:
    """One rule a credential breaks: which, how (`deny` or `warn`), what is wrong, what would pass."""

    rule: str
    level: Level
    message: str
    fix: str

    def text(self) -> str:
        return f"{self.rule}: {self.message}: {self.fix}"


@dataclass(frozen=True)
class GrantFacts:
    connection: str
    source: str
    kind: GrantKind


@dataclass(frozen=True)
class TokenFacts:
    """What the token rules look at, whichever shape the token came in."""

    apis: tuple[str, ...]
    grants: tuple[GrantFacts, ...]
    referers: tuple[str, ...]
    #: When it expires; None never expires.
    expires_at: datetime | None

    @classmethod
    def of(
        cls,
        apis: Iterable[str],
        grants: Iterable[tuple[str, str, GrantKind | None]],
        referers: Iterable[str],
        expires_at: datetime | None,
    ) -> TokenFacts:
        return cls(
            tuple(apis),
            tuple(GrantFacts(c, s.strip(), k or rules.classify_source(s)) for c, s, k in grants),
            tuple(referers),
            expires_at,
        )

    @classmethod
    def of_request(cls, request: TokenCreate) -> TokenFacts:
        """A token about to be created (its expiry already resolved to a date)."""
        return cls.of(
            request.apis,
            ((g.connection, g.source, g.kind) for g in request.grants),
            request.referers,
            rules.parse_timestamp(request.expiration_date),
        )

    @classmethod
    def of_state(cls, state: TokenState, expires_at: datetime | None) -> TokenFacts:
        """A token as an update would leave it (its expiry cannot change)."""
        return cls.of(state.apis, ((g.connection, g.source, g.kind) for g in state.grants), state.referers, expires_at)

    @classmethod
    def of_token(cls, token: Token) -> TokenFacts:
        """A token as CARTO has it."""
        return cls.of(
            token.allowed_apis,
            ((g.connection_name, g.source, None) for g in token.grants),
            token.referers,
            token.expires_at,
        )


def _span(value: str) -> str:
    """A maximum lifetime must be a shorthand span (`90d`, `12w`, `6m`, `1y`), not a date."""
    try:
        rules.parse_expiry(value)
    except RuleError as exc:
        raise ValueError(str(exc).replace("expiration_date", "max_expiry")) from None
    if not value.strip()[-1:].isalpha():
        raise ValueError(f"max_expiry {value!r} must be a span like 90d, 12w, 6m or 1y, not a date")
    return value.strip().lower()


class _Rules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: The rules of this section that only warn.
    warn: list[str] = Field(default_factory=list)

    @field_validator("warn")
    @classmethod
    def _known_warn(cls, value: list[str]) -> list[str]:
        known = set(cls.model_fields) - {"warn"}
        unknown = [name for name in value if name not in known]
        if unknown:
            raise ValueError(f"unknown rule {unknown[0]!r}; the rules here are {', '.join(sorted(known))}")
        return value

    def level(self, rule: str) -> Level:
        return "warn" if rule in self.warn else "deny"


class TokenRules(_Rules):
    """What an API Access Token may be."""

    allowed_apis: list[ApiName] | None = None
    #: Globs (`carto_dw`, `bq_*`).
    allowed_connections: list[_Glob] | None = None
    grant_kinds: list[GrantKind] | None = None
    #: A pattern needs at least this many literal dot-separated segments before its first `*`.
    min_pattern_segments: Annotated[int, Field(ge=1, le=10)] | None = None
    #: Globs a granted source must match (a query cannot be matched: with this set, queries are refused).
    allowed_sources: list[_Glob] | None = None
    #: Globs no granted source may match (compared with a table, pattern or named source as written).
    denied_sources: list[_Glob] | None = None
    require_expiry: bool = False
    max_expiry: str | None = None
    #: true: every token; "maps": every token that allows the Maps API.
    require_referers: bool | Literal["maps"] = False
    max_grants: Annotated[int, Field(ge=0, le=200)] | None = None

    @field_validator("max_expiry")
    @classmethod
    def _max(cls, value: str | None) -> str | None:
        return None if value is None else _span(value)


class OAuthRules(_Rules):
    """What an SPA or M2M OAuth client may be."""

    allow_spa: bool = True
    allow_m2m: bool = True
    #: Every URL of a client must be https (http://localhost too, unless allow_localhost).
    https_only: bool = False
    #: Globs a URL's host must match.
    allowed_hosts: list[_Glob] | None = None
    allow_localhost: bool = True


class Limits(_Rules):
    """How much one profile may do per hour, counted by this server process."""

    creations_per_hour: Annotated[int, Field(ge=0)] | None = None
    revocations_per_hour: Annotated[int, Field(ge=0)] | None = None


class Section(BaseModel):
    """The rules for one profile (or the file's top level, for every profile)."""

    model_config = ConfigDict(extra="forbid")

    tokens: TokenRules = Field(default_factory=TokenRules)
    oauth: OAuthRules = Field(default_factory=OAuthRules)
    limits: Limits = Field(default_factory=Limits)


class PolicyFile(Section):
    """A whole policy file: top-level rules, and per-profile sections that override them key by key."""

    description: Annotated[str, Field(max_length=2000)] | None = None
    profiles: dict[str, Section] = Field(default_factory=dict)

    def for_profile(self, name: str | None) -> Section:
        """The rules for `name`: its own section's keys over the top level's (a key it sets replaces it)."""
        override = self.profiles.get(name or "")
        if override is None:
            return Section(tokens=self.tokens, oauth=self.oauth, limits=self.limits)

        def merged(base: _Rules, own: _Rules) -> Any:
            picked = {k: getattr(own, k) for k in own.model_fields_set}
            return type(base).model_validate({**base.model_dump(), **picked})

        return Section(
            tokens=merged(self.tokens, override.tokens),
            oauth=merged(self.oauth, override.oauth),
            limits=merged(self.limits, override.limits),
        )


# --- checks ----------------------------------------------------------------------------------------


#: Records one breach of a rule (its name within the section, what is wrong, what would pass).
_Breach = Callable[[str, str, str], None]


def _listed(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "(none)"


def _matches(value: str, globs: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(value, glob) for glob in globs)


def token_violations(
    policy: TokenRules, token: TokenFacts, *, now: datetime, check_expiry: bool = True
) -> list[Violation]:
    """Every token rule `token` breaks. `check_expiry=False` for an update: CARTO fixes the expiry at creation."""
    out: list[Violation] = []

    def breach(rule: str, message: str, fix: str) -> None:
        out.append(Violation(f"tokens.{rule}", policy.level(rule), message, fix))

    if policy.allowed_apis is not None:
        for api in token.apis:
            if api not in policy.allowed_apis:
                breach(
                    "allowed_apis",
                    f"API {api!r} is not allowed (allowed_apis: {_listed(policy.allowed_apis)})",
                    f"allow only {_listed(policy.allowed_apis)}",
                )
    if policy.max_grants is not None and len(token.grants) > policy.max_grants:
        breach(
            "max_grants",
            f"{len(token.grants)} grants exceed max_grants {policy.max_grants}",
            f"grant {policy.max_grants} or fewer sources (one token per app)",
        )
    for grant in token.grants:
        _grant_violations(policy, grant, breach)
    if policy.require_referers and not token.referers:
        needed = policy.require_referers is True or "maps" in token.apis
        if needed:
            which = "a token" if policy.require_referers is True else "a token that allows the Maps API"
            breach(
                "require_referers",
                f"{which} without referers can be used from any web site (require_referers)",
                "add referers: the sites that use it (when unsure, both forms: https://app.example.com and "
                "https://app.example.com/)",
            )
    if check_expiry:
        _expiry_violations(policy, token.expires_at, now, breach)
    return out


def _grant_violations(policy: TokenRules, grant: GrantFacts, breach: _Breach) -> None:
    where = f"grant {grant.source[:80]!r} on {grant.connection!r}"
    if policy.allowed_connections is not None and not _matches(grant.connection, policy.allowed_connections):
        breach(
            "allowed_connections",
            f"connection {grant.connection!r} is not allowed (allowed_connections: "
            f"{_listed(policy.allowed_connections)})",
            f"use a connection matching {_listed(policy.allowed_connections)}",
        )
    if policy.grant_kinds is not None and grant.kind not in policy.grant_kinds:
        breach(
            "grant_kinds",
            f"{where} is of kind {grant.kind!r}, which is not allowed (grant_kinds: {_listed(policy.grant_kinds)})",
            f"grant only {_listed(policy.grant_kinds)} sources",
        )
    if grant.kind == "pattern" and policy.min_pattern_segments is not None:
        literal = grant.source[: grant.source.index("*")].split(".")[:-1]
        if len(literal) < policy.min_pattern_segments:
            breach(
                "min_pattern_segments",
                f"pattern {grant.source[:80]!r} has {len(literal)} literal segment(s) before its '*' "
                f"(min_pattern_segments: {policy.min_pattern_segments})",
                f"narrow it to {policy.min_pattern_segments} or more segments, like 'project.dataset.prefix_*'",
            )
    if policy.allowed_sources is not None:
        if grant.kind == "query":
            breach(
                "allowed_sources",
                f"{where} is a query, whose tables cannot be checked against allowed_sources",
                "grant the tables themselves, matching " + _listed(policy.allowed_sources),
            )
        elif not _matches(grant.source, policy.allowed_sources):
            breach(
                "allowed_sources",
                f"{where} does not match allowed_sources ({_listed(policy.allowed_sources)})",
                f"grant a source matching {_listed(policy.allowed_sources)}",
            )
    if policy.denied_sources and grant.kind != "query" and _matches(grant.source, policy.denied_sources):
        breach(
            "denied_sources",
            f"{where} matches denied_sources ({_listed(policy.denied_sources)})",
            "grant a source outside " + _listed(policy.denied_sources),
        )


def _expiry_violations(policy: TokenRules, expires_at: datetime | None, now: datetime, breach: _Breach) -> None:
    limit = f"max_expiry {policy.max_expiry}" if policy.max_expiry else None
    if expires_at is None:
        if policy.require_expiry or policy.max_expiry:
            rule = "require_expiry" if policy.require_expiry else "max_expiry"
            breach(rule, "the token never expires", f"give expiration_date, e.g. {policy.max_expiry or '90d'}")
        return
    if policy.max_expiry:
        latest = rules.parse_expiry(policy.max_expiry, now=now)
        if expires_at > latest:
            days = (expires_at - now).days
            breach(
                "max_expiry",
                f"expiry {rules.format_expiry(expires_at)} is {days} days away, beyond {limit}",
                f"use {policy.max_expiry} or less",
            )


def client_violations(policy: OAuthRules, kind: str, urls: Iterable[tuple[str, str]]) -> list[Violation]:
    """Every OAuth-client rule a client of `kind` with these (field, URL) pairs breaks."""
    out: list[Violation] = []

    def breach(rule: str, message: str, fix: str) -> None:
        out.append(Violation(f"oauth.{rule}", policy.level(rule), message, fix))

    if kind == "spa" and not policy.allow_spa:
        breach("allow_spa", "creating SPA OAuth clients is not allowed (allow_spa = false)", "ask a person to do it")
    if kind == "m2m" and not policy.allow_m2m:
        breach("allow_m2m", "creating M2M OAuth clients is not allowed (allow_m2m = false)", "ask a person to do it")
    for field, url in urls:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        local = host in _LOCAL_HOSTS or host.endswith(".localhost")
        if local and not policy.allow_localhost:
            breach("allow_localhost", f"{field} {url[:120]!r} points at this machine", "use the app's public URL")
        if policy.https_only and parts.scheme != "https" and not (local and policy.allow_localhost):
            breach("https_only", f"{field} {url[:120]!r} is not https", "use https://")
        if policy.allowed_hosts is not None and not local and not _matches(host, policy.allowed_hosts):
            breach(
                "allowed_hosts",
                f"{field} {url[:120]!r} is on host {host!r}, not in allowed_hosts ({_listed(policy.allowed_hosts)})",
                f"use a host matching {_listed(policy.allowed_hosts)}",
            )
    return out


# --- in words ------------------------------------------------------------------------------------


def describe(section: Section) -> list[str]:
    """The rules of a section as sentences, for the `carto://policy` resource and `doctor`."""
    t, o, lim = section.tokens, section.oauth, section.limits
    lines: list[str] = []

    def say(rules_of: _Rules, rule: str, text: str) -> None:
        lines.append(f"{text}{' (warning only)' if rule in rules_of.warn else ''}.")

    if t.allowed_apis is not None:
        say(t, "allowed_apis", f"Tokens may allow only these APIs: {_listed(t.allowed_apis)}")
    if t.allowed_connections is not None:
        say(t, "allowed_connections", f"Grants only on connections matching {_listed(t.allowed_connections)}")
    if t.grant_kinds is not None:
        say(t, "grant_kinds", f"Grant kinds allowed: {_listed(t.grant_kinds)}")
    if t.min_pattern_segments is not None:
        say(t, "min_pattern_segments", f"Patterns need {t.min_pattern_segments}+ literal segments before '*'")
    if t.allowed_sources is not None:
        say(t, "allowed_sources", f"Sources must match {_listed(t.allowed_sources)} (queries are refused)")
    if t.denied_sources:
        say(t, "denied_sources", f"Sources must not match {_listed(t.denied_sources)}")
    if t.require_expiry:
        say(t, "require_expiry", "Every token must expire")
    if t.max_expiry:
        say(t, "max_expiry", f"Tokens may live at most {t.max_expiry}")
    if t.require_referers:
        which = "every token" if t.require_referers is True else "tokens that allow the Maps API"
        say(t, "require_referers", f"Referers are required for {which}")
    if t.max_grants is not None:
        say(t, "max_grants", f"At most {t.max_grants} grants per token")
    if not o.allow_spa:
        say(o, "allow_spa", "No SPA OAuth clients may be created")
    if not o.allow_m2m:
        say(o, "allow_m2m", "No M2M OAuth clients may be created")
    if o.https_only:
        say(o, "https_only", "OAuth client URLs must be https")
    if o.allowed_hosts is not None:
        say(o, "allowed_hosts", f"OAuth client URLs must be on hosts matching {_listed(o.allowed_hosts)}")
    if not o.allow_localhost:
        say(o, "allow_localhost", "OAuth client URLs may not point at localhost")
    if lim.creations_per_hour is not None:
        say(lim, "creations_per_hour", f"At most {lim.creations_per_hour} creations an hour")
    if lim.revocations_per_hour is not None:
        say(lim, "revocations_per_hour", f"At most {lim.revocations_per_hour} revocations an hour")
    return lines or ["No rules beyond CARTO's own: every request the token and client rules accept is allowed."]
