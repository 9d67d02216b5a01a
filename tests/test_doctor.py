"""`carto-mcp doctor`: the winning credentials source and why, the checks, their fixes, and no secret shown."""

from __future__ import annotations

import argparse
import base64
import json
import re
import socket
import stat
import time
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from carto_mcp.doctor import add_doctor_parser, run_doctor
from carto_mcp.sandbox import running_sandbox

SOURCES = ["flag", "env", "client_credentials", "credentials_file", "legacy_file"]


def jwt(secret_tail: str, *, exp: float | None = None, jti: str = "doctor01") -> str:
    """A JWT-shaped fake token: readable payload (for expiry), distinctive unreadable tail."""

    def part(obj: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).decode().rstrip("=")

    payload: dict[str, Any] = {"jti": jti}
    if exp is not None:
        payload["exp"] = int(exp)
    return f"{part({'alg': 'none'})}.{part(payload)}.{secret_tail}"


IN_30_DAYS = time.time() + 30 * 86400
FLAG_TOKEN = jwt("sigFLAGdoctor-secret-F1x9", exp=IN_30_DAYS)
ENV_TOKEN = jwt("sigENVVdoctor-secret-E2x8", exp=IN_30_DAYS)
FILE_TOKEN = jwt("sigFILEdoctor-secret-D3x7", exp=IN_30_DAYS)
LEGACY_TOKEN = jwt("sigLGCYdoctor-secret-L4x6", exp=IN_30_DAYS)
CLIENT_SECRET = "m2m-client-secret-doctor-C5x5-not-real"
SECRETS = (FLAG_TOKEN, ENV_TOKEN, FILE_TOKEN, LEGACY_TOKEN, CLIENT_SECRET)
#: The unmasked middle of each secret: a mask shows only the first and last four characters.
FRAGMENTS = ("sigFLAGdoctor", "sigENVVdoctor", "sigFILEdoctor", "sigLGCYdoctor", "secret-doctor-C5x5")


def doctor(argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    top = argparse.ArgumentParser(prog="carto-mcp")
    add_doctor_parser(top.add_subparsers(dest="command"))
    code = run_doctor(top.parse_args(["doctor", *argv]), environ)
    out, err = capsys.readouterr()
    return code, out, err


def doctor_json(
    argv: list[str], environ: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any], str]:
    code, out, err = doctor(["--json", *argv], environ, capsys)
    assert_no_secret(out + err)
    return code, json.loads(out), out


def assert_no_secret(text: str) -> None:
    for value in (*SECRETS, *FRAGMENTS):
        assert value not in text


def check(report: dict[str, Any], name: str) -> dict[str, Any]:
    found = [c for c in report["checks"] if c["name"] == name]
    assert len(found) == 1, [c["name"] for c in report["checks"]]
    return found[0]


def used(report: dict[str, Any]) -> list[str]:
    return [s["source"] for s in report["sources"] if s["used"]]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


def write_credentials(home: Path, token: str = FILE_TOKEN, mode: int = 0o600) -> Path:
    path = home / ".carto_credentials.json"
    data = {
        "current_profile": "production",
        "profiles": {
            "production": {
                "token": token,
                "tenant_id": "gcp-us-east1",
                "organization_name": "example-prod",
                "user_email": "dev@example.test",
            }
        },
    }
    path.write_text(json.dumps(data))
    path.chmod(mode)
    return path


# --- every credentials source, offline ----------------------------------------------------------


def test_flag_source(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"HOME": str(home), "CARTO_API_TOKEN": ENV_TOKEN}
    code, report, _ = doctor_json(
        ["--offline", "--token", FLAG_TOKEN, "--base-url", "https://api.example.test"], environ, capsys
    )
    assert code == 0 and report["healthy"] is True
    assert report["profile"]["source"] == "flag"
    assert used(report) == ["flag"]
    assert [s["source"] for s in report["sources"]] == SOURCES
    env = next(s for s in report["sources"] if s["source"] == "env")
    assert env["present"] and not env["used"]  # a lower-priority source it saw
    assert check(report, "credentials")["status"] == "ok"
    assert "--token" in check(report, "credentials")["detail"]
    assert report["profile"]["base_url"] == "https://api.example.test"
    assert check(report, "connectivity")["detail"] == "skipped (--offline)"
    assert report["latency_ms"] is None


def test_env_source(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"HOME": str(home), "CARTO_API_TOKEN": ENV_TOKEN, "CARTO_MCP_BASE_URL": "https://api.example.test"}
    code, report, _ = doctor_json(["--offline"], environ, capsys)
    assert code == 0 and report["healthy"]
    assert report["profile"]["source"] == "env" and used(report) == ["env"]
    token = check(report, "token")
    assert token["status"] == "ok" and "expires at" in token["detail"]
    assert report["profile"]["masked_token"] in token["detail"]


def test_client_credentials_source(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {
        "HOME": str(home),
        "CARTO_CLIENT_ID": "m2m-client-id-1",
        "CARTO_CLIENT_SECRET": CLIENT_SECRET,
        "CARTO_MCP_BASE_URL": "https://api.example.test",
    }
    code, report, _ = doctor_json(["--offline"], environ, capsys)
    assert code == 0 and report["healthy"]
    assert report["profile"]["source"] == "client_credentials" and used(report) == ["client_credentials"]
    assert report["profile"]["has_client_secret"] is True
    assert "m2m-client-id-1" in check(report, "token")["detail"]

    # The same through the flags `serve` takes.
    secret_file = tmp_path / "secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    argv = [
        "--offline",
        "--client-id",
        "cid-2",
        "--client-secret-file",
        str(secret_file),
        "--base-url",
        "https://x.test",
    ]
    code, report, _ = doctor_json(argv, {"HOME": str(home)}, capsys)
    assert code == 0 and report["profile"]["client_id"] == "cid-2"

    # An unreadable secret file is a problem with a fix, not a traceback.
    argv[4] = str(tmp_path / "missing")
    code, report, _ = doctor_json(argv, {"HOME": str(home)}, capsys)
    assert code == 1 and check(report, "client secret")["status"] == "fail"


def test_credentials_file_source(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_credentials(home)
    code, report, _ = doctor_json(["--offline"], {"HOME": str(home)}, capsys)
    assert code == 0 and report["healthy"]
    profile = report["profile"]
    assert profile["source"] == "credentials_file" and used(report) == ["credentials_file"]
    assert profile["name"] == "production" and profile["tenant_id"] == "gcp-us-east1"
    assert profile["base_url"] == "https://gcp-us-east1.api.carto.com"
    assert "production" in check(report, "profile")["detail"]
    assert "https://gcp-us-east1.api.carto.com" in check(report, "profile")["detail"]
    perms = check(report, "credentials file")
    assert perms["status"] == "ok" and "mode 600" in perms["detail"] and str(path) in perms["detail"]


def test_legacy_file_source(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    legacy = home / ".carto" / "config.json"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({"token": LEGACY_TOKEN, "base_url": "https://legacy.example.test"}))
    legacy.chmod(0o600)
    code, report, _ = doctor_json(["--offline"], {"HOME": str(home)}, capsys)
    assert code == 0 and report["healthy"]
    assert report["profile"]["source"] == "legacy_file" and used(report) == ["legacy_file"]
    assert report["profile"]["base_url"] == "https://legacy.example.test"
    assert check(report, "legacy config")["status"] == "ok"


def test_missing_credentials_fail_with_the_login_fix(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report, _ = doctor_json(["--offline"], {"HOME": str(home)}, capsys)
    assert code == 1 and report["healthy"] is False
    creds = check(report, "credentials")
    assert creds["status"] == "fail"
    assert "carto auth login" in creds["fix"]
    assert report["profile"] is None and used(report) == []

    code, out, _ = doctor([], {"HOME": str(home)}, capsys)  # online too: no call is attempted
    assert code == 1 and "NOT healthy" in out and "carto auth login" in out


def test_an_unknown_profile_names_the_existing_ones(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_credentials(home)
    code, report, _ = doctor_json(["--offline", "--profile", "nope"], {"HOME": str(home)}, capsys)
    assert code == 1
    creds = check(report, "credentials")
    assert "production" in creds["detail"] and "carto auth login --profile nope" in creds["fix"]
    assert "cannot be used" in next(s for s in report["sources"] if s["source"] == "credentials_file")["detail"]


# --- token expiry and file permissions ---------------------------------------------------------------


def test_an_expired_login_fails_and_one_expiring_soon_warns(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_credentials(home, token=jwt("sigFILEdoctor-secret-D3x7", exp=time.time() - 60))
    code, report, _ = doctor_json(["--offline"], {"HOME": str(home)}, capsys)
    assert code == 1
    token = check(report, "token")
    assert token["status"] == "fail" and "expired" in token["detail"] and "carto auth login" in token["fix"]

    write_credentials(home, token=jwt("sigFILEdoctor-secret-D3x7", exp=time.time() + 3 * 3600))
    code, report, _ = doctor_json(["--offline"], {"HOME": str(home)}, capsys)
    assert code == 0 and report["healthy"]
    assert check(report, "token")["status"] == "warn" and "hours" in check(report, "token")["detail"]


def test_a_token_without_expiry_is_reported_as_such(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--offline", "--token", "opaque-token-value-doctor-xyz", "--base-url", "https://a.test"]
    code, report, _ = doctor_json(argv, {"HOME": str(home)}, capsys)
    assert code == 0 and "expiry unknown" in check(report, "token")["detail"]
    assert "opaque-token-value-doctor-xyz" not in json.dumps(report)


def test_a_world_readable_credentials_file_warns_with_chmod(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_credentials(home, mode=0o644)
    code, report, _ = doctor_json(["--offline"], {"HOME": str(home)}, capsys)
    assert code == 0 and report["healthy"]  # a warning, not a failure
    perms = check(report, "credentials file")
    assert perms["status"] == "warn" and "644" in perms["detail"]
    assert perms["fix"] == f"chmod 600 {path}"


# --- one real call ---------------------------------------------------------------------------------------


def test_a_reachable_api_is_healthy_with_latency(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with running_sandbox(tmp_path / "sb.db") as sandbox:
        code, report, _ = doctor_json(["--base-url", sandbox.url, "--token", "x"], {"HOME": str(home)}, capsys)
        assert code == 0 and report["healthy"] is True
        conn = check(report, "connectivity")
        assert conn["status"] == "ok" and sandbox.url in conn["detail"]
        assert isinstance(report["latency_ms"], float) and report["latency_ms"] > 0
        assert re.search(r"\d+ ms", conn["detail"])

        code, out, err = doctor(["--base-url", sandbox.url, "--token", FLAG_TOKEN], {"HOME": str(home)}, capsys)
        assert code == 0 and "healthy: no problems found." in out
        assert_no_secret(out + err)


def test_a_stopped_port_is_a_failure_with_a_fix(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    code, report, _ = doctor_json(["--base-url", url, "--token", FLAG_TOKEN], {"HOME": str(home)}, capsys)
    assert time.monotonic() - started < 15
    assert code == 1 and report["healthy"] is False
    conn = check(report, "connectivity")
    assert conn["status"] == "fail" and url in conn["detail"]
    assert "network" in conn["fix"] and "--base-url" in conn["fix"]
    assert report["latency_ms"] is None


def test_a_refused_token_says_what_to_do(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with running_sandbox(tmp_path / "sb.db", faults=True) as sandbox:
        httpx.post(f"{sandbox.url}/_sandbox/reject-bearer", json={"bearer": ENV_TOKEN}).raise_for_status()
        environ = {"HOME": str(home), "CARTO_API_TOKEN": ENV_TOKEN, "CARTO_MCP_BASE_URL": sandbox.url}
        code, report, _ = doctor_json([], environ, capsys)
    assert code == 1
    conn = check(report, "connectivity")
    assert conn["status"] == "fail" and "CARTO_API_TOKEN" in conn["fix"]


def test_the_embedded_sandbox(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    environ = {"HOME": str(home), "CARTO_MCP_SANDBOX_DB": str(tmp_path / "sandbox.sqlite3")}
    code, report, _ = doctor_json(["--sandbox"], environ, capsys)
    assert code == 0 and report["healthy"]
    assert check(report, "credentials")["status"] == "warn"  # said loudly: no real account is used
    assert check(report, "connectivity")["status"] == "ok" and report["latency_ms"] is not None
    code, report, _ = doctor_json([], {**environ, "CARTO_MCP_SANDBOX": "1"}, capsys)  # the env switch too
    assert code == 0 and "sandbox" in check(report, "connectivity")["detail"]


# --- the report itself -------------------------------------------------------------------------------------


def test_versions_are_reported(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, report, _ = doctor_json(["--offline"], {"HOME": str(home)}, capsys)
    versions = report["versions"]
    assert set(versions) == {"python", "carto-mcp", "mcp", "httpx2", "pydantic"}
    assert all(versions.values())
    assert check(report, "packages")["status"] == "ok"
    assert set(report) == {"healthy", "checks", "profile", "sources", "versions", "latency_ms"}
    for item in report["checks"]:
        assert set(item) == {"name", "status", "detail", "fix"} and item["status"] in ("ok", "warn", "fail")
        assert item["status"] == "ok" or item["fix"]  # every problem comes with its fix


def test_text_output_is_aligned_and_lists_problems_with_fixes(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_credentials(home, mode=0o644)
    environ = {"HOME": str(home), "CARTO_API_TOKEN": ENV_TOKEN, "CARTO_MCP_BASE_URL": "https://api.example.test"}
    code, out, err = doctor(["--offline"], environ, capsys)
    assert code == 0
    assert_no_secret(out + err)
    lines = [line for line in out.splitlines() if re.match(r"^  \S.*?:\s+(ok|WARN|FAIL)\s+— ", line)]
    assert len(lines) >= 6
    assert len({line.index(" — ") for line in lines}) == 1  # one column for every check
    assert "credential sources, highest priority first:" in out
    assert re.search(r"^  2\. env\s+USED\s", out, re.MULTILINE)
    assert re.search(r"^  4\. credentials_file\s+seen\s", out, re.MULTILINE)
    assert "chmod 600" in out  # the warning's fix


def test_no_secret_in_any_output(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every source set at once (each with a distinctive value), every output mode: only masks appear."""
    write_credentials(home, mode=0o644)
    legacy = home / ".carto" / "config.json"
    legacy.parent.mkdir()
    legacy.write_text(json.dumps({"token": LEGACY_TOKEN}))
    secret_file = tmp_path / "secret"
    secret_file.write_text(CLIENT_SECRET)
    environ = {
        "HOME": str(home),
        "CARTO_API_TOKEN": ENV_TOKEN,
        "CARTO_CLIENT_ID": "cid",
        "CARTO_CLIENT_SECRET": CLIENT_SECRET,
    }
    for argv in (
        ["--offline"],
        ["--offline", "--json"],
        ["--offline", "--token", FLAG_TOKEN],
        ["--offline", "--json", "--token", FLAG_TOKEN, "--client-secret-file", str(secret_file)],
        ["--offline", "--json", "--profile", "missing"],
    ):
        _code, out, err = doctor(argv, environ, capsys)
        assert_no_secret(out + err)


def test_a_login_profile_is_checked_online_as_serve_uses_it(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_credentials(home)
    with running_sandbox(tmp_path / "sb.db") as sandbox:
        environ = {"HOME": str(home), "CARTO_MCP_BASE_URL": sandbox.url}
        code, report, _ = doctor_json([], environ, capsys)
        assert code == 0 and report["profile"]["source"] == "credentials_file"
        assert check(report, "connectivity")["status"] == "ok"
        code, out, err = doctor([], environ, capsys)
    assert code == 0
    assert_no_secret(out + err)


# --- large-account settings ----------------------------------------------------------------------


def test_the_walk_settings_are_reported_from_flags_and_variables(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """doctor takes --max-concurrency / --cache-ttl as serve does and says what a walk will do."""
    environ = {"HOME": str(home), "CARTO_API_TOKEN": ENV_TOKEN, "CARTO_MCP_BASE_URL": "https://api.example.test"}
    _, default, _ = doctor_json(["--offline"], environ, capsys)
    _, tuned, _ = doctor_json(["--offline", "--max-concurrency", "4"], {**environ, "CARTO_MCP_CACHE_TTL": "0"}, capsys)

    assert check(default, "large accounts") == {
        "name": "large accounts",
        "status": "ok",
        "detail": "page walks: up to 8 requests at once; listings reused for 30 s",
        "fix": "",
    }
    assert check(tuned, "large accounts")["detail"] == "page walks: up to 4 requests at once; listing cache off"


def test_a_bad_walk_variable_fails_its_check_and_the_rest_is_still_reported(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environ = {
        "HOME": str(home),
        "CARTO_API_TOKEN": ENV_TOKEN,
        "CARTO_MCP_BASE_URL": "https://api.example.test",
        "CARTO_MCP_MAX_CONCURRENCY": "lots",
    }
    code, report, _ = doctor_json(["--offline"], environ, capsys)

    walk = check(report, "large accounts")
    assert code == 1 and walk["status"] == "fail"
    assert walk["detail"] == "CARTO_MCP_MAX_CONCURRENCY: 'lots' is not a whole number"
    assert "CARTO_MCP_MAX_CONCURRENCY" in walk["fix"]
    assert report["profile"]["source"] == "env"


def test_a_short_audit_key_fails_its_check_without_showing_it(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server would refuse this key at start-up; doctor says so (its length, how to make one), not the key."""
    environ = {
        "HOME": str(home),
        "CARTO_API_TOKEN": ENV_TOKEN,
        "CARTO_MCP_BASE_URL": "https://api.example.test",
        "CARTO_MCP_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "CARTO_MCP_AUDIT_KEY": "short-key",
    }
    code, report, out = doctor_json(["--offline"], environ, capsys)

    audit = check(report, "audit key")
    assert code == 1 and audit["status"] == "fail"
    assert audit["detail"] == "CARTO_MCP_AUDIT_KEY: the audit key is 9 characters long; it must have at least 16"
    assert "secrets.token_hex" in audit["fix"] and "short-key" not in out
    assert report["profile"]["source"] == "env"


def test_doctor_says_where_new_secrets_go(home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The secrets check: the default and its fallback, a secrets dir, and `--secrets file` without one."""
    env = {"HOME": str(home)}
    offline = ["--sandbox", "--throwaway", "--offline"]
    _, report, _ = doctor_json(offline, env, capsys)
    default = check(report, "secrets")
    assert default["status"] == "ok" and "reveal" in default["detail"] and "--secrets-dir" in default["detail"]
    secrets_dir = tmp_path / "secrets"
    _, report, _ = doctor_json(
        ["--sandbox", "--throwaway", "--offline", "--secrets-dir", str(secrets_dir)], env, capsys
    )
    assert check(report, "secrets")["status"] == "ok" and str(secrets_dir) in check(report, "secrets")["detail"]
    assert secrets_dir.is_dir() and stat.S_IMODE(secrets_dir.stat().st_mode) == 0o700
    code, report, _ = doctor_json([*offline, "--secrets", "file"], env, capsys)
    failed = check(report, "secrets")
    assert code == 1 and failed["status"] == "fail" and "--secrets-dir" in failed["fix"]
    _, report, _ = doctor_json(
        ["--sandbox", "--throwaway", "--offline"], {**env, "CARTO_MCP_SECRETS": "inline"}, capsys
    )
    assert check(report, "secrets")["status"] == "warn"
