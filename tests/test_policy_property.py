"""Property: whatever an agent asks, under whatever policy, no credential it gets breaks that policy.

Random policies, random create_token and update_credential arguments, a real server over an
in-memory MCP client, the sandbox over real HTTP. After every call that succeeded, the token is
read back from the sandbox's own store (not from the tool's result) and checked against the
policy's `deny` rules: what exists must comply, whatever the tools said.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from mcp import Client

from carto_mcp.config import Settings
from carto_mcp.models.policy import PolicyFile, TokenFacts, token_violations
from carto_mcp.models.wire import Token
from carto_mcp.policy_file import ActivePolicy
from carto_mcp.profiles import ProfileInputs
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.app import build_server

APIS = ["sql", "maps", "lds"]
SOURCES = ["carto.shared.demo", "carto.private.pay", "carto.*.x_*", "carto.shared.x_*", "*", "SELECT 1", "named_src"]
CONNECTIONS = ["carto_dw", "bq_prod"]


def subset(values: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(values), min_size=1, max_size=len(values), unique=True)


#: Each rule's possible values; a policy below sets one to three of them, so most requests pass the rest.
RULE_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "allowed_apis": subset(APIS),
    "allowed_connections": subset(["carto_dw", "bq_*"]),
    "grant_kinds": subset(["table", "pattern", "query", "named_source", "all"]),
    "min_pattern_segments": st.integers(1, 3),
    "allowed_sources": subset(["carto.shared.*", "carto.*"]),
    "denied_sources": subset(["*.private.*", "*.x_*"]),
    "require_expiry": st.booleans(),
    "max_expiry": st.sampled_from(["7d", "30d", "90d"]),
    "require_referers": st.sampled_from([False, True, "maps"]),
    "max_grants": st.integers(0, 3),
}
token_rules = st.lists(st.sampled_from(sorted(RULE_VALUES)), min_size=1, max_size=3, unique=True).flatmap(
    lambda names: st.fixed_dictionaries({name: RULE_VALUES[name] for name in names})
)
grants = st.lists(
    st.fixed_dictionaries({"connection": st.sampled_from(CONNECTIONS), "source": st.sampled_from(SOURCES)}),
    max_size=3,
)
creates = st.fixed_dictionaries(
    {"apis": st.one_of(subset(APIS), st.just(["imports"])), "grants": grants},
    optional={
        "referers": st.sampled_from([[], ["https://a.example.com/"]]),
        "expiration_date": st.sampled_from(["1d", "30d", "90d", "1y"]),
    },
)
updates = st.one_of(
    st.fixed_dictionaries({"add_grants": grants.filter(bool)}),
    st.fixed_dictionaries({"grants": grants}),
    st.fixed_dictionaries({"apis": subset(APIS)}),
    st.fixed_dictionaries({"referers": st.sampled_from([[], ["https://b.example.com/"]])}),
)


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    with running_sandbox(tmp_path_factory.mktemp("prop") / "prop.sqlite3") as running:
        yield running


def breaches(policy: PolicyFile, stored: dict[str, Any], *, now: datetime, expiry: bool) -> list[str]:
    facts = TokenFacts.of_token(Token.model_validate(stored))
    return [v.text() for v in token_violations(policy.tokens, facts, now=now, check_expiry=expiry) if v.level == "deny"]


def stored_tokens(sandbox: RunningSandbox) -> dict[str, dict[str, Any]]:
    rows, _ = sandbox.store.list_tokens(limit=10_000)
    return {row["token"]: row for row in rows}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rules=token_rules, create=creates, update=updates)
def test_no_created_or_updated_token_breaks_the_policy(
    sandbox: RunningSandbox, tmp_path: Path, rules: dict[str, Any], create: dict[str, Any], update: dict[str, Any]
) -> None:
    policy = PolicyFile.model_validate({"tokens": rules})
    server_settings = Settings(
        profile=ProfileInputs(token="prop-bearer", base_url=sandbox.url),
        policy=ActivePolicy(tmp_path / "random.toml", "--policy", policy),
        yes=True,
    )
    before = set(stored_tokens(sandbox))

    async def scenario() -> tuple[bool, bool]:
        with anyio.fail_after(30):
            async with Client(build_server(server_settings)) as client:
                made = await client.call_tool("create_token", create)
                if made.is_error or made.structured_content is None:
                    return False, False
                ident = made.structured_content["id"]
                changed = await client.call_tool("update_credential", {"kind": "token", "id": ident, **update})
                return True, not changed.is_error

    created, updated = anyio.run(scenario)
    event(f"created={created} updated={updated}")
    now = datetime.now(timezone.utc)
    new = {value: row for value, row in stored_tokens(sandbox).items() if value not in before}
    assert len(new) == (1 if created else 0)
    for row in new.values():
        # An update never changes the expiry, so a token that passed at creation keeps passing it.
        assert breaches(policy, row, now=now, expiry=not updated) == [], (rules, create, update)
