"""Safety policy: which tools exist, the audit trail, and secrets written to files instead of the chat."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from carto_mcp.api import CartoError
from carto_mcp.config import Settings
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.app import build_server
from carto_mcp.server.tools import TOOLS

from .conftest import BEARER, client_count, connect, error_text, grant, ok, server_for, settings_for, token_count

ALL_TOOLS = [spec.name for spec in TOOLS]
READ_TOOLS = [spec.name for spec in TOOLS if spec.read_only]

pytestmark = pytest.mark.anyio

WRITES = ("create_token", "create_spa", "create_m2m", "update_credential", "revoke_credential")


async def tool_names(settings: Any) -> set[str]:
    async with connect(settings) as client:
        return {t.name for t in (await client.list_tools()).tools}


# --- which tools exist -----------------------------------------------------------------------


async def test_read_only_registers_only_the_read_tools(sandbox: RunningSandbox) -> None:
    """read_only leaves list_credentials and get_credential (and other reads), and no tool that writes."""
    names = await tool_names(settings_for(sandbox, read_only=True))
    assert names == set(READ_TOOLS)
    assert {"list_credentials", "get_credential"} <= names
    assert not names & set(WRITES)


async def test_read_only_refuses_a_write_as_an_unknown_tool(sandbox: RunningSandbox) -> None:
    """Calling create_token on a read-only server is an unknown-tool error and creates nothing."""
    async with connect(settings_for(sandbox, read_only=True)) as client:
        text = error_text(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"]}))
        listed = ok(await client.call_tool("list_credentials", {}))
    assert "create_token" in text and "unknown" in text.lower()
    assert listed["rows"] == []
    assert token_count(sandbox) == 0


async def test_tools_globs_choose_the_registered_tools(sandbox: RunningSandbox) -> None:
    """tools=('list_*', 'get_*') registers exactly the tools those globs match."""
    names = await tool_names(settings_for(sandbox, tools=("list_*", "get_*")))
    assert names == {n for n in ALL_TOOLS if n.startswith(("list_", "get_"))}
    assert {"list_credentials", "get_credential"} <= names


async def test_exclude_tools_globs_leave_tools_out(sandbox: RunningSandbox) -> None:
    """exclude_tools=('revoke_*',) registers everything except revoke_credential."""
    names = await tool_names(settings_for(sandbox, exclude_tools=("revoke_*",)))
    assert names == set(ALL_TOOLS) - {"revoke_credential"}


async def test_tools_and_exclude_tools_combine(sandbox: RunningSandbox) -> None:
    """An exact allow list minus a deny glob; read_only then drops the writes that remain."""
    chosen = ("list_credentials", "create_token", "create_spa")
    assert await tool_names(settings_for(sandbox, tools=chosen, exclude_tools=("*_spa",))) == {
        "list_credentials",
        "create_token",
    }
    assert await tool_names(settings_for(sandbox, tools=chosen, read_only=True)) == {"list_credentials"}


@pytest.mark.parametrize(
    "policy",
    [
        pytest.param({"tools": ("list_credential",)}, id="misspelt-name"),
        pytest.param({"tools": ("delete_*",)}, id="glob-matching-nothing"),
        pytest.param({"exclude_tools": ("revoke",)}, id="unknown-exclude"),
    ],
)
def test_an_unknown_tool_name_or_glob_fails_at_build_time(sandbox: RunningSandbox, policy: dict[str, Any]) -> None:
    """A policy naming no real tool is refused when the server is built, listing the valid tools."""
    with pytest.raises(CartoError) as raised:
        server_for(settings_for(sandbox, **policy))
    message = str(raised.value)
    assert "matches no tool" in message
    for name in ALL_TOOLS:
        assert name in message


# --- audit log -------------------------------------------------------------------------------


def read_audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


async def test_the_audit_log_has_one_line_per_mutating_call_and_no_secret(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Each create/update/revoke (and each failed one) appends one JSON line; reads and dry runs do not."""
    audit = tmp_path / "audit.jsonl"
    async with connect(settings_for(sandbox, audit_log=audit)) as client:
        token = ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["sql", "maps"]}))
        ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"], "dry_run": True}))
        ok(await client.call_tool("list_credentials", {}))
        ok(await client.call_tool("get_credential", {"kind": "token", "id": token["id"]}))
        spa = ok(await client.call_tool("create_spa", {"title": "web"}))
        m2m = ok(await client.call_tool("create_m2m", {"title": "svc"}))
        ok(await client.call_tool("update_credential", {"kind": "spa", "id": spa["id"], "title": "web 2"}))
        code = ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"]}))[
            "confirmation_code"
        ]
        ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"], "confirm": code}))
        error_text(await client.call_tool("create_token", {"grants": [grant()], "apis": ["imports", "sql"]}))
        error_text(await client.call_tool("revoke_credential", {"kind": "m2m", "id": "NoSuchClient"}))
    lines = read_audit(audit)
    assert [(e["tool"], e["kind"], e["outcome"]) for e in lines] == [
        ("create_token", "token", "ok"),
        ("create_spa", "spa", "ok"),
        ("create_m2m", "m2m", "ok"),
        ("update_credential", "spa", "updated"),
        ("revoke_credential", "token", "confirmation_required"),
        ("revoke_credential", "token", "revoked"),
        ("create_token", "token", "error"),
        ("revoke_credential", "m2m", "error"),
    ]
    for entry in lines:
        assert set(entry) - {"delivery"} == {
            "time",
            "profile",
            "tool",
            "kind",
            "id",
            "outcome",
            "error",
            "prev",
            "hash",
        }
        assert entry["time"].endswith("Z")
        assert entry["profile"]
    # How each new secret went (this client cannot open URLs and no dir is set): inline, never the value.
    assert [e.get("delivery") for e in lines] == ["inline", None, "inline", None, None, None, None, None]
    assert [e["id"] for e in lines[:6]] == [token["id"], spa["id"], m2m["id"], spa["id"], token["id"], token["id"]]
    assert [e["error"] for e in lines] == [None] * 6 + [lines[6]["error"], lines[7]["error"]]
    assert lines[6]["error"] and lines[7]["error"] == "NotFound"
    raw = audit.read_text(encoding="utf-8")
    for secret in (token["token"], m2m["client_secret"], BEARER, code):
        assert secret not in raw
    assert stat.S_IMODE(os.stat(audit).st_mode) == 0o600


async def test_the_audit_log_records_declined_confirmations(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A revoke the user declines is still audited, with its outcome."""
    import mcp_types

    async def decline(context: Any, params: Any) -> mcp_types.ElicitResult:
        return mcp_types.ElicitResult(action="decline")

    audit = tmp_path / "audit.jsonl"
    async with connect(settings_for(sandbox, audit_log=audit), elicitation_callback=decline) as client:
        m2m = ok(await client.call_tool("create_m2m", {"title": "svc"}))
        ok(await client.call_tool("revoke_credential", {"kind": "m2m", "id": m2m["id"]}))
    assert [(e["tool"], e["outcome"]) for e in read_audit(audit)] == [
        ("create_m2m", "ok"),
        ("revoke_credential", "declined"),
    ]


@pytest.mark.parametrize("elicits", [False, True], ids=["two-step-client", "eliciting-client"])
async def test_failed_updates_and_revokes_are_audited(sandbox: RunningSandbox, tmp_path: Path, elicits: bool) -> None:
    """An update or revoke that fails before any confirmation still leaves its error line in the audit log."""
    import mcp_types

    async def accept(context: Any, params: Any) -> mcp_types.ElicitResult:
        return mcp_types.ElicitResult(action="accept", content={"confirm": True})

    audit = tmp_path / "audit.jsonl"
    options: dict[str, Any] = {"elicitation_callback": accept} if elicits else {}
    async with connect(settings_for(sandbox, audit_log=audit), **options) as client:
        error_text(await client.call_tool("revoke_credential", {"kind": "m2m", "id": "NoSuchClient"}))
        error_text(await client.call_tool("update_credential", {"kind": "spa", "id": "NoSuchClient", "title": "x"}))
        error_text(await client.call_tool("update_credential", {"kind": "token", "id": "deadbeef", "name": "x"}))
    lines = read_audit(audit)
    assert [(e["tool"], e["kind"], e["id"], e["outcome"], e["error"]) for e in lines] == [
        ("revoke_credential", "m2m", "NoSuchClient", "error", "NotFound"),
        ("update_credential", "spa", "NoSuchClient", "error", "NotFound"),
        ("update_credential", "token", "deadbeef", "error", "NotFound"),
    ]


# --- secrets to a file -----------------------------------------------------------------------


def env_lines(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)


async def test_create_token_writes_the_secret_to_a_0600_file(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """With secret_output_file the value goes to a NAME=value line in a mode-0600 file, not the result."""
    target = tmp_path / "app" / ".env"
    target.parent.mkdir()
    target.write_text("# keep me\nOTHER=1\n", encoding="utf-8")
    async with connect(settings_for(sandbox)) as client:
        result = await client.call_tool(
            "create_token",
            {"grants": [grant()], "apis": ["maps"], "secret_output_file": str(target)},
        )
    created = ok(result)
    values = env_lines(target)
    value = values["CARTO_API_ACCESS_TOKEN"]
    assert sandbox.store.get_token(value) is not None
    assert values["OTHER"] == "1" and "# keep me" in target.read_text(encoding="utf-8")
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert "token" not in created
    assert created["secret_file"] == str(target)
    assert created["secret_variables"] == ["CARTO_API_ACCESS_TOKEN"]
    assert value not in json.dumps(result.model_dump(mode="json"))


async def test_create_m2m_writes_id_and_secret_to_a_0600_file(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """An M2M client's id and one-time secret go to CARTO_M2M_CLIENT_ID / CARTO_M2M_CLIENT_SECRET lines."""
    target = tmp_path / "m2m.env"
    async with connect(settings_for(sandbox)) as client:
        result = await client.call_tool("create_m2m", {"title": "svc", "secret_output_file": str(target)})
    created = ok(result)
    values = env_lines(target)
    assert values["CARTO_M2M_CLIENT_ID"] == created["id"]
    assert sandbox.store.check_client_secret(created["id"], values["CARTO_M2M_CLIENT_SECRET"])
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o600
    assert "client_secret" not in created
    assert created["secret_variables"] == ["CARTO_M2M_CLIENT_ID", "CARTO_M2M_CLIENT_SECRET"]
    assert values["CARTO_M2M_CLIENT_SECRET"] not in json.dumps(result.model_dump(mode="json"))


async def test_a_second_write_of_the_same_variable_is_refused_unless_overwrite(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A file that already defines the variable is refused before anything is created; overwrite_secret replaces it."""
    target = tmp_path / "secrets.env"
    args = {"grants": [grant()], "apis": ["maps"], "secret_output_file": str(target)}
    async with connect(settings_for(sandbox)) as client:
        ok(await client.call_tool("create_token", args))
        first = env_lines(target)["CARTO_API_ACCESS_TOKEN"]
        text = error_text(await client.call_tool("create_token", args))
        assert "secret_output_file" in text and "overwrite_secret" in text
        assert token_count(sandbox) == 1
        assert env_lines(target)["CARTO_API_ACCESS_TOKEN"] == first
        ok(await client.call_tool("create_token", {**args, "secret_variable": "SECOND_TOKEN"}))
        ok(await client.call_tool("create_token", {**args, "overwrite_secret": True}))
    values = env_lines(target)
    assert token_count(sandbox) == 3
    assert values["CARTO_API_ACCESS_TOKEN"] != first
    assert sandbox.store.get_token(values["CARTO_API_ACCESS_TOKEN"]) is not None
    assert sandbox.store.get_token(values["SECOND_TOKEN"]) is not None
    assert list(values) == ["SECOND_TOKEN", "CARTO_API_ACCESS_TOKEN"]


async def test_an_m2m_secret_file_clash_creates_no_client(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A refused M2M secret file is checked before the create, so no client is made whose secret is lost."""
    target = tmp_path / "m2m.env"
    target.write_text("CARTO_M2M_CLIENT_SECRET=old\n", encoding="utf-8")
    async with connect(settings_for(sandbox)) as client:
        text = error_text(await client.call_tool("create_m2m", {"title": "svc", "secret_output_file": str(target)}))
    assert "CARTO_M2M_CLIENT_SECRET" in text
    assert client_count(sandbox) == 0
    assert target.read_text(encoding="utf-8") == "CARTO_M2M_CLIENT_SECRET=old\n"


def test_a_policy_that_leaves_no_tool_is_refused_at_build_time() -> None:
    """--read-only with --tools naming only write tools would serve nothing: that is an error, not a silent no-op."""
    with pytest.raises(CartoError) as info:
        build_server(Settings(read_only=True, tools=("create_*",)))
    assert "leave no tool" in str(info.value) and "list_credentials" in str(info.value)
