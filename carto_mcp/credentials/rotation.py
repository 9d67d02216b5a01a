"""Rotation: the replacement a token gets, with the same reach and no longer a life.

Rotation is create-then-revoke: the replacement exists (and is delivered) before the old
token goes, so a failure in between never leaves an app without a working token.
"""

from __future__ import annotations

from datetime import timedelta
from typing import cast

from carto_mcp.models.results import utcnow
from carto_mcp.models.rules import format_expiry, parse_timestamp
from carto_mcp.models.tokens import ApiName, TokenCreate
from carto_mcp.models.validation import build
from carto_mcp.models.wire import Token

__all__ = ["replacement", "same_lifetime"]


def same_lifetime(created_at: str | None, expiration_date: str | None) -> str | None:
    """The replacement keeps the old token's lifetime, counted from now; never widened to 'never expires'.

    A token that never expired gets a replacement that never expires; one whose creation time
    is unknown gets a day, so the caller is nudged to pass expiration_date explicitly.
    """
    created, expires = parse_timestamp(created_at), parse_timestamp(expiration_date)
    if expires is None:
        return None
    lifetime = expires - created if created is not None and expires > created else timedelta(days=1)
    return format_expiry(utcnow() + max(lifetime, timedelta(hours=1)))


def replacement(old: Token, *, name: str | None = None, expiration_date: str | None = None) -> TokenCreate:
    """The create request for `old`'s replacement: same grants, APIs and referers; new name and expiry optional."""
    return build(
        TokenCreate,
        grants=[{"connection": g.connection_name, "source": g.source} for g in old.grants],
        apis=cast("list[ApiName]", old.allowed_apis),  # validated by TokenCreate: the wire list is plain str
        referers=old.referers,
        name=name or (f"{old.name}-rotated" if old.name else None),
        expiration_date=expiration_date or same_lifetime(old.created_at, old.expiration_date),
    )
