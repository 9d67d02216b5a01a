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
import math
import re
from collections import Counter
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


#: A JWT, or what is left of one cut short: its header always encodes `{"`, which is `eyJ`.
_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{10,}(?:\.[A-Za-z0-9_-]*){0,2}")
#: A long unbroken run of secret-alphabet characters (an M2M secret, an API key).
_LONG_RUN = re.compile(r"[A-Za-z0-9_+=-]{32,}")


def looks_secret(value: str) -> bool:
    """A value that may be a secret: JWT-shaped, or 32+ characters of high entropy with digits in it."""
    if _JWT_LIKE.fullmatch(value):
        return True
    if len(value) < 32 or not _LONG_RUN.fullmatch(value) or sum(c.isdigit() for c in value) < 3:
        return False
    counts = Counter(value)
    entropy = -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())
    return entropy >= 3.0


#: OAuth client ids are 32 characters (Auth0's); a client secret is longer (64 in Auth0 and the sandbox).
_MAX_CLIENT_ID = 40


def looks_like_client_secret(value: str) -> bool:
    """A value passed as a client id that is far more likely a client secret: never put it in a URL."""
    return len(value) > _MAX_CLIENT_ID and looks_secret(value)


#: Where a one-time reveal page is served. What follows it in a URL opens the page (and the secret
#: on it) once, so a log line never shows it, even for a request that was refused.
REVEAL_PREFIX = "/reveal/"
_REVEAL_ID = re.compile(re.escape(REVEAL_PREFIX) + r"[A-Za-z0-9_-]+")


def hide_reveal_ids(text: str) -> str:
    """Text with the id of every reveal page path masked (`/reveal/****`)."""
    return _REVEAL_ID.sub(REVEAL_PREFIX + "****", text) if REVEAL_PREFIX in text else text


def redact(text: str, *, tokens_only: bool = False, keep: tuple[str, ...] = ()) -> str:
    """Text with every part that looks like a secret masked (`eyJh…x9Qk`): for anything that echoes input.

    `tokens_only` masks JWT-shaped values alone: for log lines, which name client ids (32
    random characters, like a secret's) on purpose. `keep` lists values known not to be
    secrets (ids CARTO confirmed), left as they are.
    """

    def masked(value: str) -> str:
        return value if value in keep else mask(value)

    text = _JWT_LIKE.sub(lambda m: masked(m.group(0)), text)
    if tokens_only:
        return text
    return _LONG_RUN.sub(lambda m: masked(m.group(0)) if looks_secret(m.group(0)) else m.group(0), text)
