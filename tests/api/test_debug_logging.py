"""--debug logging on "carto_mcp.api": method, URL, masked bearer and bodies, and never a secret."""

from __future__ import annotations

import logging

import httpx2
import pytest

from carto_mcp import contract
from carto_mcp.api import AuthError, CartoClient, ClientCredentialsBearer, NotFound
from carto_mcp.masking import mask
from carto_mcp.sandbox.server import RunningSandbox

from ._support import LOGIN, MAPS_TOKEN

pytestmark = pytest.mark.anyio

LOGGER = "carto_mcp.api"


def api_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def one(lines: list[str], prefix: str) -> str:
    found = [line for line in lines if line.startswith(prefix)]
    assert len(found) == 1, (prefix, lines)
    return found[0]


async def test_a_token_session_logs_method_url_masked_bearer_and_bodies(
    sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """create/get/update/delete each log `--> METHOD URL` with the bearer masked, POST/PATCH bodies, and `<--`."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    url = sandbox.url

    async with CartoClient(base_url=url, auth=LOGIN) as api:
        token = await api.create_token({**MAPS_TOKEN, "name": "logged"})
        await api.get_token(token.token)
        await api.update_token(token.token, {"referers": ["https://logged.example.com/"]})
        await api.delete_token(token.token)

    lines = api_lines(caplog)
    item = f"{url}/v3/tokens/{mask(token.token)}"
    create = one(lines, f"--> POST {url}/v3/tokens ")
    assert f"'authorization': 'Bearer {mask(LOGIN)}'" in create
    assert 'body={"name":"logged","grants":[{"connection_name":"carto_dw"' in create
    assert "body=" not in one(lines, f"--> GET {item} ")
    assert 'body={"referers":["https://logged.example.com/"]}' in one(lines, f"--> PATCH {item} ")
    assert "body=" not in one(lines, f"--> DELETE {item} ")
    for answer in (f"<-- 201 POST {url}/v3/tokens ", f"<-- 200 GET {item} ", f"<-- 200 PATCH {item} "):
        assert one(lines, answer).endswith("ms)")
    one(lines, f"<-- 204 DELETE {item} ")
    assert all(record.levelno == logging.DEBUG for record in caplog.records if record.name == LOGGER)

    everything = caplog.text + "\n".join(lines)
    assert LOGIN not in everything
    assert token.token not in everything


async def test_an_m2m_session_never_logs_the_secret_or_the_access_token(
    sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """The exchange body shows the client secret masked; the access token and secret appear nowhere in full."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with CartoClient(base_url=sandbox.url, auth=LOGIN) as api:
        m2m = await api.create_client({"name": "pipeline", "app_type": "m2m"})
        await api.get_client(m2m.client_id)
    assert m2m.client_secret

    source = ClientCredentialsBearer(m2m.client_id, m2m.client_secret, token_url=sandbox.url + contract.AUTH_TOKEN_PATH)
    async with CartoClient(base_url=sandbox.url, auth=source) as api:
        token = await api.create_token(MAPS_TOKEN)
        await api.get_token(token.token)
        await api.delete_token(token.token)
    async with httpx2.AsyncClient() as http:
        access = await source.bearer(http)

    lines = api_lines(caplog)
    exchange = one(lines, f"--> POST {sandbox.url}{contract.AUTH_TOKEN_PATH} ")
    assert f"client_id={m2m.client_id}" in exchange
    assert f"client_secret={mask(m2m.client_secret)}" in exchange
    assert f"'authorization': 'Bearer {mask(access)}'" in one(lines, f"--> POST {sandbox.url}/v3/tokens ")
    assert any(line.startswith("--> POST") and "/v3/oauth-clients" in line for line in lines)

    everything = caplog.text + "\n".join(lines)
    for secret in (LOGIN, m2m.client_secret, access, token.token):
        assert secret not in everything


async def test_nothing_is_logged_when_debug_is_off(sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture) -> None:
    """At INFO the client logs no request lines at all."""
    caplog.set_level(logging.INFO, logger=LOGGER)
    async with CartoClient(base_url=sandbox.url, auth=LOGIN) as api:
        await api.create_token(MAPS_TOKEN)

    assert api_lines(caplog) == []


async def test_a_failed_request_logs_its_answer_with_the_token_masked(caplog: pytest.LogCaptureFixture) -> None:
    """Error answers are logged like any other, still without the token in the URL."""
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    token = "eyJhbGciOiJIUzI1NiJ9.eyJhIjoiYWNfeCIsImp0aSI6ImZmZmYwMDAwIn0.bG9nZ2VkLXNpZ25hdHVyZS12YWx1ZQ"

    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(404, json={"error": "Not found", "description": f"no token {token}"})

    async with CartoClient(base_url="https://t.example", auth=LOGIN, transport=httpx2.MockTransport(handler)) as api:
        with pytest.raises(NotFound):
            await api.get_token(token)

    lines = api_lines(caplog)
    one(lines, f"<-- 404 GET https://t.example/v3/tokens/{mask(token)} ")
    assert token not in caplog.text


async def test_an_m2m_secret_with_form_special_characters_never_reaches_the_debug_log(
    sandbox: RunningSandbox, caplog: pytest.LogCaptureFixture
) -> None:
    """(abuse 7) The exchange body is form-encoded: its client_secret is masked as a field, in every encoding."""
    from urllib.parse import quote, quote_plus

    secret = "a+b/c=d&e%f-special-secret-9f3K+/=="
    caplog.set_level(logging.DEBUG, logger="carto_mcp")
    bearer = ClientCredentialsBearer("client-with-odd-secret", secret, token_url=f"{sandbox.url}/oauth/token")
    async with CartoClient(base_url=sandbox.url, auth=bearer) as api:
        with pytest.raises(AuthError):
            await api.list_tokens()
    logged = caplog.text
    assert "client_secret=" in logged  # the exchange was logged, with the field masked
    for form in (secret, quote(secret, safe=""), quote_plus(secret), secret.replace("+", " ")):
        assert form not in logged
