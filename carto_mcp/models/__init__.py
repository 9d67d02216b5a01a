"""The option tables as pydantic models, the wire shapes, and the tool results.

Names load on first use (PEP 562): building model classes costs start-up time, and the
server needs none of them to answer `initialize` or `tools/list`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carto_mcp._lazy import lazy_exports

if TYPE_CHECKING:
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

_HOME = {
    "ApiName": "tokens",
    "ClientCreated": "results",
    "ClientDetail": "results",
    "CredentialList": "results",
    "Grant": "tokens",
    "GrantKind": "rules",
    "GrantView": "results",
    "Kind": "results",
    "M2MCreate": "oauth_clients",
    "OAuthClient": "wire",
    "OAuthClientUpdate": "oauth_clients",
    "Revoked": "results",
    "Row": "results",
    "RuleError": "rules",
    "SpaCreate": "oauth_clients",
    "Token": "wire",
    "TokenCreate": "tokens",
    "TokenCreated": "results",
    "TokenDetail": "results",
    "TokenState": "tokens",
    "TokenUpdate": "tokens",
    "Updated": "results",
    "WireGrant": "wire",
    "classify_source": "rules",
    "format_expiry": "rules",
    "parse_expiry": "rules",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), _HOME)
