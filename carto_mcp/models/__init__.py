"""The option tables as pydantic models, the wire shapes, and the tool results."""

from __future__ import annotations

from carto_mcp.models.kinds import ClientKind, CredentialKind, ListKind
from carto_mcp.models.oauth_clients import M2MCreate, OAuthClientUpdate, SpaCreate
from carto_mcp.models.results import (
    ClientCreated,
    ClientDetail,
    CredentialList,
    GrantView,
    Revoked,
    Row,
    TokenCreated,
    TokenDetail,
    Updated,
)
from carto_mcp.models.rules import GrantKind, classify_source, format_expiry, parse_expiry
from carto_mcp.models.tokens import ApiName, Grant, TokenCreate, TokenState, TokenUpdate
from carto_mcp.models.wire import OAuthClient, Token, WireGrant

__all__ = [
    "ApiName",
    "ClientCreated",
    "ClientDetail",
    "ClientKind",
    "CredentialKind",
    "CredentialList",
    "Grant",
    "GrantKind",
    "GrantView",
    "ListKind",
    "M2MCreate",
    "OAuthClient",
    "OAuthClientUpdate",
    "Revoked",
    "Row",
    "SpaCreate",
    "Token",
    "TokenCreate",
    "TokenCreated",
    "TokenDetail",
    "TokenState",
    "TokenUpdate",
    "Updated",
    "WireGrant",
    "classify_source",
    "format_expiry",
    "parse_expiry",
]
