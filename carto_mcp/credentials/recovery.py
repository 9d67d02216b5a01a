"""When CARTO's answer to a create is lost: find out whether the credential exists before advising.

A create is sent once (never retried blindly), so a lost answer — a dropped connection, a
timeout, a gateway's 502/504 — leaves one question: was it made? Retrying could make a second
one; giving up could leave one that nobody was shown. So the list is read once more and the
request is matched against what was created since it was sent: the same grants, APIs,
referers, name and expiry for a token, the same title and kind for a client. Clock skew
between us and CARTO is allowed for (`SKEW`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import anyio

from carto_mcp import contract
from carto_mcp.api import CartoClient
from carto_mcp.models.kinds import ClientKind
from carto_mcp.models.rules import parse_timestamp
from carto_mcp.models.tokens import TokenCreate
from carto_mcp.models.wire import OAuthClient, Token

__all__ = ["SKEW", "made_since", "matching_clients", "matching_tokens"]

#: How far CARTO's clock may be behind ours and a credential still count as made by this request.
SKEW = timedelta(minutes=2)
#: A create still running behind a gateway that gave up may land a moment later: look twice.
RECHECK_AFTER = 1.0


def made_since(created_at: str | None, since: datetime) -> bool:
    """Created after `since` (less the skew); a credential without a creation time cannot be ruled out."""
    when = parse_timestamp(created_at)
    return when is None or when >= since - SKEW


def _same_token(token: Token, request: TokenCreate) -> bool:
    wire = request.to_wire()
    grants = {(g[contract.GRANT_CONNECTION], g[contract.GRANT_SOURCE]) for g in wire["grants"]}
    if {(g.connection_name, g.source.strip()) for g in token.grants} != grants:
        return False
    if set(token.allowed_apis) != set(wire["allowed_apis"]) or set(token.referers) != set(wire["referers"]):
        return False
    if request.name is not None:
        if token.name != request.name:
            return False
    elif token.name and not token.name.startswith(contract.GENERATED_NAME_PREFIX):
        return False
    wanted = parse_timestamp(request.expiration_date)
    if wanted is None:
        return token.expires_at is None
    return token.expires_at is not None and abs((token.expires_at - wanted).total_seconds()) <= 1


async def matching_tokens(api: CartoClient, request: TokenCreate, since: datetime) -> tuple[list[Token], int]:
    """The caller's tokens that this request would have made (looked for twice), and how many were read."""
    seen = 0
    for attempt in range(2):
        if attempt:
            await anyio.sleep(RECHECK_AFTER)
        found: list[Token] = []
        async with api.walking() as ahead:
            async for page in api.token_pages(ahead):
                seen += len(page)
                found += [t for t in page if made_since(t.created_at, since) and _same_token(t, request)]
        if found:
            break
    return found, seen


async def matching_clients(
    api: CartoClient, kind: ClientKind, title: str, since: datetime
) -> tuple[Sequence[OAuthClient], int]:
    """The OAuth clients of this kind and title made since `since` (looked for twice), and how many were read."""
    seen = 0
    for attempt in range(2):
        if attempt:
            await anyio.sleep(RECHECK_AFTER)
        found: list[OAuthClient] = []
        async with api.walking() as ahead:
            async for page in api.client_pages(ahead, kind):
                seen += len(page)
                found += [c for c in page if c.title == title and made_since(c.created_at, since)]
        if found:
            break
    return found, seen
