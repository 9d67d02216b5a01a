"""Secrets appear in full exactly once — in their create result — and the bearer nowhere at all."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

from carto_mcp.sandbox.server import RunningSandbox

from .conftest import BEARER, connect, dump, error_text, grant, ok, settings_for

pytestmark = pytest.mark.anyio

CALL_TIMEOUT = 60


async def test_secrets_appear_only_in_their_create_results(
    sandbox: RunningSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    """With --debug and an audit log, a full round trip leaks no token, M2M secret or bearer into any other output."""
    caplog.set_level(logging.DEBUG)
    audit = tmp_path / "audit.jsonl"
    others: list[str] = []
    async with connect(settings_for(sandbox, debug=True, audit_log=audit)) as client:
        token_result = await client.call_tool(
            "create_token", {"grants": [grant()], "apis": ["sql", "maps"], "name": "leaky?"}
        )
        m2m_result = await client.call_tool("create_m2m", {"title": "svc"})
        token, m2m = ok(token_result), ok(m2m_result)
        value, secret = token["token"], m2m["client_secret"]
        assert value and secret
        spa = ok(await client.call_tool("create_spa", {"title": "web", "callbacks": ["https://a.example/cb"]}))
        calls: list[tuple[str, dict[str, Any]]] = [
            ("list_credentials", {}),
            ("list_credentials", {"kind": "token", "text": "leaky"}),
            ("get_credential", {"kind": "token", "id": token["id"]}),
            ("get_credential", {"kind": "token", "id": value}),
            ("get_credential", {"kind": "m2m", "id": m2m["id"]}),
            ("get_credential", {"kind": "spa", "id": spa["id"]}),
            ("update_credential", {"kind": "token", "id": value, "name": "renamed"}),
            ("update_credential", {"kind": "token", "id": token["id"], "apis": ["maps"]}),
            ("update_credential", {"kind": "m2m", "id": m2m["id"], "title": "svc 2"}),
            ("get_credential", {"kind": "token", "id": f"Bearer {value}"}),
            ("get_credential", {"kind": "spa", "id": m2m["id"]}),
            ("update_credential", {"kind": "token", "id": token["id"], "expiration_date": "7d"}),
            ("create_token", {"grants": [grant()], "apis": [value]}),
        ]
        for name, args in calls:
            others.append(dump(await client.call_tool(name, args)))
        for kind, ident in (("token", value), ("m2m", m2m["id"]), ("spa", spa["id"])):
            preview = await client.call_tool("revoke_credential", {"kind": kind, "id": ident})
            others.append(dump(preview))
            code = ok(preview)["confirmation_code"]
            done = await client.call_tool("revoke_credential", {"kind": kind, "id": ident, "confirm": code})
            assert ok(done)["status"] == "revoked"
            others.append(dump(done))
        others.append(dump(await client.call_tool("get_credential", {"kind": "token", "id": value})))
        others.append(dump(await client.call_tool("revoke_credential", {"kind": "m2m", "id": value})))
        others.append(dump(await client.call_tool("revoke_credential", {"kind": "token", "id": value})))
        others.append(dump(await client.call_tool("update_credential", {"kind": "token", "id": value, "name": "x"})))
    captured = capfd.readouterr()
    logs = caplog.text
    assert "-->" in logs or "POST" in logs, "debug logging of CARTO requests was not captured"

    assert value in dump(token_result) and secret in dump(m2m_result)
    assert value not in dump(m2m_result) and secret not in dump(token_result)
    streams = {
        "other results": "\n".join(others),
        "logs": logs,
        "stderr": captured.err,
        "stdout": captured.out,
        "audit": audit.read_text(encoding="utf-8"),
    }
    for where, text in streams.items():
        assert value not in text, f"token value in {where}"
        assert secret not in text, f"M2M secret in {where}"
    for where, text in {**streams, "create results": dump(token_result) + dump(m2m_result)}.items():
        assert BEARER not in text, f"bearer in {where}"


async def test_a_token_value_passed_as_id_is_never_echoed(sandbox: RunningSandbox) -> None:
    """Using the full value as an id works, and neither the result nor an error repeats it."""
    async with connect(settings_for(sandbox)) as client:
        value = ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"]}))["token"]
        got = await client.call_tool("get_credential", {"kind": "token", "id": value})
        wrong_kind = await client.call_tool("get_credential", {"kind": "spa", "id": value})
    assert value not in dump(got)
    assert value not in error_text(wrong_kind)


# --- carto-mcp call --------------------------------------------------------------------------


def run_call(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "carto_mcp", "call", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=CALL_TIMEOUT, env=env, stdin=subprocess.DEVNULL
    )


@pytest.mark.slow
def test_carto_mcp_call_prints_the_json_result_and_exits_0(tmp_path: Path) -> None:
    """`carto-mcp call create_token '{...}' --sandbox` prints the structured result as JSON on stdout."""
    db = str(tmp_path / "call.db")
    arguments = json.dumps({"grants": [grant("*")], "apis": ["sql", "maps"], "expiration_date": "7d"})
    done = run_call("create_token", arguments, "--sandbox", "--sandbox-db", db)
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert created["status"] == "created" and created["token"] and created["detail"]["grants"][0]["kind"] == "all"
    assert created["token"] not in done.stderr
    assert "SANDBOX" in done.stderr

    listed = run_call("list_credentials", '{"kind": "token"}', "--sandbox", "--sandbox-db", db)
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)["rows"]] == [created["id"]]
    assert created["token"] not in listed.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("tool", "arguments", "word"),
    [
        pytest.param("create_token", '{"apis": ["sql"]}', "grant", id="rule"),
        pytest.param("create_token", '{"apis": ["maps"], "expiry": "7d"}', "expiry", id="unknown-argument"),
        pytest.param("get_credential", '{"kind": "token", "id": "deadbeef"}', "deadbeef", id="unknown-id"),
        pytest.param("no_such_tool", "{}", "no_such_tool", id="unknown-tool"),
    ],
)
def test_carto_mcp_call_exits_1_with_an_error_object(tmp_path: Path, tool: str, arguments: str, word: str) -> None:
    """A failing tool call prints {"error": "..."} naming the problem and exits 1, with no traceback."""
    done = run_call(tool, arguments, "--sandbox", "--sandbox-db", str(tmp_path / "call.db"))
    assert done.returncode == 1, (done.stdout, done.stderr)
    payload = json.loads(done.stdout)
    assert set(payload) == {"error"} and word in payload["error"]
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.slow
def test_carto_mcp_call_with_debug_masks_the_bearer(sandbox: RunningSandbox) -> None:
    """`call --debug` against the loopback sandbox logs requests without the bearer or the new token."""
    arguments = json.dumps({"grants": [grant()], "apis": ["maps"]})
    done = run_call("create_token", arguments, "--token", BEARER, "--base-url", sandbox.url, "--debug")
    assert done.returncode == 0, done.stderr
    value = json.loads(done.stdout)["token"]
    assert sandbox.store.get_token(value) is not None
    assert "POST" in done.stderr
    assert BEARER not in done.stdout + done.stderr
    assert value not in done.stderr
    by_value = json.dumps({"kind": "token", "id": value})
    got = run_call("get_credential", by_value, "--token", BEARER, "--base-url", sandbox.url, "--debug")
    assert got.returncode == 0, got.stderr
    assert "/v3/tokens/" in got.stderr
    assert value not in got.stdout + got.stderr
    assert BEARER not in got.stdout + got.stderr


@pytest.mark.slow
async def test_serve_debug_over_stdio_logs_no_secret(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """`carto-mcp serve --debug` over stdio logs every CARTO request to stderr, without a token, secret or bearer."""
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "carto_mcp", "serve", "--token", BEARER, "--base-url", sandbox.url, "--debug", "--yes"],
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    errlog = tmp_path / "serve.err"
    with errlog.open("w", encoding="utf-8") as err, anyio.fail_after(CALL_TIMEOUT):
        async with Client(stdio_client(params, errlog=err), mode="legacy", read_timeout_seconds=CALL_TIMEOUT) as client:
            token = ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"]}))
            m2m = ok(await client.call_tool("create_m2m", {"title": "svc"}))
            ok(await client.call_tool("get_credential", {"kind": "token", "id": token["token"]}))
            ok(await client.call_tool("update_credential", {"kind": "token", "id": token["id"], "name": "x"}))
            ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["token"]}))
            ok(await client.call_tool("revoke_credential", {"kind": "m2m", "id": m2m["id"]}))
    log = errlog.read_text(encoding="utf-8")
    assert "DELETE" in log and "/v3/tokens/" in log
    for secret in (token["token"], m2m["client_secret"], BEARER):
        assert secret not in log
