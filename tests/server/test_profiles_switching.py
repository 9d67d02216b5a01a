"""Multiple organizations: tools take `profile` only for the names the server allows (--profiles)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client

from carto_mcp.config import Settings
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.app import build_server

PROFILES = {
    "current_profile": "production",
    "profiles": {
        "production": {
            "token": "prod-login-token-0001",
            "tenant_id": "gcp-us-east1",
            "organization_id": "ac_prod0001",
            "organization_name": "carto-prod",
            "user_email": "dev@example.com",
        },
        "staging": {
            "token": "staging-login-token-0002",
            "tenant_id": "gcp-us-east1",
            "organization_id": "ac_stag0002",
            "organization_name": "carto-staging",
            "user_email": "dev@example.com",
        },
        "personal": {"token": "personal-login-token-0003", "tenant_id": "gcp-us-east1"},
    },
}


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path / "sb.db") as sb:
        yield sb


def server_for(tmp_path: Path, sandbox: RunningSandbox, **settings: Any) -> Any:
    creds = tmp_path / "creds.json"
    creds.write_text(json.dumps(PROFILES), encoding="utf-8")
    creds.chmod(0o600)
    return build_server(
        Settings(credentials_path=creds, legacy_path=tmp_path / "none.json", **settings),
        environ={"CARTO_MCP_BASE_URL": sandbox.url},
    )


@pytest.mark.anyio
async def test_an_allowed_profile_is_used_and_audited(tmp_path: Path, sandbox: RunningSandbox) -> None:
    """whoami/create/list with profile='staging' act as staging, and the audit line names it."""
    audit = tmp_path / "audit.jsonl"
    async with Client(server_for(tmp_path, sandbox, profiles=("staging",), audit_log=audit)) as client:
        listed = (await client.call_tool("list_profiles", {})).structured_content
        me = (await client.call_tool("whoami", {"profile": "staging"})).structured_content
        default = (await client.call_tool("whoami", {})).structured_content
        made = await client.call_tool("create_token", {"apis": ["lds"], "name": "staging-token", "profile": "staging"})
    assert listed == {
        "profiles": [
            {"name": "production", "active": True, "organization_name": "carto-prod", "tenant_id": "gcp-us-east1"},
            {"name": "staging", "active": False, "organization_name": "carto-staging", "tenant_id": "gcp-us-east1"},
        ],
        "switching_enabled": True,
    }
    assert me is not None and me["organization_name"] == "carto-staging" and me["profile"] == "staging"
    assert default is not None and default["organization_name"] == "carto-prod"
    assert not made.is_error
    line = json.loads(audit.read_text(encoding="utf-8").splitlines()[-1])
    assert line["profile"] == "staging" and line["tool"] == "create_token"


@pytest.mark.anyio
async def test_a_profile_not_allowed_is_refused(tmp_path: Path, sandbox: RunningSandbox) -> None:
    """Without --profiles (or for a name outside it) the profile argument is refused, naming what is allowed."""
    async with Client(server_for(tmp_path, sandbox, profiles=("staging",))) as client:
        refused = await client.call_tool("list_credentials", {"profile": "personal"})
        unknown = await client.call_tool("whoami", {"profile": "nope"})
    assert refused.is_error and "profile" in refused.content[0].text
    assert "allowed: production, staging" in refused.content[0].text
    assert unknown.is_error
    async with Client(server_for(tmp_path, sandbox)) as client:
        alone = await client.call_tool("create_token", {"apis": ["lds"], "profile": "staging"})
        listed = (await client.call_tool("list_profiles", {})).structured_content
    assert alone.is_error and "--profiles" in alone.content[0].text
    assert listed is not None and listed["switching_enabled"] is False
    assert [p["name"] for p in listed["profiles"]] == ["production"]


@pytest.mark.anyio
async def test_a_confirmation_code_is_bound_to_its_profile(tmp_path: Path, sandbox: RunningSandbox) -> None:
    """A revoke code issued for one profile does not confirm the same revoke under another profile."""
    async with Client(server_for(tmp_path, sandbox, profiles=("staging",))) as client:
        made = (await client.call_tool("create_token", {"apis": ["lds"]})).structured_content
        assert made is not None
        preview = (await client.call_tool("revoke_credential", {"kind": "token", "id": made["id"]})).structured_content
        assert preview is not None
        code = preview["confirmation_code"]
        other = await client.call_tool(
            "revoke_credential", {"kind": "token", "id": made["id"], "confirm": code, "profile": "staging"}
        )
        same = await client.call_tool("revoke_credential", {"kind": "token", "id": made["id"], "confirm": code})
    assert other.is_error and "not issued" in other.content[0].text
    assert not same.is_error and same.structured_content is not None
    assert same.structured_content["status"] == "revoked"
