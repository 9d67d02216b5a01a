"""What the CARTO API returns, read leniently: unknown fields are kept, odd values tolerated.

These models sit between the HTTP client and the result models. They hold secrets (the token
value, an M2M client secret), so their repr masks them.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from functools import cached_property
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)

from carto_mcp import contract
from carto_mcp.masking import mask, short_id
from carto_mcp.models.rules import classify_source, parse_timestamp

#: A token object's own id: short, no dots (so never a JWT), nothing that needs quoting.
_ID_SHAPE = re.compile(r"[A-Za-z0-9_:-]{1,64}")


def _str_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [str(v) for v in value if v is not None]
    return []


def _leniently(
    data: Any, handler: ValidatorFunctionWrapHandler, lists: tuple[str, ...], objects: tuple[str, ...] = ()
) -> Any:
    """Validate `data` as it is; only if that fails, again with its odd list fields read leniently.

    The service's objects are nearly always well formed, and a 10,000-token walk validates
    10,000 of them: the lenient reading (a string for a list, null, junk items) costs Python
    work per field, so it is paid only by the objects that need it.
    """
    try:
        return handler(data)
    except ValidationError:
        if not isinstance(data, dict):
            raise
        fixed = dict(data)
        for name in lists:
            if name in fixed:
                fixed[name] = _str_list(fixed[name])
        for name in objects:
            if name in fixed:
                value = fixed[name]
                fixed[name] = [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []
        return handler(fixed)


class WireGrant(BaseModel):
    model_config = ConfigDict(extra="allow")

    connection_name: str = ""
    source: str = ""

    @property
    def kind(self) -> str:
        return classify_source(self.source) if self.source else "table"


class Token(BaseModel):
    """A token object (contract: A): token, name, grants, allowed_apis, referers, expiration_date, created_at.

    It may carry an id of its own (`id`, `tok_…`, as the CARTO CLI prints it): when it does,
    that is the id shown; the JWT's `jti` is accepted as well, so ids seen before keep working.
    """

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    token: str
    own_id: str | None = Field(default=None, alias=contract.TOKEN_ID)
    name: str | None = None
    grants: list[WireGrant] = Field(default_factory=list)
    allowed_apis: list[str] = Field(default_factory=list)
    referers: list[str] = Field(default_factory=list)
    expiration_date: str | None = None
    created_at: str | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _lenient(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _leniently(data, handler, ("allowed_apis", "referers"), ("grants",))

    @field_validator("own_id", mode="before")
    @classmethod
    def _own_id(cls, value: Any) -> str | None:
        """Only a short printable id counts: anything else (a JWT by mistake, say) is not shown as an id."""
        return value if isinstance(value, str) and _ID_SHAPE.fullmatch(value) else None

    @cached_property
    def jti(self) -> str:
        """The id taken from the token value itself (its JWT `jti`, else a hash prefix)."""
        return short_id(self.token)

    @cached_property
    def id(self) -> str:
        """The id shown: the object's own, else the jti. Computed once: a 10,000-token listing reads it often."""
        return self.own_id or self.jti

    @property
    def ids(self) -> tuple[str, ...]:
        """Every id this token answers to."""
        return (self.id,) if self.id == self.jti else (self.id, self.jti)

    @property
    def masked(self) -> str:
        return mask(self.token)

    @cached_property
    def expires_at(self) -> datetime | None:
        return parse_timestamp(self.expiration_date)

    def expired(self, now: datetime | None = None) -> bool:
        when = self.expires_at
        return when is not None and when <= (now or datetime.now(timezone.utc))

    def __repr__(self) -> str:
        return f"Token(id={self.id!r}, name={self.name!r}, token={self.masked!r})"

    __str__ = __repr__


class OAuthClient(BaseModel):
    """An SPA or M2M OAuth client in CLI field names (contract: A, mapped from Auth0-style wire names)."""

    model_config = ConfigDict(extra="allow")

    client_id: str
    title: str | None = None
    app_type: str | None = None
    login_uri: str | None = None
    callbacks: list[str] = Field(default_factory=list)
    logout_urls: list[str] = Field(default_factory=list)
    web_origins: list[str] = Field(default_factory=list)
    allowed_origins: list[str] = Field(default_factory=list)
    client_secret: str | None = None
    created_at: str | None = None

    @model_validator(mode="wrap")
    @classmethod
    def _lenient(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        return _leniently(data, handler, ("callbacks", "logout_urls", "web_origins", "allowed_origins"))

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> OAuthClient:
        return cls.model_validate(contract.oauth_from_wire(body))

    def __repr__(self) -> str:
        secret = mask(self.client_secret) if self.client_secret else None
        return f"OAuthClient(client_id={self.client_id!r}, title={self.title!r}, client_secret={secret!r})"

    __str__ = __repr__
