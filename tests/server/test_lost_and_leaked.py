"""Nothing lost, nothing leaked: the regressions from the abuse run, through a real MCP client.

Each test names the item of the abuse report it guards. The server talks to a loopback
sandbox with its fault switches and request counter; nothing is mocked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from carto_mcp.config import Settings
from carto_mcp.masking import short_id
from carto_mcp.profiles import ProfileInputs
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox

from .conftest import BEARER, client_count, connect, dump, error_text, grant, ok, token_count

pytestmark = pytest.mark.anyio

MAPS = {"grants": [grant()], "apis": ["maps"]}
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJhIjoiYWNfbGVhayIsImp0aSI6ImxlYWtsZWFrIn0.c2VjcmV0LXNpZ25hdHVyZS1mb3ItdGVzdHM"
#: What an M2M secret looks like: 64 characters of [A-Za-z0-9_-].
M2M_LIKE = "Zq8Lr2Vw5Kc1Xn7Hb4Tm9Pd3Gs6Jf0Ya8Ue2Ro5Wi1Ql7Nz4Ck9Mv3Bx6Dh0Et2Sg"


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path / "faulty.db", faults=True) as sandbox:
        yield sandbox


def fault(sandbox: RunningSandbox, **spec: Any) -> None:
    httpx2.post(f"{sandbox.url}/_sandbox/faults", json=spec, timeout=5).raise_for_status()


def requests(sandbox: RunningSandbox) -> dict[str, int]:
    counts: dict[str, int] = httpx2.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()
    return counts


def settings(sandbox: RunningSandbox, tmp_path: Path, **extra: Any) -> Settings:
    return Settings(
        profile=ProfileInputs(token=BEARER, base_url=sandbox.url),
        credentials_path=tmp_path / "home" / ".carto_credentials.json",
        legacy_path=tmp_path / "home" / ".carto" / "config.json",
        **extra,
    )


# --- 1, 2: where a secret may be written ------------------------------------------------------------


async def test_a_secret_file_that_is_one_of_our_own_files_is_refused_before_anything_is_created(
    faulty: RunningSandbox, tmp_path: Path
) -> None:
    """(1) The login file, the legacy config and the audit log are never a secret_output_file, even behind a link."""
    home = tmp_path / "home"
    (home / ".carto").mkdir(parents=True)
    creds = home / ".carto_credentials.json"
    creds.write_text('{"current_profile": "p", "profiles": {}}', encoding="utf-8")
    legacy = home / ".carto" / "config.json"
    legacy.write_text("{}", encoding="utf-8")
    audit = tmp_path / "audit.jsonl"
    link = tmp_path / "innocent.env"
    link.symlink_to(creds)
    async with connect(settings(faulty, tmp_path, audit_log=audit)) as client:
        for target in (creds, legacy, audit, link):
            text = error_text(await client.call_tool("create_token", {**MAPS, "secret_output_file": str(target)}))
            assert "secret_output_file" in text and "carto-mcp itself uses" in text and "Nothing was created" in text
    assert token_count(faulty) == 0
    assert json.loads(creds.read_text(encoding="utf-8")) == {"current_profile": "p", "profiles": {}}


async def test_a_secret_file_that_is_not_a_regular_file_is_refused_before_anything_is_created(
    faulty: RunningSandbox, tmp_path: Path
) -> None:
    """(1, 2) A directory, a FIFO (which would block the server), a device, or a file in a missing directory."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    targets = [tmp_path, fifo, Path("/dev/zero"), tmp_path / "missing" / "x.env"]
    async with connect(settings(faulty, tmp_path)) as client:
        for target in targets:
            text = error_text(await client.call_tool("create_m2m", {"title": "svc", "secret_output_file": str(target)}))
            assert "secret_output_file" in text and "Nothing was created" in text
        answered = await client.call_tool("list_credentials", {"limit": 1})  # the server is still answering
    assert not answered.is_error
    assert client_count(faulty) == 0 and token_count(faulty) == 0


async def test_a_secret_file_that_breaks_after_the_create_returns_the_secret_instead(
    faulty: RunningSandbox, tmp_path: Path
) -> None:
    """(2) Checked before, broken during the create (it became a directory): the token is in the result, not lost."""
    target = tmp_path / "app.env"
    fault(faulty, mode="stall", stall_seconds=1.0, method="POST", path_prefix="/v3/tokens")
    async with connect(settings(faulty, tmp_path)) as client, anyio.create_task_group() as group:
        results: list[Any] = []

        async def create() -> None:
            results.append(await client.call_tool("create_token", {**MAPS, "secret_output_file": str(target)}))

        group.start_soon(create)
        await anyio.sleep(0.4)  # the POST is on its way: now the destination stops being a file
        target.mkdir()
    created = ok(results[0])
    assert created["token"] and "secret_file" not in created
    assert any("returned here instead" in w for w in created["warnings"])
    assert faulty.store.get_token(created["token"]) is not None


# --- 3, 4: a create whose follow-up fails ---------------------------------------------------------------


async def test_rotate_whose_revoke_fails_returns_the_new_token_and_says_the_old_one_works(
    faulty: RunningSandbox, tmp_path: Path
) -> None:
    """(3) --yes rotation, the DELETE of the old token answers 503 every time: the replacement is shown once."""
    async with connect(settings(faulty, tmp_path, yes=True)) as client:
        old = ok(await client.call_tool("create_token", {**MAPS, "name": "old"}))
        fault(faulty, mode="status", status=503, times=10, method="DELETE", path_prefix="/v3/tokens")
        rotated = ok(await client.call_tool("rotate_token", {"id": old["id"]}))
    assert rotated["status"] == "replacement_created" and rotated["old_revoked"] is False
    new = rotated["new"]["token"]
    assert new and faulty.store.get_token(new) is not None and faulty.store.get_token(old["token"]) is not None
    assert "still works" in rotated["message"] and f"id='{old['id']}'" in rotated["message"]
    assert "revoke_credential" in rotated["message"]


async def test_an_m2m_create_whose_answer_is_lost_names_the_client_and_says_its_secret_is_gone(
    faulty: RunningSandbox, tmp_path: Path
) -> None:
    """(4) A 502 after CARTO made the client: the error says it exists, by id, and how to replace it."""
    fault(faulty, mode="status", status=502, after=True, method="POST", path_prefix="/v3/oauth-clients")
    async with connect(settings(faulty, tmp_path)) as client:
        text = error_text(await client.call_tool("create_m2m", {"title": "lost-secret"}))
    (made,) = faulty.store.list_clients(app_type="m2m")[0]
    assert made["client_id"] in text and "was created" in text and "secret" in text and "revoke_credential" in text
    assert requests(faulty)["POST /v3/oauth-clients"] == 1


async def test_a_lost_create_with_two_lookalikes_names_both_and_creates_nothing_more(
    faulty: RunningSandbox, tmp_path: Path
) -> None:
    """(4) When two tokens match what the lost request would have made, neither is guessed: both ids are named."""
    async with connect(settings(faulty, tmp_path)) as client:
        first = ok(await client.call_tool("create_token", {**MAPS, "name": "twin"}))
        fault(faulty, mode="status", status=504, after=True, method="POST", path_prefix="/v3/tokens")
        text = error_text(await client.call_tool("create_token", {**MAPS, "name": "twin"}))
    assert token_count(faulty) == 2 and first["id"] in text and "revoke" in text
    assert first["token"] not in text


# --- 5: the audit log ----------------------------------------------------------------------------------------


async def test_an_audit_log_that_breaks_mid_run_never_replaces_a_result(faulty: RunningSandbox, tmp_path: Path) -> None:
    """(5) The log became a directory after start-up: creates and revokes still return their results."""
    audit = tmp_path / "audit.jsonl"
    async with connect(settings(faulty, tmp_path, audit_log=audit, yes=True)) as client:
        ok(await client.call_tool("create_spa", {"title": "before"}))
        audit.unlink()
        audit.mkdir()
        token = ok(await client.call_tool("create_token", MAPS))
        revoked = ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"]}))
    assert token["token"] and revoked["status"] == "revoked"
    assert token_count(faulty) == 0


def test_an_audit_log_that_cannot_be_written_stops_start_up(tmp_path: Path) -> None:
    """(5) A directory, a FIFO or a read-only file as --audit-log: the server refuses to start, naming it."""
    from carto_mcp.errors import InputError
    from carto_mcp.server.app import build_server

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    readonly = tmp_path / "ro.jsonl"
    readonly.write_text("", encoding="utf-8")
    readonly.chmod(0o400)
    bad = [tmp_path, fifo] + ([readonly] if os.geteuid() != 0 else [])
    for path in bad:
        with pytest.raises(InputError, match="--audit-log") as caught:
            build_server(Settings(sandbox=True, audit_log=path))
        assert str(path) in str(caught.value)


async def test_a_cancelled_create_is_audited_as_cancelled_with_the_id_it_made(
    faulty: RunningSandbox, tmp_path: Path
) -> None:
    """(5) The caller gives up while the old token's DELETE stalls: the line says cancelled and names the new token."""
    audit = tmp_path / "audit.jsonl"
    async with connect(settings(faulty, tmp_path, audit_log=audit, yes=True)) as client:
        old = ok(await client.call_tool("create_token", MAPS))
        fault(faulty, mode="stall", stall_seconds=5.0, method="DELETE", path_prefix="/v3/tokens")
        with anyio.move_on_after(1.5):
            await client.call_tool("rotate_token", {"id": old["id"]})
        await anyio.sleep(0.5)
    lines = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    rotate = [line for line in lines if line["tool"] == "rotate_token"]
    assert len(rotate) == 1 and rotate[0]["outcome"] == "cancelled"
    new = [t["token"] for t in faulty.store.list_tokens()[0] if t["token"] != old["token"]]
    assert len(new) == 1 and rotate[0]["id"] == short_id(new[0])


# --- 8: errors that echo a secret -------------------------------------------------------------------------------


async def test_errors_that_echo_a_value_mask_what_looks_like_a_secret(faulty: RunningSandbox, tmp_path: Path) -> None:
    """(8) A JWT as a pattern, a secret_variable or a referer; an M2M secret as a client id or token id."""
    calls = [
        ("create_token", {"grants": [grant(JWT + "**")], "apis": ["maps"]}),
        ("create_token", {**MAPS, "secret_variable": JWT}),
        ("create_token", {**MAPS, "referers": [JWT]}),
        ("get_credential", {"kind": "m2m", "id": M2M_LIKE}),
        ("get_credential", {"kind": "token", "id": M2M_LIKE}),
        ("revoke_credential", {"kind": "spa", "id": M2M_LIKE}),
    ]
    audit = tmp_path / "audit.jsonl"
    async with connect(settings(faulty, tmp_path, audit_log=audit)) as client:
        for name, args in calls:
            result = await client.call_tool(name, args)
            text = error_text(result)
            assert JWT not in dump(result) and M2M_LIKE not in dump(result), (name, text)
            assert JWT[:12] not in text and M2M_LIKE[8:40] not in text
            assert "…" in text  # shown masked, so a person still sees which value was meant
    assert JWT not in audit.read_text(encoding="utf-8") and M2M_LIKE not in audit.read_text(encoding="utf-8")


# --- 10, 14: odd input to the sandbox and odd tokens --------------------------------------------------------------


def test_a_sandbox_body_nested_too_deeply_is_a_400_not_a_crash(faulty: RunningSandbox) -> None:
    """(10) 100,000 nested arrays in a create body: the sandbox answers the documented 400 error shape."""
    body = '{"grants": ' + "[" * 100_000 + "]" * 100_000 + "}"
    response = httpx2.post(
        f"{faulty.url}/v3/tokens",
        content=body,
        headers={"Authorization": f"Bearer {BEARER}", "Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert response.json()["error"] and "JSON" in response.json()["description"]


async def test_a_one_character_token_leaves_error_text_readable(faulty: RunningSandbox, tmp_path: Path) -> None:
    """(14) Masking replaces the token where it stands whole, never every `s` in a message."""
    httpx2.post(f"{faulty.url}/_sandbox/reject-bearer", json={"bearer": "s"}, timeout=5).raise_for_status()
    one_char = Settings(profile=ProfileInputs(token="s", base_url=faulty.url))
    async with connect(one_char) as client:
        text = error_text(await client.call_tool("list_credentials", {}))
    assert f"{faulty.url}/v3/tokens" in text and "rejected the login" in text and "profile" in text
    assert "*" not in text.replace("**", "")
