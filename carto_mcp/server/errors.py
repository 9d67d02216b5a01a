"""The one adapter from our errors (and pydantic's) to MCP tool errors.

A tool error is an `isError` result the model reads: it must say what happened and what to
change, name the field, and never echo a secret or a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import ValidationError

from carto_mcp.api import errors
from carto_mcp.masking import looks_like_token, short_id

if TYPE_CHECKING:
    from carto_mcp.server.app import AppState

_MAX_ERRORS = 5


def format_validation(exc: ValidationError, *, tool: str | None = None) -> str:
    """`field.path: what is wrong` for each problem; input values are never repeated."""
    lines = []
    for err in exc.errors(include_url=False, include_input=False)[:_MAX_ERRORS]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid value"))
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix) :]
        lines.append(f"{loc}: {msg}" if loc and not msg.startswith(f"{loc}:") else msg)
    more = len(exc.errors()) - _MAX_ERRORS
    if more > 0:
        lines.append(f"... and {more} more")
    head = f"Invalid arguments for {tool}" if tool else "Invalid arguments"
    return f"{head}: " + "; ".join(lines)


def unknown_arguments(tool: str, given: Sequence[str], known: Sequence[str]) -> str | None:
    """An argument the tool does not take is refused, so a typo never silently drops a restriction."""
    unknown = sorted(set(given) - set(known))
    if not unknown:
        return None
    return (
        f"Invalid arguments for {tool}: unknown argument{'s' if len(unknown) > 1 else ''} "
        f"{', '.join(repr(u[:60]) for u in unknown[:5])}. Valid arguments: {', '.join(known)}"
    )


@contextmanager
def tool_errors(
    state: AppState | None,
    tool: str,
    *,
    kind: str | None = None,
    ident: str | None = None,
    mutating: bool = False,
    audit_errors_only: bool = False,
    profile: str | None = None,
) -> Iterator[dict[str, Any]]:
    """Run a tool body: map every deliberate failure to ToolError and audit mutating calls.

    The body may set `outcome` (and `id`) in the yielded dict, e.g. 'confirmation_required'.
    `audit_errors_only` is for a confirmation resolver that runs before the tool body: its
    failure ends the call (so it is the only audit line), its success leaves the line to the body.
    """
    note: dict[str, Any] = {"outcome": "ok", "id": ident}
    error: str | None = None
    try:
        yield note
    except errors.CartoError as exc:
        error = type(exc).__name__
        raise ToolError(str(exc)) from exc
    except ValidationError as exc:
        error = "ValidationError"
        raise ToolError(format_validation(exc, tool=tool)) from exc
    except ValueError as exc:
        error = "InputError"
        raise ToolError(f"Invalid arguments for {tool}: {exc}") from exc
    except ToolError:
        error = "ToolError"
        raise
    except Exception as exc:
        error = type(exc).__name__
        raise
    finally:
        if mutating and state is not None and state.audit is not None and not (audit_errors_only and not error):
            state.audit.record(
                profile=_profile_label(state, profile),
                tool=tool,
                kind=kind,
                ident=_audit_id(note.get("id")),
                outcome="error" if error else str(note.get("outcome")),
                error=error,
            )


def _audit_id(ident: Any) -> str | None:
    """A call by full token value that fails before the id is known is logged by the token's short id."""
    if ident is None:
        return None
    text = str(ident)
    return short_id(text) if looks_like_token(text) else text


def _profile_label(state: AppState, profile: str | None) -> str:
    """The profile a call acted as; never fails, since it runs while another error may be raised."""
    if profile:
        return profile
    try:
        return state.profile_name
    except Exception:
        return "(none)"
