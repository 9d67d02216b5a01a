"""What the tools return: compact rows, full details and create results.

Secrets are masked everywhere except the create results (`TokenCreated.token`,
`M2MCreated.client_secret`), which show them exactly once — or not at all when they were
written to a file.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

from carto_mcp.masking import mask
from carto_mcp.models.wire import OAuthClient, Token

Kind = Literal["token", "spa", "m2m"]


class GrantView(BaseModel):
    connection: str
    source: str
    kind: str


class TokenDetail(BaseModel):
    """A token's full detail, with the token value masked."""

    kind: Literal["token"] = "token"
    id: str = Field(description="Short stable id (the token's jti); pass it to get/update/revoke.")
    name: str | None = None
    token_masked: str
    apis: list[str]
    grants: list[GrantView]
    referers: list[str]
    expiration_date: str | None = Field(description="ISO 8601 UTC; null means the token never expires.")
    expired: bool
    created_at: str | None = None

    @classmethod
    def of(cls, token: Token, now: datetime | None = None) -> TokenDetail:
        return cls(
            id=token.id,
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

    kind: Literal["spa", "m2m"]
    id: str = Field(description="The OAuth client id.")
    title: str | None = None
    login_uri: str | None = None
    callbacks: list[str] = Field(default_factory=list)
    logout_urls: list[str] = Field(default_factory=list)
    web_origins: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)
    client_secret_masked: str | None = None
    created_at: str | None = None

    @classmethod
    def of(cls, client: OAuthClient, kind: Literal["spa", "m2m"]) -> ClientDetail:
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

    kind: Kind
    id: str
    name: str | None = None
    apis: list[str] | None = None
    grants: int | None = None
    expires: str | None = None
    expired: bool | None = None

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
    def of_client(cls, client: OAuthClient, kind: Literal["spa", "m2m"]) -> Row:
        return cls(kind=kind, id=client.client_id, name=client.title)


class CredentialList(BaseModel):
    rows: list[Row]
    count: int = Field(description="Rows in this page.")
    next_cursor: str | None = Field(default=None, description="Pass as cursor to get the next page; null at the end.")
    warnings: list[str] = Field(default_factory=list)


class TokenCreated(BaseModel):
    """A new token. `token` is the only place the full value is ever shown (null when written to a file)."""

    status: Literal["created", "dry_run"] = "created"
    id: str | None = None
    token: str | None = Field(default=None, description="The full token value, shown once. Store it now.")
    secret_file: str | None = None
    secret_variables: list[str] = Field(default_factory=list)
    detail: TokenDetail | None = None
    request: dict[str, Any] | None = Field(default=None, description="dry_run only: the normalized request body.")
    warnings: list[str] = Field(default_factory=list)


class ClientCreated(BaseModel):
    """A new OAuth client. For M2M, `client_secret` is shown once (null when written to a file)."""

    status: Literal["created"] = "created"
    id: str
    client_secret: str | None = Field(default=None, description="M2M only: the client secret, shown once.")
    secret_file: str | None = None
    secret_variables: list[str] = Field(default_factory=list)
    detail: ClientDetail
    warnings: list[str] = Field(default_factory=list)


class Updated(BaseModel):
    status: Literal["updated", "confirmation_required", "cancelled"]
    kind: Kind
    id: str
    token: TokenDetail | None = None
    client: ClientDetail | None = None
    removes: list[str] = Field(default_factory=list, description="What the change takes away.")
    confirmation_code: str | None = None
    message: str | None = None
    warnings: list[str] = Field(default_factory=list)


class Revoked(BaseModel):
    status: Literal["revoked", "confirmation_required", "cancelled"]
    kind: Kind
    id: str
    name: str | None = None
    confirmation_code: str | None = None
    expires_in_seconds: int | None = None
    message: str


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
