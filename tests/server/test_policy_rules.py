"""The policy file, enforced: each rule refuses what breaks it before CARTO hears of it, and passes the rest.

Every server here talks to a sandbox whose request counter is the witness that a refused
request never reached the API: no POST, PATCH or DELETE is counted for it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from carto_mcp.config import Settings
from carto_mcp.policy_file import load_policy
from carto_mcp.profiles import ProfileInputs
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.app import build_server

from .conftest import BEARER, connect, error_text, grant, ok, text_of

pytestmark = pytest.mark.anyio

README = Path(__file__).parents[2] / "README.md"
WRITES = ("POST ", "PATCH ", "DELETE ")


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path / "policy.sqlite3", faults=True) as running:
        yield running


def writes(sandbox: RunningSandbox) -> dict[str, int]:
    """The mutating requests the sandbox has served since the last reset."""
    counts: dict[str, int] = httpx2.get(f"{sandbox.url}/_sandbox/requests").json()
    return {k: v for k, v in counts.items() if k.startswith(WRITES)}


def forget(sandbox: RunningSandbox) -> None:
    httpx2.delete(f"{sandbox.url}/_sandbox/requests").raise_for_status()


def with_policy(sandbox: RunningSandbox, tmp_path: Path, toml: str, **overrides: Any) -> Settings:
    path = tmp_path / "policy.toml"
    path.write_text(toml, encoding="utf-8")
    return Settings(
        profile=ProfileInputs(token=BEARER, base_url=sandbox.url),
        policy=load_policy(path, "--policy"),
        yes=True,
        **overrides,
    )


def maps_token(**fields: Any) -> dict[str, Any]:
    """A token every policy below accepts, unless a field says otherwise."""
    return {
        "apis": ["maps"],
        "grants": [grant("carto.shared.demo_table")],
        "referers": ["https://maps.example.com", "https://maps.example.com/"],
        "expiration_date": "30d",
        **fields,
    }


SPA = {"title": "web", "callbacks": ["https://maps.example.com/cb"], "web_origins": ["https://maps.example.com"]}

#: (rule, policy, tool, arguments that break it, arguments that pass)
CASES: list[tuple[str, str, str, dict[str, Any], dict[str, Any]]] = [
    (
        "tokens.allowed_apis",
        '[tokens]\nallowed_apis = ["maps"]',
        "create_token",
        maps_token(apis=["maps", "sql"], grants=[grant("*")]),
        maps_token(),
    ),
    (
        "tokens.allowed_connections",
        '[tokens]\nallowed_connections = ["carto_dw"]',
        "create_token",
        maps_token(grants=[grant("carto.shared.demo_table", connection="bq_prod")]),
        maps_token(),
    ),
    (
        "tokens.grant_kinds",
        '[tokens]\ngrant_kinds = ["table"]',
        "create_token",
        maps_token(grants=[grant("*")]),
        maps_token(),
    ),
    (
        "tokens.min_pattern_segments",
        "[tokens]\nmin_pattern_segments = 2",
        "create_token",
        maps_token(grants=[grant("carto.*.demo_*")]),
        maps_token(grants=[grant("carto.shared.demo_*")]),
    ),
    (
        "tokens.allowed_sources",
        '[tokens]\nallowed_sources = ["carto.shared.*"]',
        "create_token",
        maps_token(grants=[grant("carto.private.payroll")]),
        maps_token(),
    ),
    (
        "tokens.denied_sources",
        '[tokens]\ndenied_sources = ["*.private.*"]',
        "create_token",
        maps_token(grants=[grant("carto.private.payroll")]),
        maps_token(),
    ),
    (
        "tokens.require_expiry",
        "[tokens]\nrequire_expiry = true",
        "create_token",
        {k: v for k, v in maps_token().items() if k != "expiration_date"},
        maps_token(),
    ),
    (
        "tokens.max_expiry",
        '[tokens]\nmax_expiry = "90d"',
        "create_token",
        maps_token(expiration_date="1y"),
        maps_token(expiration_date="90d"),
    ),
    (
        "tokens.require_referers",
        '[tokens]\nrequire_referers = "maps"',
        "create_token",
        maps_token(referers=[]),
        maps_token(),
    ),
    (
        "tokens.max_grants",
        "[tokens]\nmax_grants = 1",
        "create_token",
        maps_token(grants=[grant("carto.shared.a"), grant("carto.shared.b")]),
        maps_token(),
    ),
    ("oauth.allow_spa", "[oauth]\nallow_spa = false", "create_spa", SPA, {}),
    ("oauth.allow_m2m", "[oauth]\nallow_m2m = false", "create_m2m", {"title": "backend"}, {}),
    (
        "oauth.https_only",
        "[oauth]\nhttps_only = true",
        "create_spa",
        {**SPA, "callbacks": ["http://maps.example.com/cb"]},
        SPA,
    ),
    (
        "oauth.allowed_hosts",
        '[oauth]\nallowed_hosts = ["*.example.com"]',
        "create_spa",
        {**SPA, "web_origins": ["https://evil.test"]},
        SPA,
    ),
    (
        "oauth.allow_localhost",
        "[oauth]\nallow_localhost = false",
        "create_spa",
        {**SPA, "callbacks": ["http://localhost:3000/cb"]},
        SPA,
    ),
]


@pytest.mark.parametrize(("rule", "toml", "tool", "breaking", "passing"), CASES, ids=[c[0] for c in CASES])
async def test_each_rule_refuses_what_breaks_it_before_any_request_and_passes_the_rest(
    counted: RunningSandbox, tmp_path: Path, rule: str, toml: str, tool: str, breaking: dict[str, Any], passing: Any
) -> None:
    async with connect(with_policy(counted, tmp_path, toml)) as client:
        forget(counted)
        refused = error_text(await client.call_tool(tool, breaking))
        assert writes(counted) == {}
        if passing:
            ok(await client.call_tool(tool, passing))

    assert rule in refused and str(tmp_path / "policy.toml") in refused
    assert "Refused by the policy" in refused and "dry_run=true lists them all" in refused


async def test_dry_run_lists_every_rule_a_request_breaks_at_once(counted: RunningSandbox, tmp_path: Path) -> None:
    toml = (
        '[tokens]\nallowed_apis = ["maps"]\ngrant_kinds = ["table"]\nmax_expiry = "90d"\n'
        'require_referers = "maps"\nmax_grants = 1\nwarn = ["max_grants"]'
    )
    request = maps_token(
        apis=["maps", "sql"], grants=[grant("*"), grant("carto.shared.x")], referers=[], expiration_date="1y"
    )
    async with connect(with_policy(counted, tmp_path, toml)) as client:
        forget(counted)
        result = await client.call_tool("create_token", {**request, "dry_run": True})
        assert writes(counted) == {}
    dry = ok(result)

    found = {(v["rule"], v["level"]) for v in dry["policy_violations"]}
    assert found == {
        ("tokens.allowed_apis", "deny"),
        ("tokens.grant_kinds", "deny"),
        ("tokens.max_expiry", "deny"),
        ("tokens.require_referers", "deny"),
        ("tokens.max_grants", "warn"),
    }
    assert all(v["fix"] for v in dry["policy_violations"])
    assert dry["status"] == "dry_run" and "the policy would refuse this request" in text_of(result)


async def test_a_warn_rule_lets_the_request_through_and_says_so(counted: RunningSandbox, tmp_path: Path) -> None:
    toml = '[tokens]\nmax_expiry = "30d"\nwarn = ["max_expiry"]'
    async with connect(with_policy(counted, tmp_path, toml)) as client:
        created = ok(await client.call_tool("create_token", maps_token(expiration_date="1y")))

    assert created["status"] == "created"
    assert any(w.startswith("policy warning: tokens.max_expiry") for w in created["warnings"])


async def test_an_update_is_checked_on_the_token_it_would_leave(counted: RunningSandbox, tmp_path: Path) -> None:
    """Adding an all-sources grant is refused under grant_kinds; the PATCH never happens; a rename passes."""
    toml = '[tokens]\ngrant_kinds = ["table"]\nmax_expiry = "90d"'
    async with connect(with_policy(counted, tmp_path, toml)) as client:
        created = ok(await client.call_tool("create_token", maps_token()))
        forget(counted)
        widened = {"kind": "token", "id": created["id"], "add_grants": [grant("*")]}
        refused = error_text(await client.call_tool("update_credential", widened))
        assert writes(counted) == {}
        renamed = ok(await client.call_tool("update_credential", {"kind": "token", "id": created["id"], "name": "x"}))

    assert "tokens.grant_kinds" in refused
    assert renamed["status"] == "updated"


async def test_an_old_token_beyond_max_expiry_can_still_be_narrowed(counted: RunningSandbox, tmp_path: Path) -> None:
    """Expiry rules are not applied to updates: CARTO fixes the expiry at creation."""
    async with connect(with_policy(counted, tmp_path, "")) as client:
        created = ok(await client.call_tool("create_token", maps_token(expiration_date="1y")))
    async with connect(with_policy(counted, tmp_path, '[tokens]\nmax_expiry = "90d"')) as client:
        narrowed = ok(
            await client.call_tool(
                "update_credential", {"kind": "token", "id": created["id"], "referers": ["https://maps.example.com/"]}
            )
        )
    assert narrowed["status"] == "updated"


async def test_a_client_update_is_checked_on_its_urls(counted: RunningSandbox, tmp_path: Path) -> None:
    async with connect(with_policy(counted, tmp_path, '[oauth]\nallowed_hosts = ["maps.example.com"]')) as client:
        spa = ok(await client.call_tool("create_spa", SPA))
        forget(counted)
        moved = {"kind": "spa", "id": spa["id"], "callbacks": ["https://elsewhere.test/cb"]}
        refused = error_text(await client.call_tool("update_credential", moved))
        assert writes(counted) == {}
    assert "oauth.allowed_hosts" in refused and "elsewhere.test" in refused


async def test_a_rotation_replacement_must_follow_the_policy(counted: RunningSandbox, tmp_path: Path) -> None:
    """A 1-year token cannot be rotated into another 1-year token under max_expiry 90d; with 30d it can."""
    async with connect(with_policy(counted, tmp_path, "")) as client:
        old = ok(await client.call_tool("create_token", maps_token(expiration_date="1y")))
    async with connect(with_policy(counted, tmp_path, '[tokens]\nmax_expiry = "90d"')) as client:
        forget(counted)
        refused = error_text(await client.call_tool("rotate_token", {"id": old["id"]}))
        assert writes(counted) == {}
        rotated = ok(await client.call_tool("rotate_token", {"id": old["id"], "expiration_date": "30d"}))

    assert "tokens.max_expiry" in refused and "use 90d or less" in refused
    assert rotated["status"] == "rotated"


async def test_hourly_limits_refuse_the_request_past_the_allowance(counted: RunningSandbox, tmp_path: Path) -> None:
    toml = "[limits]\ncreations_per_hour = 2\nrevocations_per_hour = 1"
    async with connect(with_policy(counted, tmp_path, toml)) as client:
        first = ok(await client.call_tool("create_token", maps_token()))
        ok(await client.call_tool("create_spa", SPA))
        forget(counted)
        third = error_text(await client.call_tool("create_token", maps_token()))
        assert writes(counted) == {}
        ok(await client.call_tool("revoke_credential", {"kind": "token", "id": first["id"]}))
        others = ok(await client.call_tool("list_credentials", {"kind": "spa"}))["rows"]
        forget(counted)
        second_revoke = error_text(await client.call_tool("revoke_credential", {"kind": "spa", "id": others[0]["id"]}))
        assert writes(counted) == {}

    assert "limits.creations_per_hour" in third and "2 creations in the last hour" in third
    assert "limits.revocations_per_hour" in second_revoke


async def test_a_profile_section_overrides_the_top_level_for_that_profile(
    counted: RunningSandbox, tmp_path: Path
) -> None:
    """The sandbox-less profile here is 'default' (a --token profile): its section tightens max_expiry."""
    toml = '[tokens]\nmax_expiry = "1y"\n\n[profiles.default.tokens]\nmax_expiry = "7d"'
    async with connect(with_policy(counted, tmp_path, toml)) as client:
        refused = error_text(await client.call_tool("create_token", maps_token(expiration_date="30d")))
        ok(await client.call_tool("create_token", maps_token(expiration_date="7d")))
    assert "beyond max_expiry 7d" in refused


async def test_a_refusal_is_audited_as_refused(counted: RunningSandbox, tmp_path: Path) -> None:
    log = tmp_path / "audit.jsonl"
    settings = with_policy(counted, tmp_path, '[tokens]\nallowed_apis = ["maps"]', audit_log=log)
    async with connect(settings) as client:
        error_text(await client.call_tool("create_token", maps_token(apis=["sql"], grants=[grant("*")])))

    (line,) = [json.loads(raw) for raw in log.read_text().splitlines()]
    assert (line["tool"], line["outcome"], line["error"]) == ("create_token", "refused", "PolicyRefused")


async def test_the_policy_resource_says_the_rules_in_words_and_as_json(counted: RunningSandbox, tmp_path: Path) -> None:
    toml = '[tokens]\nmax_expiry = "90d"\nrequire_referers = "maps"\n[oauth]\nallow_m2m = false'
    async with connect(with_policy(counted, tmp_path, toml)) as client:
        text = (await client.read_resource("carto://policy")).contents[0].text  # type: ignore[union-attr]
        prompt = await client.get_prompt(
            "least_privilege_map_token", {"source": "carto.shared.x", "site": "https://a.b"}
        )
    async with connect(Settings(profile=ProfileInputs(token=BEARER, base_url=counted.url))) as client:
        none = (await client.read_resource("carto://policy")).contents[0].text  # type: ignore[union-attr]

    assert "Tokens may live at most 90d." in text and "No M2M OAuth clients may be created." in text
    as_json = json.loads(text.split("```json\n", 1)[1].split("\n```", 1)[0])
    assert as_json["rules"] == {
        "tokens": {"max_expiry": "90d", "require_referers": "maps"},
        "oauth": {"allow_m2m": False},
    }
    assert "carto://policy" in prompt.messages[0].content.text  # type: ignore[union-attr]
    assert "No policy is active" in none


async def test_a_secret_is_never_written_over_the_policy_file(counted: RunningSandbox, tmp_path: Path) -> None:
    settings = with_policy(counted, tmp_path, "")
    async with connect(settings) as client:
        forget(counted)
        refused = error_text(
            await client.call_tool("create_token", maps_token(secret_output_file=str(tmp_path / "policy.toml")))
        )
        assert writes(counted) == {}
    assert "secret_output_file" in refused
    assert (tmp_path / "policy.toml").read_text() == ""


def readme_policies() -> list[str]:
    """The ```toml blocks of the README's Policy section."""
    section = README.read_text(encoding="utf-8").split("\n## Policy\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```toml\n(.*?)```", section, flags=re.S)


def test_the_readme_examples_are_valid_policies(tmp_path: Path) -> None:
    examples = readme_policies()
    assert len(examples) == 2
    for i, toml in enumerate(examples):
        path = tmp_path / f"example{i}.toml"
        path.write_text(toml, encoding="utf-8")
        policy = load_policy(path, "--policy")
        assert policy.rules.tokens.require_expiry


async def test_the_readme_public_maps_policy_works_as_written(counted: RunningSandbox, tmp_path: Path) -> None:
    """What its description promises: maps-only, bound to our sites, on our sources, 90 days at most."""
    async with connect(with_policy(counted, tmp_path, readme_policies()[0])) as client:
        good = maps_token(grants=[grant("ourproject.public_maps.airports")])
        ok(await client.call_tool("create_token", good))
        for bad in (
            {**good, "grants": [grant("*")]},
            {**good, "referers": []},
            {**good, "expiration_date": "6m"},
            {**good, "apis": ["sql"]},
        ):
            assert "Refused by the policy" in error_text(await client.call_tool("create_token", bad))
        assert "oauth.allow_m2m" in error_text(await client.call_tool("create_m2m", {"title": "x"}))


def test_the_policy_is_not_a_tool_argument_anywhere(counted: RunningSandbox, tmp_path: Path) -> None:
    """No tool takes anything that could name, load or change the policy."""
    tools = anyio.run(build_server(with_policy(counted, tmp_path, "")).list_tools)
    for tool in tools:
        assert not any("polic" in name for name in tool.input_schema.get("properties", {})), tool.name


async def test_without_a_policy_nothing_is_refused_or_counted(counted: RunningSandbox) -> None:
    settings = Settings(profile=ProfileInputs(token=BEARER, base_url=counted.url), yes=True)
    async with Client(build_server(settings)) as client:
        for _ in range(3):
            ok(await client.call_tool("create_token", maps_token(apis=["sql", "maps"], grants=[grant("*")])))


async def test_a_rotation_the_policy_refuses_is_never_put_to_the_person(
    counted: RunningSandbox, tmp_path: Path
) -> None:
    """With an eliciting client and no --yes, the replacement is checked before the person is asked."""
    from mcp_types import ElicitResult

    asked: list[str] = []

    async def asker(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"confirm": True})

    async with connect(with_policy(counted, tmp_path, "")) as client:
        old = ok(await client.call_tool("create_token", maps_token(expiration_date="1y")))
    settings = with_policy(counted, tmp_path, '[tokens]\nmax_expiry = "90d"')
    async with connect(replace(settings, yes=False), elicitation_callback=asker) as client:
        forget(counted)
        refused = error_text(await client.call_tool("rotate_token", {"id": old["id"]}))
        assert writes(counted) == {}
        rotated = ok(await client.call_tool("rotate_token", {"id": old["id"], "expiration_date": "60d"}))

    assert "tokens.max_expiry" in refused
    assert len(asked) == 1 and rotated["status"] == "rotated"
