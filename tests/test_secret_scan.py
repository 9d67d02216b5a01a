"""Nothing leaked: every tool over stdio, streamable HTTP and SSE, then every output scanned for every secret.

The real `carto-mcp serve --debug --audit-log FILE --yes` runs as a child process on the loopback
sandbox, and an SDK client of each transport calls every tool — creates inline and into secret
files, reads, updates, a rotation, revokes of every kind — plus calls that fail on purpose and
echo their input (a token value as a client id, an M2M secret as a token id, a token value as a
pattern, a secret_variable and a referer). Then each secret made during the run (every token
value, every M2M client secret) and the bearer the server sends to CARTO are looked for in the
server's stderr, in the audit log, and in every result and error text except the one create
result that delivers that very secret: raw, URL-encoded, form-encoded and base64 (standard and
URL-safe, padded or not, alone or inside a longer base64 blob). Zero hits.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus, urlencode

import anyio
import httpx2
import pytest
from _procs import free_port, stop
from mcp import Client
from mcp.client.sse import sse_client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import CallToolResult

from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.tools import TOOLS

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

#: The tools that write an audit line per call.
MUTATING = {spec.name for spec in TOOLS if not spec.read_only}

#: The bearer the server sends to the sandbox: distinctive, and with characters every encoding changes.
BEARER = "scan-bearer+Kq7/Zx=9&w%2F-0042"
CALL_TIMEOUT = 30.0
SESSION_TIMEOUT = 120.0
START_TIMEOUT = 30.0
TABLE = "carto.shared.demo_table"
OTHER_TABLE = "carto.shared.other_table"


def grant(source: str = TABLE) -> dict[str, str]:
    return {"connection": "carto_dw", "source": source}


# --- the encodings a secret could leak in ----------------------------------------------------


def encodings(secret: str) -> dict[str, str]:
    """Every form the scan looks for: raw, URL- and form-encoded, base64 of the UTF-8 bytes in four flavours,
    and the stretch of a longer base64 blob that only this secret's bytes decide (any of the three alignments)."""
    raw = secret.encode("utf-8")
    forms = {
        "raw": secret,
        "url-encoded": quote(secret, safe=""),
        "url-encoded (plus)": quote_plus(secret),
        "form-encoded": urlencode([("value", secret)]).split("=", 1)[1],
    }
    for name, encode in (("base64", base64.b64encode), ("urlsafe base64", base64.urlsafe_b64encode)):
        padded = encode(raw).decode("ascii")
        forms[name] = padded
        forms[f"{name} without padding"] = padded.rstrip("=")
        for shift in (0, 1, 2):
            inside = encode(b"\0" * shift + raw).decode("ascii").rstrip("=")
            forms[f"{name} inside a blob (+{shift})"] = inside[4 if shift else 0 : -4]
    return forms


def hits(secret: str, text: str) -> list[str]:
    """The names of the forms of `secret` that occur in `text`."""
    return sorted({name for name, form in encodings(secret).items() if form and form in text})


def test_the_encodings_find_a_secret_in_each_form_it_can_leak_in() -> None:
    """The scan itself: each form is found where it would appear (a form body, a Basic header, JSON), and only there."""
    secret = BEARER
    basic = base64.b64encode(f"user:{secret}".encode()).decode()
    assert "base64 inside a blob (+2)" in hits(secret, f"Authorization: Basic {basic}")
    assert "form-encoded" in hits(secret, urlencode({"grant_type": "x", "client_secret": secret, "a": "b"}))
    assert hits(secret, json.dumps({"v": secret})) == ["raw"]
    assert "url-encoded" in hits(secret, f"/v3/tokens/{quote(secret, safe='')}")
    assert hits(secret, "eyJh…0042 scan-bearer") == []


# --- the server under test ---------------------------------------------------------------------


@dataclass
class Run:
    """Everything one session produced: results by label, the secrets made and where each was delivered."""

    results: list[tuple[str, str]] = field(default_factory=list)
    #: secret -> the label of the one result allowed to hold it
    delivered_in: dict[str, str] = field(default_factory=dict)
    #: secret -> what it is, for messages
    secrets: dict[str, str] = field(default_factory=dict)

    def secret(self, value: str, what: str, label: str | None) -> None:
        assert value, f"no {what}"
        self.secrets[value] = what
        if label is not None:
            self.delivered_in[value] = label


def result_text(result: CallToolResult) -> str:
    """A result as the client sees it: its JSON and its text content (so no escaping hides a form)."""
    dumped = json.dumps(result.model_dump(mode="json"), ensure_ascii=False)
    return dumped + "\n" + "\n".join(getattr(c, "text", "") for c in result.content)


class Caller:
    """Calls tools on one session, records every result and error text under a label."""

    def __init__(self, client: Client, run: Run) -> None:
        self.client = client
        self.run = run
        self.counts: dict[str, int] = {}

    async def call(self, tool: str, arguments: dict[str, Any]) -> CallToolResult:
        n = self.counts[tool] = self.counts.get(tool, 0) + 1
        label = f"{tool}#{n}"
        with anyio.fail_after(CALL_TIMEOUT):
            result = await self.client.call_tool(tool, arguments)
        self.run.results.append((label, result_text(result)))
        return result

    @property
    def last(self) -> str:
        return self.run.results[-1][0]

    async def ok(self, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        result = await self.call(tool, arguments)
        assert not result.is_error, f"{tool} {arguments}: {self.run.results[-1][1]}"
        assert result.structured_content is not None
        return result.structured_content

    async def fails(self, tool: str, arguments: dict[str, Any]) -> str:
        result = await self.call(tool, arguments)
        assert result.is_error, f"{tool} was meant to fail: {result.structured_content}"
        text = " ".join(getattr(c, "text", "") for c in result.content)
        assert "Traceback" not in text
        return text


def serve_args(sandbox: RunningSandbox, audit: Path) -> list[str]:
    return [
        "-m", "carto_mcp", "serve",
        "--token", BEARER, "--base-url", sandbox.url,
        "--debug", "--audit-log", str(audit), "--yes",
    ]  # fmt: skip


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1"}


@contextmanager
def http_child(tmp_path: Path, transport: str, args: list[str], stderr: Path) -> Iterator[str]:
    """`serve --transport T` on a free loopback port, up within START_TIMEOUT, always stopped; yields its base URL."""
    port = free_port()
    command = [sys.executable, *args, "--transport", transport, "--port", str(port)]
    with stderr.open("wb") as err:
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=child_env(), cwd=tmp_path
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                raise AssertionError(f"serve exited with {process.returncode}: {stderr.read_text()}")
            try:
                if httpx2.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx2.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"serve not up within {START_TIMEOUT:.0f} s: {stderr.read_text()}")
            time.sleep(0.1)
        yield base
    finally:
        stop(process)


@asynccontextmanager
async def session(transport: str, tmp_path: Path, args: list[str], stderr: Path) -> AsyncIterator[Client]:
    """An SDK client of `transport` on a fresh `carto-mcp serve` child; the child is gone when this exits."""
    if transport == "stdio":
        params = StdioServerParameters(command=sys.executable, args=args, env=child_env(), cwd=str(tmp_path))
        with stderr.open("w", encoding="utf-8") as err:
            streams = stdio_client(params, errlog=err)
            async with Client(streams, mode="legacy", read_timeout_seconds=CALL_TIMEOUT) as client:
                yield client
        return
    with http_child(tmp_path, transport, args, stderr) as base:
        if transport == "sse":
            async with Client(sse_client(f"{base}/sse"), mode="legacy", read_timeout_seconds=CALL_TIMEOUT) as client:
                yield client
        else:
            async with Client(streamable_http_client(f"{base}/mcp"), read_timeout_seconds=CALL_TIMEOUT) as client:
                yield client


# --- the run ------------------------------------------------------------------------------------


async def every_tool(call: Caller, run: Run, tmp_path: Path, sandbox: RunningSandbox) -> dict[str, Path]:
    """Every tool at least once, the secrets of each create recorded with the result that delivers it."""
    files = {"token": tmp_path / "token.env", "m2m": tmp_path / "m2m.env", "rotated": tmp_path / "rotated.env"}
    two_grants = {"grants": [grant(), grant(OTHER_TABLE)], "apis": ["maps"], "referers": ["https://app.example/"]}

    me = await call.ok("whoami", {})
    assert me["base_url"] == sandbox.url
    assert [p["active"] for p in (await call.ok("list_profiles", {}))["profiles"]] == [True]

    inline = await call.ok("create_token", {**two_grants, "name": "scan inline"})
    run.secret(inline["token"], "token created inline", call.last)
    filed = await call.ok(
        "create_token", {**two_grants, "name": "scan file", "secret_output_file": str(files["token"])}
    )
    assert "token" not in filed and filed["secret_file"] == str(files["token"])
    token_in_file = files["token"].read_text(encoding="utf-8").strip().split("=", 1)[1]
    assert sandbox.store.get_token(token_in_file) is not None, "the secret file does not hold the new token"
    run.secret(token_in_file, "token written to a file", None)
    spa = await call.ok("create_spa", {"title": "scan web", "callbacks": ["https://app.example/cb"]})
    m2m = await call.ok("create_m2m", {"title": "scan svc"})
    run.secret(m2m["client_secret"], "M2M secret shown inline", call.last)
    m2m_filed = await call.ok("create_m2m", {"title": "scan svc file", "secret_output_file": str(files["m2m"])})
    assert "client_secret" not in m2m_filed
    m2m_file = dict(line.split("=", 1) for line in files["m2m"].read_text(encoding="utf-8").splitlines())
    assert m2m_file["CARTO_M2M_CLIENT_ID"] == m2m_filed["id"]
    assert sandbox.store.check_client_secret(m2m["id"], m2m["client_secret"])
    assert sandbox.store.check_client_secret(m2m_filed["id"], m2m_file["CARTO_M2M_CLIENT_SECRET"]), (
        "wrong secret in file"
    )
    run.secret(m2m_file["CARTO_M2M_CLIENT_SECRET"], "M2M secret written to a file", None)

    token_value, secret = inline["token"], m2m["client_secret"]
    for kind in ("all", "token", "spa", "m2m", "oauth"):
        assert (await call.ok("list_credentials", {"kind": kind}))["rows"]
    await call.ok("list_credentials", {"kind": "token", "text": "scan"})
    assert (await call.ok("audit_credentials", {"expiring_within": "30d"}))["scanned"]["token"] >= 1
    for kind, ident, expected in (
        ("token", inline["id"], inline["id"]),
        ("token", token_value, inline["id"]),
        ("spa", spa["id"], spa["id"]),
        ("m2m", m2m["id"], m2m["id"]),
    ):
        assert (await call.ok("get_credential", {"kind": kind, "id": ident}))["id"] == expected

    await call.ok("update_credential", {"kind": "token", "id": inline["id"], "name": "scan renamed"})
    removed = await call.ok("update_credential", {"kind": "token", "id": token_value, "remove_grants": [grant()]})
    assert removed["status"] == "updated" and removed["removes"]
    await call.ok("update_credential", {"kind": "spa", "id": spa["id"], "title": "scan web 2"})
    await call.ok("update_credential", {"kind": "m2m", "id": m2m["id"], "title": "scan svc 2"})

    rotated = await call.ok("rotate_token", {"id": inline["id"]})
    assert rotated["status"] == "rotated" and rotated["new"]["token"]
    run.secret(rotated["new"]["token"], "token made by rotate_token", call.last)
    kept = await call.ok(
        "rotate_token", {"id": filed["id"], "keep_old": True, "secret_output_file": str(files["rotated"])}
    )
    assert kept["status"] == "replacement_created" and "token" not in kept["new"]
    run.secret(files["rotated"].read_text(encoding="utf-8").strip().split("=", 1)[1], "rotated into a file", None)

    # Calls that fail on purpose (or find nothing), each handed a secret it could echo.
    jwt, filed_secret = rotated["new"]["token"], m2m_file["CARTO_M2M_CLIENT_SECRET"]
    await call.fails("get_credential", {"kind": "spa", "id": token_in_file})  # a token value as a client id
    await call.fails("revoke_credential", {"kind": "m2m", "id": jwt})
    await call.fails("update_credential", {"kind": "m2m", "id": jwt, "title": "x"})
    await call.fails("get_credential", {"kind": "token", "id": secret})  # an M2M secret as a token id
    await call.fails("update_credential", {"kind": "token", "id": secret, "name": "x"})
    await call.fails("revoke_credential", {"kind": "token", "id": filed_secret})
    await call.fails("rotate_token", {"id": filed_secret})
    await call.fails("create_token", {"grants": [grant(f"{jwt}.**")], "apis": ["maps"]})  # a token as a pattern
    await call.fails("create_token", {"grants": [grant(f"carto.shared.**{token_in_file}")], "apis": ["maps"]})
    await call.fails("create_token", {"grants": [grant()], "apis": ["maps"], "secret_variable": jwt})
    await call.fails("create_token", {"grants": [grant()], "apis": ["maps"], "secret_variable": jwt[:100]})
    await call.fails("create_token", {"grants": [grant()], "apis": ["maps"], "referers": [jwt]})
    await call.fails("get_credential", {"kind": "token", "id": f"Bearer {jwt}"})
    await call.fails("list_credentials", {"cursor": jwt})
    await call.fails("get_credential", {"kind": "token", "id": inline["id"], secret: 1})
    await call.fails("update_credential", {"kind": "token", "id": jwt, "expiration_date": "7d"})
    assert (await call.ok("list_credentials", {"kind": "token", "text": jwt}))["rows"] == []

    # Revoke every kind (--yes: one call each), by short id, by full value and by client id.
    assert (await call.ok("revoke_credential", {"kind": "token", "id": jwt}))["status"] == "revoked"
    for row in (await call.ok("list_credentials", {"kind": "token"}))["rows"]:
        assert (await call.ok("revoke_credential", {"kind": "token", "id": row["id"]}))["status"] == "revoked"
    for kind, ident in (("spa", spa["id"]), ("m2m", m2m["id"]), ("m2m", m2m_filed["id"])):
        assert (await call.ok("revoke_credential", {"kind": kind, "id": ident}))["status"] == "revoked"
    assert (await call.ok("list_credentials", {}))["rows"] == []
    await call.fails("get_credential", {"kind": "token", "id": jwt})
    return files


@pytest.mark.parametrize("transport", ["stdio", "streamable-http", "sse"])
async def test_no_secret_reaches_a_log_the_audit_log_or_another_result(transport: str, tmp_path: Path) -> None:
    """Over each transport, with --debug and an audit log: each token value and M2M secret appears only in the
    create result that delivers it (or only in its secret file), and the bearer nowhere, in any encoding."""
    audit, stderr = tmp_path / "audit.jsonl", tmp_path / "serve.err"
    run = Run()
    with running_sandbox(tmp_path / "scan.db", faults=True) as sandbox:
        httpx2.delete(f"{sandbox.url}/_sandbox/requests", timeout=5).raise_for_status()
        with anyio.fail_after(SESSION_TIMEOUT):
            async with session(transport, tmp_path, serve_args(sandbox, audit), stderr) as client:
                call = Caller(client, run)
                files = await every_tool(call, run, tmp_path, sandbox)
        counts: dict[str, int] = httpx2.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()
    run.secret(BEARER, "the bearer", None)

    # Every tool ran, and the server really talked to CARTO (the sandbox) the whole time.
    assert {label.split("#")[0] for label, _ in run.results} == {spec.name for spec in TOOLS}
    assert counts.get("POST /v3/tokens", 0) >= 4 and counts.get("DELETE /v3/tokens/{token}", 0) >= 4, counts
    log = stderr.read_text(encoding="utf-8", errors="replace")
    for line in (f"--> POST {sandbox.url}/v3/tokens", f"--> DELETE {sandbox.url}/v3/tokens/", "<-- 201 POST"):
        assert line in log, f"the --debug log has no {line!r} line: the scan would be vacuous"
    assert f"--> POST {sandbox.url}/v3/oauth-clients" in log and " body=" in log
    audit_lines = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    mutating = [label for label, _ in run.results if label.split("#")[0] in MUTATING]
    assert len(audit_lines) == len(mutating), f"{len(audit_lines)} audit lines for {len(mutating)} mutating calls"

    # The secret files hold what they promised.
    assert files["token"].read_text(encoding="utf-8").startswith("CARTO_API_ACCESS_TOKEN=eyJ")
    assert "CARTO_M2M_CLIENT_SECRET=" in files["m2m"].read_text(encoding="utf-8")

    assert_no_leaks(run, {"stderr": log, "audit log": audit.read_text(encoding="utf-8")}, transport)


class Leak(AssertionError):
    """A secret found where it must not be (the only failure the known-bug test below may end in)."""


def assert_no_leaks(run: Run, streams: dict[str, str], transport: str) -> None:
    """Each secret in each stream and result, in every encoding, except the one result that delivers it."""
    leaks = []
    for value, what in run.secrets.items():
        allowed = run.delivered_in.get(value)
        for where, text in [*streams.items(), *run.results]:
            if where == allowed:
                assert value in text, f"{what} is not in the result that should deliver it ({where})"
                continue
            found = hits(value, text)
            if found:
                leaks.append(f"{what} in {where}: {', '.join(found)}")
    if leaks:
        raise Leak(f"secrets leaked over {transport}:\n" + "\n".join(leaks))


async def test_an_m2m_secret_passed_as_a_client_id_stays_out_of_the_debug_log(tmp_path: Path) -> None:
    """The sibling of the token-value guard: an M2M secret handed to get/update/revoke as a client id is
    refused with a masked error, and --debug never prints it (here: over stdio, where the leak showed)."""
    audit, stderr = tmp_path / "audit.jsonl", tmp_path / "serve.err"
    run = Run()
    with running_sandbox(tmp_path / "scan.db", faults=True) as sandbox:
        with anyio.fail_after(SESSION_TIMEOUT):
            async with session("stdio", tmp_path, serve_args(sandbox, audit), stderr) as client:
                call = Caller(client, run)
                m2m = await call.ok("create_m2m", {"title": "scan svc"})
                run.secret(m2m["client_secret"], "M2M secret shown inline", call.last)
                secret = m2m["client_secret"]
                await call.fails("get_credential", {"kind": "m2m", "id": secret})
                await call.fails("update_credential", {"kind": "spa", "id": secret, "title": "x"})
                await call.fails("revoke_credential", {"kind": "m2m", "id": secret})
                assert (await call.ok("revoke_credential", {"kind": "m2m", "id": m2m["id"]}))["status"] == "revoked"
    log = stderr.read_text(encoding="utf-8", errors="replace")
    assert f"--> GET {sandbox.url}/v3/oauth-clients/" in log, "no debug lines: the scan would be vacuous"
    assert_no_leaks(run, {"stderr": log, "audit log": audit.read_text(encoding="utf-8")}, "stdio")
