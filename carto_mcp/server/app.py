"""The server factory: settings in, a configured `MCPServer` out.

Every tool call reaches a frozen `AppState` built in the lifespan, so each server (and each
test) starts clean. Start-up stays as close to the bare SDK as it can: `tools/list` is answered
from the stored catalog, each tool is built on its first call, and profiles and CARTO clients
are opened on first use (see `connections`).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, InputRequiredResult
from mcp_types import Tool as MCPTool
from pydantic import ValidationError

from carto_mcp import __version__
from carto_mcp.server.connections import Connections, bearer_for, require
from carto_mcp.server.errors import format_validation, unknown_arguments
from carto_mcp.server.safety import AuditLog, Confirmer, select_tools
from carto_mcp.server.settings import ServerSettings

if TYPE_CHECKING:
    import httpx2 as httpx

    from carto_mcp.api import CartoClient
    from carto_mcp.profiles import ResolvedProfile

__all__ = ["AppState", "CartoMCP", "bearer_for", "build_server", "materialize_all", "state_of"]

logger = logging.getLogger("carto_mcp.server")

INSTRUCTIONS = (
    "Manage CARTO developer credentials: API Access Tokens, SPA and M2M OAuth clients. "
    "Tokens are addressed by a short id (from list_credentials); a full token value is shown only once, "
    "in the create_token result. Prefer least privilege: only the APIs and grants needed, an expiry, and "
    "referers for browser use. Revocation and updates that remove access need confirmation."
)


@dataclass(frozen=True)
class AppState:
    """What every tool call can reach: the connections and the policy."""

    connections: Connections
    settings: ServerSettings
    confirmer: Confirmer
    audit: AuditLog | None

    @property
    def profile_name(self) -> str:
        profile = self.connections.get_default().profile
        return profile.name if profile else "(none)"

    def api_for(self, name: str | None) -> CartoClient:
        """The client for a profile the server allows (None = the server's own profile)."""
        return require(self.connections.get(name))[0]

    def profile_for(self, name: str | None) -> ResolvedProfile:
        return require(self.connections.get(name))[1]

    def profile_label(self, name: str | None) -> str:
        return name or self.profile_name

    def profile_names(self) -> list[str]:
        return self.connections.names()


def state_of(ctx: Context[Any, Any]) -> AppState:
    return ctx.request_context.lifespan_context  # type: ignore[no-any-return]


class CartoMCP(MCPServer[AppState]):
    """MCPServer with lazy tools, refusal of unknown arguments, and schema errors that echo no input.

    A typo in an argument name must not silently drop a restriction, and the SDK's default
    validation text repeats the rejected values, which may be secrets.
    """

    def __init__(self, *args: Any, tool_names: Sequence[str] = (), **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.selected_tools = list(tool_names)
        self._built: set[str] = set()

    def materialize(self, name: str) -> None:
        """Build and register one selected tool (imports its module, generates its schemas)."""
        if name in self._built or name not in self.selected_tools:
            return
        import importlib

        from carto_mcp.server.catalog import TOOL_MODULES

        module = importlib.import_module(f"carto_mcp.server.tools.{TOOL_MODULES[name]}")
        module.register(self, {name})
        self._built.add(name)

    async def list_tools(self) -> list[MCPTool]:
        from carto_mcp.server.catalog import load

        stored = load()
        if stored is not None and all(n in stored for n in self.selected_tools):
            return [MCPTool.model_validate(stored[n]) for n in self.selected_tools]
        materialize_all(self)
        return await self.live_tools()

    async def live_tools(self) -> list[MCPTool]:
        """tools/list as the SDK generates it from the registered functions."""
        tools = {t.name: t for t in await super().list_tools()}
        return [tools[n] for n in self.selected_tools if n in tools]

    def _tool_input_schema(self, name: str) -> dict[str, Any] | None:
        self.materialize(name)
        return super()._tool_input_schema(name)

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        self.materialize(name)
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


def materialize_all(server: CartoMCP) -> None:
    for name in server.selected_tools:
        server.materialize(name)


def build_server(
    settings: ServerSettings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    environ: Mapping[str, str] | None = None,
) -> CartoMCP:
    """Build the server. `transport` lets tests route the CARTO client through a mock or the sandbox."""
    settings = settings or ServerSettings()
    tools = select_tools(read_only=settings.read_only, include=settings.tools, exclude=settings.exclude_tools)

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        connections = Connections(settings, transport=transport, environ=dict(environ) if environ else None)
        try:
            yield AppState(
                connections=connections,
                settings=settings,
                confirmer=Confirmer(settings.confirm_key, ttl=settings.confirm_ttl),
                audit=AuditLog(settings.audit_log) if settings.audit_log else None,
            )
        finally:
            await connections.aclose()

    server = CartoMCP(
        "carto-mcp",
        title="CARTO credentials",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="DEBUG" if settings.debug else "WARNING",
        tool_names=tools,
    )
    quiet_http_loggers()
    from carto_mcp.server import guides

    guides.register(server)
    if settings.sandbox:
        logger.warning(
            "carto-mcp is running on the embedded SANDBOX API (db: %s): no real CARTO account is used.",
            settings.sandbox_db or "throwaway",
        )
    return server


def quiet_http_loggers() -> None:
    """Keep httpx2/httpcore2 below INFO even when `log_level` (--debug) opens the root logger.

    httpx2 logs every request URL at INFO, and a token's URL carries the token itself; our own
    request log (`carto_mcp.api`, bearer and token paths masked) replaces it.
    """
    for name in ("httpx2", "httpcore2"):
        logging.getLogger(name).setLevel(logging.WARNING)
