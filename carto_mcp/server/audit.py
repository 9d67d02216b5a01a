"""An append-only audit line per mutating call: who, what, which credential, what happened.

One JSON object per line, written with a single `write` on an `O_APPEND` descriptor, so lines
from concurrent calls (or processes) never interleave. A line never holds a secret: ids are
short ids, errors are class names.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

__all__ = ["AuditLog"]


@dataclass
class AuditLog:
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
