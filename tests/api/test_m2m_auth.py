"""ClientCredentialsBearer: the M2M client-credentials exchange against the sandbox's /oauth/token."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import anyio
import httpx2
import pytest

from carto_mcp import contract
from carto_mcp.api import (
    AuthError,
    BadResponse,
    CartoClient,
    ClientCredentialsBearer,
    RetryPolicy,
    ServiceError,
)
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox

from ._support import BASE_URL, LOGIN, Admin

pytestmark = pytest.mark.anyio

EXCHANGE = "POST /oauth/token"


@dataclass(frozen=True)
class M2M:
    client_id: str
    secret: str


async def create_m2m(sandbox: RunningSandbox) -> M2M:
    """A real M2M client in the sandbox: its id and its show-once secret."""
    async with CartoClient(base_url=sandbox.url, auth=LOGIN) as api:
        created = await api.create_client({"name": "pipeline", "app_type": "m2m"})
    assert created.client_secret
    return M2M(created.client_id, created.client_secret)


def bearer_for(sandbox: RunningSandbox, m2m: M2M, secret: str | None = None) -> ClientCredentialsBearer:
    return ClientCredentialsBearer(
        m2m.client_id,
        m2m.secret if secret is None else secret,
        token_url=sandbox.url + contract.AUTH_TOKEN_PATH,
        profile_name="pipeline",
    )


async def current_bearer(source: ClientCredentialsBearer) -> str:
    """The access token the source would send now (cached: this does not exchange again)."""
    async with httpx2.AsyncClient() as http:
        return await source.bearer(http)


async def test_the_exchange_happens_once_and_is_cached(sandbox: RunningSandbox, admin: Admin) -> None:
    """Several API calls, sequential and concurrent, share one exchanged access token."""
    m2m = await create_m2m(sandbox)
    source = bearer_for(sandbox, m2m)
    admin.reset()

    async with CartoClient(base_url=sandbox.url, auth=source) as api:
        await api.list_tokens()
        await api.list_clients("m2m")
        async with anyio.create_task_group() as tg:
            for _ in range(5):
                tg.start_soon(api.list_tokens)

    assert source.exchanges == 1
    assert admin.count(EXCHANGE) == 1
    assert admin.count("GET /v3/tokens") == 6


async def test_the_exchange_sends_the_documented_form(sandbox: RunningSandbox) -> None:
    """The exchange is a form-encoded client_credentials grant with the CARTO audience."""
    m2m = await create_m2m(sandbox)
    forms: list[dict[str, str]] = []
    real = httpx2.AsyncHTTPTransport()

    async def spy(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == contract.AUTH_TOKEN_PATH:
            assert request.headers["content-type"] == "application/x-www-form-urlencoded"
            forms.append(dict(parse_qsl((await request.aread()).decode())))
        return await real.handle_async_request(request)

    async with CartoClient(
        base_url=sandbox.url, auth=bearer_for(sandbox, m2m), transport=httpx2.MockTransport(spy)
    ) as api:
        await api.list_tokens()
    await real.aclose()

    assert forms == [
        {
            "grant_type": "client_credentials",
            "client_id": m2m.client_id,
            "client_secret": m2m.secret,
            "audience": contract.AUTH_AUDIENCE,
        }
    ]


@pytest.fixture
def short_lived(tmp_path: Path) -> Iterator[RunningSandbox]:
    """A sandbox whose access tokens live one second."""
    with running_sandbox(tmp_path / "short.sqlite3", faults=True, access_token_lifetime=1) as running:
        yield running


async def test_the_token_is_renewed_shortly_before_it_expires(
    short_lived: RunningSandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a 1 s token and a 0.3 s renewal margin: reused at once, exchanged again 0.75 s later (not yet expired)."""
    monkeypatch.setattr("carto_mcp.api.auth.RENEW_MARGIN", 0.3)
    m2m = await create_m2m(short_lived)
    source = bearer_for(short_lived, m2m)

    async with CartoClient(base_url=short_lived.url, auth=source) as api:
        await api.list_tokens()
        first = await current_bearer(source)
        started = time.monotonic()
        await api.list_tokens()
        assert source.exchanges == 1
        await anyio.sleep(max(0.75 - (time.monotonic() - started), 0))
        await api.list_tokens()
        second = await current_bearer(source)

    assert source.exchanges == 2
    assert second != first


async def test_a_wrong_secret_is_auth_error_naming_the_client_and_the_env_vars(sandbox: RunningSandbox) -> None:
    """A refused exchange → AuthError naming the client id and CARTO_CLIENT_ID/SECRET, never the secret."""
    m2m = await create_m2m(sandbox)
    wrong = "wrong-secret-" + m2m.secret[::-1]
    source = bearer_for(sandbox, m2m, secret=wrong)

    async with CartoClient(base_url=sandbox.url, auth=source) as api:
        with pytest.raises(AuthError) as caught:
            await api.list_tokens()

    text = str(caught.value)
    assert m2m.client_id in text
    assert "CARTO_CLIENT_ID" in text
    assert "CARTO_CLIENT_SECRET" in text
    assert "access_denied" in text
    assert wrong not in text
    assert m2m.secret not in text
    assert caught.value.status_code == 401


async def test_a_secret_of_a_deleted_client_is_refused(sandbox: RunningSandbox) -> None:
    """Deleting the M2M client revokes its credentials: the next exchange fails with AuthError."""
    m2m = await create_m2m(sandbox)
    async with CartoClient(base_url=sandbox.url, auth=LOGIN) as admin_api:
        await admin_api.delete_client(m2m.client_id)

    async with CartoClient(base_url=sandbox.url, auth=bearer_for(sandbox, m2m)) as api:
        with pytest.raises(AuthError, match=m2m.client_id):
            await api.list_tokens()


async def test_a_401_from_the_api_triggers_exactly_one_re_exchange(sandbox: RunningSandbox, admin: Admin) -> None:
    """When the API revokes the cached access token, the source exchanges again once and the call succeeds."""
    m2m = await create_m2m(sandbox)
    source = bearer_for(sandbox, m2m)

    async with CartoClient(base_url=sandbox.url, auth=source) as api:
        await api.list_tokens()
        revoked = await current_bearer(source)
        admin.reject(revoked)
        admin.reset()

        assert await api.list_tokens() == []

    assert source.exchanges == 2
    assert admin.count(EXCHANGE) == 1
    assert admin.count("GET /v3/tokens") == 2
    assert await current_bearer(source) != revoked


async def test_an_api_that_keeps_refusing_ends_in_auth_error_after_one_re_exchange() -> None:
    """If the fresh token is refused too, AuthError after two API calls and two exchanges: no loop."""
    calls = {"exchange": 0, "api": 0}

    def handler(request: httpx2.Request) -> httpx2.Response:
        if request.url.path == "/oauth/token":
            calls["exchange"] += 1
            return httpx2.Response(200, json={"access_token": f"access-{calls['exchange']}", "expires_in": 86400})
        calls["api"] += 1
        return httpx2.Response(401, json={"error": "Token not defined", "status": 401})

    source = ClientCredentialsBearer("cid-123", "s3cr3t-value-0123456789", token_url=f"{BASE_URL}/oauth/token")
    async with CartoClient(
        base_url=BASE_URL, auth=source, transport=httpx2.MockTransport(handler), retry=RetryPolicy(attempts=5)
    ) as api:
        with pytest.raises(AuthError) as caught:
            await api.list_tokens()

    assert calls == {"exchange": 2, "api": 2}
    assert "s3cr3t-value-0123456789" not in str(caught.value)


async def test_an_auth_server_failure_is_a_service_error_not_a_credentials_error() -> None:
    """A 5xx from the token endpoint says the auth server failed, not that the credentials are wrong."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(503, text="<html>down</html>", headers={"content-type": "text/html"})

    source = ClientCredentialsBearer("cid-123", "s3cr3t-value-0123456789", token_url=f"{BASE_URL}/oauth/token")
    async with CartoClient(base_url=BASE_URL, auth=source, transport=httpx2.MockTransport(handler)) as api:
        with pytest.raises(ServiceError) as caught:
            await api.list_tokens()

    assert not isinstance(caught.value, AuthError)
    assert "retry later" in str(caught.value)
    assert "s3cr3t-value-0123456789" not in str(caught.value)


async def test_an_exchange_reply_without_an_access_token_is_bad_response() -> None:
    """A 200 from the token endpoint with no access_token is a clear BadResponse."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={"token_type": "Bearer"})

    source = ClientCredentialsBearer("cid-123", "s3cr3t-value-0123456789", token_url=f"{BASE_URL}/oauth/token")
    async with CartoClient(base_url=BASE_URL, auth=source, transport=httpx2.MockTransport(handler)) as api:
        with pytest.raises(BadResponse, match="access_token"):
            await api.list_tokens()
