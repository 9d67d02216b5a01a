"""The API client's errors: the branch of `carto_mcp.errors` that HTTP calls raise.

Re-exported here so callers of the client import its errors from where they import the client.
"""

from __future__ import annotations

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
    "CartoError",
    "InputError",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "ProfileError",
    "RateLimited",
    "ServiceError",
    "TransportError",
    "ValidationFailed",
]
