"""Secret handling: masks, short ids and the unverified JWT payload of a token.

Token values and client secrets must never reach a log line, an error text or a non-create
result. Everything that shows a secret to a person goes through `mask`; everything that
needs to name a token without showing it goes through `short_id`.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
from typing import Any

ELLIPSIS = "…"


def mask(value: str | None) -> str:
    """Show the first and last four characters of a secret (`eyJh…x9Qk`), or stars when short."""
    if not value:
        return ""
    if len(value) < 16:
        return "****"
    return f"{value[:4]}{ELLIPSIS}{value[-4:]}"


def strip_bearer(token: str) -> str:
    """Accept a token with or without the `Bearer ` prefix, as the CARTO CLI does."""
    token = token.strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    return token


def jwt_payload(token: str) -> dict[str, Any] | None:
    """The unverified payload of a JWT, or None when the value is not a readable JWT.

    Used for display ids and expiry hints, and by the sandbox only after checking the signature:
    never on its own to decide access.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    segment = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        payload = json.loads(base64.urlsafe_b64decode(segment.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    return payload if isinstance(payload, dict) else None


@functools.lru_cache(maxsize=65536)
def short_id(token: str) -> str:
    """A short stable id for a token: its JWT `jti`, else a hash prefix of the value.

    The hash form is prefixed with `h_` so it can never collide with a `jti`. Memoized: a list
    call names every token of the account, and the same tokens come back on every call.
    """
    payload = jwt_payload(token)
    jti = payload.get("jti") if payload else None
    if isinstance(jti, str) and 4 <= len(jti) <= 64 and jti.isprintable():
        return jti
    return "h_" + hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


def looks_like_token(value: str) -> bool:
    """True for a full token value (a JWT), as opposed to a short id."""
    return value.count(".") == 2 and len(value) > 40
