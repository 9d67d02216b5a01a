"""An append-only, hash-chained audit line per mutating call: who, what, which credential, what happened.

One JSON object per line; each line's `prev` is the `hash` of the sealed line before it in the
file and its `hash` covers everything else on it (the format is `carto_mcp.auditchain`), so
`carto-mcp audit-log verify` can tell an edited, deleted or moved line. A line never holds a
secret: ids are short ids, errors are class names, the key shows only as its `key_id`.

Appending is a critical section, because the previous hash must be read from the file at the
moment of writing — not remembered — for the chain to survive restarts and to stay one chain
when several servers share the file. So `record`:

1. opens the path anew (a rotated-away file is never written to) with `O_APPEND`;
2. takes an exclusive `flock` on it (`filelock`) — and, first, this log's own thread lock,
   since where `flock` is emulated with `fcntl` locks (NFS) two threads of one process would
   not exclude each other — waiting at most `lock_timeout` seconds, so a stuck writer
   elsewhere becomes an error here instead of a hang;
3. reads the file backwards from the end, a chunk at a time, to the last sealed line (usually
   one read: a line is a few hundred bytes);
4. writes the whole line with one `os.write` (a short write, which only a full disk causes, is
   finished before the lock is let go), and `fdatasync`s it: an audit line that was reported
   written is on disk.

A crash mid-write can leave a torn last line (no newline at its end). The next `record` starts
a new line after it (the torn bytes stay: history is never rewritten), chains onto the last
sealed line before it, and sets `chain_break: {"skipped": N, "torn": true}`, N being how many
unreadable lines it stepped over; verify reports those lines as a warning naming them. The same
happens for any whole line that is not a sealed audit line, except lines written by a carto-mcp
from before the chain, with no sealed line anywhere before them: the chain simply starts after
them. If no sealed line is found within `scan_limit` bytes of the end, the new line starts
from `GENESIS` with `skipped: null`, which verify reports too.

The path is checked when the server starts (`check`), so a log that cannot be written stops
start-up instead of failing after a credential was made.
"""

from __future__ import annotations

import errno
import os
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from carto_mcp.auditchain import CHAIN_BREAK, GENESIS, is_unsealed, parse_entry, seal, sealed_hash
from carto_mcp.errors import InputError
from carto_mcp.server.filelock import exclusive

__all__ = ["AuditLog"]

_FIX = "point --audit-log (or CARTO_MCP_AUDIT_LOG) at a file this user can read and append to"

#: Read and append (the tail is read to chain onto it); never block on a FIFO put in its place.
_OPEN = os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_NONBLOCK", 0)
#: Bytes read per step when walking back from the end of the file.
_CHUNK = 8192
#: How often a path swapped for a new file between open and lock (log rotation) is opened again.
_REOPENS = 3
#: Data (not metadata) to disk; macOS has only fsync.
_sync = getattr(os, "fdatasync", os.fsync)


@dataclass(frozen=True)
class _Tail:
    """What the end of the file says about the next line: what it chains onto, and what it steps over."""

    prev: str
    #: Lines after the last sealed line that are not sealed lines; None when the walk gave up first.
    skipped: int | None = 0
    #: The file does not end with a newline: the last line was cut off mid-write.
    torn: bool = False
    #: Every skipped line is an audit line from before the chain, and nothing sealed precedes them.
    unchained_start: bool = False

    def marker(self) -> dict[str, Any] | None:
        """The `chain_break` value the next line records, or None when the chain goes on (or starts) cleanly."""
        if self.skipped == 0 or self.unchained_start:
            return None
        return {"skipped": self.skipped, "torn": self.torn}


@dataclass
class AuditLog:
    """The audit log at `path`, sealed with `key` (HMAC) when one is set, plain SHA-256 otherwise."""

    path: Path
    key: bytes | None = field(default=None, repr=False)
    #: Seconds to wait for another writer's lock before the line is given up as an error (logged).
    lock_timeout: float = 10.0
    #: Bytes walked back from the end looking for the last sealed line before the chain restarts.
    scan_limit: int = 1024 * 1024
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
        self,
        *,
        profile: str,
        tool: str,
        kind: str | None,
        ident: str | None,
        outcome: str,
        error: str | None = None,
        delivery: str | None = None,
    ) -> None:
        """Append one sealed line; blocks on the file lock, so async callers run it in a worker thread.

        `delivery` (reveal, file or inline) is written only for a call that delivered a secret.
        """
        entry: dict[str, Any] = {
            "time": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "profile": profile,
            "tool": tool,
            "kind": kind,
            "id": ident,
            "outcome": outcome,
            "error": error,
        }
        if delivery is not None:
            entry["delivery"] = delivery
        self._append(entry)

    def _append(self, entry: dict[str, Any]) -> None:
        """Seal `entry` onto the last sealed line in the file and append it, under the file lock."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + self.lock_timeout
        if not self._lock.acquire(timeout=self.lock_timeout):
            raise OSError(errno.EWOULDBLOCK, "another thread held the audit log too long")
        try:
            for _ in range(_REOPENS):
                fd = os.open(self.path, _OPEN, 0o600)
                try:
                    if not stat.S_ISREG(os.fstat(fd).st_mode):
                        raise OSError(errno.EINVAL, "not a regular file")
                    with exclusive(fd, self.path, deadline):
                        if os.path.samestat(os.fstat(fd), os.stat(self.path)):
                            self._append_locked(fd, entry)
                            return
                finally:
                    os.close(fd)
                # The file was moved away (rotated) between open and lock: write to the new one instead.
            raise OSError(errno.ESTALE, "the audit log kept being replaced while it was opened")
        finally:
            self._lock.release()

    def _append_locked(self, fd: int, entry: dict[str, Any]) -> None:
        """The critical section: read the tail, seal onto it, write the whole line, sync."""
        tail = self._tail(fd, os.fstat(fd).st_size)
        marker = tail.marker()
        if marker is not None:
            entry = {**entry, CHAIN_BREAK: marker}
        line = seal(entry, prev=tail.prev, key=self.key)
        _write_all(fd, (b"\n" if tail.torn else b"") + line)
        _sync(fd)

    def _tail(self, fd: int, size: int) -> _Tail:
        """Walk back from the end to the last sealed line: its hash, and what lies after it."""
        if size == 0:
            return _Tail(GENESIS)
        torn = _read_at(fd, size - 1, 1) != b"\n"
        skipped, unchained = 0, True
        for raw in _lines_backwards(fd, size if torn else size - 1, self.scan_limit):
            if raw is None:
                return _Tail(GENESIS, skipped=None, torn=torn)
            found = sealed_hash(raw)
            if found is not None:
                return _Tail(found, skipped=skipped, torn=torn)
            entry = parse_entry(raw)
            unchained = unchained and not isinstance(entry, str) and is_unsealed(entry)
            skipped += 1
        return _Tail(GENESIS, skipped=skipped, torn=torn, unchained_start=unchained)


def _read_at(fd: int, pos: int, size: int) -> bytes:
    """`size` bytes at `pos` (fewer at the end of the file); the descriptor is this call's own, so seeking is safe
    (and portable: Windows has no `pread`)."""
    os.lseek(fd, pos, os.SEEK_SET)
    chunks = []
    while size > 0:
        chunk = os.read(fd, size)
        if not chunk:
            break
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    """One `os.write` of the whole line; the rest of a short write (a full disk) follows while the lock is held."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(errno.EIO, "the audit line could not be written")
        view = view[written:]


def _lines_backwards(fd: int, end: int, limit: int) -> Iterator[bytes | None]:
    """The lines of the file's first `end` bytes, last first, without newlines; None once `limit` bytes were
    read without reaching the start of the file (the caller stops there)."""
    pos, tail = end, b""
    while True:
        cut = tail.rfind(b"\n")
        while cut >= 0:
            yield tail[cut + 1 :]
            tail = tail[:cut]
            cut = tail.rfind(b"\n")
        if pos == 0:
            yield tail
            return
        if end - pos >= limit:
            yield None
            return
        step = min(_CHUNK, pos, limit - (end - pos))
        pos -= step
        tail = _read_at(fd, pos, step) + tail
