"""The values the resolver takes and returns, and the names it reads from the environment.

Everything here is a plain frozen value: no file is read and no environment is consulted.
The reprs are written by hand because these values carry tokens and client secrets, and a
repr ends up in logs and tracebacks; they show masks (`eyJh…x9Qk`) only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from carto_mcp.masking import jwt_payload, mask

__all__ = [
    "CLIENT_ID_VARS",
    "CLIENT_SECRET_VARS",
    "ENV_API_TOKEN",
    "ENV_BASE_URL",
    "ENV_CLIENT_ID",
    "ENV_CLIENT_SECRET",
    "ENV_GEMINI_CLI",
    "ENV_M2M_CLIENT_ID",
    "ENV_M2M_CLIENT_SECRET",
    "ENV_PROFILE",
    "RESOLVER_ENV_VARS",
    "ProfileInputs",
    "ProfileSource",
    "ResolvedProfile",
    "SourceReport",
    "sandbox_profile",
]

ProfileSource = Literal["flag", "env", "client_credentials", "credentials_file", "legacy_file", "sandbox"]

#: Environment variables read by the resolver (the first three are the CARTO CLI's own).
ENV_API_TOKEN = "CARTO_API_TOKEN"
ENV_PROFILE = "CARTO_PROFILE"
#: M2M client credentials: the CARTO CLI's names (read first), then the older names carto-mcp read.
ENV_M2M_CLIENT_ID = "CARTO_M2M_CLIENT_ID"
ENV_M2M_CLIENT_SECRET = "CARTO_M2M_CLIENT_SECRET"
ENV_CLIENT_ID = "CARTO_CLIENT_ID"
ENV_CLIENT_SECRET = "CARTO_CLIENT_SECRET"
#: Where a client id and a client secret are looked for, in order.
CLIENT_ID_VARS = (ENV_M2M_CLIENT_ID, ENV_CLIENT_ID)
CLIENT_SECRET_VARS = (ENV_M2M_CLIENT_SECRET, ENV_CLIENT_SECRET)
ENV_BASE_URL = "CARTO_MCP_BASE_URL"
#: All of them: a change to any one must invalidate a cached resolution.
RESOLVER_ENV_VARS = (ENV_API_TOKEN, ENV_PROFILE, *CLIENT_ID_VARS, *CLIENT_SECRET_VARS, ENV_BASE_URL)
#: Set to "1" by Gemini CLI in the servers it starts; only the wording of errors depends on it.
ENV_GEMINI_CLI = "GEMINI_CLI"


@dataclass(frozen=True, repr=False)
class ProfileInputs:
    """What the command line passes in; every field is optional (empty strings count as unset)."""

    token: str | None = None
    profile: str | None = None
    base_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None

    def __repr__(self) -> str:
        return (
            f"ProfileInputs(token={_masked_or_none(self.token)}, profile={self.profile!r}, "
            f"base_url={self.base_url!r}, client_id={self.client_id!r}, "
            f"client_secret={_masked_or_none(self.client_secret)})"
        )


@dataclass(frozen=True, repr=False)
class ResolvedProfile:
    """The credentials one server instance uses, and why; its repr never shows a secret."""

    name: str
    source: ProfileSource
    reason: str
    token: str | None
    base_url: str
    tenant_id: str | None = None
    tenant_domain: str | None = None
    organization_id: str | None = None
    organization_name: str | None = None
    user_email: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    path: Path | None = None
    warnings: tuple[str, ...] = ()
    #: Where the base URL came from ("--base-url", "CARTO_MCP_BASE_URL", "tenant_id of profile 'x'", …).
    base_url_origin: str | None = None

    @property
    def masked_token(self) -> str:
        """The token as `eyJh…x9Qk` ("" when there is none yet, as for client credentials)."""
        return mask(self.token)

    def token_expiry(self) -> datetime | None:
        """When the token expires, from its unverified JWT `exp` claim; None when unreadable."""
        if not self.token:
            return None
        payload = jwt_payload(self.token)
        exp = payload.get("exp") if payload else None
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return None
        try:
            return datetime.fromtimestamp(exp, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None

    def public(self) -> dict[str, Any]:
        """Everything safe to show a person or a model: secrets appear masked or not at all."""
        expiry = self.token_expiry()
        return {
            "name": self.name,
            "source": self.source,
            "reason": self.reason,
            "base_url": self.base_url,
            "base_url_origin": self.base_url_origin,
            "tenant_id": self.tenant_id,
            "tenant_domain": self.tenant_domain,
            "organization_id": self.organization_id,
            "organization_name": self.organization_name,
            "user_email": self.user_email,
            "masked_token": self.masked_token or None,
            "token_expires_at": expiry.isoformat() if expiry else None,
            "client_id": self.client_id,
            "has_client_secret": bool(self.client_secret),
            "path": str(self.path) if self.path else None,
            "warnings": list(self.warnings),
        }

    def __repr__(self) -> str:
        return (
            f"ResolvedProfile(name={self.name!r}, source={self.source!r}, base_url={self.base_url!r}, "
            f"token={_masked_or_none(self.token)}, client_id={self.client_id!r}, "
            f"client_secret={_masked_or_none(self.client_secret)}, path={self.path!r}, "
            f"warnings={len(self.warnings)})"
        )


@dataclass(frozen=True)
class SourceReport:
    """One credentials source as `carto-mcp doctor` shows it; `detail` never holds a secret."""

    source: str
    present: bool
    used: bool
    detail: str


def sandbox_profile(base_url: str) -> ResolvedProfile:
    """The fixed profile of the embedded sandbox API (no CARTO account involved)."""
    return ResolvedProfile(
        name="sandbox",
        source="sandbox",
        reason="--sandbox: the embedded sandbox API (no CARTO account)",
        token="sandbox-token",
        base_url=base_url.strip().rstrip("/"),
        base_url_origin="--sandbox",
    )


def _masked_or_none(value: str | None) -> str:
    return repr(mask(value)) if value else "None"
