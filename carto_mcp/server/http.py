"""Streamable HTTP and SSE: the same server behind Host/Origin checks and an optional bearer.

Binds 127.0.0.1 by default. A non-loopback bind refuses to start without a bearer secret for
the MCP endpoint; with one, every request without it gets 401 (constant-time compare). The
MCP client's credentials are never forwarded to CARTO: the CARTO client has its own profile.
"""

from __future__ import annotations

import hmac
import ipaddress
from typing import TYPE_CHECKING

from carto_mcp.api.errors import InputError

if TYPE_CHECKING:
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.applications import Starlette
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


def security_settings(host: str, port: int, allowed_origins: tuple[str, ...] = ()) -> TransportSecuritySettings:
    """DNS-rebinding protection: only our own Host names, and browser Origins we were told to trust."""
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *allowed_origins]
    if not is_loopback(host):
        hosts += [f"{host}:*", host]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


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
) -> ASGIApp:
    """The ASGI app for streamable HTTP (JSON responses when stateless) or SSE, with a health route."""
    from starlette.requests import Request
    from starlette.responses import JSONResponse

    check_bind(host, auth_token)

    @server.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    security = security_settings(host, port, allowed_origins)
    app: Starlette
    if transport == "sse":
        app = server.sse_app(transport_security=security, host=host)
    else:
        app = server.streamable_http_app(
            stateless_http=stateless, json_response=stateless, transport_security=security, host=host
        )
    return BearerGuard(app, auth_token) if auth_token else app


async def serve_http(app: ASGIApp, *, host: str, port: int, log_level: str = "warning") -> None:
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan="on")
    await uvicorn.Server(config).serve()
