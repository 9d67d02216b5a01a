"""API Access Token option tables: grants, allowed APIs, referers, expiry.

Field descriptions come from `carto credentials create token` and the API Access Tokens
user manual, so the JSON schema an agent reads *is* the CLI's option table.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator

from carto_mcp import contract
from carto_mcp.errors import RuleError
from carto_mcp.models import rules
from carto_mcp.models.rules import GrantKind
from carto_mcp.models.schema import Maybe

ApiName = Literal["sql", "maps", "imports", "lds"]
NOTHING_TO_CHANGE = "nothing to change: give name, grants, add_grants, remove_grants, apis or referers"

Connection = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        description="Connection to grant (e.g. 'carto_dw'). Repeat a grant per (connection, source) pair.",
    ),
]
Source = Annotated[
    str,
    Field(
        min_length=1,
        max_length=20000,
        description=(
            "Fully-qualified table/tileset/raster ('carto.shared.demo_table'), a wildcard pattern like "
            "'carto.shared.CARTO_*' (must contain a dot; '**' and 'table*' are rejected), a SQL query "
            "('SELECT ...', may use @param parameters), a named source ('my_source'), or '*' for all "
            "sources on the connection."
        ),
    ),
]
Referer = Annotated[
    str,
    Field(
        min_length=1,
        max_length=2048,
        description=(
            "Allowed referer URL, compared with the browser's Referer header. CARTO's documents disagree on a "
            "trailing '/': when unsure, list both forms ('https://myapp.com' and 'https://myapp.com/')."
        ),
    ),
]
Expiry = Annotated[
    str,
    Field(
        pattern=rules.EXPIRY_PATTERN,
        max_length=40,
        description=(
            "Optional expiry. ISO date ('2027-01-01'), ISO datetime ('2027-01-01T12:00:00Z') or shorthand "
            "('1d', '2w', '6m', '1y'). Must be in the future. Tokens never expire if omitted; the expiry "
            "cannot be changed after creation."
        ),
    ),
]
TokenName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=256,
        description="Optional token label (CARTO generates one like 'tk_shortid' if omitted).",
    ),
]
ApiList = Annotated[
    list[ApiName],
    Field(
        min_length=1,
        max_length=4,
        description=(
            "Allowed APIs: sql, maps, imports, lds. 'imports' cannot be combined with others; sql and maps "
            "need at least one grant; lds needs none."
        ),
    ),
]


class Grant(BaseModel):
    """One (connection, source) pair a token may read; its kind is inferred unless stated."""

    model_config = ConfigDict(extra="forbid")

    connection: Connection
    source: Source
    kind: Maybe[GrantKind] = Field(
        default=None,
        description=(
            "Optional explicit grant kind: table, pattern, query, named_source or all. Inferred from the "
            "source when omitted ('*' = all, contains '*' = pattern, SELECT/WITH = query, a bare lowercase "
            "name = named_source, otherwise a table)."
        ),
    )

    _warnings: list[str] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Grant:
        kind, warnings = rules.check_grant(self.source, self.kind)
        self.kind = kind
        self._warnings = warnings
        return self

    @property
    def warnings(self) -> list[str]:
        return list(self._warnings)

    def to_wire(self) -> dict[str, str]:
        """Named sources travel as their bare name, everything else as written (contract: D/A)."""
        return {contract.GRANT_CONNECTION: self.connection, contract.GRANT_SOURCE: self.source.strip()}

    def key(self) -> tuple[str, str]:
        return (self.connection, self.source.strip())


def _dedupe(values: list[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


def _check_referers(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return _dedupe([rules.check_url(v, what="referer") for v in values])


class TokenCreate(BaseModel):
    """The normalized body of `carto credentials create token`, with its warnings."""

    model_config = ConfigDict(extra="forbid")

    grants: list[Grant] = Field(default_factory=list, max_length=200)
    apis: ApiList
    referers: list[Referer] = Field(default_factory=list, max_length=100)
    name: TokenName | None = None
    expiration_date: Expiry | None = None

    _warnings: list[str] = PrivateAttr(default_factory=list)

    @field_validator("referers")
    @classmethod
    def _referers(cls, value: list[str]) -> list[str]:
        return _check_referers(value) or []

    @field_validator("apis")
    @classmethod
    def _apis(cls, value: list[str]) -> list[str]:
        return _dedupe(value)

    @field_validator("expiration_date")
    @classmethod
    def _expiry(cls, value: str | None) -> str | None:
        """Resolve shorthand and dates to the wire form now, so dry_run shows the real date."""
        return None if value is None else rules.format_expiry(rules.parse_expiry(value))

    @model_validator(mode="after")
    def _cross_field(self) -> TokenCreate:
        warnings: list[str] = []
        for grant in self.grants:
            warnings.extend(grant.warnings)
        warnings.extend(rules.check_apis(self.apis, [g.kind for g in self.grants if g.kind]))
        warnings.extend(rules.referer_warnings(self.referers))
        self._warnings = _dedupe(warnings)
        return self

    @property
    def warnings(self) -> list[str]:
        return list(self._warnings)

    def to_wire(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "grants": [g.to_wire() for g in self.grants],
            "allowed_apis": list(self.apis),
            "referers": list(self.referers),
        }
        if self.name is not None:
            body["name"] = self.name
        if self.expiration_date is not None:
            body["expiration_date"] = self.expiration_date
        return body


class TokenUpdate(BaseModel):
    """A token change: replace or add/remove grants, set APIs, referers or the name.

    The expiry is immutable (CARTO: "The expiration date cannot be changed after the token is
    created"); it is accepted here only to refuse it with that reason.
    """

    model_config = ConfigDict(extra="forbid")

    name: TokenName | None = None
    grants: list[Grant] | None = Field(default=None, max_length=200)
    add_grants: list[Grant] | None = Field(default=None, max_length=200)
    remove_grants: list[Grant] | None = Field(default=None, max_length=200)
    apis: ApiList | None = None
    referers: list[Referer] | None = Field(default=None, max_length=100)
    expiration_date: str | None = None

    @field_validator("referers")
    @classmethod
    def _referers(cls, value: list[str] | None) -> list[str] | None:
        return _check_referers(value)

    @model_validator(mode="after")
    def _check(self) -> TokenUpdate:
        if self.expiration_date is not None:
            raise RuleError(
                "expiration_date cannot be changed: CARTO fixes a token's expiry at creation. Create a "
                "replacement token with the new expiry (rotate_token), then revoke this one"
            )
        if self.grants is not None and (self.add_grants or self.remove_grants):
            raise RuleError("give either grants (replace all) or add_grants/remove_grants, not both")
        if all(
            v is None for v in (self.name, self.grants, self.add_grants, self.remove_grants, self.apis, self.referers)
        ):
            raise RuleError(NOTHING_TO_CHANGE)
        return self

    def apply(self, current: TokenState) -> TokenState:
        """The token as it will be after this change (GET -> merge -> PATCH, as the CLI does)."""
        grants = list(current.grants)
        if self.grants is not None:
            grants = list(self.grants)
        if self.add_grants:
            have = {g.key() for g in grants}
            grants.extend(g for g in self.add_grants if g.key() not in have)
        if self.remove_grants:
            drop = {g.key() for g in self.remove_grants}
            missing = drop - {g.key() for g in grants}
            if missing:
                conn, src = sorted(missing)[0]
                raise RuleError(f"remove_grants: the token has no grant ({conn!r}, {src[:60]!r})")
            grants = [g for g in grants if g.key() not in drop]
        return TokenState.of(
            name=self.name if self.name is not None else current.name,
            grants=grants,
            apis=list(self.apis) if self.apis is not None else list(current.apis),
            referers=list(self.referers) if self.referers is not None else list(current.referers),
        )


class TokenState(BaseModel):
    """The mutable part of a token, used to compute and check an update before it is sent."""

    name: str | None = None
    grants: list[Grant] = Field(default_factory=list)
    apis: list[str] = Field(default_factory=list)
    referers: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, *, name: str | None, grants: list[Grant], apis: list[str], referers: list[str]) -> TokenState:
        """Built without re-validating: new grants were validated on the way in, and existing ones were
        accepted by CARTO already — an odd legacy grant must not block an unrelated change like a rename."""
        return cls.model_construct(name=name, grants=grants, apis=apis, referers=referers)

    def warnings(self) -> list[str]:
        """Re-check the cross-field rules on the merged token; raises when they now fail."""
        out: list[str] = []
        for grant in self.grants:
            out.extend(grant.warnings)
        out.extend(rules.check_apis(self.apis, [g.kind for g in self.grants if g.kind]))
        out.extend(rules.referer_warnings(self.referers))
        return _dedupe(out)

    def losses(self, after: TokenState) -> list[str]:
        """What an update would take away: the grants, APIs and referers it removes."""
        lost: list[str] = []
        after_grants = {g.key() for g in after.grants}
        lost += [f"grant {c}:{s[:80]}" for c, s in (g.key() for g in self.grants) if (c, s) not in after_grants]
        lost += [f"api {a}" for a in self.apis if a not in after.apis]
        lost += [f"referer {r}" for r in self.referers if r not in after.referers]
        return lost

    def patch_body(self, before: TokenState) -> dict[str, Any]:
        """Only the fields that changed; grants and referers are sent whole (PATCH replaces them)."""
        body: dict[str, Any] = {}
        if self.name != before.name and self.name is not None:
            body["name"] = self.name
        if [g.key() for g in self.grants] != [g.key() for g in before.grants]:
            body["grants"] = [g.to_wire() for g in self.grants]
        if self.apis != before.apis:
            body["allowed_apis"] = list(self.apis)
        if self.referers != before.referers:
            body["referers"] = list(self.referers)
        return body
