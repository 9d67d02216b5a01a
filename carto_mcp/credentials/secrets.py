"""Where a new secret goes: a 0600 `.env`-style file instead of the conversation, on request.

The destination is checked before anything is created, so a bad path never costs a
credential: it must be an absolute path to a regular file, or to a file not there yet in a
directory that is; never one of the files carto-mcp itself depends on (the CARTO login, the
legacy config, the audit log, the sandbox database), symlinks resolved first. Writing happens
after the create, off the event loop and with a time limit; if it still fails, the secret is
returned in the result instead (with a warning), because a credential that exists and was
never shown is a credential lost.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from carto_mcp.errors import InputError
from carto_mcp.files import MAX_CONFIG_BYTES, atomic_write

__all__ = ["WRITE_TIMEOUT", "SecretFile", "env_name"]

#: A secret file that cannot be written within this many seconds is given up on (the secret is returned).
WRITE_TIMEOUT = 10.0
_FIELD = "secret_output_file"


def env_name(value: str) -> str:
    """Variable names for secret files: letters, digits and underscores, not starting with a digit."""
    if not value or not (value[0].isalpha() or value[0] == "_") or not all(c.isalnum() or c == "_" for c in value):
        raise InputError(
            f"secret_variable: {value[:60]!r} is not a valid variable name (A-Z, 0-9, _).", field="secret_variable"
        )
    return value


def _refuse(message: str) -> InputError:
    return InputError(f"{_FIELD}: {message} Nothing was created.", field=_FIELD)


@dataclass(frozen=True)
class SecretFile:
    """A checked destination for one create's secret values, one variable per value."""

    #: The file as it will be written: symlinks resolved, so a dotfiles link keeps pointing at it.
    path: Path
    variables: tuple[str, ...]
    overwrite: bool = False

    @classmethod
    def requested(
        cls, path: str | None, variables: Sequence[str], *, overwrite: bool = False, protected: Iterable[Path] = ()
    ) -> SecretFile | None:
        """The checked destination when a caller asked for one (`secret_output_file`), else None."""
        return cls.check(path, variables, overwrite=overwrite, protected=protected) if path else None

    @classmethod
    def check(
        cls, path: str, variables: Sequence[str], *, overwrite: bool = False, protected: Iterable[Path] = ()
    ) -> SecretFile:
        """Refuse a bad target before anything is created, so a secret is never created and then lost."""
        given = Path(path).expanduser()
        if not given.is_absolute():
            raise _refuse("give an absolute path (or one starting with ~).")
        target = Path(os.path.realpath(given))
        for other in protected:
            if target == Path(os.path.realpath(other.expanduser())):
                raise _refuse(f"{given} is a file carto-mcp itself uses ({other}); choose another file.")
        try:
            st = target.stat()
        except FileNotFoundError:
            if not target.parent.is_dir():
                raise _refuse(f"the directory {target.parent} does not exist; create it first.") from None
            st = None
        except OSError as exc:
            raise _refuse(f"cannot use {given} ({exc.strerror or type(exc).__name__}).") from None
        if st is not None and not stat.S_ISREG(st.st_mode):
            raise _refuse(f"{given} is not a regular file (a directory, FIFO, socket or device); choose a file.")
        if st is not None and st.st_size > MAX_CONFIG_BYTES:
            raise _refuse(f"{given} is {st.st_size:,} bytes, too big to be a .env file.")
        clash = sorted(set(variables) & _defined(target))
        if clash and not overwrite:
            raise _refuse(
                f"{given} already defines {', '.join(clash)}. Pass overwrite_secret=true to replace it, or choose "
                "another file or variable name."
            )
        if not os.access(target if st is not None else target.parent, os.W_OK):
            raise _refuse(f"cannot write to {target if st is not None else target.parent}.")
        return cls(target, tuple(variables), overwrite)

    async def deliver(self, values: Sequence[str]) -> Path | None:
        """Write the values off the event loop; None when that failed or took too long."""
        try:
            with anyio.fail_after(WRITE_TIMEOUT):
                return await anyio.to_thread.run_sync(self.write, values, abandon_on_cancel=True)
        except (OSError, InputError, TimeoutError):
            return None

    def write(self, values: Sequence[str]) -> Path:
        """Write `NAME=value` lines (mode 0600), keeping the file's other lines; all at once."""
        target = SecretFile.check(str(self.path), self.variables, overwrite=self.overwrite).path
        lines = target.read_text(encoding="utf-8").splitlines() if target.exists() else []
        kept = [ln for ln in lines if not ("=" in ln and ln.split("=", 1)[0].strip() in self.variables)]
        pairs = zip(self.variables, values, strict=True)
        content = "\n".join([*kept, *(f"{k}={v}" for k, v in pairs)]) + "\n"
        atomic_write(target, content.encode("utf-8"), mode=0o600)
        return target


def _defined(target: Path) -> set[str]:
    try:
        text = target.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        return set()
    except (OSError, UnicodeDecodeError):
        raise _refuse(f"{target} cannot be read as a text file.") from None
    return {ln.split("=", 1)[0].strip() for ln in text.splitlines() if "=" in ln and not ln.lstrip().startswith("#")}
