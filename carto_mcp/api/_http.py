"""The one boundary where httpx2 exceptions and error statuses become carto errors.

Also the retry policy: only idempotent requests (GET, DELETE) are retried, on 502/503/504
and transport failures, with jittered backoff, honouring Retry-After up to a cap, inside a
total deadline. A POST is sent once; if its answer is lost the caller is told the outcome is
unknown instead of being retried blindly.
"""

from __future__ import annotations

import json
import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import parse_qsl

import httpx2 as httpx

from carto_mcp import contract, errors
from carto_mcp.masking import mask, redact

logger = logging.getLogger("carto_mcp.api")

IDEMPOTENT = frozenset({"GET", "DELETE", "HEAD", "OPTIONS"})
RETRY_STATUSES = frozenset({502, 503, 504})
#: Statuses a gateway sends when it lost CARTO's answer: the request may have been carried out.
GATEWAY_LOST = frozenset({502, 504})
HELP = "Run `carto-mcp doctor` to check the profile and connectivity."


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults keep a failing call under ~30 s in total."""

    attempts: int = 3
    backoff: float = 0.25
    max_backoff: float = 4.0
    retry_after_cap: float = 10.0
    deadline: float = 30.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.retry_after_cap)
        base = min(self.backoff * 2.0 ** (attempt - 1), self.max_backoff)
        return base / 2 + random.uniform(0, base / 2)


#: Body fields that hold a secret, in JSON and in form bodies alike.
SECRET_FIELDS = frozenset({"token", "client_secret", "access_token", "refresh_token", "password"})
#: A secret shorter than this is masked only where it stands whole (a path segment), never as a substring.
_MIN_SUBSTRING = 8


def safe_url(url: httpx.URL | str, secrets: tuple[str, ...] = ()) -> str:
    """The URL with every secret path segment masked (token paths carry the token itself)."""
    head, sep, query = str(url).partition("?")
    path = "/".join(mask(seg) if seg and seg in secrets else seg for seg in head.split("/"))
    return safe_text(path + sep + query, secrets)


def safe_text(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Text with each known secret masked where it appears, and anything JWT-shaped.

    A secret too short to tell apart from ordinary text (a one-letter `--token`) is masked
    only where it stands whole, in a URL path segment, never as a substring.
    """
    for secret in secrets:
        if len(secret) >= _MIN_SUBSTRING:
            text = text.replace(secret, mask(secret))
    return redact(text, tokens_only=True)


def safe_body(request: httpx.Request, secrets: tuple[str, ...]) -> str:
    """A request body for --debug: secret fields masked by name (JSON or form), then any secret left masked."""
    raw = request.content.decode("utf-8", "replace")[:4000]
    ctype = request.headers.get("content-type", "")
    if "application/x-www-form-urlencoded" in ctype:
        pairs = [(k, mask(v) if k in SECRET_FIELDS else v) for k, v in parse_qsl(raw, keep_blank_values=True)]
        return safe_text("&".join(f"{k}={v}" for k, v in pairs), secrets)
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        return safe_text(raw[:2000], secrets)
    if isinstance(body, dict):
        body = {k: mask(v) if k in SECRET_FIELDS and isinstance(v, str) else v for k, v in body.items()}
    return safe_text(json.dumps(body, ensure_ascii=False, separators=(",", ":"))[:2000], secrets)


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        return max(parsedate_to_datetime(value).timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


def read_json(response: httpx.Response, secrets: tuple[str, ...] = ()) -> Any:
    """Parse a body as JSON, or raise BadResponse naming the content type it really had."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        ctype = response.headers.get("content-type", "unknown type")
        raise errors.BadResponse(
            f"CARTO answered {response.status_code} with a body that is not JSON ({ctype}) at "
            f"{response.request.method} {safe_url(response.request.url, secrets)}. A proxy or the wrong --base-url "
            f"may be in the way. {HELP}"
        ) from None


#: For a 401: where the rejected credentials came from, and what renews them.
LOGIN_FIXES = {
    "flag": ("--token", "pass a valid --token"),
    "env": ("CARTO_API_TOKEN", "set a valid CARTO_API_TOKEN (or unset it to use your `carto auth login` profile)"),
    "client_credentials": (
        "the M2M client credentials",
        "check CARTO_M2M_CLIENT_ID / CARTO_M2M_CLIENT_SECRET (or CARTO_CLIENT_ID / CARTO_CLIENT_SECRET, or "
        "--client-id / --client-secret-file)",
    ),
    "legacy_file": ("~/.carto/config.json", "run `carto auth login` to replace the legacy config"),
}


def raise_for_status(
    response: httpx.Response,
    *,
    profile: str,
    secrets: tuple[str, ...] = (),
    what: str = "request",
    source: str | None = None,
) -> None:
    """Turn an error status into the most specific carto error, in words a person can act on."""
    status = response.status_code
    if status < 400:
        return
    method = response.request.method
    url = safe_url(response.request.url, secrets)
    try:
        said = contract.error_message(response.json()) if response.content else None
    except ValueError:
        ctype = response.headers.get("content-type", "unknown type").split(";")[0]
        said = f"the reply was not JSON ({ctype}); a proxy or the wrong --base-url may be in the way"
    said = safe_text(said, secrets) if said else None
    reason = f"{status} {response.reason_phrase or ''}".strip()
    detail = f" — {said}" if said else ""
    where = f"{method} {url}"
    kw: dict[str, Any] = {
        "status_code": status,
        "method": method,
        "url": url,
        "request_id": response.headers.get("x-request-id"),
    }
    if status == 401:
        origin, fix = LOGIN_FIXES.get(
            source or "", ("~/.carto_credentials.json", f"run `carto auth login --profile {profile}`")
        )
        raise errors.AuthError(
            f"CARTO rejected the login of profile '{profile}' (credentials from {origin}; {reason}{detail}) at "
            f"{where}. To fix it, {fix}, then retry. `carto-mcp doctor` shows which credentials are used.",
            **kw,
        )
    if status == 403:
        raise errors.PermissionDenied(
            f"Profile '{profile}' lacks permission for the {what} ({reason}{detail}) at {where}. Check the user's "
            "role and the organization's plan, or use a profile with more rights.",
            **kw,
        )
    if status == 404:
        raise errors.NotFound(f"Not found: {what} ({reason}{detail}) at {where}.", **kw)
    if status in (400, 409, 422):
        raise errors.ValidationFailed(
            f"CARTO refused the {what} ({reason}{detail}) at {where}. Fix the arguments and retry.", **kw
        )
    if status == 429:
        after = retry_after_seconds(response)
        wait = f" Wait {after:.0f} s before retrying." if after is not None else " Wait a moment before retrying."
        raise errors.RateLimited(
            f"CARTO is rate limiting requests ({reason}{detail}) at {where}.{wait}", retry_after=after, **kw
        )
    if status >= 500:
        raise errors.ServiceError(
            f"CARTO failed to handle the {what} ({reason}{detail}) at {where}. Retry later. {HELP}", **kw
        )
    raise errors.ApiError(f"CARTO answered {reason}{detail} to the {what} at {where}. {HELP}", **kw)


#: httpx errors after which a sent request may have reached the service.
_MAYBE_DELIVERED = (httpx.ReadTimeout, httpx.WriteTimeout, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


@contextmanager
def transport_errors(method: str, url: str, *, creating: bool, what: str) -> Iterator[None]:
    """Map httpx2 transport failures to TransportError (or OutcomeUnknown for a create)."""
    try:
        yield
    except httpx.TimeoutException as exc:
        if creating and isinstance(exc, _MAYBE_DELIVERED):
            raise unknown_outcome(method, url, what, "timed out waiting for the answer") from exc
        raise errors.TransportError(
            f"Timed out talking to CARTO ({type(exc).__name__}) at {method} {url}. Check the network and "
            f"--base-url, then retry. {HELP}",
            method=method,
            url=url,
        ) from exc
    except httpx.TransportError as exc:
        if creating and isinstance(exc, _MAYBE_DELIVERED):
            raise unknown_outcome(method, url, what, "the connection dropped before the answer") from exc
        # Only a request that never left (connect, DNS, pool) certainly changed nothing.
        unchanged = "" if isinstance(exc, _MAYBE_DELIVERED) else " Nothing was changed."
        raise errors.TransportError(
            f"Could not reach CARTO ({type(exc).__name__}: {_short(exc)}) at {method} {url}. Check the network, "
            f"DNS and --base-url.{unchanged} {HELP}",
            method=method,
            url=url,
        ) from exc


def unknown_outcome(method: str, url: str, what: str, why: str) -> errors.OutcomeUnknown:
    return errors.OutcomeUnknown(
        f"The {what} was sent but {why} ({method} {url}): it may have been created",
        reason=why,
        fix="check list_credentials before trying again, so nothing is created twice.",
        method=method,
        url=url,
    )


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def log_request(request: httpx.Request, secrets: tuple[str, ...]) -> None:
    """--debug: method, URL, headers with the bearer masked, and the body of POST/PATCH (CLI parity)."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    headers = {
        k: (f"Bearer {mask(v[7:])}" if k.lower() == "authorization" else v)
        for k, v in request.headers.items()
        if k.lower() not in ("user-agent", "accept-encoding", "connection")
    }
    body = ""
    if request.method in ("POST", "PATCH") and request.content:
        body = " body=" + safe_body(request, secrets)
    logger.debug("--> %s %s headers=%s%s", request.method, safe_url(request.url, secrets), headers, body)


def log_response(response: httpx.Response, elapsed: float, secrets: tuple[str, ...]) -> None:
    if logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "<-- %s %s %s (%.0f ms)",
            response.status_code,
            response.request.method,
            safe_url(response.request.url, secrets),
            elapsed * 1000,
        )
