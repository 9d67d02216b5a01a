"""An exclusive lock across processes on a file we append to, waited for only up to a deadline.

On POSIX it is an `flock` on the file's own descriptor: every process that takes it on the
same file excludes the others, and the kernel lets go if the holder dies. Windows has no
`flock`, and its byte-range locks are mandatory (they would make a reader of the locked
bytes fail), so there the lock is the first byte of a sibling `<name>.lock` file nobody reads.

The wait is polled rather than blocking, so a holder that is stuck (stopped, or on a hung
network mount) costs a writer at most its deadline, and then an `OSError` it can report.
"""

from __future__ import annotations

import errno
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["exclusive"]

#: Longest sleep between two tries: short enough that a freed lock is taken almost at once.
_MAX_DELAY = 0.05


@contextmanager
def exclusive(fd: int, path: Path, deadline: float) -> Iterator[None]:
    """Hold the lock of the file open as `fd` at `path` until the block ends; OSError past `deadline`."""
    if sys.platform == "win32":
        lock = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            _wait(lambda: _try_windows(lock), deadline)
            try:
                yield
            finally:
                _unlock_windows(lock)
        finally:
            os.close(lock)
    else:
        _wait(lambda: _try_posix(fd), deadline)
        try:
            yield
        finally:
            _unlock_posix(fd)


def _wait(attempt: Callable[[], bool], deadline: float) -> None:
    delay = 0.001
    while not attempt():
        if time.monotonic() >= deadline:
            raise OSError(errno.EWOULDBLOCK, "another process held the audit log's lock too long")
        time.sleep(delay)
        delay = min(delay * 2, _MAX_DELAY)


if sys.platform == "win32":
    import msvcrt

    def _try_windows(fd: int) -> bool:
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True

    def _unlock_windows(fd: int) -> None:
        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:
    import fcntl

    def _try_posix(fd: int) -> bool:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def _unlock_posix(fd: int) -> None:
        fcntl.flock(fd, fcntl.LOCK_UN)
