"""Rewriting an old single-profile credentials file in the nested format, as the CARTO CLI does.

The file holds someone's login, so the rewrite must never lose it: the new file is written
beside the old one and moved into place in one step, the original bytes are kept as
`<file>.bak` (never over a different earlier backup), and if anyone else wrote the file
meanwhile their version wins. A symlink (dotfiles) is written through: the file it points at
is rewritten, in its own directory, with the backup beside it, and the link stays a link. A
file with other hard links is not rewritten, since replacing it would cut them. When any of
that is impossible the file is left exactly as it was and the caller uses the migrated
profile in memory, with a warning that says so.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from carto_mcp.files import atomic_write

__all__ = ["MIGRATED_PROFILE", "Migration", "migrate", "nested_from_old"]

logger = logging.getLogger(__name__)

#: The name the old file's one profile gets, and the new file's current_profile.
MIGRATED_PROFILE = "default"


class Migration(NamedTuple):
    """What a migration attempt produced: a note for the result's warnings, and the new file's stat."""

    note: str | None
    stat: os.stat_result | None


def nested_from_old(data: Mapping[str, Any]) -> dict[str, Any]:
    """The nested document for an old file whose profile fields sit at the root."""
    entry = {key: value for key, value in data.items() if key != "current_profile"}
    return {"current_profile": MIGRATED_PROFILE, "profiles": {MIGRATED_PROFILE: entry}}


def migrate(path: Path, raw: bytes, st: os.stat_result, migrated: Mapping[str, Any]) -> Migration:
    """Rewrite an old-format file in the nested format, atomically, keeping `<file>.bak`.

    `raw` and `st` are what the caller read, so a file changed since then is not overwritten.
    On any failure the file is left exactly as it was and the caller uses `migrated` in memory;
    a lost race says nothing, as the other writer's file is read on the next resolution.
    """
    payload = (json.dumps(migrated, indent=2) + "\n").encode("utf-8")
    in_memory = "using the migrated profile in memory; the file is unchanged"
    target = Path(os.path.realpath(path))  # a dotfiles symlink: rewrite what it points at, keep the link
    if st.st_nlink > 1:
        return Migration(
            f"{path} is in the old single-profile format but has other hard links, so it was not rewritten "
            f"(replacing it would cut them); {in_memory}. Run `carto auth login` to rewrite it",
            None,
        )
    if not os.access(target, os.W_OK):
        return Migration(
            f"{path} is in the old single-profile format but is read-only, so it was not migrated; "
            f"{in_memory}. Make it writable or run `carto auth login` to rewrite it",
            None,
        )
    backup: tuple[Path, bool] | None = None
    try:
        backup = _write_backup(target, raw)

        def unchanged() -> None:
            current = target.stat()
            if (current.st_mtime_ns, current.st_size) != (st.st_mtime_ns, st.st_size):
                # Someone (e.g. `carto auth login`) wrote the file meanwhile: theirs wins.
                raise _Raced()

        atomic_write(target, payload, mode=0o600, before_replace=unchanged)
        new_stat = target.stat()
    except _Raced:
        _drop_new_backup(backup)
        return Migration(None, None)
    except OSError as exc:
        _drop_new_backup(backup)
        reason = exc.strerror or type(exc).__name__
        return Migration(
            f"could not migrate {path} from the old single-profile format ({reason}); {in_memory}. "
            f"Make {target.parent} writable or run `carto auth login` to rewrite it",
            None,
        )
    logger.info("migrated %s to the multi-profile format; original kept at %s", path, backup[0])
    return Migration(f"migrated {path} to the multi-profile format; the original is kept at {backup[0]}", new_stat)


def _write_backup(path: Path, raw: bytes) -> tuple[Path, bool]:
    """Keep the original bytes next to the file, never overwriting a different earlier backup.

    Returns the backup path and whether this call created it.
    """
    for n in range(100):
        backup = path.with_name(f"{path.name}.bak" if n == 0 else f"{path.name}.bak.{n}")
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                if backup.read_bytes() == raw:
                    return backup, False
            except OSError:
                pass
            continue
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            backup.unlink(missing_ok=True)
            raise
        return backup, True
    raise FileExistsError(f"too many backups of {path.name}")


class _Raced(Exception):
    """The file changed while it was being migrated."""


def _drop_new_backup(backup: tuple[Path, bool] | None) -> None:
    """A failed migration leaves nothing behind: the temporary file is gone, and so is a backup it made."""
    if backup is not None and backup[1]:
        backup[0].unlink(missing_ok=True)
