"""The sqlite store: persistence, concurrent writers, bulk seeding and where the file lives."""

from __future__ import annotations

import base64
import hashlib
import hmac
import sqlite3
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx2
import pytest

from carto_mcp import contract
from carto_mcp.masking import short_id
from carto_mcp.sandbox import SandboxStore, default_db_path, running_sandbox

from .conftest import NO_TLS

LDS = {"allowed_apis": ["lds"]}

WRITER = textwrap.dedent(
    """
    import sys
    import httpx2
    from carto_mcp.sandbox import running_sandbox

    path, tag, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    with running_sandbox(path) as sandbox:
        headers = {"Authorization": "Bearer p"}
        with httpx2.Client(base_url=sandbox.url, headers=headers, verify=False, timeout=30) as http:
            print("ready", flush=True)
            sys.stdin.readline()
            for i in range(count):
                response = http.post("/v3/tokens", json={"name": f"{tag}-{i}", "allowed_apis": ["lds"]})
                assert response.status_code == 201, response.text
    print("done", flush=True)
    """
)


def test_state_survives_a_restart_on_the_same_file(db_path: Path) -> None:
    """Two app instances on one file, one after the other, see the same tokens."""
    with running_sandbox(db_path) as first, httpx2.Client(base_url=first.url, verify=NO_TLS, timeout=10) as http:
        created = http.post(contract.TOKENS_PATH, json={"name": "keep", **LDS}, headers={"Authorization": "Bearer a"})
        assert created.status_code == 201
    with running_sandbox(db_path) as second, httpx2.Client(base_url=second.url, verify=NO_TLS, timeout=10) as http:
        response = http.get(contract.token_path(created.json()["token"]), headers={"Authorization": "Bearer b"})
    assert response.status_code == 200
    assert response.json() == created.json()


def test_two_stores_open_on_one_file_share_state_and_the_signing_key(db_path: Path) -> None:
    """Stores share state through the file and sign HS256 with the random key kept in it."""
    one, two = SandboxStore(db_path), SandboxStore(db_path)
    try:
        token = one.create_token({"name": "shared", **LDS})
        assert two.get_token(token["token"]) == token
        assert two.list_tokens()[1] == 1
        other = two.create_token({"name": "other", **LDS})
    finally:
        one.close()
        two.close()
    with sqlite3.connect(db_path) as conn:
        (key,) = conn.execute("SELECT value FROM meta WHERE key = 'jwt_key'").fetchone()
    conn.close()
    for value in (token["token"], other["token"]):
        signed, _, signature = value.rpartition(".")
        expected = hmac.new(bytes.fromhex(key), signed.encode(), hashlib.sha256).digest()
        assert base64.urlsafe_b64decode(signature + "=") == expected


def test_clear_empties_the_store_but_keeps_the_signing_key(db_path: Path) -> None:
    """clear() deletes every token and client; the signing key in the file stays."""

    def signing_key() -> str:
        with sqlite3.connect(db_path) as conn:
            (key,) = conn.execute("SELECT value FROM meta WHERE key = 'jwt_key'").fetchone()
        conn.close()
        return str(key)

    store = SandboxStore(db_path)
    try:
        store.seed_tokens(5)
        store.create_client({"name": "c", "app_type": "m2m"})
        before = signing_key()
        store.clear()
        assert store.list_tokens()[1] == 0
        assert store.list_clients()[1] == 0
        assert signing_key() == before
    finally:
        store.close()


def test_concurrent_writers_in_threads_and_processes_lose_nothing(db_path: Path) -> None:
    """4 threads x 25 creates over HTTP plus 2 processes x 25 on the same file: 150 rows, integrity ok."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db_path), f"proc{n}", "25"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    try:
        with running_sandbox(db_path) as sandbox:
            for proc in procs:
                assert proc.stdout is not None
                assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""

            def write(thread: int) -> list[int]:
                headers = {"Authorization": "Bearer t"}
                with httpx2.Client(base_url=sandbox.url, headers=headers, verify=NO_TLS, timeout=30) as http:
                    return [
                        http.post(contract.TOKENS_PATH, json={"name": f"thread{thread}-{i}", **LDS}).status_code
                        for i in range(25)
                    ]

            with ThreadPoolExecutor(max_workers=4) as pool:
                futures = [pool.submit(write, n) for n in range(4)]
                for proc in procs:
                    assert proc.stdin is not None
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
                statuses = [status for future in futures for status in future.result(timeout=60)]
            for proc in procs:
                out, err = proc.communicate(timeout=60)
                assert proc.returncode == 0, err
                assert out.strip() == "done"
            assert statuses == [201] * 100
            rows, total = sandbox.store.list_tokens(limit=1000)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate(timeout=10)
    assert total == 150
    names = {row["name"] for row in rows}
    expected = {f"thread{t}-{i}" for t in range(4) for i in range(25)} | {
        f"proc{p}-{i}" for p in range(2) for i in range(25)
    }
    assert names == expected
    assert len({short_id(row["token"]) for row in rows}) == 150
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_seeding_ten_thousand_tokens_gives_unique_ids_and_cycles_the_dates(db_path: Path) -> None:
    """seed_tokens bulk-inserts in one transaction (its speed is a benchmark's business, not a test's)."""
    store = SandboxStore(db_path)
    try:
        values = store.seed_tokens(10_000, name_prefix="bench", expiration_dates=["2000-01-01", None, "2099-01-01"])
        assert len(values) == 10_000
        assert len({short_id(v) for v in values}) == 10_000
        rows, total = store.list_tokens(offset=0, limit=4)
        assert total == 10_000
        assert [r["name"] for r in rows] == ["bench-00000", "bench-00001", "bench-00002", "bench-00003"]
        assert [r["expiration_date"] for r in rows] == [
            "2000-01-01T00:00:00Z",
            None,
            "2099-01-01T00:00:00Z",
            "2000-01-01T00:00:00Z",
        ]
        assert rows[0]["token"] == values[0]
    finally:
        store.close()


def test_seeded_tokens_are_served_by_the_api(db_path: Path) -> None:
    """Seeded rows are ordinary tokens: listed, readable and deletable over HTTP."""
    with running_sandbox(db_path) as sandbox:
        values = sandbox.store.seed_tokens(3)
        headers = {"Authorization": "Bearer x"}
        with httpx2.Client(base_url=sandbox.url, headers=headers, verify=NO_TLS, timeout=10) as http:
            assert http.get(contract.TOKENS_PATH).json()["total"] == 3
            assert http.get(contract.token_path(values[1])).json()["allowed_apis"] == ["maps"]
            assert http.delete(contract.token_path(values[1])).status_code == 204


def test_seed_tokens_refuses_an_unreadable_date() -> None:
    """expiration_dates entries must be ISO dates or datetimes (or None)."""
    store = SandboxStore()
    try:
        with pytest.raises(ValueError, match="not an ISO date"):
            store.seed_tokens(2, expiration_dates=["soon"])
        assert store.list_tokens()[1] == 0
    finally:
        store.close()


def test_the_store_creates_missing_parent_directories(tmp_path: Path) -> None:
    """Opening a store on a path whose directories do not exist yet creates them."""
    path = tmp_path / "a" / "b" / "sandbox.sqlite3"
    store = SandboxStore(path)
    store.close()
    assert path.is_file()


def test_close_is_idempotent_and_the_store_reopens_lazily(db_path: Path) -> None:
    """close() twice is fine; the next call reopens the file with its data."""
    store = SandboxStore(db_path)
    token = store.create_token(LDS)
    store.close()
    store.close()
    assert store.get_token(token["token"]) == token
    store.close()


def test_a_store_without_a_path_is_in_memory_and_throwaway(tmp_path: Path) -> None:
    """SandboxStore(None) writes no file and starts empty after a close."""
    store = SandboxStore()
    assert store.path is None
    store.create_token(LDS)
    assert store.list_tokens()[1] == 1
    store.close()
    assert store.list_tokens()[1] == 0
    store.close()
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        ({"HOME": "/home/u", "XDG_DATA_HOME": "/data"}, "linux", "/data/carto-mcp/sandbox.sqlite3"),
        ({"HOME": "/home/u"}, "linux", "/home/u/.local/share/carto-mcp/sandbox.sqlite3"),
        ({"HOME": "/Users/u"}, "darwin", "/Users/u/Library/Application Support/carto-mcp/sandbox.sqlite3"),
        ({"HOME": "/Users/u", "XDG_DATA_HOME": "/x"}, "darwin", "/x/carto-mcp/sandbox.sqlite3"),
        ({"HOME": "/h", "LOCALAPPDATA": "/appdata"}, "win32", "/appdata/carto-mcp/sandbox.sqlite3"),
        ({"HOME": "/h"}, "win32", "/h/AppData/Local/carto-mcp/sandbox.sqlite3"),
    ],
)
def test_default_db_path_follows_the_platform_conventions(
    environ: dict[str, str], platform: str, expected: str
) -> None:
    """$XDG_DATA_HOME wins; else ~/.local/share, ~/Library/Application Support or %LOCALAPPDATA%."""
    assert default_db_path(environ, platform=platform) == Path(expected)


def test_default_db_path_reads_the_process_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Without arguments it uses os.environ and does not create anything."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_db_path() == tmp_path / "xdg" / "carto-mcp" / "sandbox.sqlite3"
    assert not (tmp_path / "xdg").exists()


def test_a_database_from_before_owners_opens_and_its_tokens_belong_to_the_user(db_path: Path) -> None:
    """A sandbox file written before tokens had owners gains the column; nothing in it is lost or hidden."""
    with sqlite3.connect(db_path) as conn:
        conn.executescript(
            """
            CREATE TABLE tokens (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                token TEXT NOT NULL UNIQUE, jti TEXT NOT NULL UNIQUE, body TEXT NOT NULL
            );
            INSERT INTO tokens (token, jti, body)
                VALUES ('old-value', 'aaaa0000', '{"token": "old-value", "name": "old"}');
            """
        )
    conn.close()
    store = SandboxStore(db_path)
    try:
        rows, total = store.list_tokens()
        assert (total, [r["name"] for r in rows]) == (1, ["old"])
        assert store.get_token("old-value") == {"token": "old-value", "name": "old"}
        assert store.list_tokens(owner="robot@clients") == ([], 0)
        store.create_token({"allowed_apis": ["lds"]}, owner="robot@clients")
        assert store.list_tokens()[1] == 1
    finally:
        store.close()
    reopened = SandboxStore(db_path)
    try:
        assert reopened.list_tokens(owner="robot@clients")[1] == 1
    finally:
        reopened.close()
