"""Which requests are retried, how long the client waits, and when it stops: MockTransport and sandbox faults."""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import httpx2
import pytest

from carto_mcp.api import (
    AuthError,
    BearerSource,
    CartoClient,
    FileBearer,
    OutcomeUnknown,
    RateLimited,
    RetryPolicy,
    ServiceError,
    TransportError,
)
from carto_mcp.profiles import ProfileInputs, ProfileResolver
from carto_mcp.sandbox.server import RunningSandbox

from ._support import BASE_URL, LOGIN, MAPS_TOKEN, TOKEN, Admin, token_object

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx2.Request], httpx2.Response | Awaitable[httpx2.Response]]
FAST = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.001)
LIST_OK = {"data": [], "total": 0}


class Recorder:
    """A MockTransport handler that plays a script of replies (or exceptions) and records every request."""

    def __init__(self, *script: httpx2.Response | type[httpx2.TransportError] | int) -> None:
        self.script = list(script)
        self.requests: list[httpx2.Request] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        self.requests.append(request)
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        if isinstance(step, int):
            return httpx2.Response(step, json={"error": "Service unavailable", "description": "try again"})
        if isinstance(step, type):
            raise step("failed on purpose", request=request)
        return step

    @property
    def calls(self) -> int:
        return len(self.requests)


def make_client(
    handler: Handler, retry: RetryPolicy = FAST, *, auth: BearerSource | str = LOGIN, per_page: int = 100
) -> CartoClient:
    return CartoClient(
        base_url=BASE_URL, auth=auth, transport=httpx2.MockTransport(handler), retry=retry, per_page=per_page
    )


# --- what is retried ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_a_get_is_retried_on_gateway_statuses_then_succeeds(status: int) -> None:
    """GET answered 502/503/504 twice, then 200 → the result, after exactly three calls."""
    handler = Recorder(status, status, httpx2.Response(200, json=LIST_OK))
    async with make_client(handler) as api:
        assert await api.list_tokens() == []

    assert handler.calls == 3


@pytest.mark.parametrize("error", [httpx2.ReadTimeout, httpx2.ConnectError, httpx2.RemoteProtocolError])
async def test_a_get_is_retried_on_transport_errors_then_succeeds(error: type[httpx2.TransportError]) -> None:
    """A GET whose connection failed is simply sent again."""
    handler = Recorder(error, httpx2.Response(200, json=token_object()))
    async with make_client(handler) as api:
        assert (await api.get_token(TOKEN)).token == TOKEN

    assert handler.calls == 2


async def test_a_get_gives_up_after_the_configured_attempts() -> None:
    """attempts=3 means three calls in total, then the last failure is raised."""
    handler = Recorder(httpx2.ConnectError)
    async with make_client(handler) as api:
        with pytest.raises(TransportError):
            await api.list_tokens()

    assert handler.calls == 3


async def test_a_delete_is_retried() -> None:
    """DELETE is idempotent: a 503 and a timeout are retried until the 204."""
    handler = Recorder(503, httpx2.ReadTimeout, httpx2.Response(204))
    async with make_client(handler) as api:
        await api.delete_token(TOKEN)

    assert [r.method for r in handler.requests] == ["DELETE"] * 3


async def test_a_500_is_not_retried() -> None:
    """500 means the service failed on this request; only gateway statuses are retried."""
    handler = Recorder(500, httpx2.Response(200, json=LIST_OK))
    async with make_client(handler) as api:
        with pytest.raises(ServiceError):
            await api.list_tokens()

    assert handler.calls == 1


async def test_a_post_answered_503_is_sent_once() -> None:
    """POST is never retried: a 503 on create → ServiceError after exactly one call."""
    handler = Recorder(503, httpx2.Response(201, json=token_object()))
    async with make_client(handler) as api:
        with pytest.raises(ServiceError):
            await api.create_token(MAPS_TOKEN)

    assert handler.calls == 1


async def test_a_post_answered_429_is_sent_once() -> None:
    """A rate-limited create is not retried either: RateLimited after one call."""
    handler = Recorder(httpx2.Response(429, headers={"Retry-After": "0"}), httpx2.Response(201, json=token_object()))
    async with make_client(handler) as api:
        with pytest.raises(RateLimited):
            await api.create_token(MAPS_TOKEN)

    assert handler.calls == 1


async def test_a_patch_is_not_retried() -> None:
    """PATCH is not in the retried set: one call, then the error."""
    handler = Recorder(503, httpx2.Response(200, json=token_object()))
    async with make_client(handler) as api:
        with pytest.raises(ServiceError):
            await api.update_token(TOKEN, {"name": "x"})

    assert handler.calls == 1


@pytest.mark.parametrize(
    "error", [httpx2.ReadTimeout, httpx2.WriteTimeout, httpx2.RemoteProtocolError, httpx2.ReadError]
)
async def test_a_post_whose_answer_was_lost_is_outcome_unknown(error: type[httpx2.TransportError]) -> None:
    """A create that may have reached the service → OutcomeUnknown saying it may exist; one call, no retry."""
    handler = Recorder(error, httpx2.Response(201, json=token_object()))
    async with make_client(handler) as api:
        with pytest.raises(OutcomeUnknown) as caught:
            await api.create_token(MAPS_TOKEN)

    assert handler.calls == 1
    assert "may have been created" in str(caught.value)
    assert "list_credentials" in str(caught.value)
    assert isinstance(caught.value, TransportError)
    assert isinstance(caught.value.__cause__, error)


async def test_an_oauth_client_create_whose_answer_was_lost_is_outcome_unknown() -> None:
    """The same holds for SPA/M2M creates: a secret may have been minted."""
    handler = Recorder(httpx2.ReadTimeout)
    async with make_client(handler) as api:
        with pytest.raises(OutcomeUnknown, match="may have been created"):
            await api.create_client({"name": "x", "app_type": "m2m"})

    assert handler.calls == 1


@pytest.mark.parametrize("error", [httpx2.ConnectError, httpx2.ConnectTimeout])
async def test_a_post_that_never_connected_is_a_plain_transport_error(error: type[httpx2.TransportError]) -> None:
    """No connection means nothing was sent: TransportError, not OutcomeUnknown, and still no retry."""
    handler = Recorder(error, httpx2.Response(201, json=token_object()))
    async with make_client(handler) as api:
        with pytest.raises(TransportError) as caught:
            await api.create_token(MAPS_TOKEN)

    assert not isinstance(caught.value, OutcomeUnknown)
    assert handler.calls == 1


# --- how long it waits ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503])
async def test_retry_after_is_honoured_before_the_retry(status: int) -> None:
    """A GET answered 429/503 with Retry-After: 0.05 waits at least that long, then retries."""
    handler = Recorder(
        httpx2.Response(status, headers={"Retry-After": "0.05"}, json={"error": "busy"}),
        httpx2.Response(200, json=LIST_OK),
    )
    async with make_client(handler, retry=RetryPolicy(attempts=2, backoff=0.001)) as api:
        started = time.monotonic()
        await api.list_tokens()
        elapsed = time.monotonic() - started

    assert handler.calls == 2
    assert elapsed >= 0.05


async def test_retry_after_is_capped_by_the_policy() -> None:
    """Retry-After: 30 with retry_after_cap=0.05 waits about 0.05 s, not 30."""
    handler = Recorder(
        httpx2.Response(503, headers={"Retry-After": "30"}, json={"error": "busy"}),
        httpx2.Response(200, json=LIST_OK),
    )
    policy = RetryPolicy(attempts=2, retry_after_cap=0.05)
    async with make_client(handler, retry=policy) as api:
        started = time.monotonic()
        with anyio.fail_after(5):
            await api.list_tokens()
        elapsed = time.monotonic() - started

    assert handler.calls == 2
    assert 0.05 <= elapsed < 2


async def test_a_retry_after_beyond_the_deadline_is_not_waited_for() -> None:
    """When Retry-After would cross the total deadline, the client stops at once with RateLimited."""
    handler = Recorder(httpx2.Response(429, headers={"Retry-After": "5"}, json={"error": "slow down"}))
    async with make_client(handler, retry=RetryPolicy(attempts=5, deadline=0.5)) as api:
        started = time.monotonic()
        with pytest.raises(RateLimited) as caught:
            await api.list_tokens()

    assert time.monotonic() - started < 0.4
    assert handler.calls == 1
    assert caught.value.retry_after == 5.0


# --- when it stops --------------------------------------------------------------------------


async def test_the_deadline_stops_retries_of_a_service_that_always_fails() -> None:
    """attempts=1000, deadline=0.5 and a handler that always 503s: the client stops after about 0.5 s."""
    handler = Recorder(503)
    policy = RetryPolicy(attempts=1000, backoff=0.05, max_backoff=0.05, deadline=0.5)
    async with make_client(handler, retry=policy) as api:
        started = time.monotonic()
        with anyio.fail_after(5), pytest.raises((ServiceError, TransportError)):
            await api.list_tokens()
        elapsed = time.monotonic() - started

    assert elapsed < 1.0
    assert 2 <= handler.calls < 40


async def test_the_deadline_cuts_a_stalled_get() -> None:
    """A GET that never answers is abandoned at the deadline with a TransportError saying so."""

    async def stall(request: httpx2.Request) -> httpx2.Response:
        await anyio.sleep(30)
        return httpx2.Response(200, json=LIST_OK)

    async with make_client(stall, retry=RetryPolicy(deadline=0.5)) as api:
        started = time.monotonic()
        with anyio.fail_after(5), pytest.raises(TransportError) as caught:
            await api.list_tokens()
        elapsed = time.monotonic() - started

    assert not isinstance(caught.value, OutcomeUnknown)
    assert "Gave up" in str(caught.value)
    assert "0.5 s" in str(caught.value)
    assert 0.45 <= elapsed < 1.5


async def test_the_deadline_cutting_a_stalled_post_is_outcome_unknown() -> None:
    """A create abandoned at the deadline may still happen: OutcomeUnknown, not a plain timeout."""
    calls = 0

    async def stall(request: httpx2.Request) -> httpx2.Response:
        nonlocal calls
        calls += 1
        await anyio.sleep(30)
        return httpx2.Response(201, json=token_object())

    async with make_client(stall, retry=RetryPolicy(deadline=0.3)) as api:
        with anyio.fail_after(5), pytest.raises(OutcomeUnknown, match="may have been created"):
            await api.create_token(MAPS_TOKEN)

    assert calls == 1


# --- 401 and a renewed login ----------------------------------------------------------------

OLD = "old-login-token-0123456789abcdef"
NEW = "new-login-token-fedcba9876543210"


def write_credentials(path: Path, token: str) -> None:
    profiles = {"work": {"token": token, "tenant_id": "gcp-us-east1", "user_email": "me@example.com"}}
    path.write_text(json.dumps({"current_profile": "work", "profiles": profiles}))


def file_bearer(tmp_path: Path) -> tuple[FileBearer, Path]:
    path = tmp_path / ".carto_credentials.json"
    write_credentials(path, OLD)
    resolver = ProfileResolver(
        ProfileInputs(), environ={}, credentials_path=path, legacy_path=tmp_path / "no-legacy.json"
    )
    return FileBearer(resolver), path


def bearer_of(request: httpx2.Request) -> str:
    return request.headers["authorization"].removeprefix("Bearer ")


async def test_a_401_re_reads_the_credentials_file_once_and_retries(tmp_path: Path) -> None:
    """After a 401 the file is read again; a renewed login (`carto auth login` meanwhile) is used for one retry."""
    bearer, path = file_bearer(tmp_path)
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(bearer_of(request))
        if bearer_of(request) == OLD:
            write_credentials(path, NEW)  # the login is renewed while the request is in flight
            return httpx2.Response(401, json={"error": "Token not defined", "status": 401})
        return httpx2.Response(200, json=LIST_OK)

    async with make_client(handler, auth=bearer) as api:
        assert await api.list_tokens() == []

    assert seen == [OLD, NEW]


async def test_a_401_also_renews_a_post_which_is_then_sent_again(tmp_path: Path) -> None:
    """A 401 means the create was not processed, so the renewed login may send it once more."""
    bearer, path = file_bearer(tmp_path)
    seen: list[tuple[str, str]] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append((request.method, bearer_of(request)))
        if bearer_of(request) == OLD:
            write_credentials(path, NEW)
            return httpx2.Response(401, json={"error": "Token not defined"})
        return httpx2.Response(201, json=token_object())

    async with make_client(handler, auth=bearer) as api:
        await api.create_token(MAPS_TOKEN)

    assert seen == [("POST", OLD), ("POST", NEW)]


async def test_two_401s_end_in_auth_error_without_a_loop(tmp_path: Path) -> None:
    """If the renewed login is refused too, AuthError is raised after exactly two calls."""
    bearer, path = file_bearer(tmp_path)
    seen: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(bearer_of(request))
        write_credentials(path, f"renewed-{len(seen)}-login-token-0123456789")
        return httpx2.Response(401, json={"error": "Token not defined"})

    async with make_client(handler, auth=bearer) as api:
        with pytest.raises(AuthError) as caught:
            await api.list_tokens()

    assert len(seen) == 2
    assert "'work'" in str(caught.value)
    assert "carto auth login --profile work" in str(caught.value)
    assert not any(token in str(caught.value) for token in seen)


async def test_a_401_with_an_unchanged_file_is_not_retried(tmp_path: Path) -> None:
    """Re-reading the same login cannot help: one call, then AuthError."""
    bearer, _ = file_bearer(tmp_path)
    handler = Recorder(httpx2.Response(401, json={"error": "Token not defined"}))

    async with make_client(handler, auth=bearer) as api:
        with pytest.raises(AuthError):
            await api.list_tokens()

    assert handler.calls == 1


async def test_a_401_with_a_static_token_is_not_retried() -> None:
    """A fixed token (--token, CARTO_API_TOKEN) cannot be renewed: one call, then AuthError."""
    handler = Recorder(httpx2.Response(401, json={"error": "Token not defined"}))
    async with make_client(handler) as api:
        with pytest.raises(AuthError):
            await api.list_tokens()

    assert handler.calls == 1


async def test_a_file_rewritten_between_requests_is_picked_up_without_a_401(tmp_path: Path) -> None:
    """The credentials file is re-read when it changes, so the next request already carries the new login."""
    bearer, path = file_bearer(tmp_path)
    handler = Recorder(httpx2.Response(200, json=LIST_OK))

    async with make_client(handler, auth=bearer) as api:
        await api.list_tokens()
        write_credentials(path, NEW)
        await api.list_tokens()

    assert [bearer_of(r) for r in handler.requests] == [OLD, NEW]


# --- sandbox faults over real HTTP -----------------------------------------------------------


def sandbox_client(sandbox: RunningSandbox, retry: RetryPolicy = FAST, *, timeout: float = 10) -> CartoClient:
    return CartoClient(base_url=sandbox.url, auth=LOGIN, retry=retry, timeout=timeout)


async def test_sandbox_503_once_on_a_get_succeeds_after_one_retry(sandbox: RunningSandbox, admin: Admin) -> None:
    """An injected 503 on the first GET is retried; the second GET succeeds."""
    async with sandbox_client(sandbox) as api:
        created = await api.create_token(MAPS_TOKEN)
        admin.reset()
        admin.fault(mode="status", status=503, method="GET", path_prefix="/v3/tokens")

        tokens = await api.list_tokens()

    assert [t.token for t in tokens] == [created.token]
    assert admin.count("GET /v3/tokens") == 2


async def test_sandbox_429_with_retry_after_on_a_get_is_retried(sandbox: RunningSandbox, admin: Admin) -> None:
    """A sandbox 429 with Retry-After: 0 on a GET is retried at once and succeeds."""
    admin.fault(mode="status", status=429, retry_after=0, method="GET")
    async with sandbox_client(sandbox) as api:
        assert await api.list_tokens() == []

    assert admin.count("GET /v3/tokens") == 2


async def test_sandbox_drop_on_a_post_is_outcome_unknown_after_one_post(sandbox: RunningSandbox, admin: Admin) -> None:
    """A connection dropped mid-answer to a create → OutcomeUnknown; the sandbox saw exactly one POST."""
    admin.fault(mode="drop", method="POST", path_prefix="/v3/tokens")
    async with sandbox_client(sandbox) as api:
        with anyio.fail_after(10), pytest.raises(OutcomeUnknown) as caught:
            await api.create_token(MAPS_TOKEN)

    assert admin.count("POST /v3/tokens") == 1
    assert "may have been created" in str(caught.value)
    assert "list_credentials" in str(caught.value)


async def test_sandbox_drop_on_a_get_is_retried(sandbox: RunningSandbox, admin: Admin) -> None:
    """The same drop on a list is harmless: the GET is sent again and succeeds."""
    admin.fault(mode="drop", method="GET")
    async with sandbox_client(sandbox) as api:
        assert await api.list_tokens() == []

    assert admin.count("GET /v3/tokens") == 2


async def test_sandbox_stall_past_the_client_timeout_is_a_transport_error(
    sandbox: RunningSandbox, admin: Admin
) -> None:
    """A GET stalled longer than the client's 0.5 s timeout → TransportError saying it timed out."""
    admin.fault(mode="stall", stall_seconds=1.5, method="GET")
    async with sandbox_client(sandbox, retry=RetryPolicy(attempts=1), timeout=0.5) as api:
        started = time.monotonic()
        with anyio.fail_after(10), pytest.raises(TransportError) as caught:
            await api.list_tokens()
        elapsed = time.monotonic() - started

    assert not isinstance(caught.value, OutcomeUnknown)
    assert "Timed out" in str(caught.value)
    assert elapsed < 1.4


async def test_sandbox_stall_once_is_survived_by_a_retry(sandbox: RunningSandbox, admin: Admin) -> None:
    """One stalled GET times out, the retry is answered: the caller sees only the result."""
    admin.fault(mode="stall", stall_seconds=1.5, method="GET")
    async with sandbox_client(sandbox, timeout=0.5) as api:
        with anyio.fail_after(10):
            assert await api.list_tokens() == []

    assert admin.count("GET /v3/tokens") == 2


async def test_sandbox_html_error_page_is_a_clear_error(sandbox: RunningSandbox, admin: Admin) -> None:
    """A proxy-style HTML 502 on every try → ServiceError saying the reply was not JSON."""
    admin.fault(mode="html", method="GET", times=5)
    async with sandbox_client(sandbox, retry=RetryPolicy(attempts=2, backoff=0.001)) as api:
        with pytest.raises(ServiceError) as caught:
            await api.list_tokens()

    assert "not JSON (text/html)" in str(caught.value)
    assert "nginx" not in str(caught.value)
    assert admin.count("GET /v3/tokens") == 2


async def test_sandbox_html_on_a_post_is_sent_once(sandbox: RunningSandbox, admin: Admin) -> None:
    """A gateway's HTML 502 on a create is an unknown outcome (the create may have happened), sent once."""
    admin.fault(mode="html", method="POST")
    async with sandbox_client(sandbox) as api:
        with pytest.raises(OutcomeUnknown, match="a gateway answered 502"):
            await api.create_token(MAPS_TOKEN)
        assert await api.list_tokens() == []

    assert admin.count("POST /v3/tokens") == 1
