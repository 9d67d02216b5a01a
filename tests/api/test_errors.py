"""Every error status and transport failure becomes its typed carto error, with a safe, useful message."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx2
import pytest

from carto_mcp.api import (
    ApiError,
    AuthError,
    BadResponse,
    CartoClient,
    CartoError,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    ServiceError,
    StaticBearer,
    TransportError,
    ValidationFailed,
)

from ._support import BASE_URL, LOGIN, TOKEN, TOKEN_ID, token_object

pytestmark = pytest.mark.anyio

Handler = Callable[[httpx2.Request], httpx2.Response]
NGINX_502 = "<html><head><title>502 Bad Gateway</title></head><body><center>nginx</center></body></html>"


def make_client(
    handler: Handler, *, attempts: int = 1, profile: str = "work", source: str = "credentials_file"
) -> CartoClient:
    return CartoClient(
        base_url=BASE_URL,
        auth=StaticBearer(LOGIN, profile_name=profile, source=source),
        transport=httpx2.MockTransport(handler),
        retry=RetryPolicy(attempts=attempts, backoff=0.001, max_backoff=0.001),
    )


def answer(status: int, body: Any = None, *, headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx2.Request) -> httpx2.Response:
        if isinstance(body, str):
            return httpx2.Response(status, text=body, headers={"content-type": "text/html", **(headers or {})})
        return httpx2.Response(status, json=body, headers=headers)

    return handler


def assert_safe(exc: BaseException) -> None:
    """No secret in the text a person or a model will read, nor in the attributes that travel with it."""
    text = f"{exc} {getattr(exc, 'url', '')}"
    assert TOKEN not in text
    assert LOGIN not in text


async def get_token_error(handler: Handler, *, attempts: int = 1, source: str = "credentials_file") -> CartoError:
    async with make_client(handler, attempts=attempts, source=source) as api:
        with pytest.raises(CartoError) as caught:
            await api.get_token(TOKEN)
    assert_safe(caught.value)
    return caught.value


# --- error statuses -----------------------------------------------------------------------


async def test_401_is_auth_error_naming_the_profile_and_carto_auth_login() -> None:
    """401 → AuthError whose message names the profile, quotes the service and says `carto auth login`."""
    exc = await get_token_error(answer(401, {"error": "Token not defined", "status": 401}))

    assert type(exc) is AuthError
    assert exc.status_code == 401
    assert "'work'" in str(exc)
    assert "carto auth login --profile work" in str(exc)
    assert "Token not defined" in str(exc)


@pytest.mark.parametrize(
    ("source", "named", "fix"),
    [
        ("env", "CARTO_API_TOKEN", "set a valid CARTO_API_TOKEN"),
        ("flag", "--token", "pass a valid --token"),
        ("client_credentials", "the M2M client credentials", "CARTO_CLIENT_ID / CARTO_CLIENT_SECRET"),
        ("credentials_file", "~/.carto_credentials.json", "carto auth login --profile work"),
    ],
)
async def test_401_names_the_credential_source_and_its_fix(source: str, named: str, fix: str) -> None:
    """A 401 says which credential source was rejected and how to renew that one."""
    exc = await get_token_error(answer(401, {"error": "Token not defined", "status": 401}), source=source)
    assert type(exc) is AuthError
    assert f"credentials from {named}" in str(exc) and fix in str(exc)


async def test_403_is_permission_denied() -> None:
    """403 → PermissionDenied naming the profile and pointing at role and plan."""
    exc = await get_token_error(answer(403, {"error": "Forbidden", "description": "Not the owner"}))

    assert type(exc) is PermissionDenied
    assert exc.status_code == 403
    assert "Not the owner" in str(exc)
    assert "'work'" in str(exc)
    assert "plan" in str(exc)


async def test_404_is_not_found_with_the_masked_url() -> None:
    """404 → NotFound; the URL in the message and on the error has the token path segment masked."""
    exc = await get_token_error(answer(404, {"error": "Not found", "description": "No such token"}))

    assert type(exc) is NotFound
    assert "No such token" in str(exc)
    assert exc.method == "GET"
    assert exc.url == f"{BASE_URL}/v3/tokens/{TOKEN[:4]}…{TOKEN[-4:]}"


@pytest.mark.parametrize("status", [400, 409, 422])
async def test_refusals_are_validation_failed_with_the_services_description(status: int) -> None:
    """400/409/422 → ValidationFailed carrying the service's `description` verbatim."""
    body = {"error": "Bad request", "description": "grants[0]: source 'table*' is not a valid pattern"}
    async with make_client(answer(status, body)) as api:
        with pytest.raises(ValidationFailed) as caught:
            await api.create_token({"name": "x"})

    assert caught.value.status_code == status
    assert "grants[0]: source 'table*' is not a valid pattern" in str(caught.value)
    assert_safe(caught.value)


async def test_an_auth0_style_error_description_is_quoted_too() -> None:
    """`error_description` (the auth server's key) is read like `description`."""
    body = {"error": "invalid_request", "error_description": "name is too long"}
    async with make_client(answer(422, body)) as api:
        with pytest.raises(ValidationFailed, match="name is too long"):
            await api.create_token({"name": "x"})


@pytest.mark.parametrize(("header", "expected"), [("7", 7.0), ("0.5", 0.5), (None, None), ("soon", None)])
async def test_429_is_rate_limited_with_retry_after_from_the_header(header: str | None, expected: float | None) -> None:
    """429 → RateLimited; `retry_after` is the header's seconds, None when absent or unreadable."""
    headers = {"Retry-After": header} if header is not None else None
    exc = await get_token_error(answer(429, {"error": "Too many requests"}, headers=headers))

    assert type(exc) is RateLimited
    assert exc.retry_after == expected
    assert "rate limiting" in str(exc)


async def test_429_retry_after_as_an_http_date_is_converted_to_seconds() -> None:
    """An HTTP-date Retry-After in the past counts as 0 s, never negative."""
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}
    exc = await get_token_error(answer(429, {"error": "Too many requests"}, headers=headers))

    assert isinstance(exc, RateLimited)
    assert exc.retry_after == 0.0


@pytest.mark.parametrize(("status", "calls"), [(500, 1), (502, 3), (503, 3), (504, 3)])
async def test_5xx_is_service_error_after_the_retries(status: int, calls: int) -> None:
    """5xx → ServiceError; 502/503/504 on a GET are tried `attempts` times first, 500 is not retried."""
    sent: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        sent.append(request)
        return httpx2.Response(status, json={"error": "Server error", "description": "upstream failed"})

    exc = await get_token_error(handler, attempts=3)

    assert type(exc) is ServiceError
    assert exc.status_code == status
    assert len(sent) == calls
    assert "Retry later" in str(exc)


async def test_an_unlisted_error_status_is_a_plain_api_error() -> None:
    """A status with no dedicated class (418) still becomes an ApiError with the status."""
    exc = await get_token_error(answer(418, {"error": "I'm a teapot"}))

    assert type(exc) is ApiError
    assert exc.status_code == 418


async def test_the_request_id_header_travels_on_the_error() -> None:
    """x-request-id from the reply is kept on the error for support, not in the message."""
    exc = await get_token_error(answer(500, {"error": "boom"}, headers={"x-request-id": "req-42"}))

    assert isinstance(exc, ApiError)
    assert exc.request_id == "req-42"


async def test_an_error_body_echoing_the_token_is_masked() -> None:
    """If the service quotes the token in its description, the message shows it masked."""
    exc = await get_token_error(answer(404, {"error": "Not found", "description": f"no token {TOKEN}"}))

    assert f"no token {TOKEN[:4]}…{TOKEN[-4:]}" in str(exc)


# --- transport failures -------------------------------------------------------------------


@pytest.mark.parametrize("error", [httpx2.ReadTimeout, httpx2.ConnectTimeout, httpx2.PoolTimeout])
async def test_timeouts_are_transport_errors(error: type[httpx2.TimeoutException]) -> None:
    """A timeout of any phase → TransportError (not OutcomeUnknown on a GET), chained to the httpx2 error."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        raise error("timed out", request=request)

    exc = await get_token_error(handler)

    assert type(exc) is TransportError
    assert "Timed out" in str(exc)
    assert isinstance(exc.__cause__, error)


async def test_a_connect_error_is_a_transport_error_saying_nothing_changed() -> None:
    """A refused connection → TransportError that says the request never changed anything."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("[Errno 111] Connection refused", request=request)

    exc = await get_token_error(handler)

    assert type(exc) is TransportError
    assert "Connection refused" in str(exc)
    assert "Nothing was changed" in str(exc)


async def test_a_dropped_patch_does_not_claim_nothing_changed() -> None:
    """A connection dropped after a PATCH was sent → TransportError that does not promise nothing changed."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.RemoteProtocolError("peer closed connection", request=request)

    async with make_client(handler) as api:
        with pytest.raises(TransportError) as caught:
            await api.update_token(TOKEN, {"name": "x"})

    assert not isinstance(caught.value, OutcomeUnknown)
    assert "Nothing was changed" not in str(caught.value)
    assert_safe(caught.value)


async def test_an_unrecognised_exception_is_not_swallowed() -> None:
    """Anything that is not an httpx2 error passes through untouched (bugs stay visible)."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        raise KeyError("bug in a handler")

    async with make_client(handler) as api:
        with pytest.raises(KeyError):
            await api.list_tokens()


# --- bodies that are not what the contract says -------------------------------------------


async def test_html_on_an_error_status_is_a_clear_service_error() -> None:
    """A proxy's HTML 502 → ServiceError saying the reply was not JSON, without quoting the page."""
    exc = await get_token_error(answer(502, NGINX_502))

    assert type(exc) is ServiceError
    assert "not JSON (text/html)" in str(exc)
    assert "nginx" not in str(exc)


async def test_html_on_a_404_is_still_not_found() -> None:
    """The status decides the class even when the body is HTML."""
    exc = await get_token_error(answer(404, "<html>Not Found</html>"))

    assert type(exc) is NotFound
    assert "not JSON" in str(exc)


async def test_html_on_a_200_is_bad_response() -> None:
    """A 200 whose body is HTML (a login page, a captive portal) → BadResponse naming the content type."""
    exc = await get_token_error(answer(200, "<html>Sign in</html>"))

    assert type(exc) is BadResponse
    assert "not JSON (text/html)" in str(exc)
    assert "--base-url" in str(exc)


@pytest.mark.parametrize("body", [{"unexpected": True}, {"data": "not a list"}, 42, "text"])
async def test_a_list_reply_of_unknown_shape_is_bad_response(body: Any) -> None:
    """A 200 list reply that is neither an array nor a known envelope → BadResponse."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json=body)

    async with make_client(handler) as api:
        with pytest.raises(BadResponse, match="unexpected shape"):
            await api.list_tokens()


async def test_a_listed_row_without_a_token_string_is_bad_response() -> None:
    """A row missing its `token` value cannot be used: BadResponse instead of a half-parsed list."""
    async with make_client(answer(200, {"data": [{"name": "no value"}], "total": 1})) as api:
        with pytest.raises(BadResponse, match="no 'token' string"):
            await api.list_tokens()


@pytest.mark.parametrize("body", [{}, {"name": "x"}, {"token": None}, [], None])
async def test_a_create_reply_without_a_token_is_bad_response(body: Any) -> None:
    """A 2xx create without a token value → BadResponse telling the caller to check list_credentials."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(201) if body is None else httpx2.Response(201, json=body)

    async with make_client(handler) as api:
        with pytest.raises(BadResponse) as caught:
            await api.create_token({"name": "x"})

    assert "list_credentials" in str(caught.value)


async def test_a_client_reply_that_is_not_an_object_is_bad_response() -> None:
    """An OAuth client reply must be an object with a client_id."""
    async with make_client(answer(200, ["not", "an", "object"])) as api:
        with pytest.raises(BadResponse):
            await api.get_client("abc")
    async with make_client(answer(200, {"name": "no id"})) as api:
        with pytest.raises(BadResponse, match="client_id"):
            await api.get_client("abc")


# --- OAuth clients on a tenant without the (A) endpoint -------------------------------------


@pytest.mark.parametrize("status", [404, 405])
async def test_oauth_collection_404_or_405_says_management_is_not_available(status: int) -> None:
    """A 404/405 on the OAuth clients collection → NotFound saying SPA/M2M management is not available here."""
    handler = answer(status, {"error": "Not found", "description": "Cannot GET /v3/oauth-clients"})
    async with make_client(handler) as api:
        with pytest.raises(NotFound) as listing:
            await api.list_clients("spa")
        with pytest.raises(NotFound) as creating:
            await api.create_client({"name": "x", "app_type": "m2m"})

    for exc in (listing.value, creating.value):
        assert f"SPA/M2M client management is not available at {BASE_URL}" in str(exc)
        assert exc.status_code == status
        assert isinstance(exc.__cause__, ApiError)


async def test_an_m2m_create_refused_with_403_is_permission_denied() -> None:
    """403 on an M2M create (plan too small) → PermissionDenied that mentions the plan."""
    handler = answer(403, {"error": "Forbidden", "description": "M2M clients need Enterprise Large"})
    async with make_client(handler) as api:
        with pytest.raises(PermissionDenied) as caught:
            await api.create_client({"name": "x", "app_type": "m2m"})

    assert "Enterprise Large" in str(caught.value)
    assert "plan" in str(caught.value)


# --- lenient reading of 2xx replies (contract A) ---------------------------------------------


@pytest.mark.parametrize("envelope", ["bare", "data", "results", "tokens", "items"])
async def test_list_replies_in_any_accepted_envelope_are_read(envelope: str) -> None:
    """A bare array and the data/results/tokens/items envelopes all yield the tokens."""
    rows = [token_object()]
    body: Any = rows if envelope == "bare" else {envelope: rows}
    async with make_client(answer(200, body)) as api:
        tokens = await api.list_tokens()

    assert [t.id for t in tokens] == [TOKEN_ID]


async def test_unknown_token_fields_are_kept() -> None:
    """Extra fields on a token object survive parsing (contract A: unknown extra fields are kept)."""
    async with make_client(answer(200, token_object(owner="me@example.com"))) as api:
        token = await api.get_token(TOKEN)

    assert token.model_extra == {"owner": "me@example.com"}


async def test_an_empty_patch_reply_is_followed_by_a_lookup() -> None:
    """A 204 to a PATCH is success; the client fetches the token to return its new state."""
    methods: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        methods.append(request.method)
        if request.method == "PATCH":
            return httpx2.Response(204)
        return httpx2.Response(200, json=token_object(name="renamed"))

    async with make_client(handler) as api:
        token = await api.update_token(TOKEN, {"name": "renamed"})

    assert methods == ["PATCH", "GET"]
    assert token.name == "renamed"


async def test_a_delete_answered_with_an_empty_200_is_success() -> None:
    """Any 2xx is success and may have an empty body."""
    async with make_client(lambda request: httpx2.Response(200)) as api:
        assert await api.delete_token(TOKEN) is None
        assert await api.delete_client("abc") is None


async def test_pagination_trusts_the_total_when_the_service_caps_per_page() -> None:
    """A service that serves fewer rows per page than asked is still walked to `total`."""
    rows = [token_object(f"{TOKEN}{i}") for i in range(5)]
    asked: list[str] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        asked.append(request.url.params["per_page"])
        page = int(request.url.params["page"])
        return httpx2.Response(200, json={"data": rows[(page - 1) * 2 : page * 2], "total": 5})

    async with make_client(handler) as api:
        tokens = await api.list_tokens()

    assert [t.token for t in tokens] == [r["token"] for r in rows]
    assert asked == ["100", "100", "100"]


async def test_pagination_without_a_total_stops_at_a_short_page() -> None:
    """Without `total`, a page shorter than per_page is the last one."""
    pages = {1: [token_object(f"{TOKEN}a"), token_object(f"{TOKEN}b")], 2: [token_object(f"{TOKEN}c")]}
    asked: list[int] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        page = int(request.url.params["page"])
        asked.append(page)
        return httpx2.Response(200, json={"data": pages.get(page, [])})

    async with CartoClient(base_url=BASE_URL, auth=LOGIN, transport=httpx2.MockTransport(handler), per_page=2) as api:
        tokens = await api.list_tokens()

    assert len(tokens) == 3
    assert asked == [1, 2]


# --- lifecycle ------------------------------------------------------------------------------


async def test_a_closed_client_refuses_requests() -> None:
    """After close, a request raises instead of silently reopening the pool."""
    api = make_client(answer(200, {"data": []}))
    async with api:
        await api.list_tokens()

    with pytest.raises(RuntimeError, match="closed"):
        await api.list_tokens()


async def test_a_client_cannot_be_opened_twice() -> None:
    """`async with` works once per client."""
    api = make_client(answer(200, {"data": []}))
    async with api:
        pass
    with pytest.raises(RuntimeError):
        await api.__aenter__()
