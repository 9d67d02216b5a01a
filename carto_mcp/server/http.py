"""Streamable HTTP and SSE: the same server behind Host/Origin checks and an optional bearer.

Binds 127.0.0.1 by default. A non-loopback bind refuses to start without a bearer secret for
the MCP endpoint; with one, every request without it gets 401 (constant-time compare). The
MCP client's credentials are never forwarded to CARTO: the CARTO client has its own profile.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING

from carto_mcp.errors import InputError

if TYPE_CHECKING:
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.types import ASGIApp, Receive, Scope, Send

    from carto_mcp.server.app import CartoMCP

LOOPBACK_NAMES = ("localhost",)
HEALTH_PATH = "/healthz"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_bind(host: str, auth_token: str | None) -> None:
    """Refuse to expose the credential tools on a network without a bearer secret."""
    if not is_loopback(host) and not auth_token:
        raise InputError(
            f"--host {host} is not a loopback address: anyone who can reach it could manage your CARTO "
            "credentials. Set a bearer secret with --auth-token-file PATH or CARTO_MCP_AUTH_TOKEN, or bind "
            "127.0.0.1.",
            field="host",
        )


LOOPBACK_HOSTS = ("127.0.0.1:*", "localhost:*", "[::1]:*")
LOOPBACK_ORIGINS = ("http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*")


def security_settings(
    host: str, allowed_origins: tuple[str, ...] = (), allowed_hosts: tuple[str, ...] = ()
) -> TransportSecuritySettings:
    """DNS-rebinding protection: only known Host names, and browser Origins we were told to trust.

    On a non-loopback bind (which requires a bearer) the names clients use — a DNS name, an IP,
    a load balancer's host — cannot be known in advance: Host is checked only when --allow-host
    names them, while Origin is always checked (see OriginGuard).
    """
    from mcp.server.transport_security import TransportSecuritySettings

    origins = [*LOOPBACK_ORIGINS, *allowed_origins]
    if not is_loopback(host) and not allowed_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    # "name" matches a Host without a port, "name:*" one with any port.
    hosts = [*LOOPBACK_HOSTS, *allowed_hosts, *(f"{h}:*" for h in allowed_hosts if not h.endswith(":*"))]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def origin_allowed(origin: str, allowed: tuple[str, ...]) -> bool:
    """Exact match, or `scheme://host:*` for any port — the SDK's own rule."""
    for pattern in allowed:
        if origin == pattern or (pattern.endswith(":*") and origin.startswith(pattern[:-2] + ":")):
            return True
    return False


class OriginGuard:
    """ASGI middleware: a request from a browser page of a foreign origin gets 403.

    Used where the SDK's check is off (remote binds without --allow-host), so a web page can
    never drive the credential tools from a user's browser.
    """

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            origin = dict(scope.get("headers") or []).get(b"origin")
            if origin and not origin_allowed(origin.decode("latin-1"), self.allowed):
                from starlette.responses import Response

                await Response("Invalid Origin header", status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BearerGuard:
    """ASGI middleware: every request except the health probe must carry `Authorization: Bearer <secret>`."""

    def __init__(self, app: ASGIApp, secret: str) -> None:
        self.app = app
        self._secret = secret.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path") != HEALTH_PATH:
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            given = header[7:] if header[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(given, self._secret):
                from starlette.responses import JSONResponse

                response = JSONResponse(
                    {"error": "unauthorized", "error_description": "missing or wrong bearer for this MCP endpoint"},
                    status_code=401,
                    headers={"WWW-Authenticate": 'Bearer realm="carto-mcp"'},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def build_http_app(
    server: CartoMCP,
    *,
    transport: str,
    host: str,
    port: int,
    stateless: bool = False,
    auth_token: str | None = None,
    allowed_origins: tuple[str, ...] = (),
    allowed_hosts: tuple[str, ...] = (),
) -> ASGIApp:
    """The ASGI app for streamable HTTP (JSON responses when stateless) or SSE, with a health route."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    check_bind(host, auth_token)

    @server.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)  # type: ignore[untyped-decorator]
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    security = security_settings(host, allowed_origins, allowed_hosts)
    app: ASGIApp
    if transport == "sse":
        app = server.sse_app(transport_security=security, host=host)
    else:
        app = server.streamable_http_app(
            stateless_http=stateless, json_response=stateless, transport_security=security, host=host
        )
    if not security.enable_dns_rebinding_protection:
        app = OriginGuard(app, (*LOOPBACK_ORIGINS, *allowed_origins))
    return BearerGuard(app, auth_token) if auth_token else app


async def serve_http(app: ASGIApp, *, host: str, port: int, log_level: str = "warning") -> None:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
    await uvicorn.Server(config).serve()
