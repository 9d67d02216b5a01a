"""Where a new secret goes: a 0600 `.env`-style file instead of the conversation, on request.

The destination is checked before anything is created, so a bad path never costs a
credential. Writing happens after the create; if it still fails, the secret is returned in
the result instead (with a warning), because a credential that exists and was never shown
is a credential lost.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from carto_mcp.errors import InputError
from carto_mcp.files import atomic_write

__all__ = ["SecretFile", "env_name"]


def env_name(value: str) -> str:
    """Variable names for secret files: letters, digits and underscores, not starting with a digit."""
    if not value or not (value[0].isalpha() or value[0] == "_") or not all(c.isalnum() or c == "_" for c in value):
        raise InputError(
            f"secret_variable: {value[:60]!r} is not a valid variable name (A-Z, 0-9, _).", field="secret_variable"
        )
    return value


@dataclass(frozen=True)
class SecretFile:
    """A checked destination for one create's secret values, one variable per value."""

    path: Path
    variables: tuple[str, ...]
    overwrite: bool = False

    @classmethod
    def requested(cls, path: str | None, variables: Sequence[str], *, overwrite: bool = False) -> SecretFile | None:
        """The checked destination when a caller asked for one (`secret_output_file`), else None."""
        return cls.check(path, variables, overwrite=overwrite) if path else None

    @classmethod
    def check(cls, path: str, variables: Sequence[str], *, overwrite: bool = False) -> SecretFile:
        """Refuse a bad target before anything is created, so a secret is never created and then lost."""
        target = Path(path).expanduser()
        if not target.is_absolute():
            raise InputError(
                "secret_output_file: give an absolute path (or one starting with ~).", field="secret_output_file"
            )
        if target.is_dir():
            raise InputError(f"secret_output_file: {target} is a directory.", field="secret_output_file")
        clash = sorted(set(variables) & _defined(target))
        if clash and not overwrite:
            raise InputError(
                f"secret_output_file: {target} already defines {', '.join(clash)}. Pass overwrite_secret=true to "
                "replace it, or choose another file or variable name. Nothing was created.",
                field="secret_output_file",
            )
        if not os.access(_existing_parent(target), os.W_OK):
            raise InputError(f"secret_output_file: cannot write to {target.parent}.", field="secret_output_file")
        return cls(target, tuple(variables), overwrite)

    def write(self, values: Sequence[str]) -> Path:
        """Write `NAME=value` lines (mode 0600), keeping the file's other lines; all at once."""
        target = SecretFile.check(str(self.path), self.variables, overwrite=self.overwrite).path
        lines = target.read_text(encoding="utf-8").splitlines() if target.exists() else []
        kept = [ln for ln in lines if not ("=" in ln and ln.split("=", 1)[0].strip() in self.variables)]
        pairs = zip(self.variables, values, strict=True)
        content = "\n".join([*kept, *(f"{k}={v}" for k, v in pairs)]) + "\n"
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
