"""The sandbox's routes: the Tokens API, the OAuth clients API (A) and the M2M exchange.

Paths, wire names, status codes and error bodies come from `carto_mcp.contract`, and request
bodies are checked with the same rule functions as the client (`carto_mcp.sandbox.checks`),
so the sandbox answers as `carto-api.md` says the real service does. Handlers raise
`HTTPException` or `RuleError`; one exception handler renders `{"error", "description"}`.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from carto_mcp import contract
from carto_mcp.errors import RuleError
from carto_mcp.masking import strip_bearer
from carto_mcp.sandbox import checks
from carto_mcp.sandbox.faults import SANDBOX_PREFIX, Fault, FaultBox, Instrument, error_body
from carto_mcp.sandbox.store import SandboxStore

__all__ = ["create_app"]

#: Every path under this prefix needs a bearer (the Tokens API and, per contract A, OAuth clients).
API_PREFIX = contract.TOKENS_PATH.rsplit("/", 1)[0] + "/"
_MAX_PAGE = 10**9


def create_app(
    db_path: str | Path | None = None,
    *,
    faults: bool = False,
    org_id: str = "ac_sandbox",
    access_token_lifetime: int = contract.AUTH_TOKEN_LIFETIME,
    latency_ms: float = 0.0,
    jitter_ms: float = 0.0,
    token_ids: bool = False,
) -> Starlette:
    """A CARTO-compatible API over a sqlite file (`None`: a throwaway in-memory store).

    The store opens here, not in the lifespan, because in-process transports such as
    `httpx2.ASGITransport` never run it. `faults=True` adds the test-only `/_sandbox/` routes.
    `latency_ms` (plus up to `jitter_ms`) delays every API request, as a real API far away
    does. `token_ids=True` gives each token object an `id` of its own (`tok_<jti>`), as the
    CARTO CLI's `--json` output shows tokens.
    """
    box = FaultBox()
    routes: list[BaseRoute] = [
        Route(contract.TOKENS_PATH, list_tokens, methods=["GET"]),
        Route(contract.TOKENS_PATH, create_token, methods=["POST"]),
        Route(contract.token_path("{token}"), get_token, methods=["GET"]),
        Route(contract.token_path("{token}"), update_token, methods=["PATCH"]),
        Route(contract.token_path("{token}"), delete_token, methods=["DELETE"]),
        Route(contract.OAUTH_CLIENTS_PATH, list_clients, methods=["GET"]),
        Route(contract.OAUTH_CLIENTS_PATH, create_client, methods=["POST"]),
        Route(contract.oauth_client_path("{client_id}"), get_client, methods=["GET"]),
        Route(contract.oauth_client_path("{client_id}"), update_client, methods=["PATCH"]),
        Route(contract.oauth_client_path("{client_id}"), delete_client, methods=["DELETE"]),
        Route(contract.AUTH_TOKEN_PATH, exchange, methods=["POST"]),
    ]
    if faults:
        routes += [
            Route(f"{SANDBOX_PREFIX}/faults", add_fault, methods=["POST"]),
            Route(f"{SANDBOX_PREFIX}/faults", clear_faults, methods=["DELETE"]),
            Route(f"{SANDBOX_PREFIX}/requests", request_counts, methods=["GET"]),
            Route(f"{SANDBOX_PREFIX}/requests", reset_request_counts, methods=["DELETE"]),
            Route(f"{SANDBOX_PREFIX}/stats", stats, methods=["GET"]),
            Route(f"{SANDBOX_PREFIX}/reject-bearer", reject_bearer, methods=["POST"]),
        ]
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(Instrument, box=box, routes=routes, latency_ms=latency_ms, jitter_ms=jitter_ms),
            Middleware(RequireBearer, box=box),
        ],
        exception_handlers={HTTPException: render_error, RuleError: render_error, Exception: render_crash},
        lifespan=_lifespan,
    )
    app.state.store = SandboxStore(db_path, org_id=org_id, token_ids=token_ids)
    app.state.faults = box
    app.state.access_token_lifetime = access_token_lifetime
    return app


@asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    try:
        yield
    finally:
        app.state.store.close()


# --- auth and errors -----------------------------------------------------------------


class RequireBearer:
    """ASGI middleware: every API path needs `Authorization: Bearer <non-empty>` (any value,
    unless a test revoked it); otherwise the documented 401 body."""

    def __init__(self, app: ASGIApp, *, box: FaultBox) -> None:
        self.app = app
        self.box = box

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            bearer = _bearer(Headers(scope=scope).get("authorization", ""))
            if not bearer or self.box.is_rejected(bearer):
                response = JSONResponse(
                    dict(contract.UNAUTHORIZED_BODY), status_code=401, headers={"WWW-Authenticate": "Bearer"}
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _bearer(header: str) -> str:
    scheme, _, value = header.strip().partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


_ROUTER_DETAILS = {404: "No such endpoint", 405: "This endpoint does not accept this method"}


async def render_error(request: Request, exc: Exception) -> Response:
    """The one renderer of error bodies: `{"error": <reason>, "description": <what to change>}`."""
    if isinstance(exc, HTTPException):
        status, detail, headers = exc.status_code, exc.detail, exc.headers
        if detail == HTTPStatus(status).phrase:
            detail = _ROUTER_DETAILS.get(status, detail)
    else:
        status, detail, headers = 400, str(exc), None
    return JSONResponse(error_body(status, detail), status_code=status, headers=headers)


async def render_crash(request: Request, exc: Exception) -> Response:
    return JSONResponse(error_body(500, "The sandbox failed unexpectedly; see its log"), status_code=500)


# --- helpers -------------------------------------------------------------------------


def _store(request: Request) -> SandboxStore:
    store: SandboxStore = request.app.state.store
    return store


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400 that says what to send."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise HTTPException(400, "The request body is not valid JSON: send a JSON object") from None
    if not isinstance(body, dict):
        raise HTTPException(400, "The request body must be a JSON object")
    return body


def _paging(request: Request) -> tuple[int, int]:
    """(offset, limit) from ?page=&per_page= (A); per_page is capped, not refused, above the maximum."""
    params = request.query_params
    try:
        page = int(params.get(contract.PAGE_PARAM) or 1)
        per_page = int(params.get(contract.PER_PAGE_PARAM) or contract.DEFAULT_PER_PAGE)
    except ValueError:
        page = per_page = 0
    if not 1 <= page <= _MAX_PAGE or per_page < 1:
        raise HTTPException(
            400, f"{contract.PAGE_PARAM} and {contract.PER_PAGE_PARAM} must be whole numbers of at least 1"
        )
    per_page = min(per_page, contract.MAX_PER_PAGE)
    return (page - 1) * per_page, per_page


def _page_body(rows: list[dict[str, Any]], total: int) -> dict[str, Any]:
    return {contract.LIST_ENVELOPE: rows, contract.LIST_TOTAL: total}


def _public_client(obj: dict[str, Any]) -> dict[str, Any]:
    """A client as reads show it: the M2M secret is returned by create only."""
    return {key: value for key, value in obj.items() if key != contract.OAUTH_CLIENT_SECRET}


# --- Tokens API ----------------------------------------------------------------------

_NO_TOKEN = "No token matches this value: list tokens to see the ones that exist"


def _owner(request: Request) -> str:
    """The caller the bearer acts for (RequireBearer already refused a missing one)."""
    return _store(request).caller(_bearer(request.headers.get("authorization", "")))


def _no_token() -> HTTPException:
    """Unknown and someone else's look the same (contract: OTHER_CALLERS_TOKEN_STATUS)."""
    return HTTPException(contract.OTHER_CALLERS_TOKEN_STATUS, _NO_TOKEN)


async def list_tokens(request: Request) -> Response:
    offset, limit = _paging(request)
    rows, total = _store(request).list_tokens(offset=offset, limit=limit, owner=_owner(request))
    return JSONResponse(_page_body(rows, total))


async def create_token(request: Request) -> Response:
    fields = checks.token_create(await _json_object(request))
    return JSONResponse(_store(request).create_token(fields, owner=_owner(request)), status_code=201)


async def get_token(request: Request) -> Response:
    token = _store(request).get_token(request.path_params["token"], owner=_owner(request))
    if token is None:
        raise _no_token()
    return JSONResponse(token)


async def update_token(request: Request) -> Response:
    body = await _json_object(request)
    token = _store(request).update_token(
        request.path_params["token"], lambda current: checks.token_patch(current, body), owner=_owner(request)
    )
    if token is None:
        raise _no_token()
    return JSONResponse(token)


async def delete_token(request: Request) -> Response:
    if not _store(request).delete_token(request.path_params["token"], owner=_owner(request)):
        raise _no_token()
    return Response(status_code=204)


# --- OAuth clients (A) ---------------------------------------------------------------


def _no_client(client_id: str) -> HTTPException:
    return HTTPException(404, f"No OAuth client has client_id {client_id[:64]!r}")


async def list_clients(request: Request) -> Response:
    app_type = request.query_params.get(contract.OAUTH_TYPE_PARAM) or None
    if app_type is not None and app_type not in checks.APP_TYPES:
        raise HTTPException(400, f"{contract.OAUTH_TYPE_PARAM} must be one of {', '.join(checks.APP_TYPES)}")
    offset, limit = _paging(request)
    rows, total = _store(request).list_clients(app_type=app_type, offset=offset, limit=limit)
    return JSONResponse(_page_body([_public_client(row) for row in rows], total))


async def create_client(request: Request) -> Response:
    fields = checks.client_create(await _json_object(request))
    return JSONResponse(_store(request).create_client(fields), status_code=201)


async def get_client(request: Request) -> Response:
    client_id = request.path_params["client_id"]
    client = _store(request).get_client(client_id)
    if client is None:
        raise _no_client(client_id)
    return JSONResponse(_public_client(client))


async def update_client(request: Request) -> Response:
    client_id = request.path_params["client_id"]
    body = await _json_object(request)
    client = _store(request).update_client(client_id, lambda current: checks.client_patch(current, body))
    if client is None:
        raise _no_client(client_id)
    return JSONResponse(_public_client(client))


async def delete_client(request: Request) -> Response:
    client_id = request.path_params["client_id"]
    if not _store(request).delete_client(client_id):
        raise _no_client(client_id)
    return Response(status_code=204)


# --- M2M exchange (D, emulated at contract.AUTH_TOKEN_PATH) --------------------------


def _oauth_error(status: int, error: str, description: str) -> Response:
    """(D) The auth server's error shape differs from the API's: {"error", "error_description"}."""
    return JSONResponse({"error": error, "error_description": description}, status_code=status)


async def exchange(request: Request) -> Response:
    """client_credentials grant: an existing M2M client's id and secret buy an access token."""
    raw = await request.body()
    form: dict[str, Any]
    if "json" in request.headers.get("content-type", ""):
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            parsed = None
        form = parsed if isinstance(parsed, dict) else {}
    else:
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    grant_type = form.get("grant_type")
    if not grant_type:
        return _oauth_error(400, "invalid_request", "Missing required parameter: grant_type")
    if grant_type != "client_credentials":
        return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant type: {str(grant_type)[:40]}")
    client_id, secret = form.get("client_id"), form.get("client_secret")
    store = _store(request)
    if (
        not isinstance(client_id, str)
        or not isinstance(secret, str)
        or not store.check_client_secret(client_id, secret)
    ):
        return _oauth_error(401, "access_denied", "Unauthorized")
    audience = form.get("audience")
    if audience != contract.AUTH_AUDIENCE:
        return _oauth_error(403, "access_denied", f"Service not found: {str(audience)[:80]}")
    lifetime: int = request.app.state.access_token_lifetime
    body = {
        "access_token": store.mint_access_token(client_id, audience=audience, lifetime=lifetime),
        "scope": "",
        "expires_in": lifetime,
        "token_type": "Bearer",
    }
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


# --- test-only routes (faults=True) --------------------------------------------------


def _box(request: Request) -> FaultBox:
    box: FaultBox = request.app.state.faults
    return box


async def add_fault(request: Request) -> Response:
    fault = Fault.from_body(await _json_object(request))
    _box(request).add(fault)
    return JSONResponse(fault.as_dict(), status_code=201)


async def clear_faults(request: Request) -> Response:
    _box(request).clear()
    return Response(status_code=204)


async def request_counts(request: Request) -> Response:
    return JSONResponse(_box(request).counts())


async def stats(request: Request) -> Response:
    return JSONResponse(_box(request).stats())


async def reset_request_counts(request: Request) -> Response:
    _box(request).reset_counts()
    return Response(status_code=204)


async def reject_bearer(request: Request) -> Response:
    bearer = (await _json_object(request)).get("bearer")
    if not isinstance(bearer, str) or not strip_bearer(bearer):
        raise HTTPException(400, "bearer must be a non-empty string")
    _box(request).reject(strip_bearer(bearer))
    return Response(status_code=204)
