"""audit_credentials: one credential seeded for each finding kind, each reported exactly once, ranked by risk."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx2
import pytest

from carto_mcp.config import Settings
from carto_mcp.policy_file import load_policy
from carto_mcp.profiles import ProfileInputs
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox

from .conftest import BEARER, connect, ok

pytestmark = pytest.mark.anyio

RISK_ORDER = ["critical", "high", "medium", "low"]
POLICY = '[tokens]\nallowed_connections = ["carto_dw"]\n'


def when(days: float) -> str:
    return (datetime.now(timezone.utc) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def grant(source: str, connection: str = "carto_dw") -> dict[str, str]:
    return {"connection_name": connection, "source": source}


#: finding kind -> a token body that triggers that finding and no other.
TOKENS: dict[str, dict[str, Any]] = {
    "all_sources": {"allowed_apis": ["sql"], "grants": [grant("*")], "expiration_date": when(60)},
    "broad_pattern": {
        "allowed_apis": ["maps"],
        "grants": [grant("carto.*.x_*")],
        "referers": ["https://a.example.com/"],
        "expiration_date": when(60),
    },
    "imports_token": {"allowed_apis": ["imports"], "grants": [], "expiration_date": when(60)},
    "maps_without_referers": {
        "allowed_apis": ["maps"],
        "grants": [grant("carto.shared.t4")],
        "expiration_date": when(60),
    },
    "never_expires": {"allowed_apis": ["sql"], "grants": [grant("SELECT 5")]},
    "expired": {"allowed_apis": ["sql"], "grants": [grant("SELECT 6")], "expiration_date": when(-2)},
    "expiring_soon": {"allowed_apis": ["sql"], "grants": [grant("SELECT 7")], "expiration_date": when(3)},
    "policy_violation": {
        "allowed_apis": ["sql"],
        "grants": [grant("SELECT 10", "bq_other")],
        "expiration_date": when(60),
    },
}
#: The first of two tokens with the same reach: the second one is the duplicate.
ORIGINAL = {"allowed_apis": ["sql"], "grants": [grant("SELECT 8")], "expiration_date": when(60)}


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[RunningSandbox, dict[str, str]]]:
    """A sandbox with one credential per finding kind (plus a clean M2M client); kind -> its id."""
    with running_sandbox(tmp_path / "audit.sqlite3", faults=True) as sandbox:
        store = sandbox.store
        ids = {kind: store.create_token(body)["token"] for kind, body in TOKENS.items()}
        store.create_token(ORIGINAL)
        ids["duplicate"] = store.create_token(ORIGINAL)["token"]
        spa = store.create_client(
            {
                "app_type": "spa",
                "name": "dev",
                "callbacks": ["https://app.example.com/cb"],
                "web_origins": ["http://app.example.com"],
            }
        )
        store.create_client({"app_type": "m2m", "name": "backend"})
        ids["insecure_client_url"] = spa["client_id"]
        yield sandbox, ids


def settings(sandbox: RunningSandbox, tmp_path: Path, **overrides: Any) -> Settings:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY, encoding="utf-8")
    return Settings(
        profile=ProfileInputs(token=BEARER, base_url=sandbox.url), policy=load_policy(path, "--policy"), **overrides
    )


def short(value: str) -> str:
    from carto_mcp.masking import short_id

    return short_id(value) if value.count(".") == 2 else value


async def test_each_finding_kind_is_reported_exactly_once_ranked_by_risk(
    seeded: tuple[RunningSandbox, dict[str, str]], tmp_path: Path
) -> None:
    sandbox, ids = seeded
    async with connect(settings(sandbox, tmp_path)) as client:
        report = ok(await client.call_tool("audit_credentials", {"expiring_within": "7d"}))

    expected = {kind: short(value) for kind, value in ids.items()}
    assert report["totals"] == dict.fromkeys(report["totals"], 1)
    assert {row["finding"]: row["id"] for row in report["findings"]} == expected
    assert report["total"] == report["count"] == len(expected) == 10
    ranks = [RISK_ORDER.index(row["risk"]) for row in report["findings"]]
    assert ranks == sorted(ranks) and report["findings"][0]["finding"] == "all_sources"
    assert report["scanned"] == {"token": 10, "spa": 1, "m2m": 1}
    assert report["policy"] == str(tmp_path / "policy.toml")
    for row in report["findings"]:
        assert row["suggestion"]["tool"] in ("update_credential", "revoke_credential", "rotate_token")
        assert row["suggestion"]["arguments"]["id"] == row["id"]


async def test_without_a_policy_there_is_no_policy_finding(seeded: tuple[RunningSandbox, dict[str, str]]) -> None:
    sandbox, _ = seeded
    async with connect(Settings(profile=ProfileInputs(token=BEARER, base_url=sandbox.url))) as client:
        report = ok(await client.call_tool("audit_credentials", {"expiring_within": "7d"}))
    assert "policy_violation" not in report["totals"] and report["total"] == 9 and report.get("policy") is None


async def test_the_output_is_bounded_by_limit_with_totals_over_everything(
    seeded: tuple[RunningSandbox, dict[str, str]], tmp_path: Path
) -> None:
    sandbox, _ = seeded
    async with connect(settings(sandbox, tmp_path)) as client:
        result = await client.call_tool("audit_credentials", {"expiring_within": "7d", "limit": 2})
    report = ok(result)
    assert report["count"] == 2 and report["total"] == 10 and sum(report["totals"].values()) == 10
    assert [row["finding"] for row in report["findings"]] == ["all_sources", "policy_violation"]
    assert "Showing the 2 most risky" in " ".join(getattr(c, "text", "") for c in result.content)


async def test_an_audit_right_after_a_list_reads_nothing_again(
    seeded: tuple[RunningSandbox, dict[str, str]], tmp_path: Path
) -> None:
    """The listing cache is shared: a full list, then the audit, send the pages once."""
    sandbox, _ = seeded
    async with connect(settings(sandbox, tmp_path)) as client:
        ok(await client.call_tool("list_credentials", {"text": "nothing-matches-this"}))
        httpx2.delete(f"{sandbox.url}/_sandbox/requests").raise_for_status()
        ok(await client.call_tool("audit_credentials", {}))
        assert httpx2.get(f"{sandbox.url}/_sandbox/requests").json() == {}
        ok(await client.call_tool("audit_credentials", {"fresh": True}))
        assert httpx2.get(f"{sandbox.url}/_sandbox/requests").json() != {}


async def test_the_audit_is_a_read_tool_served_in_read_only_mode(
    seeded: tuple[RunningSandbox, dict[str, str]], tmp_path: Path
) -> None:
    sandbox, _ = seeded
    async with connect(settings(sandbox, tmp_path, read_only=True)) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
        report = ok(await client.call_tool("audit_credentials", {}))
    assert tools["audit_credentials"].annotations.read_only_hint is True  # type: ignore[union-attr]
    assert report["total"] >= 1


def test_the_audit_command_prints_findings_and_fails_on_request(tmp_path: Path) -> None:
    """`carto-mcp audit` on a sandbox file: text for people, JSON for scripts, --fail-on for CI."""
    db = tmp_path / "cli.sqlite3"
    with running_sandbox(db) as sandbox:
        sandbox.store.create_token(TOKENS["all_sources"])

    def audit(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "carto_mcp", "audit", "--sandbox", "--sandbox-db", str(db), *flags],
            capture_output=True,
            text=True,
            timeout=60,
            stdin=subprocess.DEVNULL,
        )

    text, as_json, failing, passing = (
        audit(),
        audit("--json"),
        audit("--fail-on", "critical"),
        audit("--fail-on", "low"),
    )
    assert (
        text.returncode == 0
        and "CRITICAL all_sources: token" in text.stdout
        and "fix: update_credential" in text.stdout
    )
    assert json.loads(as_json.stdout)["totals"] == {"all_sources": 1}
    assert failing.returncode == 1 and passing.returncode == 1
    clean = audit("--fail-on", "critical", "--expiring-within", "1d")
    assert clean.returncode == 1  # the '*' grant is still there: critical
