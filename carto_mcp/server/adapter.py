"""The one adapter between MCP tool calls and carto-mcp: errors, audit lines and result text.

Tool bodies and their resolvers raise `carto_mcp.errors` exceptions and return result models;
they never build MCP errors, write audit lines or format replies. Two narrow hooks do that:

- `CallAdapter.call` runs inside `CartoMCP.call_tool`, the SDK's public entry for a call, and
  wraps everything the call does: it refuses unknown argument names (a typo must not silently
  drop a restriction), rewrites the SDK's validation text so it never echoes an input value,
  turns a deliberate `CartoError` — from the body or a resolver — into a tool error the model
  can act on (values that look like secrets masked), and writes the call's one audit line,
  whatever happened: a result, an error, or a cancellation after a credential was made. The
  line is written in a worker thread (it waits on the file lock another server may hold, and
  syncs to disk), shielded from the call's cancellation so a cancelled call is still recorded.
  Anything else is a bug and stays the SDK's masked error.
- `wrap(spec)` is what the server registers for each tool: it runs the body, notes the
  result's outcome for the audit line, and turns the result model into our reply
  (`reply.reply`). It is a plain `functools.wraps` wrapper, so the SDK reads the tool's own
  signature and return model.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from carto_mcp.credentials.events import listen_for_creations
from carto_mcp.errors import CartoError, InputError, PolicyRefused, SettingError
from carto_mcp.masking import looks_like_token, redact, short_id
from carto_mcp.models.kinds import CredentialKind
from carto_mcp.models.validation import describe
from carto_mcp.server.registry import ToolSpec
from carto_mcp.server.reply import reply
from carto_mcp.server.state import AppState, state_of

__all__ = ["CallAdapter", "unknown_arguments", "wrap"]

logger = logging.getLogger("carto_mcp.server")


@dataclass
class _Call:
    """What one call did, for its audit line: the outcome its result names, and what it created."""

    outcome: str | None = None
    ident: str | None = None
    created: str | None = None
    #: How a new secret was delivered (reveal, file, inline): the audit line says so, never the secret.
    delivery: str | None = None

    def creation(self, kind: CredentialKind, ident: str) -> None:
        self.created = ident


#: The call in progress in this task (set by `CallAdapter.call`, filled by `wrap`'s body).
_current: ContextVar[_Call | None] = ContextVar("carto_mcp_call", default=None)


def wrap(spec: ToolSpec) -> Callable[..., Awaitable[CallToolResult]]:
    """The function registered for `spec`: the body, then its outcome noted and our reply."""
    body = spec.fn

    @functools.wraps(body)
    async def tool(**arguments: Any) -> CallToolResult:
        result = await body(**arguments)
        call = _current.get()
        if call is not None:
            call.outcome = getattr(result, "outcome", None)
            call.ident = getattr(result, "audit_id", None)
            call.delivery = getattr(result, "audit_delivery", None)
        return reply(result)

    return tool


def unknown_arguments(tool: str, given: Sequence[str], known: Sequence[str]) -> str | None:
    """An argument the tool does not take is refused, so a typo never silently drops a restriction."""
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return None
    return (
        f"Invalid arguments for {tool}: unknown argument{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(repr(redact(u[:60])) for u in unknown[:5])}. Valid arguments: {', '.join(known)}"
    )


def tool_error_text(tool: str, exc: CartoError | ValidationError) -> str:
    """What the model reads for a deliberate failure: the problem and its fix, never a secret or a traceback."""
    if isinstance(exc, ValidationError):
        return redact(f"Invalid arguments for {tool}: {describe(exc)}")
    if isinstance(exc, InputError) and not isinstance(exc, SettingError):
        return redact(f"Invalid arguments for {tool}: {exc}", keep=exc.shown)
    return redact(str(exc), keep=exc.shown)


class CallAdapter:
    """Per-server state of the call hook: the registered specs and the argument names they take."""

    def __init__(self, specs: Sequence[ToolSpec]) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self._known: dict[str, list[str]] | None = None

    async def call(
        self,
        name: str,
        arguments: dict[str, Any],
        context: Context[Any, Any] | None,
        run: Callable[[], Awaitable[CallToolResult | InputRequiredResult]],
        known_arguments: Callable[[], Awaitable[Mapping[str, list[str]]]],
    ) -> CallToolResult | InputRequiredResult:
        spec = self.specs.get(name)
        if spec is None or not isinstance(arguments, dict):
            return await run()  # the SDK's own answer: unknown tool, malformed call
        if self._known is None:
            self._known = dict(await known_arguments())
        call = _Call()
        outcome, error = "error", "Error"
        token = _current.set(call)
        try:
            problem = unknown_arguments(name, list(arguments), self._known.get(name, []))
            if problem:
                error = "InputError"
                raise ToolError(problem)
            with listen_for_creations(call.creation):
                result = await run()
            if isinstance(result, InputRequiredResult):
                outcome = ""  # a question for the person: the call is not over yet
            else:
                outcome, error = call.outcome or "", ""
            return result
        except UnexpectedToolError as exc:
            cause = exc.__cause__
            error = type(cause).__name__ if cause is not None else "Error"
            if not isinstance(cause, CartoError):
                raise  # a bug: the SDK logs it and shows the model only "Error executing tool ..."
            if isinstance(cause, PolicyRefused):
                outcome = "refused"  # the policy said no before anything reached CARTO
            raise ToolError(tool_error_text(name, cause)) from cause
        except ToolError as exc:
            cause = exc.__cause__
            if cause is not None:
                error = type(cause).__name__
            if isinstance(cause, ValidationError):
                raise ToolError(tool_error_text(name, cause)) from cause
            raise
        except Exception as exc:
            error = type(exc).__name__  # a protocol error (MCPError): the SDK answers it
            raise
        except BaseException:
            outcome, error = "cancelled", ""  # the client gave up, or the server is stopping
            raise
        finally:
            _current.reset(token)
            if outcome and not spec.read_only and context is not None:
                # An id CARTO confirmed is recorded as it is; a caller's unverified one is masked if it looks secret.
                given = _audit_id(arguments.get("id"))
                ident = call.ident or call.created or (redact(given) if given else None)
                await self._audit(context, spec, arguments, outcome, ident, error or None, call.delivery)

    async def _audit(
        self,
        context: Context[Any, Any],
        spec: ToolSpec,
        arguments: Mapping[str, Any],
        outcome: str,
        ident: object,
        error: str | None,
        delivery: str | None,
    ) -> None:
        try:
            state = state_of(context)
        except (ValueError, AssertionError):  # called outside a request: nothing to audit into
            return
        await _audit(state, spec, arguments, outcome, ident, error=error, delivery=delivery)


async def _audit(
    state: AppState,
    spec: ToolSpec,
    arguments: Mapping[str, Any],
    outcome: str,
    ident: object,
    *,
    error: str | None = None,
    delivery: str | None = None,
) -> None:
    """One audit line; a line that cannot be written is logged, and never replaces the call's result."""
    if state.audit is None:
        return
    kind = arguments.get("kind") if isinstance(arguments.get("kind"), str) else spec.kind
    record = functools.partial(
        state.audit.record,
        profile=_profile_label(state, arguments.get("profile")),
        tool=spec.name,
        kind=kind,
        ident=_audit_id(ident),
        outcome=outcome,
        error=error,
        delivery=delivery,
    )
    try:
        with anyio.CancelScope(shield=True):  # bounded: record gives up after its lock_timeout
            await anyio.to_thread.run_sync(record)
    except OSError as exc:
        logger.error("could not write the audit log %s: %s", state.audit.path, exc.strerror or type(exc).__name__)


def _audit_id(ident: object) -> str | None:
    """A call by full token value that fails before the id is known is logged by the token's short id."""
    if not isinstance(ident, str) or not ident:
        return None
    return short_id(ident) if looks_like_token(ident) else ident[:128]


def _profile_label(state: AppState, profile: object) -> str:
    """The profile a call acted as; never fails, since it runs while another error may be raised."""
    if isinstance(profile, str) and profile:
        return redact(profile[:128])
    try:
        return state.profile_name
    except CartoError:
        return "(none)"
