"""Policy files as a person meets them: `policy check`, `serve --policy`, `doctor`, and the hourly window."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from carto_mcp.credentials import Guard
from carto_mcp.errors import PolicyError, PolicyRefused
from carto_mcp.policy_file import load_policy, parse_policy

TIMEOUT = 60
BAD = """\
description = "three mistakes"
[tokens]
max_expiry = 90
allowed_apis = ["mapz"]

[oauth]
alow_m2m = false
"""


def carto_mcp(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "carto_mcp", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def bad(tmp_path: Path) -> Path:
    path = tmp_path / "bad.toml"
    path.write_text(BAD, encoding="utf-8")
    return path


def test_policy_check_lists_every_problem_with_its_line_and_exits_1(bad: Path) -> None:
    done = carto_mcp("policy", "check", str(bad))
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"{bad}:3: tokens.max_expiry: Input should be a valid string",
        f"{bad}:4: tokens.allowed_apis.0: Input should be 'sql', 'maps', 'imports' or 'lds'",
        f"{bad}:7: unknown key 'oauth.alow_m2m' (a typo? see the README's Policy section for every rule)",
    ]


def test_policy_check_prints_a_valid_files_rules_and_exits_0(tmp_path: Path) -> None:
    path = tmp_path / "good.toml"
    path.write_text('[tokens]\nmax_expiry = "90d"\nwarn = ["max_expiry"]\n', encoding="utf-8")
    done = carto_mcp("policy", "check", str(path))
    as_json = carto_mcp("policy", "check", str(path), "--json")
    assert done.returncode == 0 and "valid" in done.stdout
    assert "Tokens may live at most 90d (warning only)." in done.stdout
    assert json.loads(as_json.stdout)["rules"] == {"tokens": {"max_expiry": "90d", "warn": ["max_expiry"]}}


def test_a_toml_syntax_error_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('[tokens]\nmax_expiry = "90d\n', encoding="utf-8")
    done = carto_mcp("policy", "check", str(path))
    assert done.returncode == 1 and f"{path}:2: not valid TOML" in done.stdout


def test_an_invalid_policy_stops_serve_with_the_line_never_running_without_it(bad: Path) -> None:
    done = carto_mcp("serve", "--sandbox", "--throwaway", "--policy", str(bad))
    assert done.returncode == 1
    assert f"policy file {bad}:3: tokens.max_expiry" in done.stderr and "(and 2 more)" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_policy_named_by_the_environment_that_is_missing_stops_serve(tmp_path: Path) -> None:
    env = {"PATH": "", "HOME": str(tmp_path), "CARTO_MCP_POLICY": str(tmp_path / "nowhere.toml")}
    done = subprocess.run(
        [sys.executable, "-m", "carto_mcp", "serve", "--sandbox", "--throwaway"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert done.returncode == 1 and "nowhere.toml cannot be read" in done.stderr


def test_doctor_shows_the_active_policy_and_where_it_came_from(tmp_path: Path, bad: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[tokens]\nallowed_apis = ["maps"]\n\n[profiles.staging.tokens]\nmax_expiry = "7d"\n')
    shown = json.loads(carto_mcp("doctor", "--offline", "--sandbox", "--json", "--policy", str(good)).stdout)
    failed = json.loads(carto_mcp("doctor", "--offline", "--sandbox", "--json", "--policy", str(bad)).stdout)
    none = json.loads(carto_mcp("doctor", "--offline", "--sandbox", "--json").stdout)

    def policy_check(report: dict[str, object]) -> dict[str, str]:
        (found,) = [c for c in report["checks"] if c["name"] == "policy"]  # type: ignore[attr-defined, index]
        return found  # type: ignore[no-any-return]

    assert policy_check(shown)["status"] == "ok"
    assert (
        policy_check(shown)["detail"]
        == f"{good} (from --policy): 1 rule(s) for every profile; own rules for profile(s) staging"
    )
    assert policy_check(failed)["status"] == "fail" and f"{bad}:3" in policy_check(failed)["detail"]
    assert policy_check(none)["detail"].startswith("none: no --policy or CARTO_MCP_POLICY")


def test_a_profile_section_overrides_only_the_keys_it_sets() -> None:
    policy = parse_policy(
        '[tokens]\nallowed_apis = ["maps"]\nmax_expiry = "1y"\n[profiles.staging.tokens]\nmax_expiry = "7d"\n'
    )
    staging, other = policy.for_profile("staging").tokens, policy.for_profile("production").tokens
    assert (staging.allowed_apis, staging.max_expiry) == (["maps"], "7d")
    assert (other.allowed_apis, other.max_expiry) == (["maps"], "1y")


def test_an_unknown_rule_under_warn_is_an_error_naming_the_rules() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy('[tokens]\nwarn = ["max_expiri"]\n', "p.toml")
    assert "p.toml:2: tokens.warn: unknown rule 'max_expiri'" in caught.value.problems[0]


def test_max_expiry_must_be_a_span_not_a_date() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy('[tokens]\nmax_expiry = "2030-01-01"\n', "p.toml")
    assert "must be a span like 90d" in caught.value.message


def test_the_hourly_window_slides(tmp_path: Path) -> None:
    """A creation an hour old no longer counts; a warn-level limit only warns."""
    now = [0.0]
    path = tmp_path / "limits.toml"
    path.write_text("[limits]\ncreations_per_hour = 2\nrevocations_per_hour = 1\nwarn = ['revocations_per_hour']\n")
    guard = Guard(load_policy(path, "--policy").for_profile(None), str(path), clock=lambda: now[0])

    assert guard.count_creation() == [] and guard.count_creation() == []
    now[0] = 3599.0
    with pytest.raises(PolicyRefused) as caught:
        guard.count_creation()
    now[0] = 3600.0
    assert guard.count_creation() == []
    assert guard.count_revocation() == []
    (warning,) = guard.count_revocation()

    assert caught.value.rules == ("limits.creations_per_hour",) and "about 1 minute" in str(caught.value)
    assert warning.startswith("policy warning: limits.revocations_per_hour")
