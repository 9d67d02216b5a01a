"""CartoClient against the sandbox over real loopback HTTP: every operation on tokens, SPA and M2M clients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from carto_mcp.api import CartoClient, NotFound, RetryPolicy, ValidationFailed
from carto_mcp.sandbox.server import RunningSandbox

from ._support import LOGIN, MAPS_TOKEN, Admin

pytestmark = pytest.mark.anyio

LIST = "GET /v3/tokens"


@pytest.fixture
async def api(sandbox: RunningSandbox) -> AsyncIterator[CartoClient]:
    async with CartoClient(
        base_url=sandbox.url, auth=LOGIN, per_page=2, retry=RetryPolicy(backoff=0.01), timeout=10
    ) as client:
        yield client


def maps_token(name: str, source: str = "carto.shared.demo_table") -> dict[str, Any]:
    return {**MAPS_TOKEN, "name": name, "grants": [{"connection_name": "carto_dw", "source": source}]}


async def create_five(api: CartoClient) -> list[str]:
    return [(await api.create_token(maps_token(f"t{i}"))).token for i in range(5)]


# --- tokens ----------------------------------------------------------------------------


async def test_list_tokens_follows_pagination_to_every_token(api: CartoClient, admin: Admin) -> None:
    """With per_page=2 and 5 tokens, list_tokens walks 3 pages and returns all 5 in creation order."""
    created = await create_five(api)
    admin.reset()

    tokens = await api.list_tokens()

    assert [t.token for t in tokens] == created
    assert [t.name for t in tokens] == ["t0", "t1", "t2", "t3", "t4"]
    assert admin.count(LIST) == 3


async def test_list_tokens_reports_progress_per_page(api: CartoClient) -> None:
    """on_page is awaited after every page with the running count and the service's total."""
    await create_five(api)
    seen: list[tuple[int, int | None]] = []

    async def on_page(count: int, total: int | None) -> None:
        seen.append((count, total))

    await api.list_tokens(on_page=on_page)

    assert seen == [(2, 5), (4, 5), (5, 5)]


async def test_list_tokens_on_an_empty_account_is_an_empty_list(api: CartoClient) -> None:
    """No tokens → [] after one request, not an error."""
    assert await api.list_tokens() == []


async def test_create_token_returns_the_full_object_with_a_jwt_value(api: CartoClient) -> None:
    """POST /v3/tokens returns the token value (a JWT whose jti is the short id) and the stored fields."""
    token = await api.create_token(maps_token("demo-day"))

    assert token.token.count(".") == 2
    assert len(token.id) == 8
    assert token.name == "demo-day"
    assert token.allowed_apis == ["maps"]
    assert [(g.connection_name, g.source) for g in token.grants] == [("carto_dw", "carto.shared.demo_table")]
    assert token.expiration_date is None
    assert token.created_at


async def test_get_token_returns_the_stored_token(api: CartoClient) -> None:
    """GET /v3/tokens/{token} returns the same object the create returned."""
    created = await api.create_token(maps_token("lookup"))

    found = await api.get_token(created.token)

    assert found.token == created.token
    assert found.name == "lookup"
    assert found.grants == created.grants


async def test_update_token_replaces_grants_and_referers(api: CartoClient) -> None:
    """PATCH replaces the grants list and rewrites referers; untouched fields stay."""
    created = await api.create_token(
        {**maps_token("patch-me"), "referers": ["https://old.example.com/", "https://other.example.com/"]}
    )

    updated = await api.update_token(
        created.token,
        {
            "grants": [{"connection_name": "carto_dw", "source": "carto.shared.new_table"}],
            "referers": ["https://new.example.com/"],
        },
    )

    assert [g.source for g in updated.grants] == ["carto.shared.new_table"]
    assert updated.referers == ["https://new.example.com/"]
    assert updated.name == "patch-me"
    assert updated.allowed_apis == ["maps"]
    again = await api.get_token(created.token)
    assert [g.source for g in again.grants] == ["carto.shared.new_table"]
    assert again.referers == ["https://new.example.com/"]


async def test_delete_token_removes_it_and_a_second_delete_is_not_found(api: CartoClient) -> None:
    """DELETE revokes the token: a lookup and a repeated delete both raise NotFound."""
    created = await api.create_token(maps_token("doomed"))

    await api.delete_token(created.token)

    assert await api.list_tokens() == []
    with pytest.raises(NotFound):
        await api.get_token(created.token)
    with pytest.raises(NotFound):
        await api.delete_token(created.token)


async def test_unknown_token_lookup_and_update_map_to_not_found(api: CartoClient) -> None:
    """A 404 from GET or PATCH of an unknown token value is NotFound carrying the status."""
    ghost = (await api.create_token(maps_token("ghost"))).token
    await api.delete_token(ghost)

    with pytest.raises(NotFound) as lookup:
        await api.get_token(ghost)
    with pytest.raises(NotFound):
        await api.update_token(ghost, {"name": "x"})

    assert lookup.value.status_code == 404
    assert ghost not in str(lookup.value)


async def test_a_refused_token_body_is_validation_failed_with_the_services_message(api: CartoClient) -> None:
    """The sandbox's 400 (sql without grants) becomes ValidationFailed quoting its description."""
    with pytest.raises(ValidationFailed) as caught:
        await api.create_token({"name": "bad", "allowed_apis": ["sql"], "grants": []})

    assert caught.value.status_code == 400
    assert "sql needs at least one grant" in str(caught.value)


async def test_changing_the_expiry_of_a_token_is_validation_failed(api: CartoClient) -> None:
    """expiration_date is immutable: a PATCH that sets it is refused with the service's reason."""
    created = await api.create_token(maps_token("fixed"))

    with pytest.raises(ValidationFailed) as caught:
        await api.update_token(created.token, {"expiration_date": "2099-01-01T00:00:00Z"})

    assert "cannot be changed" in str(caught.value)
    assert created.token not in str(caught.value)


# --- resolve_token and the index -------------------------------------------------------


async def test_resolve_token_turns_a_jti_into_the_token_value(api: CartoClient, sandbox: RunningSandbox) -> None:
    """A jti resolves to the full value of the token that carries it (found through the list)."""
    created = await create_five(api)
    async with CartoClient(base_url=sandbox.url, auth=LOGIN, per_page=2) as fresh:
        for value in created:
            jti = (await fresh.get_token(value)).id
            assert await fresh.resolve_token(jti) == value


async def test_resolve_token_returns_a_full_value_unchanged_without_a_request(api: CartoClient, admin: Admin) -> None:
    """A full token value needs no lookup: it is returned as is."""
    value = (await api.create_token(maps_token("full"))).token
    admin.reset()

    assert await api.resolve_token(f"  {value} ") == value
    assert admin.counts() == {}


async def test_resolve_token_lists_once_then_serves_from_the_index(sandbox: RunningSandbox, admin: Admin) -> None:
    """The first resolve walks only up to the id's page; resolving it, or an id seen on the way, sends nothing."""
    async with CartoClient(base_url=sandbox.url, auth=LOGIN, per_page=2) as creator:
        created = await create_five(creator)
    async with CartoClient(base_url=sandbox.url, auth=LOGIN, per_page=2) as other:
        tokens = await other.list_tokens()
    jti = tokens[3].id
    admin.reset()

    async with CartoClient(base_url=sandbox.url, auth=LOGIN, per_page=2, max_concurrency=1) as api:
        assert await api.resolve_token(jti) == created[3]
        walked = admin.count(LIST)
        assert await api.resolve_token(jti) == created[3]
        assert await api.resolve_token(tokens[0].id) == created[0]

    assert walked == 2  # one page at a time, the 4th of 5 tokens is on page 2 of 3: the walk stops there
    assert admin.count(LIST) == walked


async def test_a_created_token_resolves_without_a_list(api: CartoClient, admin: Admin) -> None:
    """create_token indexes the new id, so resolving it right away sends no request."""
    created = await api.create_token(maps_token("fresh"))
    admin.reset()

    assert await api.resolve_token(created.id) == created.token
    assert admin.counts() == {}


async def test_a_deleted_token_no_longer_resolves(api: CartoClient, admin: Admin) -> None:
    """delete_token drops the id from the index; the next resolve re-lists and raises NotFound naming the id."""
    created = await api.create_token(maps_token("gone"))
    keep = await api.create_token(maps_token("kept"))
    await api.delete_token(created.token)
    admin.reset()

    with pytest.raises(NotFound) as caught:
        await api.resolve_token(created.id)

    assert admin.count(LIST) == 1
    assert created.id in str(caught.value)
    assert "list_credentials" in str(caught.value)
    assert created.token not in str(caught.value)
    assert await api.resolve_token(keep.id) == keep.token


async def test_an_unknown_id_raises_not_found_after_one_walk(api: CartoClient, admin: Admin) -> None:
    """An id that no token has costs exactly one list walk, then NotFound."""
    await create_five(api)
    admin.reset()

    with pytest.raises(NotFound):
        await api.resolve_token("deadbeef")

    assert admin.count(LIST) == 3


# --- OAuth clients -------------------------------------------------------------------------

SPA_BODY: dict[str, Any] = {
    "name": "Dashboard",
    "app_type": "spa",
    "initiate_login_uri": "https://app.example.com/login",
    "callbacks": ["https://app.example.com/callback"],
    "allowed_logout_urls": ["https://app.example.com/"],
    "web_origins": ["https://app.example.com"],
    "allowed_origins": ["https://app.example.com"],
}


async def test_create_spa_client_maps_wire_names_to_cli_names(api: CartoClient) -> None:
    """An SPA create returns the client in CLI field names, without a secret."""
    spa = await api.create_client(SPA_BODY)

    assert spa.client_id
    assert spa.app_type == "spa"
    assert spa.title == "Dashboard"
    assert spa.login_uri == "https://app.example.com/login"
    assert spa.callbacks == ["https://app.example.com/callback"]
    assert spa.logout_urls == ["https://app.example.com/"]
    assert spa.web_origins == ["https://app.example.com"]
    assert spa.allowed_origins == ["https://app.example.com"]
    assert spa.client_secret is None


async def test_an_m2m_secret_is_present_only_in_the_create_result(api: CartoClient) -> None:
    """The M2M create reply holds client_secret; get and list never show it again."""
    m2m = await api.create_client({"name": "Pipeline", "app_type": "m2m"})

    assert m2m.client_secret
    assert m2m.client_secret not in repr(m2m)
    assert (await api.get_client(m2m.client_id)).client_secret is None
    listed = await api.list_clients("m2m")
    assert [c.client_id for c in listed] == [m2m.client_id]
    assert listed[0].client_secret is None


async def test_list_clients_filters_by_type_and_follows_pagination(api: CartoClient, admin: Admin) -> None:
    """type=spa|m2m returns only that kind; no type returns both; pages of 2 are walked to the end."""
    spas = [(await api.create_client({**SPA_BODY, "name": f"spa{i}"})).client_id for i in range(3)]
    m2ms = [(await api.create_client({"name": f"m2m{i}", "app_type": "m2m"})).client_id for i in range(2)]
    admin.reset()

    assert [c.client_id for c in await api.list_clients("spa")] == spas
    assert [c.client_id for c in await api.list_clients("m2m")] == m2ms
    both = await api.list_clients()
    assert sorted(c.client_id for c in both) == sorted(spas + m2ms)
    assert {c.app_type for c in both} == {"spa", "m2m"}
    assert admin.count("GET /v3/oauth-clients") == 2 + 1 + 3


async def test_get_client_returns_the_stored_client(api: CartoClient) -> None:
    """GET /v3/oauth-clients/{id} returns the client as created."""
    spa = await api.create_client(SPA_BODY)

    found = await api.get_client(spa.client_id)

    assert found.client_id == spa.client_id
    assert found.title == "Dashboard"
    assert found.callbacks == spa.callbacks


async def test_update_client_replaces_the_given_lists(api: CartoClient) -> None:
    """PATCH replaces callbacks and renames; fields not sent stay as they were."""
    spa = await api.create_client(SPA_BODY)

    updated = await api.update_client(
        spa.client_id, {"name": "Dashboard v2", "callbacks": ["https://v2.example.com/callback"]}
    )

    assert updated.title == "Dashboard v2"
    assert updated.callbacks == ["https://v2.example.com/callback"]
    assert updated.web_origins == ["https://app.example.com"]
    assert (await api.get_client(spa.client_id)).callbacks == ["https://v2.example.com/callback"]


async def test_update_of_an_m2m_client_renames_it_and_keeps_the_secret_hidden(api: CartoClient) -> None:
    """An M2M client can be renamed; the update reply carries no secret."""
    m2m = await api.create_client({"name": "Pipeline", "app_type": "m2m"})

    updated = await api.update_client(m2m.client_id, {"name": "Pipeline 2"})

    assert updated.title == "Pipeline 2"
    assert updated.client_secret is None


async def test_delete_client_removes_spa_and_m2m_clients(api: CartoClient) -> None:
    """DELETE removes a client of either kind; lookups then raise NotFound."""
    spa = await api.create_client(SPA_BODY)
    m2m = await api.create_client({"name": "Pipeline", "app_type": "m2m"})

    await api.delete_client(spa.client_id)
    await api.delete_client(m2m.client_id)

    assert await api.list_clients() == []
    for client_id in (spa.client_id, m2m.client_id):
        with pytest.raises(NotFound):
            await api.get_client(client_id)


async def test_unknown_client_id_maps_to_not_found_on_every_operation(api: CartoClient) -> None:
    """get, update and delete of an unknown client_id raise NotFound (404)."""
    with pytest.raises(NotFound) as lookup:
        await api.get_client("no-such-client")
    with pytest.raises(NotFound) as update:
        await api.update_client("no-such-client", {"name": "x"})
    with pytest.raises(NotFound) as delete:
        await api.delete_client("no-such-client")

    assert lookup.value.status_code == update.value.status_code == delete.value.status_code == 404


async def test_a_refused_client_body_is_validation_failed_with_the_services_message(api: CartoClient) -> None:
    """An M2M client with SPA-only fields, or an SPA with a bad URL, is a 400 quoting the sandbox."""
    with pytest.raises(ValidationFailed) as m2m:
        await api.create_client({"name": "x", "app_type": "m2m", "callbacks": ["https://a.example.com/"]})
    with pytest.raises(ValidationFailed) as spa:
        await api.create_client({**SPA_BODY, "callbacks": ["not a url"]})

    assert "unknown field 'callbacks'" in str(m2m.value)
    assert "is not an absolute http(s) URL" in str(spa.value)
