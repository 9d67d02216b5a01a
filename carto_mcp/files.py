"""Local files: where they live, how JSON files are read, and how anything we write is written.

One home for what the credentials resolver, `install`, the sandbox and secret files share:
- the home directory and per-user data directory, taken from an `environ` mapping when given,
  so tests (and `doctor` checking a client's env) never read the real ones;
- reading a JSON object with errors that name the file, the line and the fix, never quoting
  the document (it holds tokens), and refusing files too big or too deep to be a config;
- writing to a temporary file beside the target and moving it into place, so a crash or a
  full disk never leaves half a file where a whole one was.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carto_mcp.errors import CartoError

__all__ = [
    "MAX_CONFIG_BYTES",
    "JsonFile",
    "atomic_write",
    "home_dir",
    "json_type",
    "read_json_object",
    "user_data_dir",
]

#: A credentials or client config file is a few KB; anything this big is not one, and is not read.
MAX_CONFIG_BYTES = 1024 * 1024


def home_dir(environ: Mapping[str, str] | None = None) -> Path:
    """The home directory: `HOME` (or `USERPROFILE`) from `environ` when given, else the process's own."""
    if environ is not None:
        for key in ("HOME", "USERPROFILE"):
            value = environ.get(key)
            if value:
                return Path(value)
    return Path.home()


def user_data_dir(environ: Mapping[str, str] | None = None, *, platform: str | None = None) -> Path:
    """The per-user data directory: `$XDG_DATA_HOME`, else `~/.local/share`, `~/Library/Application
    Support` (macOS) or `%LOCALAPPDATA%` (Windows). Not created here."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    if env.get("XDG_DATA_HOME"):
        return Path(env["XDG_DATA_HOME"])
    home = home_dir(env)
    if platform == "darwin":
        return home / "Library" / "Application Support"
    if platform.startswith(("win", "cygwin")):
        return Path(env["LOCALAPPDATA"]) if env.get("LOCALAPPDATA") else home / "AppData" / "Local"
    return home / ".local" / "share"


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


@dataclass(frozen=True)
class JsonFile:
    """A JSON object read from disk, with the bytes and stat it was read from."""

    data: dict[str, Any]
    raw: bytes
    stat: os.stat_result


def read_json_object(
    path: Path,
    *,
    what: str,
    fix: str,
    error: type[CartoError] = CartoError,
    empty_ok: bool = False,
    max_bytes: int = MAX_CONFIG_BYTES,
) -> JsonFile | None:
    """The file's top-level JSON object, or None when the file does not exist.

    Every problem raises `error` naming `what` and `path`, with `fix` as the way out: not a
    regular file, unreadable, too big, not UTF-8, not JSON (line and column, never the text),
    nested too deep, a number too long, not an object. `empty_ok` reads an empty file as {}.
    """
    try:
        st = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}", fix=fix) from None
    if not stat.S_ISREG(st.st_mode):
        raise error(f"{what} {path} is not a regular file", fix=fix)
    if st.st_size > max_bytes:
        raise error(f"{what} {path} is {st.st_size:,} bytes, too big to be one (at most {max_bytes:,})", fix=fix)
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}", fix=fix) from None
    if len(raw) > max_bytes:
        raise error(f"{what} {path} is more than {max_bytes:,} bytes, too big to be one", fix=fix)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not UTF-8 text", fix=fix) from None
    if empty_ok and not text.strip():
        return JsonFile({}, raw, st)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # exc.msg is the parser's complaint only; the document (which holds tokens) is never quoted.
        raise error(
            f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", fix=fix
        ) from None
    except RecursionError:
        raise error(f"{what} {path} is nested too deeply to be a config file", fix=fix) from None
    except ValueError:  # an integer with thousands of digits
        raise error(f"{what} {path} holds a number too long to read", fix=fix) from None
    if not isinstance(data, dict):
        raise error(f"{what} {path} must hold a JSON object at the top level, not {json_type(data)}", fix=fix)
    return JsonFile(data, raw, st)


def atomic_write(
    path: Path, payload: bytes, *, mode: int = 0o600, before_replace: Callable[[], None] | None = None
) -> None:
    """Write `payload` to `path` all at once with `mode`; `before_replace` may veto by raising."""
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
