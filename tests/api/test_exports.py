"""The public surface of carto_mcp.api: one sorted __all__, every name importable from the package."""

from __future__ import annotations

import carto_mcp.api
from carto_mcp import errors

EXPECTED = [
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


def test_all_is_pinned_and_sorted() -> None:
    """`carto_mcp.api.__all__` is exactly the pinned list, in sorted order: a change here is a deliberate API change."""
    assert carto_mcp.api.__all__ == EXPECTED
    assert sorted(carto_mcp.api.__all__) == carto_mcp.api.__all__


def test_every_exported_name_is_importable() -> None:
    """Each name in __all__ resolves on the package."""
    for name in carto_mcp.api.__all__:
        assert getattr(carto_mcp.api, name) is not None, name


def test_every_error_derives_from_the_one_root_and_the_client_reexports_its_own() -> None:
    """One tree rooted at CartoError; the API package re-exports every branch a client call can raise."""
    for name in errors.__all__:
        exc = getattr(errors, name)
        assert issubclass(exc, errors.CartoError)
        assert exc.__doc__, f"{name} needs a 'raised when' docstring"
        # Raised by the models, `install`, the policy layer and secret delivery, not by the client:
        if name not in ("RuleError", "InstallError", "PolicyError", "PolicyRefused", "SettingError"):
            assert getattr(carto_mcp.api, name) is exc


def test_the_error_tree_has_the_documented_shape() -> None:
    """ApiError's leaves, TransportError > OutcomeUnknown, and the top-level branches, as errors.py draws them."""
    api = carto_mcp.api
    for leaf in (api.AuthError, api.PermissionDenied, api.NotFound, api.ValidationFailed, api.RateLimited):
        assert leaf.__bases__ == (api.ApiError,)
    assert api.ServiceError.__bases__ == (api.ApiError,)
    assert api.OutcomeUnknown.__bases__ == (api.TransportError,)
    for branch in (api.ApiError, api.TransportError, api.BadResponse, api.ProfileError, api.InputError):
        assert branch.__bases__ == (api.CartoError,)
    assert errors.InstallError.__bases__ == (errors.CartoError,)
    assert errors.RuleError.__bases__ == (errors.InputError, ValueError)  # pydantic validators may raise it
    assert errors.PolicyError.__bases__ == (errors.InputError,)
    assert errors.PolicyRefused.__bases__ == (errors.CartoError,)
