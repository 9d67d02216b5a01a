"""The server factory: settings in, a configured `MCPServer` out.

The CARTO client is opened in the lifespan and handed to tools through a frozen `AppState`,
so every server (and every test) starts clean. A profile problem does not crash start-up:
it is reported on stderr and by every tool call, where the person can act on it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx2 as httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult

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
from carto_mcp.server.errors import unknown_arguments
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
class AppState:
    """What every tool call can reach: the client, the resolved profile and the policy."""

    api: CartoClient | None
    profile: ResolvedProfile | None
    problem: str | None
    settings: ServerSettings
    confirmer: Confirmer
    audit: AuditLog | None

    @property
    def profile_name(self) -> str:
        return self.profile.name if self.profile else "(none)"

    def require_api(self) -> CartoClient:
        if self.api is None:
            raise ToolError(self.problem or "No CARTO profile is configured. Run `carto-mcp doctor`.")
        return self.api


def state_of(ctx: Context[Any, Any]) -> AppState:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


class CartoMCP(MCPServer[AppState]):
    """MCPServer that refuses unknown arguments (a typo must not silently drop a restriction)."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        tool = self._tool_manager.get_tool(name)
        if tool is not None and isinstance(arguments, dict):
            known = list(tool.parameters.get("properties", {}))
            problem = unknown_arguments(name, list(arguments), known)
            if problem:
                raise ToolError(problem)
        return await super().call_tool(name, arguments, context)


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
            yield AppState(
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
    register_tools(server, tools)
    return server


def register_tools(server: CartoMCP, names: Sequence[str]) -> None:
    from carto_mcp.server.tools import create, modify, read

    for module in (read, create, modify):
        module.register(server, set(names))


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
