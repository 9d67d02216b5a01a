"""The option tables as pydantic models, the wire shapes, and the tool results."""

from carto_mcp.models.oauth_clients import M2MCreate, OAuthClientUpdate, SpaCreate
from carto_mcp.models.results import (
    ClientCreated,
    ClientDetail,
    CredentialList,
    GrantView,
    Kind,
    Revoked,
    Row,
    TokenCreated,
    TokenDetail,
    Updated,
)
from carto_mcp.models.rules import GrantKind, RuleError, classify_source, format_expiry, parse_expiry
from carto_mcp.models.tokens import ApiName, Grant, TokenCreate, TokenState, TokenUpdate
from carto_mcp.models.wire import OAuthClient, Token, WireGrant

__all__ = [
    "ApiName",
    "ClientCreated",
    "ClientDetail",
    "CredentialList",
    "Grant",
    "GrantKind",
    "GrantView",
    "Kind",
    "M2MCreate",
    "OAuthClient",
    "OAuthClientUpdate",
    "Revoked",
    "Row",
    "RuleError",
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
