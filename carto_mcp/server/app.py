"""The server factory: settings in, a configured `MCPServer` out.

Every tool call reaches a frozen `AppState` built in the lifespan, so each server (and each
test) starts clean. The tools are the ones their modules declare (`server.tools.TOOLS`),
filtered by the safety settings and registered through the SDK's public `add_tool`; the SDK
generates `tools/list` from them.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from mcp.server.mcpserver import Context, MCPServer
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, CallToolResult, GetPromptResult, InputRequiredResult

from carto_mcp import __version__
from carto_mcp.config import Settings
from carto_mcp.credentials.reveal import RevealStore
from carto_mcp.logs import quiet_url_loggers
from carto_mcp.masking import redact
from carto_mcp.server import guides
from carto_mcp.server.adapter import CallAdapter, wrap
from carto_mcp.server.audit import AuditLog
from carto_mcp.server.confirm import Confirmer
from carto_mcp.server.connections import Connections
from carto_mcp.server.registry import ToolSpec, select_tools
from carto_mcp.server.reveal import RevealDesk
from carto_mcp.server.state import AppState
from carto_mcp.server.tools import TOOLS

if TYPE_CHECKING:
    import httpx2 as httpx

__all__ = ["CartoMCP", "build_server"]

logger = logging.getLogger("carto_mcp.server")

INSTRUCTIONS = (
    "Manage CARTO developer credentials: API Access Tokens, SPA and M2M OAuth clients. "
    "Tokens are addressed by a short id (from list_credentials); a new secret is shown only once, and to the "
    "person where possible: a one-time page, a file, or else the create result (never ask the user to paste a "
    "secret into the chat, and never open a reveal_url yourself). Prefer least privilege: only the APIs and "
    "grants needed, an expiry, and referers for browser use. Revocation and updates that remove access need "
    "confirmation."
)


class CartoMCP(MCPServer[AppState]):
    """MCPServer whose `call_tool` goes through our one adapter (see `server.adapter`).

    `call_tool` is the SDK's public entry for a tool call, and the only place both the body's
    and the resolvers' failures pass: the SDK has no hook to refuse unknown argument names or
    to word validation errors without echoing the input, so this override does exactly that.
    """

    def __init__(self, *args: Any, specs: list[ToolSpec], reveals: RevealDesk, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.specs = specs
        #: The one-time secret pages: an HTTP app adds `reveals.routes()`; over stdio they start their own listener.
        self.reveals = reveals
        self._adapter = CallAdapter(specs)
        for spec in specs:
            self.add_tool(
                wrap(spec), title=spec.title, description=spec.description, annotations=spec.tool_annotations()
            )

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[AppState, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        return await self._adapter.call(
            name,
            arguments,
            context,
            lambda: super(CartoMCP, self).call_tool(name, arguments, context),
            self._argument_names,
        )

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None, context: Context[AppState, Any] | None = None
    ) -> GetPromptResult | InputRequiredResult:
        """An unknown prompt or a missing argument is the caller's mistake: invalid params, not a crash.

        The SDK raises ValueError for both, which the dispatcher logs with a traceback and answers
        with error code 0; a host can act on neither.
        """
        prompts = {prompt.name: prompt for prompt in await self.list_prompts()}
        prompt = prompts.get(name)
        if prompt is None:
            known = ", ".join(sorted(prompts))
            raise MCPError(INVALID_PARAMS, f"Unknown prompt {name[:60]!r}; the prompts are: {known}")
        missing = sorted(a.name for a in prompt.arguments or () if a.required and not (arguments or {}).get(a.name))
        if missing:
            raise MCPError(INVALID_PARAMS, f"Prompt {name!r} needs the arguments: {', '.join(missing)}")
        try:
            return await super().get_prompt(name, arguments, context)
        except ValueError as exc:
            raise MCPError(INVALID_PARAMS, f"Prompt {name!r}: {redact(str(exc))[:300]}") from None

    async def _argument_names(self) -> dict[str, list[str]]:
        return {tool.name: list(tool.input_schema.get("properties", {})) for tool in await self.list_tools()}


def build_server(
    settings: Settings | None = None,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    environ: Mapping[str, str] | None = None,
) -> CartoMCP:
    """Build the server. `transport` lets tests route the CARTO client through a mock or the sandbox."""
    settings = settings or Settings()
    specs = select_tools(TOOLS, read_only=settings.read_only, include=settings.tools, exclude=settings.exclude_tools)
    audit = AuditLog(settings.audit_log, key=settings.audit_key) if settings.audit_log else None
    if audit is not None:
        audit.check()
    reveals = RevealDesk(RevealStore(settings.reveal_ttl))

    @asynccontextmanager
    async def lifespan(_: MCPServer[AppState]) -> AsyncIterator[AppState]:
        connections = Connections(settings, transport=transport, environ=dict(environ) if environ else None)
        try:
            yield AppState(
                connections=connections,
                settings=settings,
                confirmer=Confirmer(settings.confirm_key, ttl=settings.confirm_ttl),
                audit=audit,
                reveals=reveals,
            )
        finally:
            await connections.aclose()
            await anyio.to_thread.run_sync(reveals.stop)  # over stdio the pages end with the server

    server = CartoMCP(
        "carto-mcp",
        title="CARTO credentials",
        version=__version__,
        instructions=INSTRUCTIONS,
        lifespan=lifespan,
        log_level="WARNING",  # the SDK logs whole messages at DEBUG: see carto_mcp.logs
        specs=specs,
        reveals=reveals,
    )
    quiet_url_loggers()
    guides.register(server, settings.policy)
    if settings.sandbox:
        logger.warning(
            "carto-mcp is running on the embedded SANDBOX API (db: %s): no real CARTO account is used.",
            settings.sandbox_db or "throwaway",
        )
    return server
