"""The async CARTO API client and its typed errors. Import from here, not from submodules.

Names load on first use (PEP 562), so importing the errors does not pull in the HTTP client
and the models: start-up only pays for what it touches.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from carto_mcp._lazy import lazy_exports

if TYPE_CHECKING:
    from carto_mcp.api._http import RetryPolicy
    from carto_mcp.api.auth import BearerSource, ClientCredentialsBearer, FileBearer, StaticBearer
    from carto_mcp.api.client import CartoClient, ClientKind, TokenIndex
    from carto_mcp.api.errors import (
        ApiError,
        AuthError,
        BadResponse,
        CartoError,
        InputError,
        NotFound,
        OutcomeUnknown,
        PermissionDenied,
        ProfileError,
        RateLimited,
        ServiceError,
        TransportError,
        ValidationFailed,
    )

__all__ = [
    "ApiError",
    "AuthError",
    "BadResponse",
    "BearerSource",
    "CartoClient",
    "CartoError",
    "ClientCredentialsBearer",
    "ClientKind",
    "FileBearer",
    "InputError",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "ProfileError",
    "RateLimited",
    "RetryPolicy",
    "ServiceError",
    "StaticBearer",
    "TokenIndex",
    "TransportError",
    "ValidationFailed",
]

_HOME = {
    "RetryPolicy": "_http",
    "BearerSource": "auth",
    "ClientCredentialsBearer": "auth",
    "FileBearer": "auth",
    "StaticBearer": "auth",
    "CartoClient": "client",
    "ClientKind": "client",
    "TokenIndex": "client",
}


__getattr__, __dir__ = lazy_exports(__name__, globals(), {name: _HOME.get(name, "errors") for name in __all__})
