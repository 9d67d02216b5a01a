"""Ways to run the sandbox: in-process over ASGI, `running_sandbox` on loopback, and `serve` as a process."""

from __future__ import annotations

import queue
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx2
import pytest

import carto_mcp.sandbox
from carto_mcp import contract
from carto_mcp.sandbox import create_app, running_sandbox

from .conftest import NO_TLS

AUTH = {"Authorization": "Bearer x"}


def test_the_public_api_is_pinned() -> None:
    """carto_mcp.sandbox exports exactly these names, sorted."""
    assert carto_mcp.sandbox.__all__ == ["SandboxStore", "create_app", "default_db_path", "running_sandbox", "serve"]
    assert sorted(carto_mcp.sandbox.__all__) == carto_mcp.sandbox.__all__


def test_importing_the_package_does_not_import_uvicorn() -> None:
    """uvicorn is imported only when serving, to keep start-up fast."""
    code = "import sys, carto_mcp.sandbox; print('uvicorn' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.anyio
async def test_asgi_transport_works_in_process_without_a_lifespan(tmp_path: Path) -> None:
    """httpx2.ASGITransport never runs the lifespan; the store is open anyway."""
    app = create_app(tmp_path / "db.sqlite3")
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox", headers=AUTH, verify=NO_TLS) as http:
        created = await http.post(contract.TOKENS_PATH, json={"allowed_apis": ["lds"]})
        assert created.status_code == 201
        listed = (await http.get(contract.TOKENS_PATH)).json()
        assert listed == {"data": [created.json()], "total": 1}
        assert (await http.get(contract.TOKENS_PATH, headers={"Authorization": ""})).status_code == 401
    app.state.store.close()


@pytest.mark.anyio
async def test_an_in_memory_app_works_in_process() -> None:
    """create_app() with no path keeps a throwaway store in memory."""
    app = create_app()
    assert app.state.store.path is None
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox", headers=AUTH, verify=NO_TLS) as http:
        assert (await http.post(contract.TOKENS_PATH, json={"allowed_apis": ["lds"]})).status_code == 201
        assert (await http.get(contract.TOKENS_PATH)).json()["total"] == 1
    app.state.store.close()


@pytest.mark.anyio
async def test_running_sandbox_serves_async_clients_over_loopback(tmp_path: Path) -> None:
    """running_sandbox is a sync context manager that async tests can use too."""
    with running_sandbox(tmp_path / "db.sqlite3") as sandbox:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", sandbox.url)
        assert sandbox.store is sandbox.app.state.store
        async with httpx2.AsyncClient(base_url=sandbox.url, headers=AUTH, verify=NO_TLS, timeout=10) as http:
            assert (await http.get(contract.TOKENS_PATH)).json() == {"data": [], "total": 0}


def test_running_sandbox_stops_and_frees_its_port(tmp_path: Path) -> None:
    """After the with-block the server is gone: new connections are refused."""
    with running_sandbox(tmp_path / "db.sqlite3") as sandbox:
        port = sandbox.port
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass


def test_running_sandbox_stops_promptly_even_with_a_stalled_request(tmp_path: Path) -> None:
    """A request stuck in a stall fault does not hold shutdown beyond its bounded grace period."""
    with running_sandbox(tmp_path / "db.sqlite3", faults=True) as sandbox:
        with httpx2.Client(base_url=sandbox.url, headers=AUTH, verify=NO_TLS) as http:
            http.post("/_sandbox/faults", json={"mode": "stall", "stall_seconds": 30})
            with pytest.raises(httpx2.TimeoutException):
                http.get(contract.TOKENS_PATH, timeout=0.2)
        started = time.monotonic()
    assert time.monotonic() - started < 6


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", contract.TOKENS_PATH),
        ("POST", contract.TOKENS_PATH),
        ("GET", contract.token_path("abc.def.ghi")),
        ("PATCH", contract.token_path("abc.def.ghi")),
        ("DELETE", contract.token_path("abc.def.ghi")),
        ("GET", contract.OAUTH_CLIENTS_PATH),
        ("POST", contract.OAUTH_CLIENTS_PATH),
        ("DELETE", contract.oauth_client_path("abc")),
        ("GET", "/v3/unknown"),
    ],
)
def test_every_api_path_needs_a_bearer(anonymous: httpx2.Client, method: str, path: str) -> None:
    """Without `Authorization: Bearer <non-empty>` every /v3 request is 401 with the documented body."""
    for bearer in (None, "", "Bearer", "Basic dXNlcjpwYXNz", "token-without-scheme"):
        headers = {} if bearer is None else {"Authorization": bearer}
        response = anonymous.request(method, path, headers=headers, json={})
        assert response.status_code == 401, bearer
        assert response.json() == contract.UNAUTHORIZED_BODY


def test_any_non_empty_bearer_is_accepted(anonymous: httpx2.Client) -> None:
    """The sandbox accepts any bearer value (lower-case scheme included)."""
    for header in ("Bearer anything", "bearer eyJhbGciOi.e30.sig", "Bearer  spaced"):
        assert anonymous.get(contract.TOKENS_PATH, headers={"Authorization": header}).status_code == 200


def test_unknown_endpoints_and_methods_answer_with_the_error_shape(client: httpx2.Client) -> None:
    """An unknown path is a JSON 404 and a wrong method a JSON 405, both {"error", "description"}."""
    missing = client.get("/v3/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not found", "description": "No such endpoint"}
    wrong = client.put(contract.TOKENS_PATH, json={})
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "Method not allowed"
    assert "GET" in wrong.headers["allow"]


def _read_line(stream: object, timeout: float) -> str:
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: lines.put(stream.readline()), daemon=True).start()  # type: ignore[attr-defined]
    return lines.get(timeout=timeout)


def test_serve_on_port_zero_prints_its_url_and_answers() -> None:
    """serve(port=0) binds 127.0.0.1, prints 'CARTO sandbox API on http://HOST:PORT (db: PATH)' and serves."""
    code = "from carto_mcp.sandbox import serve; serve(port=0)"
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            line = _read_line(proc.stdout, timeout=30)
            match = re.fullmatch(r"CARTO sandbox API on (http://127\.0\.0\.1:(\d+)) \(db: (.+)\)\n", line)
            assert match, line
            assert int(match.group(2)) > 0
            assert match.group(3) == ":memory:"
            response = httpx2.get(f"{match.group(1)}{contract.TOKENS_PATH}", headers=AUTH, timeout=10, verify=NO_TLS)
            assert response.status_code == 200
            assert response.json() == {"data": [], "total": 0}
        finally:
            proc.terminate()
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=15)


def test_serve_reports_and_uses_the_given_db_file(tmp_path: Path) -> None:
    """serve(db_path=...) prints that path and keeps its state in it."""
    db = tmp_path / "nested" / "served.sqlite3"
    code = f"from carto_mcp.sandbox import serve; serve(port=0, db_path={str(db)!r})"
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            line = _read_line(proc.stdout, timeout=30)
            assert line.endswith(f"(db: {db})\n"), line
            url = line.split(" on ", 1)[1].split(" ", 1)[0]
            created = httpx2.post(
                f"{url}{contract.TOKENS_PATH}", json={"allowed_apis": ["lds"]}, headers=AUTH, timeout=10, verify=NO_TLS
            )
            assert created.status_code == 201
        finally:
            proc.terminate()
            try:
                proc.communicate(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate(timeout=15)
    store = carto_mcp.sandbox.SandboxStore(db)
    try:
        assert store.get_token(created.json()["token"]) == created.json()
    finally:
        store.close()
