"""A short-lived cache of whole listings, one per credential kind, for everything one server reads.

On a 10,000-token account a walk is 100 requests; a filtered list, the next page of it and a
rotation sweep a few seconds apart all read the same list. Only a walk that went from a kind's
first page to its last is kept: a partial one says nothing about what it did not reach. Every
change this server makes clears the cache, and a generation number keeps a walk that began
before the change from putting back what it read; a change made elsewhere shows after `ttl`
seconds at most, or at once with `list_credentials(fresh=true)`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from carto_mcp.models.kinds import CredentialKind

__all__ = ["ListingCache"]


@dataclass(frozen=True)
class _Listing:
    #: The pages as the API served them (so a cursor's page and index mean the same thing here).
    pages: tuple[Sequence[Any], ...]
    taken: float


class ListingCache:
    """Whole listings by kind, each reused for `ttl` seconds (0: never)."""

    def __init__(self, ttl: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._listings: dict[CredentialKind, _Listing] = {}
        self._generation = 0

    @property
    def generation(self) -> int:
        """Changes with every clear: a walk notes it when it starts and hands it back to `put`."""
        return self._generation

    def get(self, kind: CredentialKind) -> tuple[Sequence[Any], ...] | None:
        """The pages of `kind`, if a whole listing of it was read less than `ttl` seconds ago."""
        listing = self._listings.get(kind)
        if listing is None:
            return None
        if self._clock() - listing.taken >= self.ttl:
            del self._listings[kind]
            return None
        return listing.pages

    def put(self, kind: CredentialKind, pages: Sequence[Sequence[Any]], generation: int) -> None:
        """Keep a whole listing, unless something changed since the walk that read it began."""
        if self.ttl > 0 and generation == self._generation:
            self._listings[kind] = _Listing(tuple(pages), self._clock())

    def clear(self) -> None:
        self._listings.clear()
        self._generation += 1

    @contextmanager
    def changing(self) -> Iterator[None]:
        """Around a change: cleared before (a walk now in flight will not be kept) and after, whatever happens."""
        self.clear()
        try:
            yield
        finally:
            self.clear()

    def __repr__(self) -> str:
        return f"ListingCache(ttl={self.ttl:g}s, kinds={sorted(self._listings)})"
