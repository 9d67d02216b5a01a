"""Listing: one walk over every credential kind, filters applied before rows are built, and a cursor.

A listing reads tokens, then SPA clients, then M2M clients, page by page as the API serves
them, and stops as soon as a page of rows is full. The cursor records where the next page
starts (kind, upstream page, index in it) and a fingerprint of the filters, so a cursor from
another listing is refused rather than silently misread.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from anyio.abc import TaskGroup

from carto_mcp.api import CartoClient
from carto_mcp.credentials.cache import ListingCache
from carto_mcp.errors import InputError
from carto_mcp.models.kinds import LIST_KINDS, CredentialKind, ListKind
from carto_mcp.models.results import CredentialList, Row, utcnow
from carto_mcp.models.rules import parse_expiry

__all__ = ["Cursor", "Filters", "ListQuery", "Progress", "list_page", "walk"]

#: Told how many credentials were read so far, and how many there are when the API says.
Progress = Callable[[int, int | None], Awaitable[None]]


@dataclass(frozen=True)
class ListQuery:
    """What `list_credentials` was asked, as the caller gave it."""

    kind: ListKind = "all"
    text: str | None = None
    expiring_within: str | None = None
    expired: bool | None = None
    limit: int = 50
    cursor: str | None = None
    #: Read CARTO now, not a listing this server read in the last few seconds.
    fresh: bool = False


@dataclass(frozen=True)
class Filters:
    text: str | None
    expiring_before: datetime | None
    expired: bool | None
    now: datetime

    def fingerprint(self, kind: str) -> str:
        raw = json.dumps([kind, self.text, self.expiring_before is not None, self.expired])
        return hashlib.sha256(raw.encode()).hexdigest()[:8]

    def match(self, item: Any, kind: CredentialKind) -> bool:
        """Test a token or client as the API returned it, so rows are built only for matches."""
        if self.text:
            name = item.name if kind == "token" else item.title
            ids = item.ids if kind == "token" else (item.client_id,)
            if self.text.lower() not in (name or "").lower() and self.text not in ids:
                return False
        if self.expiring_before is None and self.expired is None:
            return True
        if kind != "token":
            return False
        expired = item.expired(self.now)
        if self.expired is not None and expired != self.expired:
            return False
        if self.expiring_before is not None:
            when = item.expires_at
            return when is not None and not expired and when <= self.expiring_before
        return True


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: which kind, which upstream page, which index in that page."""

    phase: int = 0
    page: int = 1
    index: int = 0

    def encode(self, fingerprint: str) -> str:
        raw = json.dumps({"v": 1, "k": self.phase, "p": self.page, "i": self.index, "f": fingerprint})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, fingerprint: str) -> Cursor:
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            pos = cls(int(data["k"]), int(data["p"]), int(data["i"]))
            ok = data.get("v") == 1 and data.get("f") == fingerprint and pos.page >= 1 and pos.index >= 0
        except (ValueError, KeyError, TypeError, RecursionError):
            ok = False
        if not ok:
            raise InputError(
                "cursor: not a cursor from this listing (it must come from a previous list_credentials call "
                "with the same kind and filters). Omit cursor to start from the beginning.",
                field="cursor",
            )
        return pos


async def walk(
    api: CartoClient,
    ahead: TaskGroup,
    kinds: tuple[CredentialKind, ...],
    start: Cursor,
    progress: Progress | None = None,
    cache: ListingCache | None = None,
) -> AsyncIterator[tuple[Cursor, CredentialKind, Any]]:
    """Every credential from `start` on, as the API returned it, in a stable order (token, spa, m2m).

    `ahead` is the task group of the caller's `api.walking()` block, where pages are fetched ahead.

    With a `cache`, a kind read whole less than its TTL ago is served from memory, and a kind
    this walk reads whole (from its first page) is kept for the next one.
    """
    for phase in range(start.phase, len(kinds)):
        kind = kinds[phase]
        first_page = start.page if phase == start.phase else 1
        skip = start.index if phase == start.phase else 0
        page_no = first_page
        cached = cache.get(kind) if cache is not None else None
        kept: list[list[Any]] | None = [] if cache is not None and cached is None and first_page == 1 else None
        generation = cache.generation if cache is not None else 0
        pages: AsyncIterator[Sequence[Any]]
        if cached is not None:
            pages = _remembered(cached, first_page)
        elif kind == "token":
            pages = api.token_pages(ahead, start_page=first_page, on_page=progress)
        else:
            pages = api.client_pages(ahead, kind, start_page=first_page, on_page=progress)
        async for page in pages:
            if kept is not None:
                kept.append(list(page))
            for i, item in enumerate(page):
                if page_no == first_page and i < skip:
                    continue
                yield Cursor(phase, page_no, i), kind, item
            page_no += 1
        if kept is not None and cache is not None:
            cache.put(kind, kept, generation)


async def _remembered(pages: tuple[Sequence[Any], ...], first_page: int) -> AsyncIterator[Sequence[Any]]:
    for page in pages[first_page - 1 :]:
        yield page


async def list_page(
    api: CartoClient, query: ListQuery, progress: Progress | None = None, cache: ListingCache | None = None
) -> CredentialList:
    """One page of rows matching `query`, and the cursor of the next page when more may follow."""
    now = utcnow()
    before = parse_expiry(query.expiring_within, now=now) if query.expiring_within else None
    filters = Filters(text=query.text, expiring_before=before, expired=query.expired, now=now)
    kinds = LIST_KINDS[query.kind]
    if before is not None or query.expired is not None:
        kinds = tuple(k for k in kinds if k == "token")  # expiry filters only ever match tokens
    fingerprint = filters.fingerprint(query.kind)
    start = Cursor.decode(query.cursor, fingerprint) if query.cursor else Cursor()
    if query.fresh and cache is not None:
        cache.clear()  # what this walk reads is kept for the next call
    rows: list[Row] = []
    next_cursor: str | None = None
    async with api.walking() as ahead:
        async for pos, kind, item in walk(api, ahead, kinds, start, progress, cache):
            if not filters.match(item, kind):
                continue
            if len(rows) == query.limit:
                next_cursor = pos.encode(fingerprint)
                break
            rows.append(Row.of_token(item, now) if kind == "token" else Row.of_client(item, kind))
    return CredentialList(rows=rows, count=len(rows), next_cursor=next_cursor)
