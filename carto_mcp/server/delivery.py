"""The MCP side of secret delivery: can this call show a page, where is it served, and the question.

`credentials.delivery` decides what each mode does and never sees MCP; this module answers
the three things only the call knows: whether the client declared URL-mode elicitation (and
the server can call back), the base URL of the page (this HTTP server, or the loopback
listener started for it), and how to ask the person to open it.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import anyio
import anyio.to_thread
from mcp.server.mcpserver import Context
from mcp.shared.exceptions import MCPError
from mcp_types.version import is_version_at_least

from carto_mcp.credentials import FileSink, InlineSink, RevealSink, SecretFile, SecretsDir, SecretSink, choose
from carto_mcp.credentials.delivery import Answer, AskUrl
from carto_mcp.errors import SettingError
from carto_mcp.server.confirm import declares_url_elicitation
from carto_mcp.server.reveal import RevealDesk
from carto_mcp.server.state import AppState

__all__ = ["secret_sink"]

#: From this protocol revision on, a tool cannot send the client a request while it runs (questions ride
#: `InputRequiredResult`, before the body, and the SDK's only question is a form): a page made by the body
#: can be offered only on the earlier revisions every host speaks today.
MID_CALL_REQUESTS_END = "2026-07-28"

#: Over HTTP behind a bearer, the page needs that bearer too: a browser opening the link does not send it.
BEARER_NOTE = (
    "The reveal page is served behind this server's bearer secret: open it with the same Authorization header "
    "(for example curl -H 'Authorization: Bearer ...' URL), not in a plain browser tab."
)


def _obstacle(ctx: Context[Any, Any], state: AppState) -> str | None:
    """Why a reveal page cannot be offered on this call, or None when it can."""
    settings = state.settings
    if settings.stateless:
        return "this server runs stateless HTTP, so it cannot ask the client to open a page"
    if not declares_url_elicitation(ctx):
        return "this client did not declare URL-mode elicitation"
    version = ctx.protocol_version
    if version is not None and is_version_at_least(version, MID_CALL_REQUESTS_END):
        return f"this session speaks MCP {version}, in which a tool cannot ask the client to open a page as it runs"
    if settings.secrets is None and state.reveals.behind_bearer:
        return "the page would sit behind this server's bearer secret, which a browser does not send"
    if not state.reveals.store.room():
        return "too many secrets are waiting to be read already"
    return None


async def secret_sink(
    ctx: Context[Any, Any], state: AppState, *, requested: SecretFile | None, variables: Sequence[str]
) -> SecretSink:
    """The sink one create delivers its secret to, chosen (and checked) before anything is created."""
    if requested is not None:
        return FileSink(requested)
    settings = state.settings
    why = _obstacle(ctx, state)
    base: str | None = None
    if why is None:
        base = state.reveals.base_url(ctx.request_context.request)
        if base is None:
            try:
                base = await anyio.to_thread.run_sync(state.reveals.loopback_url)
            except OSError as exc:
                why = f"the reveal page could not be served ({exc})"
    mode = choose(settings.secrets, reveal_possible=why, secrets_dir=settings.secrets_dir)
    if mode == "inline":
        return InlineSink()
    if mode == "file":
        if settings.secrets_dir is None:  # settings_from refuses --secrets file without a dir
            raise SettingError("--secrets file needs --secrets-dir DIR. Nothing was created.", field="secrets")
        return SecretsDir(settings.secrets_dir, tuple(variables), state.protected_paths).check()
    assert base is not None
    notes = (BEARER_NOTE,) if state.reveals.behind_bearer else ()
    return RevealSink(state.reveals.store, base, _asker(ctx, state.reveals, settings.reveal_ttl), notes=notes)


def _asker(ctx: Context[Any, Any], desk: RevealDesk, timeout: float) -> AskUrl:
    """Ask the person to open the page; any way the question fails to arrive is an answer ("failed"), not an error.

    Once the page has been read, the client is told (`notifications/elicitation/complete`).

    The credential exists by now: whatever the client does with the question, the result must
    still come back, saying where the page is.
    """

    async def ask(message: str, url: str, ident: str) -> Answer:
        # Watched before asking: the person may open the page before the client's answer arrives.
        desk.watch(ident, partial(ctx.session.send_elicit_complete, ident))
        try:
            with anyio.fail_after(timeout):
                answer = await ctx.elicit_url(message, url, ident)
        except (MCPError, TimeoutError, anyio.BrokenResourceError, anyio.ClosedResourceError, anyio.EndOfStream):
            desk.forget(ident)
            return "failed"
        if answer.action != "accept":
            desk.forget(ident)  # not opened through this question: nothing to complete
        return answer.action

    return ask
