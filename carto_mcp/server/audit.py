"""An append-only audit line per mutating call: who, what, which credential, what happened.

One JSON object per line, written with a single `write` on an `O_APPEND` descriptor, so lines
from concurrent calls (or processes) never interleave. A line never holds a secret: ids are
short ids, errors are class names. The path is checked when the server starts (`check`), so a
log that cannot be written stops start-up instead of failing after a credential was made.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from carto_mcp.errors import InputError

__all__ = ["AuditLog"]

_FIX = "point --audit-log (or CARTO_MCP_AUDIT_LOG) at a file this user can append to"


_OPEN = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0)


@dataclass
class AuditLog:
    path: Path
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def check(self) -> None:
        """Refuse at start-up a log that is not a regular file or cannot be appended to (its directory is made)."""
        where = f"--audit-log {self.path}"
        try:
            st = self.path.stat()
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise InputError(f"{where}: {exc.strerror or type(exc).__name__}", field="audit_log") from None
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise InputError(
                f"{where} is not a regular file (a directory, FIFO or device)", field="audit_log", fix=_FIX
            )
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(self.path, _OPEN, 0o600))
        except OSError as exc:
            raise InputError(
                f"{where} cannot be written ({exc.strerror or type(exc).__name__})", field="audit_log", fix=_FIX
            ) from None

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
            fd = os.open(self.path, _OPEN, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)
