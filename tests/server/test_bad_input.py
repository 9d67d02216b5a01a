"""Bad input through the MCP layer: a tool error naming the field, never a traceback, and the server lives on."""

from __future__ import annotations

import json
from typing import Any

import pytest

from carto_mcp.sandbox.server import RunningSandbox

from .conftest import connect, error_text, grant, ok, settings_for, token_count

pytestmark = pytest.mark.anyio

G = [grant()]

#: (tool, arguments, words the error text must contain). TOKEN/SPA/M2M are replaced by real ids.
CASES: list[Any] = [
    pytest.param("list_credentials", {"kind": "bogus"}, ["kind"], id="unknown-list-kind"),
    pytest.param("get_credential", {"kind": "tokenz", "id": "TOKEN"}, ["kind"], id="unknown-kind"),
    pytest.param("revoke_credential", {"kind": "oauth", "id": "SPA"}, ["kind"], id="list-only-kind-on-revoke"),
    pytest.param(
        "get_credential", {"kind": "token", "id": "deadbeef"}, ["deadbeef", "list_credentials"], id="unknown-token-id"
    ),
    pytest.param(
        "get_credential", {"kind": "spa", "id": "NoSuchClient123"}, ["NoSuchClient123"], id="unknown-client-id"
    ),
    pytest.param("revoke_credential", {"kind": "token", "id": "deadbeef"}, ["deadbeef"], id="revoke-unknown-id"),
    pytest.param(
        "update_credential", {"kind": "m2m", "id": "nope1234", "title": "x"}, ["nope1234"], id="update-unknown-id"
    ),
    pytest.param("get_credential", {"kind": "spa", "id": "M2M"}, ["kind", "m2m"], id="m2m-id-as-spa"),
    pytest.param("get_credential", {"kind": "token", "id": "a/b"}, ["id"], id="id-with-slash"),
    pytest.param("create_token", {"grants": G, "apis": ["imports", "sql"]}, ["apis", "imports"], id="imports-with-sql"),
    pytest.param(
        "create_token", {"grants": [grant("table*")], "apis": ["maps"]}, ["grants", "table*"], id="pattern-without-dot"
    ),
    pytest.param("create_token", {"grants": [grant("carto.**")], "apis": ["maps"]}, ["grants", "**"], id="double-star"),
    pytest.param("create_token", {"apis": ["maps"]}, ["grants"], id="maps-without-grant"),
    pytest.param("create_token", {"grants": G, "apis": []}, ["apis"], id="no-apis"),
    pytest.param(
        "create_token",
        {"grants": G, "apis": ["maps"], "expiration_date": "2020-01-01"},
        ["expiration_date", "past"],
        id="expiry-in-past",
    ),
    pytest.param(
        "create_token",
        {"grants": G, "apis": ["maps"], "expiration_date": "tomorrow"},
        ["expiration_date"],
        id="expiry-not-a-date",
    ),
    pytest.param(
        "create_token",
        {"grants": G, "apis": ["maps"], "expiration_date": "2027-02-30"},
        ["expiration_date"],
        id="expiry-impossible-date",
    ),
    pytest.param(
        "update_credential",
        {"kind": "token", "id": "TOKEN", "expiration_date": "30d"},
        ["expiration_date"],
        id="expiry-on-update",
    ),
    pytest.param("update_credential", {"kind": "token", "id": "TOKEN"}, ["nothing to change"], id="update-nothing"),
    pytest.param(
        "update_credential", {"kind": "token", "id": "TOKEN", "title": "x"}, ["title"], id="client-field-on-token"
    ),
    pytest.param(
        "update_credential",
        {"kind": "m2m", "id": "M2M", "callbacks": ["https://a.example/cb"]},
        ["callbacks"],
        id="spa-field-on-m2m",
    ),
    pytest.param(
        "update_credential",
        {"kind": "token", "id": "TOKEN", "remove_grants": [grant("carto.x.y")]},
        ["remove_grants"],
        id="remove-absent-grant",
    ),
    pytest.param("create_spa", {}, ["title"], id="spa-missing-title"),
    pytest.param("create_m2m", {}, ["title"], id="m2m-missing-title"),
    pytest.param("create_spa", {"title": ""}, ["title"], id="spa-empty-title"),
    pytest.param(
        "create_token", {"grants": G, "apis": ["maps"], "referers": ["myapp.com"]}, ["referer"], id="referer-not-a-url"
    ),
    pytest.param(
        "create_token",
        {"grants": G, "apis": ["maps"], "referers": ["javascript:alert(1)"]},
        ["referer"],
        id="referer-bad-scheme",
    ),
    pytest.param("create_spa", {"title": "x", "callbacks": ["ftp:/bad"]}, ["callbacks"], id="callback-malformed"),
    pytest.param("create_spa", {"title": "x", "login_uri": "not a url"}, ["login_uri"], id="login-uri-malformed"),
    pytest.param(
        "update_credential",
        {"kind": "spa", "id": "SPA", "web_origins": ["//no-scheme"]},
        ["web_origins"],
        id="update-web-origin-malformed",
    ),
    pytest.param(
        "create_token", {"grants": G, "apis": ["maps"], "expiry": "7d"}, ["expiry", "expiration_date"], id="typo-expiry"
    ),
    pytest.param("list_credentials", {"kind": "token", "page": 2}, ["page", "cursor"], id="unknown-argument"),
    pytest.param(
        "revoke_credential",
        {"kind": "token", "id": "TOKEN", "approval": True},
        ["approval"],
        id="hidden-resolver-argument",
    ),
    pytest.param("create_token", {"grants": G, "apis": "maps"}, ["apis"], id="apis-not-a-list"),
    pytest.param("create_token", {"grants": "carto_dw", "apis": ["maps"]}, ["grants"], id="grants-not-a-list"),
    pytest.param(
        "create_token",
        {"grants": [{"connection": "carto_dw"}], "apis": ["maps"]},
        ["source"],
        id="grant-missing-source",
    ),
    pytest.param(
        "create_token", {"grants": [{**grant(), "table": "x"}], "apis": ["maps"]}, ["table"], id="grant-extra-key"
    ),
    pytest.param(
        "create_token", {"grants": G, "apis": ["maps"], "dry_run": "perhaps"}, ["dry_run"], id="bool-not-a-bool"
    ),
    pytest.param("list_credentials", {"limit": "many"}, ["limit"], id="limit-not-an-int"),
    pytest.param("list_credentials", {"limit": 0}, ["limit"], id="limit-too-small"),
    pytest.param("list_credentials", {"limit": 501}, ["limit"], id="limit-too-large"),
    pytest.param("list_credentials", {"expiring_within": "soon"}, ["expiring_within"], id="expiring-within-garbage"),
    pytest.param("list_credentials", {"cursor": "garbage!!"}, ["cursor"], id="cursor-garbage"),
    pytest.param("list_credentials", {"cursor": "eyJ2IjogMSwgImsiOiAwfQ"}, ["cursor"], id="cursor-truncated-json"),
    pytest.param(
        "create_token",
        {"grants": G, "apis": ["maps"], "secret_variable": "1BAD"},
        ["secret_variable"],
        id="bad-variable-name",
    ),
    pytest.param(
        "create_token",
        {"grants": G, "apis": ["maps"], "secret_output_file": "relative.env"},
        ["secret_output_file"],
        id="relative-secret-file",
    ),
]


@pytest.mark.parametrize(("tool", "arguments", "words"), CASES)
async def test_bad_input_is_a_tool_error_naming_the_field(
    sandbox: RunningSandbox, tool: str, arguments: dict[str, Any], words: list[str]
) -> None:
    """Each bad call is an isError result that names what to fix; nothing is created; the next call works."""
    async with connect(settings_for(sandbox)) as client:
        token = ok(await client.call_tool("create_token", {"grants": G, "apis": ["sql", "maps"]}))
        ids = {
            "TOKEN": token["id"],
            "SPA": ok(await client.call_tool("create_spa", {"title": "web"}))["id"],
            "M2M": ok(await client.call_tool("create_m2m", {"title": "svc"}))["id"],
        }
        raw = json.dumps(arguments)
        for placeholder, value in ids.items():
            raw = raw.replace(f'"{placeholder}"', json.dumps(value))
        before = (token_count(sandbox), sandbox.store.list_clients()[1], sandbox.store.get_token(token["token"]))

        text = error_text(await client.call_tool(tool, json.loads(raw)))

        for word in words:
            assert word.lower() in text.lower(), f"{word!r} not in {text!r}"
        assert "Traceback" not in text and 'File "' not in text
        assert token["token"] not in text
        after = (token_count(sandbox), sandbox.store.list_clients()[1], sandbox.store.get_token(token["token"]))
        assert after == before
        listed = ok(await client.call_tool("list_credentials", {}))
    assert listed["count"] == 3


async def test_an_error_names_every_bad_field_at_once(sandbox: RunningSandbox) -> None:
    """Several mistakes in one call are reported together, so the model fixes them in one retry."""
    async with connect(settings_for(sandbox)) as client:
        text = error_text(await client.call_tool("list_credentials", {"kind": "bogus", "limit": 0}))
    assert "kind" in text and "limit" in text


async def test_a_cursor_from_another_listing_is_refused(sandbox: RunningSandbox) -> None:
    """A cursor is bound to its kind and filters; reusing it with others is an error, not a wrong page."""
    sandbox.store.seed_tokens(3)
    async with connect(settings_for(sandbox)) as client:
        cursor = ok(await client.call_tool("list_credentials", {"kind": "token", "limit": 1}))["next_cursor"]
        assert cursor
        text = error_text(await client.call_tool("list_credentials", {"kind": "spa", "limit": 1, "cursor": cursor}))
        assert "cursor" in text
        page = ok(await client.call_tool("list_credentials", {"kind": "token", "limit": 1, "cursor": cursor}))
    assert page["rows"][0]["name"] == "seed-00001"


async def test_validation_errors_do_not_repeat_the_input(sandbox: RunningSandbox) -> None:
    """A rejected argument is named but its value is not echoed back (it may be a secret pasted by mistake)."""
    async with connect(settings_for(sandbox)) as client:
        value = ok(await client.call_tool("create_token", {"grants": G, "apis": ["maps"]}))["token"]
        text = error_text(await client.call_tool("get_credential", {"kind": "token", "id": f"Bearer {value}"}))
        typed = error_text(await client.call_tool("create_token", {"grants": G, "apis": value}))
    assert "id" in text and value not in text
    assert "apis" in typed and value not in typed
    assert "input_value" not in text + typed
