"""What the tools return: compact rows, full details and create results.

Optional fields are `Maybe[...]` (see `models.schema`) and left out of a result when they have
no value, so every host reads one plain type per field.

Secrets are masked everywhere except the create results (`TokenCreated.token`,
`ClientCreated.client_secret`), which show them exactly once — or not at all when they were
written to a file.

A result of a mutating tool also says, as `outcome` and `audit_id`, what its audit line
records: one word for what happened, and the credential it happened to.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from carto_mcp.config import SecretMode
from carto_mcp.masking import mask
from carto_mcp.models.kinds import ClientKind, CredentialKind
from carto_mcp.models.schema import Maybe
from carto_mcp.models.wire import OAuthClient, Token


def _inline_rows(schema: dict[str, Any]) -> None:
    """Rows are described inline rather than by `$ref`, which jsonschema resolves once per row."""
    schema["properties"]["rows"]["items"] = Row.model_json_schema()


class GrantView(BaseModel):
    connection: str
    source: str
    kind: str


class TokenDetail(BaseModel):
    """A token's full detail, with the token value masked."""

    kind: Literal["token"] = "token"
    id: str = Field(
        description="Short stable id (the token object's own id, else its jti); pass it to get/update/revoke."
    )
    jti: Maybe[str] = Field(default=None, description="The jti, when it differs from id; accepted as an id too.")
    name: Maybe[str] = None
    token_masked: str
    apis: list[str]
    grants: list[GrantView]
    referers: list[str]
    expiration_date: Maybe[str] = Field(default=None, description="ISO 8601 UTC; absent: the token never expires.")
    expired: bool
    created_at: Maybe[str] = None

    @classmethod
    def of(cls, token: Token, now: datetime | None = None) -> TokenDetail:
        return cls(
            id=token.id,
            jti=token.jti if token.jti != token.id else None,
            name=token.name,
            token_masked=token.masked,
            apis=token.allowed_apis,
            grants=[GrantView(connection=g.connection_name, source=g.source, kind=g.kind) for g in token.grants],
            referers=token.referers,
            expiration_date=token.expiration_date,
            expired=token.expired(now),
            created_at=token.created_at,
        )


class ClientDetail(BaseModel):
    """An SPA or M2M OAuth client's full detail; an M2M secret is masked if the service returns one."""

    kind: ClientKind
    id: str = Field(description="The OAuth client id.")
    title: Maybe[str] = None
    login_uri: Maybe[str] = None
    callbacks: list[str] = Field(default_factory=list)
    logout_urls: list[str] = Field(default_factory=list)
    web_origins: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)
    client_secret_masked: Maybe[str] = None
    created_at: Maybe[str] = None

    @classmethod
    def of(cls, client: OAuthClient, kind: ClientKind) -> ClientDetail:
        return cls(
            kind=kind,
            id=client.client_id,
            title=client.title,
            login_uri=client.login_uri,
            callbacks=client.callbacks,
            logout_urls=client.logout_urls,
            web_origins=client.web_origins,
            allowed_origins=client.allowed_origins,
            client_secret_masked=mask(client.client_secret) if client.client_secret else None,
            created_at=client.created_at,
        )


class Row(BaseModel):
    """One compact list row: a few dozen bytes, so 500 rows stay small."""

    kind: CredentialKind
    id: str
    name: Maybe[str] = None
    apis: Maybe[list[str]] = None
    grants: Maybe[int] = None
    expires: Maybe[str] = None
    expired: Maybe[bool] = None

    @classmethod
    def of_token(cls, token: Token, now: datetime) -> Row:
        return cls(
            kind="token",
            id=token.id,
            name=token.name,
            apis=token.allowed_apis,
            grants=len(token.grants),
            expires=token.expiration_date,
            expired=token.expired(now),
        )

    @classmethod
    def of_client(cls, client: OAuthClient, kind: ClientKind) -> Row:
        return cls(kind=kind, id=client.client_id, name=client.title)


class CredentialList(BaseModel):
    model_config = ConfigDict(json_schema_extra=_inline_rows)

    rows: list[Row]
    count: int = Field(description="Rows in this page.")
    next_cursor: Maybe[str] = Field(default=None, description="Pass as cursor to get the next page; absent at the end.")
    warnings: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        if not self.rows:
            return "No credentials match." + (
                " More may follow: pass next_cursor as cursor." if self.next_cursor else ""
            )
        counts: dict[str, int] = {}
        for row in self.rows:
            counts[row.kind] = counts.get(row.kind, 0) + 1
        parts = [_plural(n, "token" if k == "token" else f"{k} client") for k, n in counts.items()]
        more = " More follow: pass next_cursor as cursor." if self.next_cursor else ""
        return f"{_plural(len(self.rows), 'credential')}: {', '.join(parts)}.{more}"


class PolicyBreach(BaseModel):
    """A rule of the active policy a request breaks (dry_run lists them all)."""

    rule: str
    level: Literal["deny", "warn"]
    message: str
    fix: str


class TokenCreated(BaseModel):
    """A new token. `token` is the only place the full value is ever shown (null when written to a file)."""

    status: Literal["created", "dry_run"] = "created"
    id: Maybe[str] = None
    token: Maybe[str] = Field(default=None, description="The full token value, shown once. Store it now.")
    delivery: Maybe[SecretMode] = Field(
        default=None,
        description="Where the value went: reveal (a one-time page shown to the person, never here), file "
        "(secret_file) or inline (in `token`).",
    )
    secret_file: Maybe[str] = None
    secret_variables: list[str] = Field(default_factory=list)
    reveal_url: Maybe[str] = Field(
        default=None,
        description="reveal only, when the person did not open the page: it still answers once until "
        "reveal_expires_at. Give it to the person; do not open it yourself.",
    )
    reveal_expires_at: Maybe[str] = None
    detail: Maybe[TokenDetail] = None
    request: Maybe[dict[str, Any]] = Field(default=None, description="dry_run only: the normalized request body.")
    policy_violations: list[PolicyBreach] = Field(
        default_factory=list, description="dry_run only: every rule of the active policy the request breaks."
    )
    warnings: list[str] = Field(default_factory=list)

    @property
    def outcome(self) -> str | None:
        return None if self.status == "dry_run" else "ok"

    @property
    def audit_id(self) -> str | None:
        return self.id

    @property
    def audit_delivery(self) -> str | None:
        """How the value was delivered, for the audit line (never the value)."""
        return self.delivery

    def summary(self) -> str:
        notes = f" {_plural(len(self.warnings), 'warning')}: see warnings." if self.warnings else ""
        if self.status == "dry_run":
            denied = [v.rule for v in self.policy_violations if v.level == "deny"]
            if denied:
                return (
                    f"Dry run: nothing was created; the policy would refuse this request: it breaks "
                    f"{', '.join(denied)} (see policy_violations for what would pass).{notes}"
                )
            return f"Dry run: the request is valid and nothing was created.{notes}"
        name = f" ({self.detail.name})" if self.detail and self.detail.name else ""
        head = f"Created token {self.id}{name}"
        if self.delivery == "reveal":
            return f"{head}; {_revealed(self.reveal_url, self.reveal_expires_at, 'its value')}{notes}"
        if self.secret_file:
            where = f"written to {self.secret_file} as {', '.join(self.secret_variables)}"
            return f"{head}; its value was {where}.{notes}"
        return f"{head}. Its value is in `token`, shown only this once: store it now.{notes}"


class ClientCreated(BaseModel):
    """A new OAuth client. For M2M, `client_secret` is shown once (null when written to a file)."""

    status: Literal["created"] = "created"
    id: str
    client_secret: Maybe[str] = Field(default=None, description="M2M only: the client secret, shown once.")
    delivery: Maybe[SecretMode] = Field(
        default=None, description="M2M only: where the secret went (reveal, file or inline), as for create_token."
    )
    secret_file: Maybe[str] = None
    secret_variables: list[str] = Field(default_factory=list)
    reveal_url: Maybe[str] = Field(
        default=None, description="reveal only, when the person did not open the page: give it to the person."
    )
    reveal_expires_at: Maybe[str] = None
    detail: ClientDetail
    warnings: list[str] = Field(default_factory=list)

    @property
    def outcome(self) -> str:
        return "ok"

    @property
    def audit_id(self) -> str:
        return self.id

    @property
    def audit_delivery(self) -> str | None:
        return self.delivery

    def summary(self) -> str:
        title = f" ({self.detail.title})" if self.detail.title else ""
        head = f"Created {self.detail.kind} client {self.id}{title}."
        if self.delivery == "reveal":
            return f"{head} {_revealed(self.reveal_url, self.reveal_expires_at, 'Its secret')}"
        if self.secret_file:
            return f"{head} Its id and secret were written to {self.secret_file} as {', '.join(self.secret_variables)}."
        if self.client_secret:
            return f"{head} The secret is in `client_secret`, shown only this once: store it now."
        return head


def _revealed(url: str | None, until: str | None, what: str) -> str:
    """The summary of a reveal: shown out of band, or (declined) where the person can still open it."""
    if url is None:
        return (
            f"{what} was shown to the person on a one-time page, out of band: it is not in this result and "
            "cannot be shown again."
        )
    return (
        f"{what} is not in this result: the person did not open the one-time page when asked. It still "
        f"answers once, until {until}, at reveal_url: give that link to the person (do not open it yourself); "
        "after that the secret is gone and the credential should be revoked."
    )


_Change = TypeVar("_Change", bound="ChangeResult")


class ChangeResult(BaseModel):
    """What an update or a revoke did; `status` is 'cancelled' for both a decline and a cancel."""

    status: str
    id: str
    #: Why a change was not made ("declined" or "cancelled"); the audit line keeps the difference.
    _outcome: str | None = PrivateAttr(default=None)

    @classmethod
    def not_made(cls: type[_Change], why: str, **fields: Any) -> _Change:
        """The result of a change the person declined or cancelled: nothing changed."""
        result = cls(status="cancelled", **fields)
        result._outcome = why
        return result

    @property
    def outcome(self) -> str:
        return self._outcome or self.status

    @property
    def audit_id(self) -> str:
        return self.id


class Updated(ChangeResult):
    status: Literal["updated", "confirmation_required", "cancelled"]
    kind: CredentialKind
    id: str
    token: Maybe[TokenDetail] = None
    client: Maybe[ClientDetail] = None
    removes: list[str] = Field(default_factory=list, description="What the change takes away.")
    confirmation_code: Maybe[str] = None
    message: Maybe[str] = None
    warnings: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        if self.status == "updated":
            removed = f" Removed: {'; '.join(self.removes)}." if self.removes else ""
            return f"Updated {self.kind} {self.id}.{removed}"
        return self.message or self.status


class Revoked(ChangeResult):
    status: Literal["revoked", "confirmation_required", "cancelled"]
    kind: CredentialKind
    id: str
    name: Maybe[str] = None
    confirmation_code: Maybe[str] = None
    expires_in_seconds: Maybe[int] = None
    message: str

    def summary(self) -> str:
        return self.message


class CredentialDetail(BaseModel):
    """One credential in full; exactly one of token/client is set."""

    kind: CredentialKind
    id: str
    token: Maybe[TokenDetail] = None
    client: Maybe[ClientDetail] = None

    def summary(self) -> str:
        if self.token is not None:
            t = self.token
            name = f" ({t.name})" if t.name else ""
            expiry = (
                "expired" if t.expired else (f"expires {t.expiration_date}" if t.expiration_date else "never expires")
            )
            return f"Token {t.id}{name}: APIs {', '.join(t.apis) or 'none'}, {len(t.grants)} grant(s), {expiry}."
        c = self.client
        assert c is not None
        return f"{c.kind.upper()} client {c.id}" + (f" ({c.title})." if c.title else ".")


class Rotated(BaseModel):
    status: Literal["rotated", "replacement_created", "cancelled"]
    old_id: str
    new: Maybe[TokenCreated] = None
    old_revoked: bool = False
    confirmation_code: Maybe[str] = Field(
        default=None,
        description="Pass to revoke_credential(kind='token', id=old_id, confirm=...) to revoke the old token.",
    )
    message: str

    @property
    def outcome(self) -> str:
        return self.status

    @property
    def audit_id(self) -> str:
        return self.old_id

    @property
    def audit_delivery(self) -> str | None:
        return self.new.delivery if self.new is not None else None

    def summary(self) -> str:
        return self.message


class Identity(BaseModel):
    """Who the server acts as. Never holds a token."""

    profile: str
    source: str
    reason: str
    base_url: str
    tenant_id: Maybe[str] = None
    tenant_domain: Maybe[str] = None
    organization_id: Maybe[str] = None
    organization_name: Maybe[str] = None
    user_email: Maybe[str] = None
    sandbox: bool = False

    def summary(self) -> str:
        org = f", organization {self.organization_name}" if self.organization_name else ""
        user = f", user {self.user_email}" if self.user_email else ""
        where = "the embedded SANDBOX (no CARTO account)" if self.sandbox else self.base_url
        return f"Profile '{self.profile}' ({self.source}) on {where}{org}{user}."


class ProfileRow(BaseModel):
    name: str
    active: bool
    organization_name: Maybe[str] = None
    tenant_id: Maybe[str] = None


class Profiles(BaseModel):
    profiles: list[ProfileRow]
    switching_enabled: bool = Field(description="True when tools accept a `profile` argument (--profiles a,b).")

    def summary(self) -> str:
        names = ", ".join(p.name + (" (active)" if p.active else "") for p in self.profiles)
        switch = "" if self.switching_enabled else " Switching is off: start the server with --profiles to allow it."
        return f"Profiles: {names}.{switch}"


def scanned_text(scanned: dict[str, int]) -> str:
    """'10,000 tokens, 3 SPA clients, 1 M2M client': what an audit read."""
    words = {"token": "token", "spa": "SPA client", "m2m": "M2M client"}
    return ", ".join(f"{n:,} {words.get(k, k)}{'' if n == 1 else 's'}" for k, n in scanned.items())


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class FindingRow(BaseModel):
    """One finding of an audit: the credential, why it is a risk, and the call that would fix it."""

    risk: Literal["critical", "high", "medium", "low"]
    finding: str
    kind: CredentialKind
    id: str
    name: Maybe[str] = None
    reason: str
    suggestion: dict[str, Any] = Field(description="The tool call that would fix it: {tool, arguments}.")
    note: Maybe[str] = Field(default=None, description="What to fill in or check before making that call.")


class AuditReport(BaseModel):
    """Findings about every credential, most risky first; totals count all of them, `findings` at most `limit`."""

    findings: list[FindingRow]
    count: int = Field(description="Findings in this result.")
    total: int = Field(description="Findings in all.")
    totals: dict[str, int] = Field(description="Findings per kind of finding.")
    by_risk: dict[str, int]
    scanned: dict[str, int] = Field(description="Credentials read, per kind.")
    policy: Maybe[str] = Field(default=None, description="The policy file whose rules were checked too.")
    notes: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        read = ", ".join(
            f"{n:,} {k if k == 'token' else k + ' client'}{'s' if n != 1 else ''}" for k, n in self.scanned.items()
        )
        if not self.total:
            return f"Audited {read}: no findings."
        risks = ", ".join(f"{n} {risk}" for risk, n in self.by_risk.items() if n)
        shown = "" if self.count == self.total else f" Showing the {self.count} most risky; raise limit for more."
        return f"Audited {read}: {_plural(self.total, 'finding')} ({risks}).{shown}"
