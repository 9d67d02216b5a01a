"""How a raw setting becomes a value, whichever source it came from.

A flag, a variable and a file field are held to the same rules, so a value that works in one
place works in every other: blank means unset, a token must be sendable as a bearer, a tenant
id must be something a host name can be built from. `origin` names where the value came from
(`--token`, `` `profiles.x.token` in <path>``), so the error can point at it; the value itself
is never quoted, as it may be a secret — except a placeholder, which is a reference, not a secret.
"""

from __future__ import annotations

import re

from carto_mcp.errors import ProfileError
from carto_mcp.masking import strip_bearer

__all__ = ["check_tenant", "clean", "clean_token", "refuse_placeholder"]

_TENANT_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,126}[A-Za-z0-9])?$")
#: A reference an MCP client was meant to fill in: `${input:id}`, `${env:NAME}`, `${NAME}` (VS Code,
#: Cursor, Claude Code), `$NAME` (Gemini CLI, shells) or `$env:NAME` (PowerShell).
_PLACEHOLDER_RE = re.compile(r"\$\{[^{}]*\}|\$(?:env:)?[A-Za-z_][A-Za-z0-9_]*")
_PLACEHOLDER_FIX = (
    "VS Code fills `${input:…}` from the `inputs` of its own mcp.json; a client without such prompts (mcporter, "
    "for one) passes it on as written. A `$NAME` or `${env:NAME}` reference is filled only by a client that "
    "expands it, and only when NAME is set where that client runs. Put the value itself in the client's config "
    "or environment, or remove the entry to use your `carto auth login` profile"
)


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
    refuse_placeholder(token, origin, what="the token")
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ProfileError(
            f"the token in {origin} contains spaces, line breaks or control characters, so it cannot be sent "
            "as a bearer token",
            fix="copy it again without them",
        )
    return token


def refuse_placeholder(value: str, origin: str, *, what: str) -> None:
    """Refuse a `${input:…}` / `$NAME` the client did not substitute, before it is sent anywhere as a credential.

    Taken as a token it would reach CARTO as a bearer and come back as a puzzling 401; the
    placeholder itself is quoted, since it says which prompt or variable was not filled in.
    """
    if _PLACEHOLDER_RE.fullmatch(value):
        raise ProfileError(
            f"{what} in {origin} is `{value[:80]}`, a placeholder the MCP client did not substitute, not a credential",
            fix=_PLACEHOLDER_FIX,
        )


def check_tenant(tenant_id: str, origin: str, fix: str) -> None:
    """Refuse a tenant id that cannot become `https://{tenant_id}.api.carto.com`."""
    if not _TENANT_RE.match(tenant_id):
        raise ProfileError(
            f"{origin} is not a valid tenant id (letters, digits, dots and dashes, such as gcp-us-east1)", fix=fix
        )
