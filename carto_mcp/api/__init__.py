"""The async CARTO API client and its typed errors. Import from here, not from submodules."""

from __future__ import annotations

from carto_mcp.api._http import RetryPolicy
from carto_mcp.api.auth import BearerSource, ClientCredentialsBearer, FileBearer, StaticBearer
from carto_mcp.api.client import CartoClient, TokenIndex
from carto_mcp.errors import (
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
