"""How a raw setting becomes a value, whichever source it came from.

A flag, a variable and a file field are held to the same rules, so a value that works in one
place works in every other: blank means unset, a token must be sendable as a bearer, a tenant
id must be something a host name can be built from. `origin` names where the value came from
(`--token`, `` `profiles.x.token` in <path>``), so the error can point at it; the value itself
is never quoted, as it may be a secret.
"""

from __future__ import annotations

import re

from carto_mcp.errors import ProfileError
from carto_mcp.masking import strip_bearer

__all__ = ["check_tenant", "clean", "clean_token"]

_TENANT_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,126}[A-Za-z0-9])?$")


def clean(value: str | None) -> str | None:
    """A stripped string, or None when unset or blank."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def clean_token(value: str | None, origin: str) -> str | None:
    """The bare token (no `Bearer ` prefix), None when blank; refuse values that cannot be a bearer."""
    if value is None or not value.strip():
        return None
    token = strip_bearer(value)
    if not token:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ProfileError(
            f"the token in {origin} contains spaces, line breaks or control characters, so it cannot be sent "
            "as a bearer token",
            fix="copy it again without them",
        )
    return token


def check_tenant(tenant_id: str, origin: str, fix: str) -> None:
    """Refuse a tenant id that cannot become `https://{tenant_id}.api.carto.com`."""
    if not _TENANT_RE.match(tenant_id):
        raise ProfileError(
            f"{origin} is not a valid tenant id (letters, digits, dots and dashes, such as gcp-us-east1)", fix=fix
        )
