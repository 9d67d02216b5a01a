"""The server factory: settings in, a configured `MCPServer` out.

The CARTO client is opened in the lifespan and handed to tools through a frozen `AppState`,
so every server (and every test) starts clean. A profile problem does not crash start-up:
it is reported on stderr and by every tool call, where the person can act on it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2 as httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from carto_mcp import __version__
from carto_mcp.api import (
    BearerSource,
    CartoClient,
    ClientCredentialsBearer,
    FileBearer,
    ProfileError,
    StaticBearer,
)
from carto_mcp.profiles import ProfileResolver, ResolvedProfile, sandbox_profile
from carto_mcp.server.errors import format_validation, unknown_arguments
from carto_mcp.server.safety import AuditLog, Confirmer, select_tools
from carto_mcp.server.settings import ServerSettings

logger = logging.getLogger("carto_mcp.server")

SANDBOX_URL = "http://sandbox.carto-mcp.invalid"

INSTRUCTIONS = (
    "Manage CARTO developer credentials: API Access Tokens, SPA and M2M OAuth clients. "
    "Tokens are addressed by a short id (from list_credentials); a full token value is shown only once, "
    "in the create_token result. Prefer least privilege: only the APIs and grants needed, an expiry, and "
    "referers for browser use. Revocation and updates that remove access need confirmation."
)


@dataclass(frozen=True)
class Connection:
    """One profile's client, or why it could not be opened."""

    api: CartoClient | None
    profile: ResolvedProfile | None
    problem: str | None = None


@dataclass(frozen=True)
class AppState:
    """What every tool call can reach: the clients, the resolved profiles and the policy."""

    api: CartoClient | None
    profile: ResolvedProfile | None
    problem: str | None
    settings: ServerSettings
    confirmer: Confirmer
    audit: AuditLog | None
    others: Mapping[str, Connection] = field(default_factory=dict)

    @property
    def profile_name(self) -> str:
        return self.profile.name if self.profile else "(none)"

    def require_api(self) -> CartoClient:
        return self.api_for(None)

    def _connection(self, name: str | None) -> Connection:
        if name is None or (self.profile is not None and name == self.profile.name):
            return Connection(self.api, self.profile, self.problem)
        if name not in self.others:
            allowed = ", ".join([self.profile_name, *self.others]) if self.others else self.profile_name
            raise ToolError(
                f"profile: '{name[:60]}' is not allowed on this server (allowed: {allowed}). Start it with "
                "--profiles NAME,... to allow switching."
            )
        return self.others[name]

    def api_for(self, name: str | None) -> CartoClient:
        """The client for a profile the server allows (None = the server's own profile)."""
        conn = self._connection(name)
        if conn.api is None:
            raise ToolError(conn.problem or "No CARTO profile is configured. Run `carto-mcp doctor`.")
        return conn.api

    def profile_for(self, name: str | None) -> ResolvedProfile:
        conn = self._connection(name)
        if conn.profile is None:
            raise ToolError(conn.problem or "No CARTO profile is configured. Run `carto-mcp doctor`.")
        return conn.profile

    def profile_label(self, name: str | None) -> str:
        return name or self.profile_name

    def profile_names(self) -> list[str]:
        return [self.profile_name, *(n for n in self.others if n != self.profile_name)]


def state_of(ctx: Context[Any, Any]) -> AppState:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


class CartoMCP(MCPServer[AppState]):
    """MCPServer that refuses unknown arguments and words schema errors without echoing input.

    A typo in an argument name must not silently drop a restriction, and the SDK's default
    validation text repeats the rejected values, which may be secrets.
    """

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        tool = self._tool_manager.get_tool(name)
        if tool is not None and isinstance(arguments, dict):
            known = list(tool.parameters.get("properties", {}))
            problem = unknown_arguments(name, list(arguments), known)
            if problem:
                raise ToolError(problem)
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                raise ToolError(format_validation(exc.__cause__, tool=name)) from exc.__cause__
            raise


def bearer_for(profile: ResolvedProfile, resolver: ProfileResolver, settings: ServerSettings) -> BearerSource:
    """Pick how requests authenticate, from where the profile came from."""
    if profile.source == "client_credentials":
        assert profile.client_id and profile.client_secret
        from carto_mcp import contract

        token_url = settings.auth_url or contract.AUTH_TOKEN_URL
        return ClientCredentialsBearer(
            profile.client_id, profile.client_secret, token_url=token_url, profile_name=profile.name
        )
    if profile.source in ("credentials_file", "legacy_file"):
        return FileBearer(resolver)
    return StaticBearer(profile.token or "", profile_name=profile.name, source=profile.source)


def build_server(
    settings: ServerSettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    environ: dict[str, str] | None = None,
) -> CartoMCP:
    """Build the server. `transport` lets tests route the CARTO client through a mock or the sandbox."""
    settings = settings or ServerSettings()
    tools = select_tools(read_only=settings.read_only, include=settings.tools, exclude=settings.exclude_tools)

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        async with AsyncExitStack() as stack:
            api, profile, problem = await _open_client(settings, transport, environ, stack)
            others = await _open_others(settings, transport, environ, stack, profile)
            yield AppState(
                others=others,
                api=api,
                profile=profile,
                problem=problem,
                settings=settings,
                confirmer=Confirmer(settings.confirm_key, ttl=settings.confirm_ttl),
                audit=AuditLog(settings.audit_log) if settings.audit_log else None,
            )

    server = CartoMCP(
        "carto-mcp",
        title="CARTO credentials",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="DEBUG" if settings.debug else "WARNING",
    )
    quiet_http_loggers()
    register_tools(server, tools)
    return server


def quiet_http_loggers() -> None:
    """Keep httpx2/httpcore2 below INFO even when `log_level` (--debug) opens the root logger.

    httpx2 logs every request URL at INFO, and a token's URL carries the token itself; our own
    request log (`carto_mcp.api`, bearer and token paths masked) replaces it.
    """
    for name in ("httpx2", "httpcore2"):
        logging.getLogger(name).setLevel(logging.WARNING)


def register_tools(server: CartoMCP, names: Sequence[str]) -> None:
    from carto_mcp.server import guides
    from carto_mcp.server.tools import create, extras, modify, read

    for module in (read, create, modify, extras):
        module.register(server, set(names))
    guides.register(server)


async def _open_others(
    settings: ServerSettings,
    transport: httpx.AsyncBaseTransport | None,
    environ: dict[str, str] | None,
    stack: AsyncExitStack,
    default: ResolvedProfile | None,
) -> dict[str, Connection]:
    """Clients for the extra profiles allowed with --profiles (credentials-file profiles only)."""
    if not settings.profiles or settings.sandbox:
        return {}
    resolver = ProfileResolver(
        settings.profile,
        environ=environ,
        credentials_path=settings.credentials_path,
        legacy_path=settings.legacy_path,
    )
    out: dict[str, Connection] = {}
    for name in settings.profiles:
        if default is not None and name == default.name:
            continue
        try:
            profile = resolver.resolve_named(name)
        except ProfileError as exc:
            out[name] = Connection(None, None, str(exc))
            continue
        client = CartoClient(base_url=profile.base_url, auth=FileBearer(resolver, profile=name), transport=transport)
        out[name] = Connection(await stack.enter_async_context(client), profile)
    return out


async def _open_client(
    settings: ServerSettings,
    transport: httpx.AsyncBaseTransport | None,
    environ: dict[str, str] | None,
    stack: AsyncExitStack,
) -> tuple[CartoClient | None, ResolvedProfile | None, str | None]:
    if settings.sandbox:
        from carto_mcp.sandbox import create_app

        app = create_app(settings.sandbox_db)
        profile = sandbox_profile(SANDBOX_URL)
        auth: BearerSource = StaticBearer(profile.token or "sandbox", profile_name=profile.name, source="sandbox")
        client = CartoClient(base_url=SANDBOX_URL, auth=auth, transport=transport or httpx.ASGITransport(app=app))
        logger.warning(
            "carto-mcp is running on the embedded SANDBOX API (db: %s): no real CARTO account is used.",
            settings.sandbox_db or "throwaway",
        )
        return await stack.enter_async_context(client), profile, None
    resolver = ProfileResolver(
        settings.profile,
        environ=environ,
        credentials_path=settings.credentials_path,
        legacy_path=settings.legacy_path,
    )
    try:
        profile = resolver.resolve()
        auth = bearer_for(profile, resolver, settings)
    except ProfileError as exc:
        logger.error("No usable CARTO profile: %s", exc)
        return None, None, str(exc)
    for warning in profile.warnings:
        logger.warning("%s", warning)
    client = CartoClient(base_url=profile.base_url, auth=auth, transport=transport)
    return await stack.enter_async_context(client), profile, None
