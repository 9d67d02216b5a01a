"""SPA and M2M OAuth client option tables (`carto credentials create spa|m2m`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from carto_mcp import contract
from carto_mcp.errors import RuleError
from carto_mcp.models import rules

Title = Annotated[str, Field(min_length=1, max_length=256, description="Application title (required).")]


def _url_list(description: str) -> Any:
    return Field(default=None, max_length=100, description=description)


UrlList = list[Annotated[str, Field(min_length=1, max_length=2048)]]

LOGIN_URI = "Login initiation URI (e.g. 'https://myapp.com/login')."
CALLBACKS = "OAuth callback URLs (e.g. ['https://myapp.com/callback'])."
LOGOUT_URLS = "Logout redirect URLs (e.g. ['https://myapp.com/logout'])."
WEB_ORIGINS = "Web origin URLs (e.g. ['https://myapp.com'])."
ALLOWED_ORIGINS = "Allowed CORS origins (e.g. ['https://myapp.com'])."
NOTHING_TO_CHANGE = "nothing to change: give title, login_uri, callbacks, logout_urls, web_origins or allowed_origins"


def _check_urls(values: list[str] | None, what: str) -> list[str] | None:
    if values is None:
        return None
    return list(dict.fromkeys(rules.check_url(v, what=what) for v in values))


class _SpaFields(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login_uri: Annotated[str, Field(min_length=1, max_length=2048, description=LOGIN_URI)] | None = None
    callbacks: UrlList | None = _url_list(CALLBACKS)
    logout_urls: UrlList | None = _url_list(LOGOUT_URLS)
    web_origins: UrlList | None = _url_list(WEB_ORIGINS)
    allowed_origins: UrlList | None = _url_list(ALLOWED_ORIGINS)

    @field_validator("login_uri")
    @classmethod
    def _login(cls, value: str | None) -> str | None:
        return None if value is None else rules.check_url(value, what="login_uri")

    @field_validator("callbacks", "logout_urls", "web_origins", "allowed_origins")
    @classmethod
    def _urls(cls, value: list[str] | None, info: Any) -> list[str] | None:
        return _check_urls(value, info.field_name)


class SpaCreate(_SpaFields):
    """`carto credentials create spa`: a title plus the browser-facing URLs."""

    title: Title

    def to_wire(self) -> dict[str, Any]:
        fields = self.model_dump(exclude_none=True)
        return {contract.OAUTH_APP_TYPE: "spa", **contract.oauth_to_wire(fields)}


class M2MCreate(BaseModel):
    """`carto credentials create m2m`: only a title."""

    model_config = ConfigDict(extra="forbid")

    title: Title

    def to_wire(self) -> dict[str, Any]:
        return {contract.OAUTH_APP_TYPE: "m2m", **contract.oauth_to_wire({"title": self.title})}


class OAuthClientUpdate(_SpaFields):
    """`carto credentials update spa|m2m`: any subset of fields; M2M clients only have a title."""

    title: Title | None = None

    @model_validator(mode="after")
    def _nonempty(self) -> OAuthClientUpdate:
        if not self.model_dump(exclude_none=True):
            raise RuleError(NOTHING_TO_CHANGE)
        return self

    def check_kind(self, kind: str) -> None:
        if kind == "m2m":
            extra = sorted(k for k in self.model_dump(exclude_none=True) if k != "title")
            if extra:
                raise RuleError(f"an M2M client has only a title; {', '.join(extra)} apply to SPA clients only")

    def to_wire(self) -> dict[str, Any]:
        return contract.oauth_to_wire(self.model_dump(exclude_none=True))

    def changes(self, current: dict[str, Any]) -> dict[str, Any]:
        """The wire body of only the fields that differ from the client as it is now.

        A confirmation code is bound to this body, so once the change is made the same code no
        longer matches anything: it cannot be replayed, on this replica or another.
        """
        wanted = self.model_dump(exclude_none=True)
        return contract.oauth_to_wire({k: v for k, v in wanted.items() if current.get(k) != v})

    def losses(self, current: dict[str, list[str] | str | None]) -> list[str]:
        """URLs a list replacement would drop (an update that removes something needs confirmation)."""
        lost: list[str] = []
        for field in ("callbacks", "logout_urls", "web_origins", "allowed_origins"):
            new = getattr(self, field)
            old = current.get(field) or []
            if new is not None and isinstance(old, list):
                lost += [f"{field[:-1] if field.endswith('s') else field} {u}" for u in old if u not in new]
        return lost
