"""Where the real CARTO CLI behaves differently from the first contract: token objects with ids, M2M names.

Both are facts from CARTO's agent skills (../shared/carto-api.md, "What the real CLI does"):
a token object may carry an `id` of its own (`tok_…`), and headless M2M sign-in reads
CARTO_M2M_CLIENT_ID / CARTO_M2M_CLIENT_SECRET.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from carto_mcp.config import Settings
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.app import build_server

from .conftest import connect, error_text, grant, ok, settings_for

pytestmark = pytest.mark.anyio


@pytest.fixture
def with_ids(tmp_path: Path) -> Iterator[RunningSandbox]:
    """A sandbox whose token objects carry an id of their own, as the CLI prints them."""
    with running_sandbox(tmp_path / "ids.sqlite3", token_ids=True) as running:
        yield running


async def test_a_token_with_its_own_id_is_fetched_updated_and_revoked_by_that_id(with_ids: RunningSandbox) -> None:
    """The tok_ id is the id shown; get, update and revoke take it; the jti keeps working."""
    async with connect(settings_for(with_ids, yes=True)) as client:
        created = ok(await client.call_tool("create_token", {"name": "with-id", "apis": ["maps"], "grants": [grant()]}))
        ident = created["id"]
        assert ident.startswith("tok_")

        got = ok(await client.call_tool("get_credential", {"kind": "token", "id": ident}))
        assert got["token"]["id"] == ident
        jti = got["token"]["jti"]
        assert ident == f"tok_{jti}"
        by_jti = ok(await client.call_tool("get_credential", {"kind": "token", "id": jti}))
        assert by_jti["token"]["id"] == ident

        listed = ok(await client.call_tool("list_credentials", {"kind": "token", "text": ident}))
        assert [row["id"] for row in listed["rows"]] == [ident]

        updated = ok(await client.call_tool("update_credential", {"kind": "token", "id": ident, "name": "renamed"}))
        assert updated["id"] == ident
        assert with_ids.store.list_tokens()[0][0]["name"] == "renamed"

        ok(await client.call_tool("revoke_credential", {"kind": "token", "id": ident}))
        gone = error_text(await client.call_tool("get_credential", {"kind": "token", "id": ident}))

    assert f"No token with id '{ident}'" in gone
    assert with_ids.store.list_tokens()[1] == 0


async def made_m2m(sandbox: RunningSandbox) -> tuple[str, str]:
    """A new M2M client, made by the user's own server: its id and its show-once secret."""
    async with connect(settings_for(sandbox, yes=True)) as client:
        made = ok(await client.call_tool("create_m2m", {"title": "automation"}))
    return made["id"], made["client_secret"]


async def signed_in(sandbox: RunningSandbox, tmp_path: Path, environ: dict[str, str]) -> tuple[Any, Any]:
    """whoami, and a list that needs the exchange to work, from a server signing in with `environ`."""
    settings = Settings(
        auth_url=f"{sandbox.url}/oauth/token", credentials_path=tmp_path / "none.json", legacy_path=tmp_path / "x.json"
    )
    server = build_server(settings, environ={"CARTO_MCP_BASE_URL": sandbox.url, **environ})
    async with Client(server) as client:
        return await client.call_tool("whoami", {}), await client.call_tool("list_credentials", {"kind": "token"})


@pytest.mark.parametrize(
    "names",
    [("CARTO_M2M_CLIENT_ID", "CARTO_M2M_CLIENT_SECRET"), ("CARTO_CLIENT_ID", "CARTO_CLIENT_SECRET")],
    ids=["the CLI's names", "the older names"],
)
async def test_either_pair_of_m2m_variables_signs_in(
    sandbox: RunningSandbox, tmp_path: Path, names: tuple[str, str]
) -> None:
    client_id, secret = await made_m2m(sandbox)
    me, listed = await signed_in(sandbox, tmp_path, {names[0]: client_id, names[1]: secret})
    assert ok(me)["source"] == "client_credentials"
    assert names[0] in ok(me)["reason"]
    assert ok(listed)["rows"] == []


async def test_the_clis_m2m_variables_win_when_both_pairs_are_set(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """The CLI's pair is used (and works) even when the older pair holds another client's values."""
    client_id, secret = await made_m2m(sandbox)
    other_id, other_secret = await made_m2m(sandbox)
    both = {
        "CARTO_M2M_CLIENT_ID": client_id,
        "CARTO_M2M_CLIENT_SECRET": secret,
        "CARTO_CLIENT_ID": other_id,
        "CARTO_CLIENT_SECRET": other_secret + "-wrong",
    }
    me, listed = await signed_in(sandbox, tmp_path, both)
    assert "CARTO_M2M_CLIENT_ID" in ok(me)["reason"]
    assert ok(listed)["rows"] == []

    swapped = {**both, "CARTO_M2M_CLIENT_SECRET": secret + "-wrong", "CARTO_CLIENT_SECRET": other_secret}
    _, refused = await signed_in(sandbox, tmp_path, swapped)
    assert f"for client '{client_id}' failed" in error_text(refused)  # the CLI pair's client
