"""Every tool through an in-memory MCP client, against the sandbox over real loopback HTTP."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from carto_mcp.config import Settings
from carto_mcp.profiles import ProfileInputs
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.tools import TOOLS

from .conftest import BEARER, TABLE, client_count, connect, grant, ok, settings_for, token_count

ALL_TOOLS = [spec.name for spec in TOOLS]

pytestmark = pytest.mark.anyio

CORE_TOOLS = (
    "list_credentials",
    "get_credential",
    "create_token",
    "create_spa",
    "create_m2m",
    "update_credential",
    "revoke_credential",
)

SPA_ARGS = {
    "title": "My Web App",
    "login_uri": "https://myapp.com/login",
    "callbacks": ["https://myapp.com/callback"],
    "logout_urls": ["https://myapp.com/logout"],
    "web_origins": ["https://myapp.com"],
    "allowed_origins": ["https://myapp.com"],
}


def utc(days: float) -> datetime:
    return datetime.now(timezone.utc) + timedelta(days=days)


# --- tools/list ------------------------------------------------------------------------------


async def test_tools_list_returns_every_registered_tool_with_titles(sandbox: RunningSandbox) -> None:
    """tools/list has exactly the server's tools, the seven credential tools among them, each titled with an example."""
    async with connect(settings_for(sandbox)) as client:
        tools = (await client.list_tools()).tools
    names = [t.name for t in tools]
    assert sorted(names) == sorted(ALL_TOOLS) and len(names) == len(set(names))
    assert set(CORE_TOOLS) <= set(names)
    for tool in tools:
        assert tool.title, tool.name
        assert tool.description and "Example" in tool.description, tool.name
        assert tool.annotations is not None and tool.annotations.title == tool.title


async def test_tool_annotations_mark_reads_destructive_calls_and_idempotence(sandbox: RunningSandbox) -> None:
    """Reads are readOnly+idempotent, revoke is destructive+idempotent, creates are not idempotent; all open-world."""
    async with connect(settings_for(sandbox)) as client:
        notes = {t.name: t.annotations for t in (await client.list_tools()).tools if t.name in CORE_TOOLS}
    for name in ("list_credentials", "get_credential"):
        assert notes[name].read_only_hint is True
        assert notes[name].idempotent_hint is True
        assert not notes[name].destructive_hint
    assert notes["revoke_credential"].destructive_hint is True
    assert notes["revoke_credential"].idempotent_hint is True
    assert notes["revoke_credential"].read_only_hint is False
    assert notes["update_credential"].idempotent_hint is True
    assert notes["update_credential"].read_only_hint is False
    for name in ("create_token", "create_spa", "create_m2m"):
        assert notes[name].read_only_hint is False
        assert notes[name].destructive_hint is False
        assert notes[name].idempotent_hint is False
    assert all(n.open_world_hint is True for n in notes.values())


async def test_input_schemas_use_enums_for_kinds_and_apis(sandbox: RunningSandbox) -> None:
    """Kinds and APIs are enums in the schema the model reads, not free text."""
    async with connect(settings_for(sandbox)) as client:
        schemas = {t.name: t.input_schema for t in (await client.list_tools()).tools}
    assert schemas["list_credentials"]["properties"]["kind"]["enum"] == [
        "all",
        "token",
        "tokens",
        "spa",
        "m2m",
        "oauth",
    ]
    for name in ("get_credential", "update_credential", "revoke_credential"):
        assert schemas[name]["properties"]["kind"]["enum"] == ["token", "spa", "m2m"]
    assert schemas["create_token"]["properties"]["apis"]["items"]["enum"] == ["sql", "maps", "imports", "lds"]
    grant_schema = schemas["create_token"]["$defs"]["Grant"]
    assert grant_schema["required"] == ["connection", "source"]
    assert grant_schema["additionalProperties"] is False


async def test_input_schemas_list_the_required_arguments(sandbox: RunningSandbox) -> None:
    """`required` holds exactly the arguments a call cannot do without; the approval resolver is hidden."""
    async with connect(settings_for(sandbox)) as client:
        schemas = {t.name: t.input_schema for t in (await client.list_tools()).tools}
    assert sorted(schemas["list_credentials"].get("required", [])) == []
    assert sorted(schemas["get_credential"]["required"]) == ["id", "kind"]
    assert sorted(schemas["create_token"]["required"]) == ["apis"]
    assert sorted(schemas["create_spa"]["required"]) == ["title"]
    assert sorted(schemas["create_m2m"]["required"]) == ["title"]
    assert sorted(schemas["update_credential"]["required"]) == ["id", "kind"]
    assert sorted(schemas["revoke_credential"]["required"]) == ["id", "kind"]
    for schema in schemas.values():
        assert "approval" not in schema["properties"]
        assert "ctx" not in schema["properties"]


async def test_every_tool_declares_an_output_schema(sandbox: RunningSandbox) -> None:
    """Results are structured: each tool publishes the shape of its structuredContent."""
    expected = {
        "list_credentials": {"rows", "count", "next_cursor"},
        "get_credential": {"kind", "id", "token", "client"},
        "create_token": {"status", "id", "token", "detail", "request", "warnings"},
        "create_spa": {"status", "id", "detail"},
        "create_m2m": {"status", "id", "client_secret", "detail"},
        "update_credential": {"status", "kind", "id", "removes", "confirmation_code"},
        "revoke_credential": {"status", "kind", "id", "confirmation_code", "message"},
    }
    async with connect(settings_for(sandbox)) as client:
        tools = (await client.list_tools()).tools
    for tool in tools:
        assert tool.output_schema is not None, tool.name
        assert expected.get(tool.name, set()) <= set(tool.output_schema["properties"]), tool.name


# --- one test per tool -----------------------------------------------------------------------


async def test_create_token_returns_the_value_once_with_a_short_id_and_detail(sandbox: RunningSandbox) -> None:
    """create_token returns the full value, a short id (the jti) and the token's detail with the value masked."""
    async with connect(settings_for(sandbox)) as client:
        created = ok(
            await client.call_tool(
                "create_token",
                {
                    "grants": [grant()],
                    "apis": ["maps"],
                    "referers": ["https://myapp.com/"],
                    "name": "airports",
                    "expiration_date": "7d",
                },
            )
        )
    assert created["status"] == "created"
    value = created["token"]
    assert value.count(".") == 2 and len(value) > 40
    assert 4 <= len(created["id"]) <= 16 and created["id"] not in ("", value)
    detail = created["detail"]
    assert detail["id"] == created["id"]
    assert detail["name"] == "airports"
    assert detail["apis"] == ["maps"]
    assert detail["grants"] == [{"connection": "carto_dw", "source": TABLE, "kind": "table"}]
    assert detail["referers"] == ["https://myapp.com/"]
    assert detail["token_masked"] != value and value not in detail["token_masked"]
    assert detail["expired"] is False
    expires = datetime.fromisoformat(detail["expiration_date"].replace("Z", "+00:00"))
    assert abs(expires - utc(7)) < timedelta(minutes=5)
    stored = sandbox.store.get_token(value)
    assert stored is not None and stored["name"] == "airports"


async def test_list_credentials_returns_compact_rows_for_every_kind(sandbox: RunningSandbox) -> None:
    """list_credentials with no arguments lists tokens, then SPA, then M2M clients, as compact rows."""
    async with connect(settings_for(sandbox)) as client:
        token = ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"], "name": "t1"}))
        spa = ok(await client.call_tool("create_spa", {"title": "Web"}))
        m2m = ok(await client.call_tool("create_m2m", {"title": "Backend"}))
        listed = ok(await client.call_tool("list_credentials", {}))
    assert listed["count"] == 3 and "next_cursor" not in listed
    assert [(r["kind"], r["id"], r["name"]) for r in listed["rows"]] == [
        ("token", token["id"], "t1"),
        ("spa", spa["id"], "Web"),
        ("m2m", m2m["id"], "Backend"),
    ]
    assert listed["rows"][0]["apis"] == ["maps"] and listed["rows"][0]["grants"] == 1
    assert token["token"] not in str(listed) and m2m["client_secret"] not in str(listed)


async def test_get_credential_returns_full_detail_with_secrets_masked(sandbox: RunningSandbox) -> None:
    """get_credential by short id shows grants, APIs, referers and expiry; the token value is masked."""
    async with connect(settings_for(sandbox)) as client:
        created = ok(
            await client.call_tool(
                "create_token",
                {"grants": [grant("SELECT 1")], "apis": ["sql"], "referers": ["https://a.example/"]},
            )
        )
        got = ok(await client.call_tool("get_credential", {"kind": "token", "id": created["id"]}))
    assert got["kind"] == "token" and got["id"] == created["id"] and "client" not in got
    assert got["token"]["grants"] == [{"connection": "carto_dw", "source": "SELECT 1", "kind": "query"}]
    assert got["token"]["apis"] == ["sql"]
    assert got["token"]["referers"] == ["https://a.example/"]
    assert "expiration_date" not in got["token"]
    assert created["token"] not in str(got)
    assert got["token"]["token_masked"] == created["detail"]["token_masked"]


async def test_get_credential_accepts_the_full_token_value_as_id(sandbox: RunningSandbox) -> None:
    """A full token value works wherever a short id does, and the result still shows only the short id."""
    async with connect(settings_for(sandbox)) as client:
        created = ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"]}))
        got = ok(await client.call_tool("get_credential", {"kind": "token", "id": created["token"]}))
    assert got["id"] == created["id"]
    assert created["token"] not in str(got)


async def test_create_spa_stores_every_url_field(sandbox: RunningSandbox) -> None:
    """create_spa takes the CLI's SPA options and returns the client with all its URLs."""
    async with connect(settings_for(sandbox)) as client:
        created = ok(await client.call_tool("create_spa", SPA_ARGS))
    assert created["status"] == "created" and created["id"]
    assert "client_secret" not in created
    detail = created["detail"]
    assert detail["kind"] == "spa" and detail["id"] == created["id"]
    for field, value in SPA_ARGS.items():
        assert detail[field] == value, field
    assert client_count(sandbox, "spa") == 1


async def test_create_m2m_returns_the_client_secret_once(sandbox: RunningSandbox) -> None:
    """create_m2m returns the client id and the one-time secret; get_credential never shows it again."""
    async with connect(settings_for(sandbox)) as client:
        created = ok(await client.call_tool("create_m2m", {"title": "Backend Service"}))
        got = ok(await client.call_tool("get_credential", {"kind": "m2m", "id": created["id"]}))
    secret = created["client_secret"]
    assert secret and len(secret) >= 32
    assert created["detail"]["kind"] == "m2m" and created["detail"]["title"] == "Backend Service"
    assert sandbox.store.check_client_secret(created["id"], secret)
    assert got["client"]["title"] == "Backend Service"
    assert secret not in str(got)


async def test_update_credential_changes_a_token_name_and_adds_grants(sandbox: RunningSandbox) -> None:
    """update_credential renames a token and adds a grant without confirmation, since nothing is removed."""
    async with connect(settings_for(sandbox)) as client:
        created = ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"]}))
        updated = ok(
            await client.call_tool(
                "update_credential",
                {
                    "kind": "token",
                    "id": created["id"],
                    "name": "renamed",
                    "add_grants": [grant("carto.shared.other_table")],
                },
            )
        )
    assert updated["status"] == "updated" and updated["removes"] == []
    assert updated["id"] == created["id"]
    assert updated["token"]["name"] == "renamed"
    assert [g["source"] for g in updated["token"]["grants"]] == [TABLE, "carto.shared.other_table"]
    stored = sandbox.store.get_token(created["token"])
    assert stored is not None and stored["name"] == "renamed" and len(stored["grants"]) == 2


async def test_revoke_credential_deletes_a_token_after_the_confirmation_code(sandbox: RunningSandbox) -> None:
    """revoke_credential previews first and deletes on the second call carrying the code."""
    async with connect(settings_for(sandbox)) as client:
        created = ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"]}))
        preview = ok(await client.call_tool("revoke_credential", {"kind": "token", "id": created["id"]}))
        assert preview["status"] == "confirmation_required" and token_count(sandbox) == 1
        done = ok(
            await client.call_tool(
                "revoke_credential",
                {"kind": "token", "id": created["id"], "confirm": preview["confirmation_code"]},
            )
        )
    assert done["status"] == "revoked" and done["id"] == created["id"]
    assert token_count(sandbox) == 0


# --- round trips -----------------------------------------------------------------------------


async def test_a_token_round_trips_through_create_list_get_update_revoke(sandbox: RunningSandbox) -> None:
    """A token made by create_token is listed, read, narrowed (with a code) and revoked by its short id."""
    async with connect(settings_for(sandbox)) as client:
        created = ok(
            await client.call_tool(
                "create_token", {"grants": [grant(), grant("SELECT 1")], "apis": ["sql", "maps"], "name": "rt"}
            )
        )
        tid = created["id"]
        rows = ok(await client.call_tool("list_credentials", {"kind": "token"}))["rows"]
        assert [r["id"] for r in rows] == [tid]
        got = ok(await client.call_tool("get_credential", {"kind": "token", "id": tid}))
        assert got["token"]["name"] == "rt" and len(got["token"]["grants"]) == 2
        narrow = {"kind": "token", "id": tid, "apis": ["maps"], "remove_grants": [grant("SELECT 1")]}
        preview = ok(await client.call_tool("update_credential", narrow))
        assert preview["status"] == "confirmation_required"
        assert sorted(preview["removes"]) == ["api sql", "grant carto_dw:SELECT 1"]
        updated = ok(await client.call_tool("update_credential", {**narrow, "confirm": preview["confirmation_code"]}))
        assert updated["status"] == "updated"
        assert updated["token"]["apis"] == ["maps"] and len(updated["token"]["grants"]) == 1
        code = ok(await client.call_tool("revoke_credential", {"kind": "token", "id": tid}))["confirmation_code"]
        ok(await client.call_tool("revoke_credential", {"kind": "token", "id": tid, "confirm": code}))
        after = ok(await client.call_tool("list_credentials", {"kind": "token"}))
    assert after["rows"] == []
    assert token_count(sandbox) == 0


async def test_an_spa_client_round_trips_through_create_list_get_update_revoke(sandbox: RunningSandbox) -> None:
    """An SPA client is listed, read, retitled without confirmation, stripped of a callback with one, revoked."""
    async with connect(settings_for(sandbox, yes=False)) as client:
        cid = ok(await client.call_tool("create_spa", SPA_ARGS))["id"]
        rows = ok(await client.call_tool("list_credentials", {"kind": "spa"}))["rows"]
        assert [(r["kind"], r["id"]) for r in rows] == [("spa", cid)]
        got = ok(await client.call_tool("get_credential", {"kind": "spa", "id": cid}))
        assert got["client"]["callbacks"] == SPA_ARGS["callbacks"]
        retitled = ok(await client.call_tool("update_credential", {"kind": "spa", "id": cid, "title": "Updated Title"}))
        assert retitled["status"] == "updated" and retitled["client"]["title"] == "Updated Title"
        change = {"kind": "spa", "id": cid, "callbacks": ["https://myapp.com/cb2"]}
        preview = ok(await client.call_tool("update_credential", change))
        assert preview["status"] == "confirmation_required"
        assert preview["removes"] == ["callback https://myapp.com/callback"]
        updated = ok(await client.call_tool("update_credential", {**change, "confirm": preview["confirmation_code"]}))
        assert updated["client"]["callbacks"] == ["https://myapp.com/cb2"]
        code = ok(await client.call_tool("revoke_credential", {"kind": "spa", "id": cid}))["confirmation_code"]
        revoked = ok(await client.call_tool("revoke_credential", {"kind": "spa", "id": cid, "confirm": code}))
    assert revoked["status"] == "revoked" and revoked["name"] == "Updated Title"
    assert sandbox.store.get_client(cid) is None


async def test_an_m2m_client_round_trips_through_create_list_get_update_revoke(sandbox: RunningSandbox) -> None:
    """An M2M client is listed, read, retitled and revoked (`--yes`), its secret shown only at creation."""
    async with connect(settings_for(sandbox, yes=True)) as client:
        created = ok(await client.call_tool("create_m2m", {"title": "Backend Service"}))
        cid, secret = created["id"], created["client_secret"]
        listed = ok(await client.call_tool("list_credentials", {"kind": "m2m"}))
        assert [(r["kind"], r["id"], r["name"]) for r in listed["rows"]] == [("m2m", cid, "Backend Service")]
        got = ok(await client.call_tool("get_credential", {"kind": "m2m", "id": cid}))
        updated = ok(await client.call_tool("update_credential", {"kind": "m2m", "id": cid, "title": "Renamed"}))
        assert updated["client"]["title"] == "Renamed"
        revoked = ok(await client.call_tool("revoke_credential", {"kind": "m2m", "id": cid}))
    assert revoked["status"] == "revoked"
    assert sandbox.store.get_client(cid) is None
    for result in (listed, got, updated, revoked):
        assert secret not in str(result)


# --- the CLI reference examples --------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "kind"),
    [
        pytest.param({"grants": [grant(TABLE)], "apis": ["sql", "maps"]}, "table", id="single-source"),
        pytest.param({"grants": [grant("carto.shared.CARTO_*")], "apis": ["sql", "maps"]}, "pattern", id="pattern"),
        pytest.param(
            {"grants": [grant("*")], "apis": ["sql", "maps"], "name": "demo-day-token", "expiration_date": "7d"},
            "all",
            id="all-sources-expiry-name",
        ),
    ],
)
async def test_the_cli_reference_create_token_examples_are_accepted(
    sandbox: RunningSandbox, arguments: dict[str, Any], kind: str
) -> None:
    """The three `carto credentials create token` examples from the reference work as written."""
    async with connect(settings_for(sandbox)) as client:
        created = ok(await client.call_tool("create_token", arguments))
    assert created["status"] == "created"
    detail = created["detail"]
    assert detail["apis"] == ["sql", "maps"]
    assert detail["grants"] == [{"connection": "carto_dw", "source": arguments["grants"][0]["source"], "kind": kind}]
    if "name" in arguments:
        assert detail["name"] == "demo-day-token"
        assert detail["expiration_date"] is not None
    assert token_count(sandbox) == 1


# --- dry run ---------------------------------------------------------------------------------


async def test_dry_run_returns_the_normalized_request_and_creates_nothing(sandbox: RunningSandbox) -> None:
    """dry_run resolves the expiry to a UTC date, shows the wire body and warnings, and calls no API."""
    async with connect(settings_for(sandbox)) as client:
        before = token_count(sandbox)
        result = ok(
            await client.call_tool(
                "create_token",
                {
                    "grants": [grant(" carto.shared.demo_table ")],
                    "apis": ["sql", "maps", "sql"],
                    "referers": ["https://myapp.com"],
                    "expiration_date": "2w",
                    "dry_run": True,
                },
            )
        )
    assert token_count(sandbox) == before == 0
    assert result["status"] == "dry_run"
    assert "token" not in result and "id" not in result and "detail" not in result
    request = result["request"]
    assert request["allowed_apis"] == ["sql", "maps"]
    assert request["grants"] == [{"connection_name": "carto_dw", "source": TABLE}]
    assert request["referers"] == ["https://myapp.com"]
    expiry = request["expiration_date"]
    assert expiry.endswith("Z")
    when = datetime.strptime(expiry, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert abs(when - utc(14)) < timedelta(minutes=5)
    assert any("list both: 'https://myapp.com' and 'https://myapp.com/'" in w for w in result["warnings"])
    assert any("SQL API" in w for w in result["warnings"])


async def test_dry_run_needs_no_reachable_api() -> None:
    """dry_run never touches the network: it succeeds with the API base URL pointing at a closed port."""
    settings = Settings(profile=ProfileInputs(token=BEARER, base_url=f"http://127.0.0.1:{closed_port()}"))
    async with connect(settings) as client:
        result = ok(
            await client.call_tool(
                "create_token", {"grants": [grant()], "apis": ["maps"], "expiration_date": "1y", "dry_run": True}
            )
        )
        real = await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"]})
    assert result["status"] == "dry_run" and result["request"]["expiration_date"].endswith("Z")
    assert real.is_error


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- listing ---------------------------------------------------------------------------------


async def test_list_pages_through_seven_tokens_three_at_a_time(sandbox: RunningSandbox) -> None:
    """limit + next_cursor walk every token exactly once, in order, and the last page has no cursor."""
    values = sandbox.store.seed_tokens(7, name_prefix="page")
    async with connect(settings_for(sandbox)) as client:
        pages: list[list[str]] = []
        cursor: str | None = None
        for _ in range(10):
            args: dict[str, Any] = {"kind": "token", "limit": 3}
            if cursor:
                args["cursor"] = cursor
            page = ok(await client.call_tool("list_credentials", args))
            pages.append([r["name"] for r in page["rows"]])
            assert page["count"] == len(page["rows"])
            cursor = page.get("next_cursor")
            if cursor is None:
                break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [n for p in pages for n in p] == [f"page-{i:05d}" for i in range(len(values))]


async def test_list_cursor_crosses_from_tokens_into_clients(sandbox: RunningSandbox) -> None:
    """With kind 'all' a page can end in the tokens and the next one continue into SPA and M2M clients."""
    sandbox.store.seed_tokens(2, name_prefix="tk")
    async with connect(settings_for(sandbox)) as client:
        ok(await client.call_tool("create_spa", {"title": "spa-1"}))
        ok(await client.call_tool("create_m2m", {"title": "m2m-1"}))
        first = ok(await client.call_tool("list_credentials", {"limit": 3}))
        second = ok(await client.call_tool("list_credentials", {"limit": 3, "cursor": first["next_cursor"]}))
    assert [r["name"] for r in first["rows"]] == ["tk-00000", "tk-00001", "spa-1"]
    assert [r["name"] for r in second["rows"]] == ["m2m-1"] and "next_cursor" not in second


async def test_list_text_filter_matches_names_case_insensitively(sandbox: RunningSandbox) -> None:
    """`text` keeps only credentials whose name or title contains it, any case, across kinds."""
    async with connect(settings_for(sandbox)) as client:
        ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"], "name": "Airports map"}))
        ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"], "name": "rivers"}))
        ok(await client.call_tool("create_spa", {"title": "AIRPORTS web"}))
        ok(await client.call_tool("create_m2m", {"title": "etl"}))
        found = ok(await client.call_tool("list_credentials", {"text": "airports"}))
    assert sorted((r["kind"], r["name"]) for r in found["rows"]) == [("spa", "AIRPORTS web"), ("token", "Airports map")]


async def test_list_filters_tokens_by_expiry(sandbox: RunningSandbox) -> None:
    """expiring_within keeps unexpired tokens due inside the span; expired true/false splits on the past."""
    sandbox.store.seed_tokens(1, name_prefix="old", expiration_dates=["2020-01-01"])
    async with connect(settings_for(sandbox)) as client:
        soon = utc(2).strftime("%Y-%m-%d")
        later = utc(60).strftime("%Y-%m-%d")
        ok(
            await client.call_tool(
                "create_token", {"grants": [grant()], "apis": ["maps"], "name": "soon", "expiration_date": soon}
            )
        )
        ok(
            await client.call_tool(
                "create_token", {"grants": [grant()], "apis": ["maps"], "name": "later", "expiration_date": later}
            )
        )
        ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"], "name": "never"}))
        ok(await client.call_tool("create_spa", {"title": "not a token"}))

        async def names(**args: Any) -> list[str]:
            result = ok(await client.call_tool("list_credentials", args))
            return sorted(r["name"] for r in result["rows"])

        assert await names(expiring_within="7d") == ["soon"]
        assert await names(expiring_within="90d") == ["later", "soon"]
        assert await names(expiring_within=utc(30).strftime("%Y-%m-%d")) == ["soon"]
        assert await names(expired=True) == ["old-00000"]
        assert await names(expired=False) == ["later", "never", "soon"]
        assert await names(expired=False, expiring_within="7d") == ["soon"]
        rows = ok(await client.call_tool("list_credentials", {"kind": "token", "expired": True}))["rows"]
    assert rows[0]["expired"] is True and rows[0]["expires"].startswith("2020-01-01")


async def test_list_pages_across_upstream_pages_and_filters(sandbox: RunningSandbox) -> None:
    """Pages larger than the API's own pages, and filtered pages, still return each credential once, in order."""
    sandbox.store.seed_tokens(230, name_prefix="a")
    sandbox.store.seed_tokens(30, name_prefix="b", expiration_dates=["2020-01-01", None])

    async def walk(client: Any, **args: Any) -> list[list[str]]:
        pages: list[list[str]] = []
        cursor = None
        for _ in range(50):
            page = ok(await client.call_tool("list_credentials", {**args, **({"cursor": cursor} if cursor else {})}))
            pages.append([r["name"] for r in page["rows"]])
            cursor = page.get("next_cursor")
            if cursor is None:
                return pages
        raise AssertionError("the cursor never ended")

    async with connect(settings_for(sandbox)) as client:
        big = await walk(client, kind="token", limit=120)
        text = await walk(client, text="b-", limit=7)
        expired = await walk(client, expired=True, limit=4)
    assert [len(p) for p in big] == [120, 120, 20]
    assert [n for p in big for n in p] == [f"a-{i:05d}" for i in range(230)] + [f"b-{i:05d}" for i in range(30)]
    assert [len(p) for p in text] == [7, 7, 7, 7, 2]
    assert [n for p in text for n in p] == [f"b-{i:05d}" for i in range(30)]
    assert [n for p in expired for n in p] == [f"b-{i:05d}" for i in range(0, 30, 2)]


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_listing_many_pages_reports_progress(sandbox: RunningSandbox, mode: str) -> None:
    """Reading 250 tokens page by page sends increasing progress notifications up to the total."""
    sandbox.store.seed_tokens(250)
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with connect(settings_for(sandbox)) as client:
        result = ok(
            await client.call_tool("list_credentials", {"kind": "token", "limit": 500}, progress_callback=on_progress)
        )
    assert result["count"] == 250
    assert len(seen) >= 2
    progress = [p for p, _, _ in seen]
    assert progress == sorted(progress) and progress[-1] == 250
    assert all(total == 250 for _, total, _ in seen)
    assert all(message for _, _, message in seen)


async def test_list_kind_aliases_tokens_and_oauth(sandbox: RunningSandbox) -> None:
    """'tokens' is the CLI's spelling of token; 'oauth' lists SPA and M2M clients together."""
    async with connect(settings_for(sandbox)) as client:
        ok(await client.call_tool("create_token", {"grants": [grant()], "apis": ["maps"]}))
        ok(await client.call_tool("create_spa", {"title": "spa"}))
        ok(await client.call_tool("create_m2m", {"title": "m2m"}))
        tokens = ok(await client.call_tool("list_credentials", {"kind": "tokens"}))
        oauth = ok(await client.call_tool("list_credentials", {"kind": "oauth"}))
        spa = ok(await client.call_tool("list_credentials", {"kind": "spa"}))
    assert [r["kind"] for r in tokens["rows"]] == ["token"]
    assert [r["kind"] for r in oauth["rows"]] == ["spa", "m2m"]
    assert [r["kind"] for r in spa["rows"]] == ["spa"]
