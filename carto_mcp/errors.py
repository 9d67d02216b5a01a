"""Every error carto-mcp raises on purpose, as one tree at the bottom of the package.

    CartoError                      root: a message safe to show, and an optional fix
    ├── ApiError                    the service answered with an error status
    │   ├── AuthError               401: missing, invalid or expired login
    │   ├── PermissionDenied        403: the login lacks the right or the plan
    │   ├── NotFound                404: no such credential (or endpoint)
    │   ├── ValidationFailed        400/409/422: the service refused the request body
    │   ├── RateLimited             429: too many requests; carries Retry-After
    │   └── ServiceError            5xx: the service failed
    ├── TransportError              timeout, DNS, refused or dropped connection
    │   └── OutcomeUnknown          a create may have happened: the answer was lost
    ├── BadResponse                 a 2xx whose body is not the expected JSON shape
    ├── ProfileError                no usable credentials: file, profile or token problems
    ├── InputError                  arguments, flags or settings that cannot be used
    │   ├── RuleError               an option-table rule refused a value (also a ValueError)
    │   ├── SettingError            how the server was started rules this call out (not its arguments)
    │   └── PolicyError             a policy file that cannot be used (names the line)
    ├── PolicyRefused               the organization's policy refuses this request
    └── InstallError                an MCP client's config file cannot be changed

Every message says what happened and where; `fix`, when known, says what to do next, so
`doctor` and tool errors can show it without parsing the text. None contains a secret:
callers pass masked values only, and `url` never holds a token (token paths are masked);
tool errors are masked once more on the way out, except the ids an error lists as `shown`.
Anything else that escapes is a bug, and is reported as one.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "AuthError",
    "BadResponse",
    "CartoError",
    "InputError",
    "InstallError",
    "NotFound",
    "OutcomeUnknown",
    "PermissionDenied",
    "PolicyError",
    "PolicyRefused",
    "ProfileError",
    "RateLimited",
    "RuleError",
    "ServiceError",
    "SettingError",
    "TransportError",
    "ValidationFailed",
]


class CartoError(Exception):
    """Base of every deliberate carto-mcp error; its text is safe to show to a person or a model."""

    def __init__(
        self,
        message: str,
        *,
        fix: str | None = None,
        method: str | None = None,
        url: str | None = None,
        shown: tuple[str, ...] = (),
    ):
        super().__init__(message)
        self.message = message
        self.fix = fix
        self.method = method
        self.url = url
        #: Values in the text that are ids CARTO confirmed, not secrets: masking leaves them readable.
        self.shown = shown

    def __str__(self) -> str:
        if not self.fix:
            return self.message
        if self.message.endswith((".", "!", "?")):  # a new sentence: the fix starts with a capital
            return f"{self.message} {self.fix[:1].upper()}{self.fix[1:]}"
        return f"{self.message}; {self.fix}"


class ApiError(CartoError):
    """Raised when the CARTO API answers with an error status."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        fix: str | None = None,
        method: str | None = None,
        url: str | None = None,
        request_id: str | None = None,
        shown: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, fix=fix, method=method, url=url, shown=shown)
        self.status_code = status_code
        self.request_id = request_id


class AuthError(ApiError):
    """Raised on 401: the profile's token is missing, invalid or expired."""


class PermissionDenied(ApiError):
    """Raised on 403: the login is valid but may not do this (role, ownership or plan)."""


class NotFound(ApiError):
    """Raised on 404: the credential does not exist, or the endpoint is not served here."""


class ValidationFailed(ApiError):
    """Raised on 400, 409 or 422: the service refused the request; carries its own message."""


class RateLimited(ApiError):
    """Raised on 429 once retries are exhausted; `retry_after` is in seconds when the service said."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        retry_after: float | None = None,
        fix: str | None = None,
        method: str | None = None,
        url: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message, status_code=status_code, fix=fix, method=method, url=url, request_id=request_id)
        self.retry_after = retry_after


class ServiceError(ApiError):
    """Raised on a 5xx once retries are exhausted."""


class TransportError(CartoError):
    """Raised when no HTTP answer arrived: timeout, DNS failure, refused or dropped connection."""


class OutcomeUnknown(TransportError):
    """Raised when a create was sent but its answer was lost: it may or may not have happened."""

    def __init__(
        self,
        message: str,
        *,
        reason: str = "its answer was lost",
        fix: str | None = None,
        method: str | None = None,
        url: str | None = None,
        shown: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message, fix=fix, method=method, url=url, shown=shown)
        #: What happened to the answer ("the connection dropped before the answer", ...).
        self.reason = reason


class BadResponse(CartoError):
    """Raised when a success reply is not JSON or not the shape the contract describes."""


class ProfileError(CartoError):
    """Raised when no usable credentials can be resolved: bad file, unknown profile, missing token."""


class InputError(CartoError):
    """Raised when arguments, flags or settings cannot be used; names the field and the fix."""

    def __init__(
        self, message: str, *, field: str | None = None, fix: str | None = None, shown: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, fix=fix, shown=shown)
        self.field = field


class SettingError(InputError):
    """Raised when how the server was started (a flag, a variable) rules a call out; the fix is in that setting."""


class RuleError(InputError, ValueError):
    """Raised when a value breaks an option-table rule; a ValueError too, so pydantic validators can raise it."""


class PolicyError(InputError):
    """Raised when a policy file cannot be read or breaks its schema; the message names the line.

    `problems` lists each problem on its own (`FILE:LINE: what is wrong`), in line order.
    """

    def __init__(self, message: str, *, problems: tuple[str, ...] = (), fix: str | None = None) -> None:
        super().__init__(message, field="policy", fix=fix)
        self.problems = problems or (message,)


class PolicyRefused(CartoError):
    """Raised when the active policy refuses a request, before anything reaches CARTO.

    `rules` names every rule the request breaks, so an agent can correct all of them at once.
    """

    def __init__(self, message: str, *, rules: tuple[str, ...], fix: str | None = None) -> None:
        super().__init__(message, fix=fix)
        self.rules = rules


class InstallError(CartoError):
    """Raised when an MCP client's config cannot be read or written; nothing was changed."""
