"""The async CARTO client: tokens and OAuth clients over one shared connection pool.

Every request goes through `_request`, and every httpx2 failure and error status becomes a
`carto_mcp.errors` exception at the one boundary in `_http`; callers never see httpx. (The
M2M token exchange in `auth` uses the same pool and the same boundary.)
"""

from __future__ import annotations

import enum
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import anyio
import anyio.lowlevel
import httpx2 as httpx
from anyio.abc import TaskGroup
from pydantic import TypeAdapter

from carto_mcp import __version__, contract, errors
from carto_mcp.api._http import (
    GATEWAY_LOST,
    IDEMPOTENT,
    RETRY_STATUSES,
    RetryPolicy,
    log_request,
    log_response,
    raise_for_status,
    read_json,
    retry_after_seconds,
    safe_url,
    transport_errors,
    unknown_outcome,
)
from carto_mcp.api.auth import BearerSource, StaticBearer
from carto_mcp.config import DEFAULT_MAX_CONCURRENCY
from carto_mcp.masking import looks_like_token, mask
from carto_mcp.models.kinds import ClientKind
from carto_mcp.models.wire import OAuthClient, Token

PageHook = Callable[[int, int | None], Awaitable[None]]
_Item = TypeVar("_Item")

DEFAULT_TIMEOUT = httpx.Timeout(15.0, connect=5.0, pool=5.0)
_TOKEN_LIST = TypeAdapter(list[Token])


class ClientState(enum.Enum):
    UNOPENED = 1
    OPENED = 2
    CLOSED = 3


class CartoClient:
    """Talks to one CARTO API base URL with one bearer source.

    Use as `async with CartoClient(base_url=..., auth=...) as api:`. Tests pass
    `transport=httpx2.MockTransport(handler)` or an ASGI transport over the sandbox.
    """

    def __init__(
        self,
        *,
        base_url: str,
        auth: BearerSource | str,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout | float = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        per_page: int = contract.MAX_PER_PAGE,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth: BearerSource = StaticBearer(auth) if isinstance(auth, str) else auth
        self.retry = retry or RetryPolicy()
        self.per_page = per_page
        #: At most this many page requests at once during a walk.
        self.max_concurrency = max(1, max_concurrency)
        #: How many 429 answers this client has had (a walk shrinks its batches when this grows).
        self.rate_limited = 0
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            headers={"User-Agent": f"carto-mcp/{__version__}", "Accept": "application/json"},
            follow_redirects=False,
        )
        self._state = ClientState.UNOPENED
        self._index = TokenIndex()
        self.requests_sent = 0

    @property
    def profile_name(self) -> str:
        return self.auth.profile_name

    async def __aenter__(self) -> CartoClient:
        if self._state is not ClientState.UNOPENED:
            raise RuntimeError("a CartoClient can be opened once")
        self._state = ClientState.OPENED
        await self._http.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._state is not ClientState.CLOSED:
            self._state = ClientState.CLOSED
            await self._http.aclose()

    @asynccontextmanager
    async def walking(self) -> AsyncIterator[TaskGroup]:
        """Where the page walks begun in this block fetch ahead; what is still in flight at its end is dropped.

        A walk is an async generator, and a generator cannot hold a task group across its
        yields: the caller's block holds it instead, so the pages ahead keep coming while
        the caller reads. A failure inside the block is raised as itself, not as a group.
        """
        failure: Exception | None = None
        async with anyio.create_task_group() as group:
            try:
                yield group
            except Exception as exc:  # re-raised below, outside the group, so it is not wrapped
                failure = exc
            finally:
                group.cancel_scope.cancel()
        if failure is not None:
            raise failure

    # --- tokens ------------------------------------------------------------------------

    async def token_pages(
        self, ahead: TaskGroup, *, start_page: int = 1, on_page: PageHook | None = None
    ) -> AsyncGenerator[list[Token], None]:
        """Yield the caller's tokens page by page (contract: A paging), indexing every id seen.

        `ahead` is the task group of a `walking()` block, where the next pages are fetched.
        """
        async for tokens in self._pages(
            ahead, contract.TOKENS_PATH, {}, start_page, on_page, "token list", self._parse_tokens
        ):
            self._index.add_all(tokens)
            yield tokens

    async def list_tokens(self, *, on_page: PageHook | None = None) -> list[Token]:
        """Every token of the caller, following pagination."""
        out: list[Token] = []
        async with self.walking() as ahead:
            async for page in self.token_pages(ahead, on_page=on_page):
                out.extend(page)
        self._index.complete(out)
        return out

    async def get_token(self, token: str) -> Token:
        try:
            body = await self._request("GET", contract.token_path(token), secrets=(token,), what="token lookup")
        except errors.NotFound:
            self._index.discard(token)  # revoked elsewhere: its id must not resolve to it again
            raise
        if body is None:
            raise errors.BadResponse("CARTO returned an empty body for a token lookup.")
        found = self._parse_token(body, "token lookup")
        self._index.add(found)
        return found

    async def create_token(self, body: dict[str, Any]) -> Token:
        reply = await self._request("POST", contract.TOKENS_PATH, json=body, what="token creation")
        if not isinstance(reply, dict) or not isinstance(reply.get("token"), str):
            raise errors.BadResponse(
                "CARTO accepted the token creation but returned no token value. Check list_credentials: the "
                "token may exist; revoke it if you cannot use it."
            )
        token = self._parse_token(reply, "token creation")
        self._index.add(token)
        return token

    async def update_token(self, token: str, body: dict[str, Any]) -> Token:
        reply = await self._request(
            "PATCH", contract.token_path(token), json=body, secrets=(token,), what="token update"
        )
        if not isinstance(reply, dict) or "token" not in reply:
            return await self.get_token(token)
        updated = self._parse_token(reply, "token update")
        self._index.add(updated)
        return updated

    async def delete_token(self, token: str) -> None:
        try:
            await self._request("DELETE", contract.token_path(token), secrets=(token,), what="token revocation")
        finally:
            self._index.discard(token)

    async def resolve_token(self, ident: str) -> str:
        """Turn a short id (own id, jti or hash prefix) or a full token value into the token value."""
        ident = ident.strip()
        if looks_like_token(ident):
            return ident
        return self._index.get(ident) or (await self._walk_to(ident)).token

    async def find_token(self, ident: str) -> Token:
        """The token an id or full value names, as CARTO has it now.

        A full value, or an id already in the index, is looked up (one request, which also
        tells whether it still exists). An unknown id walks the list until it shows up, and
        the object that walk just read is the answer: looking it up again would only repeat it.
        """
        ident = ident.strip()
        if looks_like_token(ident):
            return await self.get_token(ident)
        known = self._index.get(ident)
        if known is not None:
            return await self.get_token(known)
        return await self._walk_to(ident)

    async def _walk_to(self, ident: str) -> Token:
        """Walk until the id shows up: at most two windows of pages in memory, and half the pages on average."""
        async with self.walking() as ahead:
            async for page in self.token_pages(ahead):
                for token in page:
                    if ident in token.ids:
                        return token
        raise errors.NotFound(
            f"No token with id '{ident}' for profile '{self.profile_name}'. Call list_credentials "
            "(kind 'token') to see the ids; CARTO shows each user or M2M client only the tokens it created.",
            status_code=404,
        )

    # --- OAuth clients (contract: A) ---------------------------------------------------

    async def client_pages(
        self, ahead: TaskGroup, kind: ClientKind | None, *, start_page: int = 1, on_page: PageHook | None = None
    ) -> AsyncIterator[list[OAuthClient]]:
        """Yield the OAuth clients (of one kind, or all) page by page; `ahead` as for `token_pages`."""
        params: dict[str, str] = {contract.OAUTH_TYPE_PARAM: kind} if kind else {}
        try:
            async for clients in self._pages(
                ahead, contract.OAUTH_CLIENTS_PATH, params, start_page, on_page, "client list", self._parse_clients
            ):
                yield clients
        except errors.ApiError as exc:
            if exc.status_code in (404, 405):
                raise self._oauth_unavailable(exc) from exc
            raise

    async def list_clients(self, kind: ClientKind | None = None) -> list[OAuthClient]:
        out: list[OAuthClient] = []
        async with self.walking() as ahead:
            async for page in self.client_pages(ahead, kind):
                out.extend(page)
        return out

    async def get_client(self, client_id: str) -> OAuthClient:
        body = await self._request("GET", contract.oauth_client_path(client_id), what="OAuth client lookup")
        return self._parse_client(body, "OAuth client lookup")

    async def create_client(self, body: dict[str, Any]) -> OAuthClient:
        try:
            reply = await self._request("POST", contract.OAUTH_CLIENTS_PATH, json=body, what="OAuth client creation")
        except errors.ApiError as exc:
            if exc.status_code in (404, 405):
                raise self._oauth_unavailable(exc) from exc
            raise
        return self._parse_client(reply, "OAuth client creation")

    async def update_client(self, client_id: str, body: dict[str, Any]) -> OAuthClient:
        reply = await self._request(
            "PATCH", contract.oauth_client_path(client_id), json=body, what="OAuth client update"
        )
        if not isinstance(reply, dict) or not reply:
            return await self.get_client(client_id)
        return self._parse_client(reply, "OAuth client update")

    async def delete_client(self, client_id: str) -> None:
        await self._request("DELETE", contract.oauth_client_path(client_id), what="OAuth client revocation")

    # --- plumbing ----------------------------------------------------------------------

    async def _pages(
        self,
        ahead: TaskGroup,
        path: str,
        params: dict[str, str],
        start_page: int,
        on_page: PageHook | None,
        what: str,
        parse: Callable[[list[Any]], list[_Item]],
    ) -> AsyncIterator[list[_Item]]:
        """Every page from `start_page` on, parsed, in order.

        Once the first page says how many rows there are in all, the remaining pages are
        fetched ahead in `ahead` (a task group of the caller's, see `walking`): a sliding
        window of `max_concurrency` requests in flight (halved at every 429), each page
        exactly once, handed out in order. A request goes out as soon as a slot frees, not
        when a round ends, and the pages asked for but not yet read never fill more than two
        windows, so a consumer that stops early (an id found, a page of rows full) wastes at
        most those. Without a total, pages follow one another until a short one.
        """
        seen = 0

        async def hand_out(got: _Page[_Item]) -> None:
            nonlocal seen
            seen += len(got.rows)
            if on_page is not None:
                await on_page(seen, got.total)

        page = start_page
        got = await self._page(path, params, page, what, parse)
        await hand_out(got)
        yield got.rows
        if not got.rows or not got.enveloped:
            return
        if got.total is None:
            while len(got.rows) >= self.per_page:
                page += 1
                got = await self._page(path, params, page, what, parse)
                await hand_out(got)
                yield got.rows
                if not got.rows:
                    return
            return
        size = len(got.rows)  # the service may cap per_page below what was asked: count in its pages
        last_page = -(-got.total // size)
        window = _Window(self.max_concurrency, self)
        # The page awaited next and those asked ahead of it; with a window of 1, one page after another.
        ahead_by = _AHEAD_WINDOWS * self.max_concurrency - 1
        pending: dict[int, _Fetch[_Item]] = {}
        asked = page

        async def fetch(number: int, slot: _Fetch[_Item]) -> None:
            with slot.scope:
                try:
                    async with window.limiter:
                        body = await self._page_body(path, params, number, what)
                    window.after_request()
                    # The slot is free: let a waiting fetch send its request, so this page's
                    # parsing overlaps that request's round trip instead of delaying it.
                    await anyio.lowlevel.checkpoint()
                    slot.page = self._parsed(body, path, what, parse)
                except errors.CartoError as exc:  # raised by the consumer when it reaches this page
                    slot.error = exc
                finally:
                    slot.done.set()

        try:
            while page < last_page:
                while asked < min(last_page, page + ahead_by):
                    asked += 1
                    pending[asked] = slot = _Fetch[_Item]()
                    ahead.start_soon(fetch, asked, slot)
                slot = pending.pop(page + 1)
                await slot.done.wait()
                if slot.error is not None:
                    raise slot.error
                if slot.page is None:  # its task failed with a bug, which the task group reports
                    raise RuntimeError(f"the fetch of {what} page {page + 1} ended without a page")
                got, page = slot.page, page + 1
                await hand_out(got)
                yield got.rows
                if not got.rows:
                    return  # the list shrank under us: nothing further
                if got.total is not None and got.total > last_page * size:
                    last_page = -(-got.total // size)  # it grew meanwhile: follow it
        finally:
            for slot in pending.values():  # stopped early, or failed: what was fetched ahead is not wanted
                slot.scope.cancel()

    async def _page(
        self, path: str, params: dict[str, str], page: int, what: str, parse: Callable[[list[Any]], list[_Item]]
    ) -> _Page[_Item]:
        return self._parsed(await self._page_body(path, params, page, what), path, what, parse)

    async def _page_body(self, path: str, params: dict[str, str], page: int, what: str) -> Any:
        query = {**params, contract.PAGE_PARAM: str(page), contract.PER_PAGE_PARAM: str(self.per_page)}
        return await self._request("GET", path, params=query, what=what)

    def _parsed(self, body: Any, path: str, what: str, parse: Callable[[list[Any]], list[_Item]]) -> _Page[_Item]:
        parsed = contract.list_items(body)
        if parsed is None:
            raise errors.BadResponse(
                f"CARTO answered the {what} with an unexpected shape (expected {{'data': [...]}}) at GET {path}."
            )
        rows, total = parsed
        return _Page(parse(rows), total if isinstance(body, dict) else None, isinstance(body, dict))

    def _oauth_unavailable(self, exc: errors.ApiError) -> errors.NotFound:
        return errors.NotFound(
            f"SPA/M2M client management is not available at {self.base_url} (the endpoint answered "
            f"{exc.status_code}). CARTO publishes no REST API for OAuth clients yet: manage them in "
            "Workspace > Developers > Credentials.",
            status_code=exc.status_code,
            method=exc.method,
            url=exc.url,
        )

    def _parse_clients(self, rows: list[Any]) -> list[OAuthClient]:
        return [self._parse_client(r, "client list") for r in rows]

    def _parse_tokens(self, rows: list[Any]) -> list[Token]:
        """A whole page in one validation call (a 10,000-token walk parses 100 pages)."""
        try:
            return _TOKEN_LIST.validate_python(rows)
        except ValueError:
            return [self._parse_token(r, "token list") for r in rows]  # names the problem

    def _parse_token(self, body: Any, what: str) -> Token:
        try:
            return Token.model_validate(body)
        except ValueError:
            raise errors.BadResponse(
                f"CARTO answered the {what} with a token object of an unexpected shape (no 'token' string)."
            ) from None

    def _parse_client(self, body: Any, what: str) -> OAuthClient:
        if not isinstance(body, dict):
            raise errors.BadResponse(f"CARTO answered the {what} with an unexpected shape (not an object).")
        try:
            return OAuthClient.from_wire(body)
        except ValueError:
            raise errors.BadResponse(f"CARTO answered the {what} with a client object without a client_id.") from None

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        secrets: tuple[str, ...] = (),
        what: str = "request",
    ) -> Any:
        """Send with auth, retries and a total deadline; return parsed JSON (None for an empty body)."""
        if self._state is ClientState.CLOSED:
            raise RuntimeError("the CARTO client is closed")
        deadline = time.monotonic() + self.retry.deadline
        attempt = 0
        renewed = False
        while True:
            attempt += 1
            token = await self.auth.bearer(self._http)
            hidden = (*secrets, *self.auth.secrets())
            request = self._http.build_request(
                method, path, json=json, params=params, headers={"Authorization": f"Bearer {token}"}
            )
            url = safe_url(request.url, hidden)
            log_request(request, hidden)
            started = time.monotonic()
            try:
                with transport_errors(method, url, creating=method == "POST", what=what):
                    with anyio.fail_after(max(deadline - started, 0.001)):
                        self.requests_sent += 1
                        response = await self._http.send(request)
            except TimeoutError:
                if method == "POST":
                    raise unknown_outcome(
                        method, url, what, f"no answer came within the {self.retry.deadline:g} s deadline"
                    ) from None
                raise errors.TransportError(
                    f"Gave up on the {what} after {self.retry.deadline:g} s ({method} {url}).",
                    method=method,
                    url=url,
                ) from None
            except errors.TransportError:
                wait = self._retry_wait(attempt, deadline, None) if method in IDEMPOTENT else None
                if wait is not None:
                    await anyio.sleep(wait)
                    continue
                raise
            log_response(response, time.monotonic() - started, hidden)
            status = response.status_code
            if status == 429:
                self.rate_limited += 1
            if status == 401 and not renewed and await self.auth.renew(self._http):
                renewed = True
                continue
            retryable = status in RETRY_STATUSES or (status == 429 and method in IDEMPOTENT)
            if retryable and method in IDEMPOTENT:
                after = retry_after_seconds(response) if status in (429, 503) else None
                wait = self._retry_wait(attempt, deadline, after)
                if wait is not None:
                    await anyio.sleep(wait)
                    continue
            if method == "POST" and status in GATEWAY_LOST:
                # A gateway's 502/504 says nothing about whether the service made the credential.
                raise unknown_outcome(method, url, what, f"a gateway answered {status} instead of CARTO")
            if status == 404 and method == "DELETE" and attempt > 1:
                # An earlier attempt may have deleted it and lost the answer: gone is what was asked.
                return None
            raise_for_status(response, profile=self.profile_name, secrets=hidden, what=what, source=self.auth.source)
            return read_json(response, hidden)

    def _retry_wait(self, attempt: int, deadline: float, after: float | None) -> float | None:
        """How long to sleep before the next attempt, or None when no attempt (or no time) is left.

        The same jittered delay is checked against the deadline and slept, so a retry never
        starts after the deadline has passed.
        """
        if attempt >= self.retry.attempts:
            return None
        wait = self.retry.delay(attempt, after)
        return wait if time.monotonic() + wait < deadline else None


#: A walk asks for at most this many windows' worth of pages not yet read (bounding memory, and waste on
#: early stop): more than one, so a slow page does not leave the window idle behind it.
_AHEAD_WINDOWS = 2


class _Window:
    """How many page requests of one walk may be in flight: the setting, halved at every new 429."""

    def __init__(self, size: int, client: CartoClient) -> None:
        self.limiter = anyio.CapacityLimiter(size)
        self._client = client
        self._seen = client.rate_limited

    def after_request(self) -> None:
        if self._client.rate_limited > self._seen:
            self._seen = self._client.rate_limited
            self.limiter.total_tokens = max(1, int(self.limiter.total_tokens) // 2)


@dataclass(frozen=True)
class _Page(Generic[_Item]):
    rows: list[_Item]
    total: int | None
    #: Whether the reply was an envelope: a bare array is the whole list.
    enveloped: bool


@dataclass(eq=False)
class _Fetch(Generic[_Item]):
    """One page fetched ahead: its result or its error once `done`, and the scope that stops it."""

    done: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    page: _Page[_Item] | None = None
    error: errors.CartoError | None = None


class TokenIndex:
    """id -> token value, so an id resolves without walking every page every time.

    Filled by every list and lookup, updated on create/update, emptied of revoked tokens. A
    token answers to its own id (when its object has one) and to its jti. A miss triggers one
    fresh walk (the token may have been created elsewhere).
    """

    def __init__(self) -> None:
        self._by_id: dict[str, str] = {}

    def add(self, token: Token) -> None:
        for ident in token.ids:
            self._by_id[ident] = token.token

    def add_all(self, tokens: list[Token]) -> None:
        for token in tokens:
            self.add(token)

    def complete(self, tokens: list[Token]) -> None:
        """A full walk just happened: drop ids that no longer exist."""
        self._by_id = {}
        self.add_all(tokens)

    def get(self, ident: str) -> str | None:
        return self._by_id.get(ident)

    def discard(self, token: str) -> None:
        """Forget every id of this token value (rare, so a scan is fine)."""
        for ident in [i for i, value in self._by_id.items() if value == token]:
            del self._by_id[ident]

    def __len__(self) -> int:
        return len(self._by_id)

    def __repr__(self) -> str:
        return f"TokenIndex({len(self._by_id)} ids, e.g. {[mask(v) for v in list(self._by_id.values())[:2]]})"
