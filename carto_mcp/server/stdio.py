"""Serving over stdio, as a well-behaved child of a desktop host.

Three things the SDK's stdio transport leaves to us:

- **A message size cap.** The SDK reads a whole line before parsing it, so one huge line
  costs its size many times over in memory. A relay thread reads the real stdin in chunks
  and hands the SDK only lines up to `MAX_MESSAGE_BYTES`; a longer one is dropped as it
  arrives (never held whole) and replaced by a tiny request with the same id, which the
  SDK answers with a JSON-RPC error naming the limit.
- **Stopping at once.** SIGINT or SIGTERM ends the relay, so the SDK sees the end of its input
  and shuts down (lifespan and all); a process still running a second later exits anyway.
- **A host that goes away.** If stdout is closed under us, we exit quietly, not with a traceback.

Only operating-system plumbing is used (a pipe in place of fd 0); the SDK runs unchanged.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import threading
from collections.abc import Iterable
from typing import Any

from mcp.server.mcpserver import MCPServer

from carto_mcp.config import MAX_MESSAGE_BYTES
from carto_mcp.exception_groups import BaseExceptionGroup, leaves

__all__ = ["MAX_MESSAGE_BYTES", "StdinGuard", "request_id", "serve_stdio"]

logger = logging.getLogger("carto_mcp.server")

#: Bytes read from the real stdin at a time.
_CHUNK = 64 * 1024
#: How much of an oversized message is kept to find its id in.
_HEAD = 64 * 1024
#: After a stop signal, the process exits this many seconds later even if shutdown hangs.
STOP_GRACE = 1.0
#: What the SDK answers for the substitute request of an oversized message (method not found, naming it).
TOO_LARGE_METHOD = f"message too large (over {MAX_MESSAGE_BYTES:,} bytes): nothing was done"


def request_id(head: bytes) -> Any:
    """The top-level `"id"` of a JSON-RPC message from its first bytes, or None when not seen there.

    Only a key at nesting depth 1 counts: a tool argument called `id` inside `params` is not it.
    """
    text = head.decode("utf-8", "replace")
    depth = 0
    i = 0
    in_string = False
    key_start = -1
    while i < len(text):
        ch = text[i]
        if in_string:
            if ch == "\\":
                i += 2
                continue
            if ch == '"':
                in_string = False
                if depth == 1 and key_start >= 0 and text[key_start:i] == "id":
                    rest = text[i + 1 :].lstrip()
                    if rest.startswith(":"):
                        return _leading_value(rest[1:].lstrip())
                key_start = -1
        elif ch == '"':
            in_string = True
            key_start = i + 1
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
        i += 1
    return None


def _leading_value(text: str) -> Any:
    """A JSON number or string at the start of `text` (an id), else None."""
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except ValueError:
        return None
    return value if isinstance(value, (int, str)) and not isinstance(value, bool) else None


def substitute(head: bytes) -> bytes | None:
    """The line that stands in for an oversized message: a request the SDK will refuse by its id."""
    ident = request_id(head)
    if ident is None:
        return None  # a notification, or an id we cannot find: there is nobody to answer
    return json.dumps({"jsonrpc": "2.0", "id": ident, "method": TOO_LARGE_METHOD}).encode() + b"\n"


def _lines(chunks: Iterable[bytes], limit: int) -> Iterable[bytes]:
    """Complete lines (newline included) from a byte stream, each oversized one replaced or dropped."""
    buffer = bytearray()
    head: bytes | None = None  # set while an oversized line is being skipped
    for chunk in chunks:
        while chunk:
            cut = chunk.find(b"\n")
            piece, chunk = (chunk, b"") if cut < 0 else (chunk[: cut + 1], chunk[cut + 1 :])
            if head is None:
                buffer += piece
                if len(buffer) > limit + 1:
                    head, buffer = bytes(buffer[:_HEAD]), bytearray()
            if cut >= 0:
                if head is not None:
                    logger.warning("refused a message over %s bytes", f"{limit:,}")
                    line = substitute(head)
                    if line is not None:
                        yield line
                    head = None
                else:
                    yield bytes(buffer)
                    buffer.clear()
    if buffer and head is None:
        yield bytes(buffer)


class StdinGuard:
    """Puts a pipe in place of fd 0 and relays the real stdin into it, line by line, capped."""

    def __init__(self, limit: int = MAX_MESSAGE_BYTES) -> None:
        self.limit = limit
        self._write: int | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        real = os.dup(0)
        read, write = os.pipe()
        os.dup2(read, 0)
        os.close(read)
        self._write = write
        threading.Thread(target=self._relay, args=(real,), name="carto-stdin", daemon=True).start()

    def stop(self) -> None:
        """End the SDK's input: it sees EOF and shuts down."""
        with self._lock:
            write, self._write = self._write, None
        if write is not None:
            with contextlib.suppress(OSError):
                os.close(write)

    def _relay(self, real: int) -> None:
        def chunks() -> Iterable[bytes]:
            while True:
                try:
                    data = os.read(real, _CHUNK)
                except OSError:
                    return
                if not data:
                    return
                yield data

        try:
            for line in _lines(chunks(), self.limit):
                with self._lock:
                    write = self._write
                    if write is None:
                        return
                    view = memoryview(line)
                    while view:
                        view = view[os.write(write, view) :]
        except OSError:  # the server stopped reading
            pass
        finally:
            self.stop()


def serve_stdio(server: MCPServer[Any]) -> int:
    """Run `server` over stdio until its input ends or a stop signal comes; 0 on a normal end."""
    guard = StdinGuard()
    guard.start()

    def stop(signum: int, frame: object) -> None:
        guard.stop()
        deadline = threading.Timer(STOP_GRACE, os._exit, (128 + signum,))
        deadline.daemon = True  # it must not itself keep the process alive
        deadline.start()

    signal.signal(signal.SIGINT, stop)
    if hasattr(signal, "SIGTERM"):
        signal.signal(signal.SIGTERM, stop)
    try:
        server.run("stdio")
    except BaseExceptionGroup as group:
        if not _only_broken_pipes(group):
            raise
        _silence_stdout()
    except (BrokenPipeError, ConnectionResetError):
        _silence_stdout()
    return 0


def _only_broken_pipes(group: BaseExceptionGroup[BaseException]) -> bool:
    found = leaves(group)
    return bool(found) and all(isinstance(e, (BrokenPipeError, ConnectionResetError)) for e in found)


def _silence_stdout() -> None:
    """The host closed our stdout: point fd 1 at the null device so nothing more can fail on it."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass
