"""The agent-native extras end to end: rotate_token, whoami, prompts and the token-rules resource."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp_types import ElicitResult

from carto_mcp.config import Settings
from carto_mcp.server.app import build_server

pytestmark = pytest.mark.anyio

TOKEN_ARGS = {
    "grants": [
        {"connection": "carto_dw", "source": "carto.shared.demo_table"},
        {"connection": "carto_dw", "source": "SELECT * FROM t WHERE id = @id"},
    ],
    "apis": ["sql", "maps"],
    "referers": ["https://myapp.com/"],
    "name": "app-token",
    "expiration_date": "30d",
}


def answering(action: str, confirm: bool = True) -> Any:
    """An elicitation callback that gives one fixed answer and records the questions it saw."""
    asked: list[str] = []

    async def callback(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action=action, content={"confirm": confirm} if action == "accept" else None)

    callback.asked = asked  # type: ignore[attr-defined]
    return callback


def data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content[0].text
    assert result.structured_content is not None
    return dict(result.structured_content)


def settings(tmp_path: Path, **extra: Any) -> Settings:
    return Settings(sandbox=True, sandbox_db=tmp_path / "extras.db", **extra)


async def token_ids(client: Client) -> set[str]:
    rows = data(await client.call_tool("list_credentials", {"kind": "token"}))["rows"]
    return {r["id"] for r in rows}


async def test_rotate_accepted_replaces_the_token_with_the_same_scope(tmp_path: Path) -> None:
    """Accepting: a new token with the same grants, APIs and referers and a fresh 30-day life; the old one is gone."""
    callback = answering("accept")
    async with Client(build_server(settings(tmp_path)), elicitation_callback=callback) as client:
        old = data(await client.call_tool("create_token", TOKEN_ARGS))
        rotated = data(await client.call_tool("rotate_token", {"id": old["id"]}))
        remaining = await token_ids(client)
    new = rotated["new"]
    assert rotated["status"] == "rotated" and rotated["old_revoked"] is True
    assert remaining == {new["id"]}
    assert new["token"] and new["token"] != old["token"]
    detail, before = new["detail"], old["detail"]
    assert detail["apis"] == before["apis"] and detail["referers"] == before["referers"]
    assert [(g["connection"], g["source"]) for g in detail["grants"]] == [
        (g["connection"], g["source"]) for g in before["grants"]
    ]
    assert detail["name"] == "app-token-rotated"
    expires = datetime.strptime(detail["expiration_date"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert 29 <= (expires - datetime.now(timezone.utc)).days <= 30
    assert "Rotate token" in callback.asked[0]


async def test_rotate_declined_creates_the_replacement_and_keeps_the_old_token(tmp_path: Path) -> None:
    """Declining the revoke still returns the new token once, and the old token keeps working."""
    async with Client(build_server(settings(tmp_path)), elicitation_callback=answering("decline")) as client:
        old = data(await client.call_tool("create_token", TOKEN_ARGS))
        rotated = data(await client.call_tool("rotate_token", {"id": old["id"], "name": "v2"}))
        remaining = await token_ids(client)
    assert rotated["status"] == "replacement_created" and rotated["old_revoked"] is False
    assert remaining == {old["id"], rotated["new"]["id"]}
    assert rotated["new"]["detail"]["name"] == "v2"


async def test_rotate_cancelled_changes_nothing(tmp_path: Path) -> None:
    """Cancelling the question creates nothing and revokes nothing, and is not an error."""
    async with Client(build_server(settings(tmp_path)), elicitation_callback=answering("cancel")) as client:
        old = data(await client.call_tool("create_token", TOKEN_ARGS))
        rotated = data(await client.call_tool("rotate_token", {"id": old["id"]}))
        remaining = await token_ids(client)
    assert rotated["status"] == "cancelled" and "new" not in rotated
    assert remaining == {old["id"]}


async def test_rotate_without_elicitation_hands_a_code_that_revokes_the_old_token(tmp_path: Path) -> None:
    """No elicitation: the replacement is created and a one-time code lets revoke_credential retire the old one."""
    async with Client(build_server(settings(tmp_path))) as client:
        old = data(await client.call_tool("create_token", TOKEN_ARGS))
        rotated = data(await client.call_tool("rotate_token", {"id": old["id"], "expiration_date": "7d"}))
        assert await token_ids(client) == {old["id"], rotated["new"]["id"]}
        code = rotated["confirmation_code"]
        revoked = data(await client.call_tool("revoke_credential", {"kind": "token", "id": old["id"], "confirm": code}))
        remaining = await token_ids(client)
    assert revoked["status"] == "revoked"
    assert remaining == {rotated["new"]["id"]}


async def test_rotate_with_keep_old_leaves_a_grace_period(tmp_path: Path) -> None:
    """keep_old: the old token stays even when the client could confirm, and no code is handed out."""
    callback = answering("accept")
    async with Client(build_server(settings(tmp_path)), elicitation_callback=callback) as client:
        old = data(await client.call_tool("create_token", TOKEN_ARGS))
        rotated = data(await client.call_tool("rotate_token", {"id": old["id"], "keep_old": True}))
        remaining = await token_ids(client)
    assert rotated["status"] == "replacement_created" and "confirmation_code" not in rotated
    assert remaining == {old["id"], rotated["new"]["id"]}
    assert callback.asked == []


async def test_rotate_with_yes_revokes_at_once(tmp_path: Path) -> None:
    """--yes (trusted automation): rotation creates and revokes in one call."""
    async with Client(build_server(settings(tmp_path, yes=True))) as client:
        old = data(await client.call_tool("create_token", TOKEN_ARGS))
        rotated = data(await client.call_tool("rotate_token", {"id": old["id"]}))
        remaining = await token_ids(client)
    assert rotated["status"] == "rotated" and remaining == {rotated["new"]["id"]}


async def test_whoami_names_the_profile_and_never_a_token(tmp_path: Path) -> None:
    """whoami says who the server acts as; its result holds no token value or mask."""
    async with Client(build_server(settings(tmp_path))) as client:
        me = await client.call_tool("whoami", {})
    body = data(me)
    assert body["profile"] == "sandbox" and body["sandbox"] is True
    assert "token" not in body and "eyJ" not in me.content[0].text


async def test_prompts_and_the_rules_resource_are_listed_and_readable(tmp_path: Path) -> None:
    """Two prompts for the common jobs and the token-rules resource, as an agent would read them."""
    async with Client(build_server(settings(tmp_path))) as client:
        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        resources = [str(r.uri) for r in (await client.list_resources()).resources]
        rules = await client.read_resource("carto://rules/tokens")
        public_map = await client.get_prompt(
            "least_privilege_map_token", {"source": "carto.shared.airports", "site": "https://myapp.com"}
        )
        rotate = await client.get_prompt("rotate_expiring_tokens", {"within": "2w"})
    assert set(prompts) == {"least_privilege_map_token", "rotate_expiring_tokens"}
    assert {a.name for a in prompts["least_privilege_map_token"].arguments or []} >= {"source", "site"}
    assert resources == ["carto://rules/tokens", "carto://policy"]
    text = rules.contents[0].text  # type: ignore[union-attr]
    for rule in ("cannot be combined", "must contain a dot", "list both forms", "cannot be changed"):
        assert rule in text
    map_text = public_map.messages[0].content.text  # type: ignore[union-attr]
    assert 'apis=["maps"]' in map_text and "dry_run" in map_text
    assert '["https://myapp.com", "https://myapp.com/"]' in map_text
    assert 'expiring_within="2w"' in rotate.messages[0].content.text  # type: ignore[union-attr]
