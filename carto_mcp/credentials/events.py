"""Who hears that a credential was just created: the audit of the call that created it.

A create can complete and then its call be cancelled (the client gives up, or closes the
connection) before the result is returned. The audit line must still name what was made, so
the credentials layer announces every creation the moment CARTO confirms it, to whoever is
listening in this task's context (the server's per-call audit record). Nothing listens
outside a server call.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from carto_mcp.models.kinds import CredentialKind

__all__ = ["announce_created", "listen_for_creations"]

Listener = Callable[[CredentialKind, str], None]

_listener: ContextVar[Listener | None] = ContextVar("carto_mcp_creations", default=None)


@contextmanager
def listen_for_creations(listener: Listener) -> Iterator[None]:
    """Within this block (this task and what it awaits), `listener` hears every creation."""
    token = _listener.set(listener)
    try:
        yield
    finally:
        _listener.reset(token)


def announce_created(kind: CredentialKind, ident: str) -> None:
    listener = _listener.get()
    if listener is not None:
        listener(kind, ident)
