"""Small file helpers shared by the credentials migration, `install` and secret files.

Every config or secret we write goes to a temporary file beside the target and is moved into
place, so a crash or a full disk never leaves half a file where a whole one was.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def atomic_write(
    path: Path, payload: bytes, *, mode: int = 0o600, before_replace: Callable[[], None] | None = None
) -> None:
    """Write `payload` to `path` all at once with `mode`; `before_replace` may veto by raising."""
    import tempfile

    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            if hasattr(os, "fchmod"):
                os.fchmod(handle.fileno(), mode)
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        if before_replace is not None:
            before_replace()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def json_type(value: object) -> str:
    """How a JSON value's type reads in an error message ('a string', 'an array', ...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
