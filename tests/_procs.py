"""Helpers for tests that start real servers: a free loopback port, and a stop that never hangs.

Importable as `_procs` from every test module (pytest puts `tests/` on the path).
"""

from __future__ import annotations

import socket
import subprocess

STOP_TIMEOUT = 10.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop(process: subprocess.Popen[bytes] | subprocess.Popen[str], timeout: float = STOP_TIMEOUT) -> None:
    """Terminate, then kill if it will not go: a test must never wait on a stuck server."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)
