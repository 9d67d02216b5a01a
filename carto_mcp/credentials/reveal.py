"""One-time reveal pages' memory: a secret kept under a random id until it is read once or expires.

A created secret that should reach the person and not the model is put here, and the person
is sent (URL-mode elicitation) to the page that reads it back. The store answers each id
once: the first read takes the secret and wipes it; later reads, and any read after the
time to live, find only a tombstone (the page says 410 Gone); an id never issued is unknown
(404). Expired secrets are wiped whenever the store is touched, so nothing outlives its TTL
by more than one request. Thread-safe: the loopback listener reads it from its own thread.

"Wiped" means the bytes this store holds are zeroed and dropped; copies the HTTP stack made
while the secret came back from CARTO are Python objects this store cannot reach.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from carto_mcp.config import DEFAULT_REVEAL_TTL

__all__ = ["MAX_PENDING", "Reveal", "RevealStore", "SecretPage"]

#: Tombstones of read or expired ids are kept this long (so a late second read says 410, not 404).
_TOMBSTONE_SECONDS = 24 * 3600.0
#: At most this many secrets wait to be read at once; beyond it a create is refused before it is sent.
MAX_PENDING = 1000


@dataclass(frozen=True)
class SecretPage:
    """What a reveal page shows: the values (name -> secret) and what they are for, without the values."""

    title: str
    values: tuple[tuple[str, str], ...]
    #: Facts about the credential to show beside the secret (label -> text): never a secret.
    facts: tuple[tuple[str, str], ...] = ()


@dataclass
class _Entry:
    title: str
    names: tuple[str, ...]
    secrets: list[bytearray]
    facts: tuple[tuple[str, str], ...]
    expires: float

    def wipe(self) -> None:
        for value in self.secrets:
            value[:] = b"\0" * len(value)
        self.secrets = []


@dataclass(frozen=True)
class Reveal:
    """A secret waiting on its page: the id in its URL and when it stops answering."""

    ident: str
    expires_in: float


@dataclass
class RevealStore:
    """The secrets waiting to be read, by id; ids are 256 random bits, so they cannot be guessed."""

    ttl: float = DEFAULT_REVEAL_TTL
    clock: Callable[[], float] = time.monotonic
    _entries: dict[str, _Entry] = field(default_factory=dict)
    _tombstones: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def room(self) -> bool:
        """Whether another secret fits; checked before a create, so a full store never costs a credential."""
        with self._lock:
            self._sweep()
            return len(self._entries) < MAX_PENDING

    def put(self, page: SecretPage) -> Reveal:
        ident = secrets.token_urlsafe(32)
        with self._lock:
            self._sweep()
            self._entries[ident] = _Entry(
                title=page.title,
                names=tuple(name for name, _ in page.values),
                secrets=[bytearray(value.encode("utf-8")) for _, value in page.values],
                facts=page.facts,
                expires=self.clock() + self.ttl,
            )
        return Reveal(ident, self.ttl)

    def take(self, ident: str) -> SecretPage | Literal["gone", "unknown"]:
        """The page for `ident`, once; afterwards (or once expired) "gone"; "unknown" for an id never issued."""
        with self._lock:
            self._sweep()
            entry = self._entries.pop(ident, None)
            if entry is None:
                return "gone" if ident in self._tombstones else "unknown"
            self._tombstones[ident] = self.clock() + _TOMBSTONE_SECONDS
            page = SecretPage(
                entry.title,
                tuple((name, value.decode("utf-8")) for name, value in zip(entry.names, entry.secrets, strict=True)),
                entry.facts,
            )
            entry.wipe()
        return page

    def pending(self) -> int:
        """Secrets not yet read and not expired."""
        with self._lock:
            self._sweep()
            return len(self._entries)

    def take_all(self) -> list[SecretPage]:
        """Every page still waiting, taken at once (a terminal that is stopping shows them instead)."""
        with self._lock:
            self._sweep()
            idents = list(self._entries)
        found = [self.take(ident) for ident in idents]
        return [page for page in found if isinstance(page, SecretPage)]

    def wipe_all(self) -> None:
        """Forget every secret (the server is stopping)."""
        with self._lock:
            for ident, entry in self._entries.items():
                entry.wipe()
                self._tombstones[ident] = self.clock() + _TOMBSTONE_SECONDS
            self._entries.clear()

    def _sweep(self) -> None:
        now = self.clock()
        for ident in [i for i, e in self._entries.items() if e.expires <= now]:
            self._entries.pop(ident).wipe()
            self._tombstones[ident] = now + _TOMBSTONE_SECONDS
        for ident in [i for i, until in self._tombstones.items() if until <= now]:
            del self._tombstones[ident]
