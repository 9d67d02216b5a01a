"""Guard rails between an agent and real credentials.

- which tools exist at all (read-only mode, allow/deny globs);
- confirmation of destructive calls: elicitation when the client can ask its user, else a
  one-time code bound to the exact operation, signed with HMAC so any replica sharing the
  key accepts it, remembered once used so it cannot be replayed on this replica;
- an append-only audit line per mutating call, never holding a secret;
- secrets written to a 0600 `.env`-style file instead of the chat, on request.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac
import json
import os
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from pydantic import BaseModel, Field

from carto_mcp.files import atomic_write
from carto_mcp.api.errors import InputError
from carto_mcp.server.settings import ALL_TOOLS, READ_TOOLS

# --- tool policy -----------------------------------------------------------------------


def select_tools(
    *, read_only: bool, include: Iterable[str], exclude: Iterable[str], available: Iterable[str] = ALL_TOOLS
) -> list[str]:
    """The tools to register. Unknown names or globs matching nothing are an error listing the valid ones."""
    names = list(available)
    include, exclude = list(include), list(exclude)
    for pattern in (*include, *exclude):
        if not fnmatch.filter(names, pattern):
            raise InputError(
                f"--tools/--exclude-tools: {pattern!r} matches no tool. Valid tools: {', '.join(names)}",
                field="tools",
            )
    chosen = [n for n in names if not include or any(fnmatch.fnmatchcase(n, p) for p in include)]
    chosen = [n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in exclude)]
    if read_only:
        chosen = [n for n in chosen if n in READ_TOOLS]
    if not chosen:
        raise InputError(
            "--tools/--exclude-tools/--read-only leave no tool to serve. Read-only tools: "
            f"{', '.join(READ_TOOLS)}; all tools: {', '.join(names)}",
            field="tools",
        )
    return chosen


# --- confirmation ----------------------------------------------------------------------


class Confirm(BaseModel):
    """The one-field form shown to the user when the client supports elicitation."""

    confirm: bool = Field(description="Proceed with this change? It cannot be undone.")


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


def describe(kind: str, ident: str, name: str | None, losses: list[str], action: str) -> str:
    """The sentence shown before a destructive change."""
    label = f"{kind} {ident}" + (f" ({name})" if name else "")
    lost = "; ".join(losses[:20]) + (f"; and {len(losses) - 20} more" if len(losses) > 20 else "")
    what = f" It removes: {lost}." if lost else ""
    return f"{action} {label}?{what} This cannot be undone."


# --- audit log -------------------------------------------------------------------------


@dataclass
class AuditLog:
    """One JSON line per mutating call, appended with a single write (atomic on POSIX O_APPEND)."""

    path: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self, *, profile: str, tool: str, kind: str | None, ident: str | None, outcome: str, error: str | None = None
    ) -> None:
        entry = {
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "profile": profile,
            "tool": tool,
            "kind": kind,
            "id": ident,
            "outcome": outcome,
            "error": error,
        }
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


# --- secret files ----------------------------------------------------------------------


def check_secret_file(path: str, names: Iterable[str], *, overwrite: bool = False) -> Path:
    """Refuse a bad target before anything is created, so a secret is never created and then lost."""
    target = Path(path).expanduser()
    if not target.is_absolute():
        raise InputError(
            "secret_output_file: give an absolute path (or one starting with ~).", field="secret_output_file"
        )
    if target.is_dir():
        raise InputError(f"secret_output_file: {target} is a directory.", field="secret_output_file")
    clash = sorted(set(names) & _defined(target))
    if clash and not overwrite:
        raise InputError(
            f"secret_output_file: {target} already defines {', '.join(clash)}. Pass overwrite_secret=true to "
            "replace it, or choose another file or variable name. Nothing was created.",
            field="secret_output_file",
        )
    if not os.access(_existing_parent(target), os.W_OK):
        raise InputError(f"secret_output_file: cannot write to {target.parent}.", field="secret_output_file")
    return target


def write_secret_file(path: str, values: Mapping[str, str], *, overwrite: bool = False) -> Path:
    """Write `NAME=value` lines to a mode-0600 file, keeping its other lines.

    Written to a temporary file beside the target and moved into place, so a crash never
    leaves half a file.
    """
    target = check_secret_file(path, values, overwrite=overwrite)
    lines = target.read_text(encoding="utf-8").splitlines() if target.exists() else []
    kept = [ln for ln in lines if not ("=" in ln and ln.split("=", 1)[0].strip() in values)]
    content = "\n".join([*kept, *(f"{k}={v}" for k, v in values.items())]) + "\n"
    target.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(target, content.encode("utf-8"), mode=0o600)
    os.chmod(target, 0o600)
    return target


def _defined(target: Path) -> set[str]:
    if not target.is_file():
        return set()
    lines = target.read_text(encoding="utf-8").splitlines()
    return {ln.split("=", 1)[0].strip() for ln in lines if "=" in ln and not ln.lstrip().startswith("#")}


def _existing_parent(target: Path) -> Path:
    parent = target.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    return parent


def env_name(value: str) -> str:
    """Variable names for secret files: letters, digits and underscores, not starting with a digit."""
    if not value or not (value[0].isalpha() or value[0] == "_") or not all(c.isalnum() or c == "_" for c in value):
        raise InputError(
            f"secret_variable: {value!r} is not a valid variable name (A-Z, 0-9, _).", field="secret_variable"
        )
    return value
