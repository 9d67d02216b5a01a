"""Confirmation of destructive calls, in one vocabulary for update, revoke and rotate.

A tool that may take access away has an approval resolver. It either asks the person (MCP
elicitation, when the client can show a form and the server can call back) or says why it
did not ask (`NotAsked`). The tool body turns that into one `Verdict`:

- `proceed`:   the person said yes, `--yes` is set, a valid one-time code was passed, or
               the change takes nothing away;
- `declined` / `cancelled`: the person said no or dismissed the question (rotation: keep
               the old token);
- `preview`:   nobody could be asked: change nothing and hand out a one-time code bound to
               this exact operation, for a second call the host shows the person.

Codes are `<expiry>.<nonce>.<mac>`, signed with HMAC so every replica sharing the key accepts
them, and remembered once used so they cannot be replayed on this replica.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult
from mcp_types import ElicitationCapability
from pydantic import BaseModel, Field

from carto_mcp.config import Settings
from carto_mcp.errors import InputError

__all__ = [
    "Confirm",
    "Confirmer",
    "NotAsked",
    "Operation",
    "Verdict",
    "ask",
    "can_elicit",
    "declares_url_elicitation",
    "describe",
    "verdict",
]

Verdict = Literal["proceed", "declined", "cancelled", "preview"]


class Confirm(BaseModel):
    """The one-field form shown to the person when the client supports elicitation."""

    confirm: bool = Field(description="Proceed with this change? It cannot be undone.")


class NotAsked(BaseModel):
    """An approval resolver's answer when it did not ask, and why."""

    reason: Literal["yes", "code", "harmless", "cannot_elicit", "keep_old"]


def can_elicit(ctx: Context[Any, Any], settings: Settings) -> bool:
    """Whether this call can ask the person: a client that shows forms, and a server that can call back.

    A stateless HTTP deployment answers each request on its own, so it never asks. A client
    that declared only URL-mode elicitation cannot show a form.
    """
    if settings.stateless:
        return False
    elicitation = _elicitation(ctx)
    return elicitation is not None and (elicitation.form is not None or elicitation.url is None)


def declares_url_elicitation(ctx: Context[Any, Any]) -> bool:
    """Whether the client declared URL-mode elicitation (it can send the person to a page)."""
    elicitation = _elicitation(ctx)
    return elicitation is not None and elicitation.url is not None


def _elicitation(ctx: Context[Any, Any]) -> ElicitationCapability | None:
    caps = ctx.client_capabilities
    return caps.elicitation if caps is not None else None


def ask(
    ctx: Context[Any, Any], settings: Settings, question: str, *, code: str | None, needed: bool = True
) -> NotAsked | Elicit[Confirm]:
    """The approval resolvers' one rule: when to ask the person, and why not otherwise."""
    if settings.yes:
        return NotAsked(reason="yes")
    if code is not None:
        return NotAsked(reason="code")
    if not needed:
        return NotAsked(reason="harmless")
    if not can_elicit(ctx, settings):
        return NotAsked(reason="cannot_elicit")
    return Elicit(question, Confirm)


@dataclass(frozen=True)
class Operation:
    """Exactly what a confirmation code authorizes."""

    tool: str
    profile: str
    kind: str
    id: str
    change: str = ""

    def binding(self) -> bytes:
        digest = hashlib.sha256(self.change.encode()).hexdigest()[:16]
        return "|".join((self.tool, self.profile, self.kind, self.id, digest)).encode()


class Confirmer:
    """Issues and checks one-time confirmation codes: `<expiry>.<nonce>.<mac>`."""

    def __init__(self, key: bytes | None = None, *, ttl: int = 300) -> None:
        self._key = key or secrets.token_bytes(32)
        self.ttl = ttl
        self._used: dict[str, float] = {}
        self._lock = threading.Lock()

    def issue(self, op: Operation, *, now: float | None = None) -> str:
        expires = int((now or time.time()) + self.ttl)
        nonce = secrets.token_hex(6)
        return f"{expires}.{nonce}.{self._mac(op, expires, nonce)}"

    def check(self, op: Operation, code: str, *, now: float | None = None) -> None:
        """Accept the code once for this exact operation, or raise InputError saying why not."""
        now = now or time.time()
        parts = code.strip().split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            raise InputError(
                "confirm: not a confirmation code. Call the tool once without confirm to get one.", field="confirm"
            )
        expires, nonce, mac = int(parts[0]), parts[1], parts[2]
        with self._lock:
            self._used = {n: t for n, t in self._used.items() if t >= now}
            if nonce in self._used:
                raise InputError(
                    "confirm: this code was already used. Nothing was changed; call without confirm for a new code.",
                    field="confirm",
                )
        if not hmac.compare_digest(mac, self._mac(op, expires, nonce)):
            raise InputError(
                "confirm: this code was not issued for this operation (the same tool, profile, kind, id and change), "
                "its change was already made, or it comes from another server. Nothing was changed; call without "
                "confirm for a new code.",
                field="confirm",
            )
        if expires < now:
            raise InputError(
                "confirm: the code has expired. Nothing was changed; call without confirm for a new code.",
                field="confirm",
            )
        with self._lock:
            if nonce in self._used:
                raise InputError("confirm: this code was already used. Nothing was changed.", field="confirm")
            self._used[nonce] = float(expires)

    def _mac(self, op: Operation, expires: int, nonce: str) -> str:
        message = op.binding() + f"|{expires}|{nonce}".encode()
        raw = hmac.new(self._key, message, hashlib.sha256).digest()[:15]
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def verdict(approval: ElicitationResult[Any], confirmer: Confirmer, op: Operation, code: str | None) -> Verdict:
    """What the approval resolver's outcome means for this call; a code, when given, is checked here."""
    if not isinstance(approval, AcceptedElicitation):
        return "declined" if approval.action == "decline" else "cancelled"
    data = approval.data
    if isinstance(data, Confirm):
        return "proceed" if data.confirm else "declined"
    if isinstance(data, NotAsked):
        if data.reason in ("yes", "harmless"):
            return "proceed"
        if data.reason == "keep_old":
            return "declined"
        if data.reason == "code" and code is not None:
            confirmer.check(op, code)
            return "proceed"
    return "preview"


def describe(kind: str, ident: str, name: str | None, losses: tuple[str, ...] | list[str], action: str) -> str:
    """The sentence shown before a destructive change."""
    label = f"{kind} {ident}" + (f" ({name})" if name else "")
    lost = "; ".join(losses[:20]) + (f"; and {len(losses) - 20} more" if len(losses) > 20 else "")
    what = f" It removes: {lost}." if lost else ""
    return f"{action} {label}?{what} This cannot be undone."
