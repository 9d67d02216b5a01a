"""Streamable HTTP and SSE: the same server behind one guard at the door.

Binds 127.0.0.1 by default. A non-loopback bind refuses to start without a bearer secret for
the MCP endpoint. Every request passes `Guard` before anything routes it:

1. `Origin` (when a browser sends one) is parsed as a URL and compared exactly — scheme,
   host, port — with the loopback origins and `--allow-origin`; anything with userinfo, a
   path or a bad port is foreign: 403, whatever the method or path.
2. `Host` is parsed the same way and must name this server: on a loopback bind, a loopback
   name with the bound port; elsewhere, the `--allow-host` names when given (a bearer is
   required there anyway). Otherwise 421.
3. The bearer, when one is configured (constant-time compare): otherwise 401.
4. A POSTed body must be one JSON-RPC object of at most `MAX_MESSAGE_BYTES`: not empty, UTF-8,
   JSON, not a batch. Otherwise 400 (413 when too big) with a JSON-RPC error that echoes
   nothing of the body, and nothing of it reaches a log.

The MCP client's credentials are never forwarded to CARTO: the CARTO client has its own profile.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from carto_mcp.config import MAX_MESSAGE_BYTES
from carto_mcp.errors import InputError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from mcp.server.mcpserver import MCPServer
    from mcp.server.transport_security import TransportSecuritySettings
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

    #: An extra GET route of the server: its path and endpoint (the reveal pages).
    Route = tuple[str, Callable[[Request], Awaitable[Response]]]

__all__ = ["HEALTH_PATH", "Guard", "build_http_app", "check_bind", "check_port", "parse_origin", "serve_http"]

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
HEALTH_PATH = "/healthz"


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_port(port: int) -> int:
    if not 0 < port < 65536:
        raise InputError(f"--port {port} is not a TCP port", field="port", fix="give a number from 1 to 65535.")
    return port


def check_bind(host: str, auth_token: str | None) -> None:
    """Refuse to expose the credential tools on a network without a bearer secret."""
    if not is_loopback(host) and not auth_token:
        raise InputError(
            f"--host {host} is not a loopback address: anyone who can reach it could manage your CARTO "
            "credentials. Set a bearer secret with --auth-token-file PATH or CARTO_MCP_AUTH_TOKEN, or bind "
            "127.0.0.1.",
            field="host",
        )


@dataclass(frozen=True)
class Place:
    """A parsed Host or Origin: only what may be compared."""

    scheme: str
    host: str
    port: int | None


def _place(authority: str, scheme: str) -> Place | None:
    """`host[:port]` as the only thing in a URL's authority; None for userinfo, a path or a bad port."""
    try:
        parts = urlsplit(f"{scheme}://{authority}")
        port = parts.port
    except ValueError:
        return None
    if parts.username is not None or parts.password is not None or "@" in authority:
        return None
    if parts.path or parts.query or parts.fragment or not parts.hostname:
        return None
    return Place(scheme, parts.hostname.lower(), port)


def parse_origin(origin: str) -> Place | None:
    """An Origin header as a place, or None when it is not exactly `scheme://host[:port]`."""
    scheme, sep, rest = origin.strip().partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    return _place(rest, scheme.lower())


def parse_host(host: str) -> Place | None:
    return _place(host.strip(), "http")


@dataclass(frozen=True)
class Pattern:
    """An allowed place: a scheme (None: any), a host, and a port or any port."""

    scheme: str | None
    host: str
    port: int | None = None
    any_port: bool = False

    def matches(self, place: Place) -> bool:
        if self.scheme is not None and self.scheme != place.scheme:
            return False
        return self.host == place.host and (self.any_port or self.port == place.port)

    @classmethod
    def origin(cls, text: str) -> Pattern:
        """`https://name`, `https://name:port` or `https://name:*` (any port), from --allow-origin."""
        any_port = text.strip().endswith(":*")
        place = parse_origin(text.strip()[:-2] if any_port else text)
        if place is None:
            raise InputError(f"--allow-origin {text!r} is not an origin like https://app.example.com", field="origin")
        return cls(place.scheme, place.host, place.port, any_port)

    @classmethod
    def named_host(cls, text: str) -> Pattern:
        """`name` (any port: behind a load balancer the port clients use is not ours), or `name:port`."""
        any_port = text.strip().endswith(":*")
        place = parse_host(text.strip()[:-2] if any_port else text)
        if place is None:
            raise InputError(f"--allow-host {text!r} is not a host name with an optional :port", field="host")
        return cls(None, place.host, place.port, any_port or place.port is None)


def _json_rpc_error(code: int, message: str) -> bytes:
    return json.dumps({"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}).encode()


class Guard:
    """ASGI middleware in front of everything: Origin, Host, bearer, then the message body."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        origins: tuple[Pattern, ...],
        hosts: tuple[Pattern, ...] | None,
        bearer: str | None,
        message_paths: tuple[str, ...],
    ) -> None:
        self.app = app
        self.origins = origins
        #: None: any well-formed Host (a non-loopback bind without --allow-host).
        self.hosts = hosts
        self._bearer = bearer.encode() if bearer else None
        self.message_paths = message_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers") or []}
        origin = headers.get(b"origin")
        if origin is not None and not self._origin_ok(origin.decode("latin-1")):
            await _plain(send, 403, "Invalid Origin header")
            return
        path = scope.get("path", "")
        if path != HEALTH_PATH and not self._host_ok(headers.get(b"host", b"").decode("latin-1")):
            await _plain(send, 421, "Invalid Host header")
            return
        if self._bearer is not None and path != HEALTH_PATH:
            header = headers.get(b"authorization", b"")
            given = header[7:] if header[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(given, self._bearer):
                await _unauthorized(send)
                return
        if scope.get("method") == "POST" and any(path.startswith(p) for p in self.message_paths):
            body = await _read_body(headers, receive)
            problem = _body_problem(body)
            if problem is not None:
                status, code, message = problem
                await _send(send, status, _json_rpc_error(code, message), b"application/json")
                return
            receive = _replay(body or b"", receive)
        await self.app(scope, receive, send)

    def _origin_ok(self, origin: str) -> bool:
        place = parse_origin(origin)
        return place is not None and any(p.matches(place) for p in self.origins)

    def _host_ok(self, host: str) -> bool:
        place = parse_host(host)
        if place is None:
            return False
        return self.hosts is None or any(p.matches(place) for p in self.hosts)


async def _read_body(headers: dict[bytes, bytes], receive: Receive) -> bytes | None:
    """The whole body, or None as soon as it is known to be over the limit (never held beyond it)."""
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_MESSAGE_BYTES:
        return None
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        body += message.get("body", b"")
        if len(body) > MAX_MESSAGE_BYTES:
            return None
        if not message.get("more_body", False):
            break
    return bytes(body)


def _body_problem(body: bytes | None) -> tuple[int, int, str] | None:
    if body is None:
        return 413, -32600, f"Request too large: a message may have at most {MAX_MESSAGE_BYTES:,} bytes"
    if not body.strip():
        return 400, -32700, "Parse error: the request body is empty"
    try:
        data = json.loads(body.decode("utf-8"))
    except UnicodeDecodeError:
        return 400, -32700, "Parse error: the request body is not UTF-8"
    except (ValueError, RecursionError):
        return 400, -32700, "Parse error: the request body is not JSON"
    if isinstance(data, list):
        return 400, -32600, "Invalid request: batches are not supported; send one JSON-RPC message per request"
    if not isinstance(data, dict):
        return 400, -32600, "Invalid request: a JSON-RPC message is a JSON object"
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that yields the body already read, then whatever comes next (a disconnect)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send(send: Send, status: int, body: bytes, content_type: bytes, extra: list[Any] | None = None) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _plain(send: Send, status: int, text: str) -> None:
    await _send(send, status, text.encode(), b"text/plain; charset=utf-8")


async def _unauthorized(send: Send) -> None:
    body = json.dumps({"error": "unauthorized", "error_description": "missing or wrong bearer for this MCP endpoint"})
    await _send(send, 401, body.encode(), b"application/json", [(b"www-authenticate", b'Bearer realm="carto-mcp"')])


def allowed_places(
    host: str, port: int, allowed_origins: tuple[str, ...], allowed_hosts: tuple[str, ...]
) -> tuple[tuple[Pattern, ...], tuple[Pattern, ...] | None]:
    """The Origin patterns (loopback pages on any port, plus --allow-origin) and the Host patterns."""
    origins = (
        *(Pattern("http", name, any_port=True) for name in LOOPBACK_NAMES),
        *(Pattern.origin(o) for o in allowed_origins),
    )
    hosts: tuple[Pattern, ...] | None = tuple(Pattern.named_host(h) for h in allowed_hosts) or None
    if is_loopback(host):
        hosts = (*(Pattern(None, name, port) for name in LOOPBACK_NAMES), *(hosts or ()))
    return origins, hosts


def security_settings(
    host: str, allowed_origins: tuple[str, ...], allowed_hosts: tuple[str, ...]
) -> TransportSecuritySettings:
    """The SDK's own DNS-rebinding check, kept behind ours with the same lists (defence in depth).

    Off on a non-loopback bind without --allow-host, where any Host is accepted (a bearer is required).
    """
    from mcp.server.transport_security import TransportSecuritySettings

    if not is_loopback(host) and not allowed_hosts:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*", *allowed_hosts]
    hosts += [f"{h}:*" for h in allowed_hosts if ":" not in h]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*", *allowed_origins]
    return TransportSecuritySettings(enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins)


def build_http_app(
    server: MCPServer[Any],
    *,
    transport: str,
    host: str,
    port: int,
    stateless: bool = False,
    auth_token: str | None = None,
    allowed_origins: tuple[str, ...] = (),
    allowed_hosts: tuple[str, ...] = (),
    routes: Sequence[Route] = (),
) -> ASGIApp:
    """The ASGI app for streamable HTTP (JSON responses when stateless) or SSE, with a health route.

    `routes` are more GET routes of the same server, behind the same checks (the reveal pages).
    """
    from starlette.responses import JSONResponse

    check_port(port)
    check_bind(host, auth_token)
    origins, hosts = allowed_places(host, port, allowed_origins, allowed_hosts)

    @server.custom_route(HEALTH_PATH, methods=["GET"], include_in_schema=False)  # type: ignore[untyped-decorator]
    async def health(_: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    for path, endpoint in routes:
        server.custom_route(path, methods=["GET"], include_in_schema=False)(endpoint)

    security = security_settings(host, allowed_origins, allowed_hosts)
    app: ASGIApp
    if transport == "sse":
        app = server.sse_app(transport_security=security, host=host, max_request_body_size=MAX_MESSAGE_BYTES)
        paths: tuple[str, ...] = ("/messages/",)
    else:
        app = server.streamable_http_app(
            stateless_http=stateless,
            json_response=stateless,
            transport_security=security,
            host=host,
            max_request_body_size=MAX_MESSAGE_BYTES,
        )
        paths = ("/mcp",)
    return Guard(app, origins=origins, hosts=hosts, bearer=auth_token, message_paths=paths)


async def serve_http(app: ASGIApp, *, host: str, port: int, log_level: str = "warning") -> None:
    import uvicorn

    # log_config=None: uvicorn's loggers go through our handler (carto_mcp.logs) instead of its own.
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, log_config=None, lifespan="on")
    await uvicorn.Server(config).serve()
