"""Faults between the server and CARTO, seen through the MCP layer.

Each fault ends as a clear tool error or a successful retry, the server keeps answering, and
no create is ever sent twice (the sandbox counts every request).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from carto_mcp.config import Settings
from carto_mcp.profiles import ProfileInputs
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.app import build_server

pytestmark = pytest.mark.anyio

BEARER = "fault-test-bearer-000111"
CREATE = "POST /v3/tokens"
LIST = "GET /v3/tokens"
MAPS = {"grants": [{"connection": "carto_dw", "source": "carto.shared.demo_table"}], "apis": ["maps"]}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path / "faults.db", faults=True) as sb:
        yield sb


class Admin:
    def __init__(self, url: str) -> None:
        self.url = url

    def fault(self, **fault: Any) -> None:
        httpx2.post(f"{self.url}/_sandbox/faults", json=fault, timeout=5).raise_for_status()

    def count(self, key: str) -> int:
        counts: dict[str, int] = httpx2.get(f"{self.url}/_sandbox/requests", timeout=5).json()
        return counts.get(key, 0)

    def reset(self) -> None:
        httpx2.delete(f"{self.url}/_sandbox/requests", timeout=5).raise_for_status()


def server_for(sandbox: RunningSandbox, **settings: Any) -> Any:
    return build_server(Settings(profile=ProfileInputs(token=BEARER, base_url=sandbox.url), **settings))


def token_total(sandbox: RunningSandbox) -> int:
    return sandbox.store.list_tokens(limit=1)[1]


def text_of(result: Any) -> str:
    return " ".join(getattr(c, "text", "") for c in result.content)


async def still_answers(client: Client) -> None:
    after = await client.call_tool("list_credentials", {"limit": 1})
    assert not after.is_error, text_of(after)


async def test_a_503_on_a_read_is_retried_and_the_call_succeeds(sandbox: RunningSandbox) -> None:
    """GET is idempotent: one 503 is retried and list_credentials answers normally."""
    admin = Admin(sandbox.url)
    async with Client(server_for(sandbox)) as client:
        await client.call_tool("create_token", MAPS)
        admin.reset()
        admin.fault(mode="status", status=503, times=1, method="GET", path_prefix="/v3/tokens")
        listed = await client.call_tool("list_credentials", {"kind": "token"})
    assert not listed.is_error and listed.structured_content is not None
    assert listed.structured_content["count"] == 1
    assert admin.count(LIST) == 2


async def test_a_429_with_retry_after_on_a_read_is_honoured(sandbox: RunningSandbox) -> None:
    """A rate-limited GET waits for Retry-After, then succeeds."""
    admin = Admin(sandbox.url)
    async with Client(server_for(sandbox)) as client:
        admin.fault(mode="status", status=429, times=1, method="GET", path_prefix="/v3/tokens", retry_after=1)
        listed = await client.call_tool("list_credentials", {"kind": "token"})
    assert not listed.is_error
    assert admin.count(LIST) == 2


@pytest.mark.parametrize("status", [429, 500, 503])
async def test_a_failed_create_is_sent_once_and_reported(sandbox: RunningSandbox, status: int) -> None:
    """POST is never retried: the error says what happened, exactly one create reached CARTO, nothing exists."""
    admin = Admin(sandbox.url)
    async with Client(server_for(sandbox)) as client:
        admin.fault(mode="status", status=status, times=1, method="POST", path_prefix="/v3/tokens")
        failed = await client.call_tool("create_token", MAPS)
        listed = await client.call_tool("list_credentials", {"kind": "token"})
    assert failed.is_error
    assert str(status) in text_of(failed) and "Traceback" not in text_of(failed)
    assert admin.count(CREATE) == 1
    assert listed.structured_content is not None and listed.structured_content["count"] == 0


async def test_a_create_whose_answer_is_lost_says_plainly_that_it_was_not_made(sandbox: RunningSandbox) -> None:
    """A connection dropped before CARTO handled the create: the server looks, and says it does not exist."""
    admin = Admin(sandbox.url)
    async with Client(server_for(sandbox)) as client:
        admin.fault(mode="drop", times=1, method="POST", path_prefix="/v3/tokens")
        failed = await client.call_tool("create_token", MAPS)
        await still_answers(client)
    assert failed.is_error
    assert "was lost" in text_of(failed) and "it was not created" in text_of(failed)
    assert "create it again" in text_of(failed)
    assert admin.count(CREATE) == 1 and token_total(sandbox) == 0


@pytest.mark.parametrize("status", [502, 504])
async def test_a_gateway_error_after_the_create_delivers_the_token_that_was_made(
    sandbox: RunningSandbox, status: int
) -> None:
    """A 502/504 after CARTO made the token: the token is found, shown once, and never created twice."""
    admin = Admin(sandbox.url)
    async with Client(server_for(sandbox)) as client:
        admin.fault(mode="status", status=status, after=True, method="POST", path_prefix="/v3/tokens")
        result = await client.call_tool("create_token", {**MAPS, "name": "behind-a-gateway"})
    assert not result.is_error, text_of(result)
    created = result.structured_content
    assert created is not None and created["token"] and created["detail"]["name"] == "behind-a-gateway"
    assert any("answer to this create was lost" in w for w in created["warnings"])
    assert admin.count(CREATE) == 1 and token_total(sandbox) == 1
    assert sandbox.store.get_token(created["token"]) is not None


async def test_a_proxy_html_page_ends_as_a_clear_error(sandbox: RunningSandbox) -> None:
    """An HTML 502 on every retry becomes an error naming the non-JSON reply, not a parse traceback."""
    admin = Admin(sandbox.url)
    async with Client(server_for(sandbox)) as client:
        admin.fault(mode="html", status=502, times=10, method="GET", path_prefix="/v3/tokens")
        failed = await client.call_tool("list_credentials", {})
        httpx2.delete(f"{sandbox.url}/_sandbox/faults", timeout=5).raise_for_status()
        await still_answers(client)
    assert failed.is_error
    assert "not JSON" in text_of(failed) and "502" in text_of(failed)


async def test_an_unreachable_api_is_a_tool_error_and_the_server_keeps_answering() -> None:
    """Connection refused at every call: a clear 'could not reach' error each time, never a crash."""

    def refuse(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    settings = Settings(profile=ProfileInputs(token=BEARER, base_url="https://gcp-us-east1.api.carto.test"))
    async with Client(build_server(settings, transport=httpx2.MockTransport(refuse))) as client:
        for _ in range(2):
            failed = await client.call_tool("list_credentials", {})
            assert failed.is_error and "Could not reach CARTO" in text_of(failed)
        whoami = await client.call_tool("whoami", {})
    assert not whoami.is_error


async def headless_m2m(sandbox: RunningSandbox, tmp_path: Path) -> tuple[Any, str]:
    """A new M2M client (made by the user's server) and a server that signs in as it from the environment."""
    async with Client(server_for(sandbox, yes=True)) as admin_client:
        made = await admin_client.call_tool("create_m2m", {"title": "automation"})
    assert made.structured_content is not None
    client_id, secret = made.structured_content["id"], made.structured_content["client_secret"]
    environ = {"CARTO_CLIENT_ID": client_id, "CARTO_CLIENT_SECRET": secret, "CARTO_MCP_BASE_URL": sandbox.url}
    settings = Settings(
        auth_url=f"{sandbox.url}/oauth/token", credentials_path=tmp_path / "none.json", legacy_path=tmp_path / "x.json"
    )
    return build_server(settings, environ=environ), secret


async def test_headless_m2m_credentials_exchange_once_and_work(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """CARTO_CLIENT_ID/CARTO_CLIENT_SECRET: one exchange serves many calls; the secret leaks nowhere."""
    server, secret = await headless_m2m(sandbox, tmp_path)
    admin = Admin(sandbox.url)
    admin.reset()
    async with Client(server) as client:
        me = await client.call_tool("whoami", {})
        results = [await client.call_tool("list_credentials", {}) for _ in range(3)]
        created = await client.call_tool("create_token", MAPS)
    assert me.structured_content is not None and me.structured_content["source"] == "client_credentials"
    assert all(not r.is_error for r in results) and not created.is_error
    assert admin.count("POST /oauth/token") == 1
    seen = json.dumps([r.model_dump(mode="json") for r in [me, *results]])
    assert secret not in seen


async def test_a_headless_m2m_server_lists_only_the_tokens_its_client_made(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """The Tokens API lists the caller's own tokens: the user's and the M2M client's lists do not mix."""
    robot, _ = await headless_m2m(sandbox, tmp_path)
    async with Client(server_for(sandbox, yes=True)) as user, Client(robot) as machine:
        mine = await user.call_tool("create_token", {**MAPS, "name": "user-made"})
        theirs = await machine.call_tool("create_token", {**MAPS, "name": "robot-made"})
        assert mine.structured_content is not None and theirs.structured_content is not None
        user_rows = (await user.call_tool("list_credentials", {"kind": "token"})).structured_content
        robot_rows = (await machine.call_tool("list_credentials", {"kind": "token"})).structured_content
        missing = await machine.call_tool("get_credential", {"kind": "token", "id": mine.structured_content["id"]})
    assert user_rows is not None and robot_rows is not None
    assert [r["name"] for r in user_rows["rows"]] == ["user-made"]
    assert [r["name"] for r in robot_rows["rows"]] == ["robot-made"]
    assert missing.is_error and mine.structured_content["id"] in text_of(missing)
    assert "only the tokens it created" in text_of(missing)


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_a_rename_costs_one_get_and_one_patch(sandbox: RunningSandbox, mode: str) -> None:
    """A harmless update is planned once: one GET of the credential as it is, one PATCH, nothing else."""
    admin = Admin(sandbox.url)
    async with Client(server_for(sandbox), mode=mode) as client:
        token = (await client.call_tool("create_token", MAPS)).structured_content
        spa = (await client.call_tool("create_spa", {"title": "web"})).structured_content
        assert token is not None and spa is not None
        admin.reset()
        renamed = await client.call_tool("update_credential", {"kind": "token", "id": token["id"], "name": "renamed"})
        assert not renamed.is_error, text_of(renamed)
        token_counts = httpx2.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()
        admin.reset()
        retitled = await client.call_tool("update_credential", {"kind": "spa", "id": spa["id"], "title": "web 2"})
        assert not retitled.is_error, text_of(retitled)
        client_counts = httpx2.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()
    assert token_counts == {"GET /v3/tokens/{token}": 1, "PATCH /v3/tokens/{token}": 1}
    assert client_counts == {"GET /v3/oauth-clients/{client_id}": 1, "PATCH /v3/oauth-clients/{client_id}": 1}
    assert renamed.structured_content is not None and renamed.structured_content["token"]["name"] == "renamed"
