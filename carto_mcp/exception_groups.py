"""The exception groups concurrent code fails with, read one way everywhere.

The stdio server runs its reader, writer and session in a task group, so it fails with a
`BaseExceptionGroup` whose meaning is decided by what is inside it (a page walk raises its own
errors: see `CartoClient.walking`).
"""

from __future__ import annotations

import sys

if sys.version_info >= (3, 11):
    from builtins import BaseExceptionGroup
else:  # pragma: no cover - anyio brings the backport there
    from exceptiongroup import BaseExceptionGroup  # type: ignore[import-not-found, unused-ignore]

__all__ = ["BaseExceptionGroup", "leaves"]


def leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    """The exceptions inside `group`, nested groups flattened, in order."""
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found
