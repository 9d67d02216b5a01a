"""The Tokens API v3 as the sandbox serves it over loopback HTTP (carto-api.md, "API Access Tokens")."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import httpx2
import pytest

from carto_mcp import contract
from carto_mcp.masking import jwt_payload, short_id
from carto_mcp.models.rules import RuleError, check_apis
from carto_mcp.sandbox.server import RunningSandbox

ISO_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
MAPS_GRANT = {"connection_name": "carto_dw", "source": "carto.shared.demo_table"}


def token_body(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"grants": [MAPS_GRANT], "allowed_apis": ["maps"], "referers": []}
    body.update(overrides)
    return body


def create(client: httpx2.Client, **overrides: Any) -> dict[str, Any]:
    response = client.post(contract.TOKENS_PATH, json=token_body(**overrides))
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def _b64json(segment: str) -> Any:
    return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))


def test_create_returns_201_with_the_full_token_object(client: httpx2.Client) -> None:
    """POST /v3/tokens answers 201 with token, name, grants, allowed_apis, referers, expiration_date, created_at."""
    body = token_body(name="demo-day-token", allowed_apis=["sql", "maps"], referers=["https://myapp.com/"])
    response = client.post(contract.TOKENS_PATH, json=body)
    assert response.status_code == 201
    token = response.json()
    assert set(token) == {"token", *contract.TOKEN_FIELDS, "created_at"}
    assert token["name"] == "demo-day-token"
    assert token["grants"] == [MAPS_GRANT]
    assert token["allowed_apis"] == ["sql", "maps"]
    assert token["referers"] == ["https://myapp.com/"]
    assert token["expiration_date"] is None
    assert ISO_Z.match(token["created_at"])


def test_token_values_are_hs256_jwts_whose_jti_is_the_short_id(client: httpx2.Client) -> None:
    """The value is an HS256 JWT with payload {"a": org id, "jti": 8 hex}; short_id() returns the jti."""
    value = create(client)["token"]
    assert contract.JWT_RE.match(value)
    header, _, signature = value.split(".")
    assert _b64json(header) == {"alg": "HS256", "typ": "JWT"}
    payload = jwt_payload(value)
    assert payload is not None and set(payload) == {"a", "jti"}
    assert payload["a"] == "ac_sandbox"
    assert re.fullmatch(r"[0-9a-f]{8}", payload["jti"])
    assert short_id(value) == payload["jti"]
    assert len(base64.urlsafe_b64decode(signature + "=")) == 32


def test_an_omitted_name_becomes_tk_and_the_short_id(client: httpx2.Client) -> None:
    """Without a name the service generates `tk_<shortid>`."""
    token = create(client)
    assert token["name"] == f"{contract.GENERATED_NAME_PREFIX}{short_id(token['token'])}"


def test_token_values_are_unique(client: httpx2.Client) -> None:
    """Every create mints a new value with a new jti."""
    values = [create(client)["token"] for _ in range(5)]
    assert len(set(values)) == 5
    assert len({short_id(v) for v in values}) == 5


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("2099-01-01", "2099-01-01T00:00:00Z"),
        ("2099-06-01T12:00:00+02:00", "2099-06-01T10:00:00Z"),
        ("2099-06-01T12:00:00Z", "2099-06-01T12:00:00Z"),
    ],
)
def test_the_expiry_is_stored_as_an_iso_utc_datetime(client: httpx2.Client, given: str, stored: str) -> None:
    """expiration_date is parsed like the client parses it and stored as YYYY-MM-DDTHH:MM:SSZ."""
    assert create(client, expiration_date=given)["expiration_date"] == stored


def test_an_lds_token_needs_no_grants(client: httpx2.Client) -> None:
    """lds needs no grant, unlike sql and maps."""
    assert create(client, grants=[], allowed_apis=["lds"])["allowed_apis"] == ["lds"]


def test_a_table_grant_on_an_sql_token_is_only_a_warning_so_it_is_accepted(client: httpx2.Client) -> None:
    """Rules that merely warn client-side do not refuse the request server-side."""
    assert create(client, allowed_apis=["sql"])["grants"] == [MAPS_GRANT]


@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"allowed_apis": ["sql", "imports"]}, "imports"),
        ({"allowed_apis": ["maps"], "grants": []}, "at least one grant"),
        ({"allowed_apis": []}, "empty"),
        ({"allowed_apis": ["tiles"]}, "unknown API"),
        ({"allowed_apis": "maps"}, "list of strings"),
        ({"grants": [{"connection_name": "carto_dw", "source": "carto.**"}]}, "'**'"),
        ({"grants": [{"connection_name": "carto_dw", "source": "table*"}]}, "at least one dot"),
        ({"grants": [{"connection_name": "", "source": "carto.shared.t"}]}, "connection_name"),
        ({"grants": [{"source": "carto.shared.t"}]}, "connection_name"),
        ({"grants": [{"connection_name": "carto_dw"}]}, "source"),
        ({"grants": [{"connection_name": "carto_dw", "source": "  "}]}, "source is empty"),
        ({"grants": [{"connection_name": "c", "source": "a.b", "kind": "table"}]}, "unknown field"),
        ({"grants": "carto.shared.t"}, "grants"),
        ({"referers": ["ftp://files.example.com/"]}, "not an absolute http(s) URL"),
        ({"referers": "https://myapp.com/"}, "list of strings"),
        ({"expiration_date": "2000-01-01"}, "in the past"),
        ({"expiration_date": "next tuesday"}, "not a date"),
        ({"expiration_date": 1893456000}, "ISO 8601"),
        ({"name": ""}, "name"),
        ({"owner": "me"}, "unknown field 'owner'"),
    ],
)
def test_create_refuses_bodies_that_break_the_rules_with_400(
    client: httpx2.Client, overrides: dict[str, Any], needle: str
) -> None:
    """A rule violation is a 400 {"error": "Bad request", "description": <the rule's text>}."""
    response = client.post(contract.TOKENS_PATH, json=token_body(**overrides))
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Bad request"
    assert needle in body["description"]
    assert client.get(contract.TOKENS_PATH).json()["total"] == 0


def test_the_400_description_is_the_rule_functions_own_text(client: httpx2.Client) -> None:
    """The sandbox validates with carto_mcp.models.rules, so its error text is the RuleError text."""
    with pytest.raises(RuleError) as expected:
        check_apis(["imports", "maps"], ["table"])
    response = client.post(contract.TOKENS_PATH, json=token_body(allowed_apis=["imports", "maps"]))
    assert response.json() == {"error": "Bad request", "description": str(expected.value)}


@pytest.mark.parametrize("content", [b"not json", b"", b"[1, 2]", b'"text"', b"\xff\xfe"])
def test_create_refuses_a_body_that_is_not_a_json_object(client: httpx2.Client, content: bytes) -> None:
    """A non-JSON (or non-object) body is a 400 with the error shape."""
    response = client.post(contract.TOKENS_PATH, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"] == "Bad request"


def test_list_pages_in_creation_order_and_reports_the_total(client: httpx2.Client) -> None:
    """GET /v3/tokens?page&per_page -> {"data": [...], "total": N}, oldest first."""
    names = [create(client, name=f"t{i}")["name"] for i in range(5)]
    pages = [
        client.get(contract.TOKENS_PATH, params={contract.PAGE_PARAM: page, contract.PER_PAGE_PARAM: 2}).json()
        for page in (1, 2, 3, 4)
    ]
    assert [p[contract.LIST_TOTAL] for p in pages] == [5, 5, 5, 5]
    assert [[t["name"] for t in p[contract.LIST_ENVELOPE]] for p in pages] == [names[0:2], names[2:4], names[4:], []]


def test_list_defaults_to_the_first_page_of_fifty(client: httpx2.Client, sandbox: RunningSandbox) -> None:
    """Without parameters the list is page 1 with per_page = DEFAULT_PER_PAGE."""
    sandbox.store.seed_tokens(contract.DEFAULT_PER_PAGE + 5)
    body = client.get(contract.TOKENS_PATH).json()
    assert len(body["data"]) == contract.DEFAULT_PER_PAGE
    assert body["total"] == contract.DEFAULT_PER_PAGE + 5


def test_per_page_above_the_maximum_is_capped(client: httpx2.Client, sandbox: RunningSandbox) -> None:
    """per_page larger than MAX_PER_PAGE returns MAX_PER_PAGE rows, not an error."""
    sandbox.store.seed_tokens(contract.MAX_PER_PAGE + 20)
    body = client.get(contract.TOKENS_PATH, params={contract.PER_PAGE_PARAM: 10_000}).json()
    assert len(body["data"]) == contract.MAX_PER_PAGE
    assert body["total"] == contract.MAX_PER_PAGE + 20
    second = client.get(contract.TOKENS_PATH, params={"page": 2, "per_page": 10_000}).json()
    assert len(second["data"]) == 20


@pytest.mark.parametrize(
    "params",
    [{"page": "0"}, {"page": "-1"}, {"page": "two"}, {"per_page": "0"}, {"per_page": "x"}, {"page": "1.5"}],
)
def test_bad_page_parameters_are_refused_with_400(client: httpx2.Client, params: dict[str, str]) -> None:
    """page and per_page must be whole numbers >= 1."""
    response = client.get(contract.TOKENS_PATH, params=params)
    assert response.status_code == 400
    assert response.json()["error"] == "Bad request"


def test_get_returns_one_token_by_its_value(client: httpx2.Client) -> None:
    """GET /v3/tokens/{token} returns the same object the create returned."""
    token = create(client, name="one")
    response = client.get(contract.token_path(token["token"]))
    assert response.status_code == 200
    assert response.json() == token


@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_an_unknown_token_is_a_404_that_does_not_echo_the_value(client: httpx2.Client, method: str) -> None:
    """Unknown token -> 404 {"error": "Not found", "description": ...} without the value in it."""
    value = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJqdGkiOiJkZWFkYmVlZiJ9.c2lnbmF0dXJl"
    response = client.request(method, contract.token_path(value), json={"name": "x"} if method == "PATCH" else None)
    assert response.status_code == 404
    body = response.json()
    assert body["error"] == "Not found"
    assert isinstance(body["description"], str) and body["description"]
    assert value not in response.text


def test_patch_changes_name_and_apis_and_replaces_grants_and_referers(client: httpx2.Client) -> None:
    """PATCH accepts name, grants, allowed_apis, referers; lists are replaced, other fields kept."""
    token = create(client, name="before", referers=["https://a.example/"], expiration_date="2099-01-01")
    change = {
        "name": "after",
        "grants": [{"connection_name": "carto_dw", "source": "SELECT * FROM t WHERE id = @id"}],
        "allowed_apis": ["sql"],
        "referers": ["https://b.example/"],
    }
    response = client.patch(contract.token_path(token["token"]), json=change)
    assert response.status_code == 200
    after = response.json()
    assert {k: after[k] for k in change} == change
    assert after["token"] == token["token"]
    assert after["created_at"] == token["created_at"]
    assert after["expiration_date"] == "2099-01-01T00:00:00Z"
    assert client.get(contract.token_path(token["token"])).json() == after


def test_patch_refuses_the_expiration_date(client: httpx2.Client) -> None:
    """expiration_date is immutable: a PATCH with it is a 400 that says so."""
    token = create(client)
    response = client.patch(contract.token_path(token["token"]), json={"expiration_date": "2099-01-01"})
    assert response.status_code == 400
    assert response.json() == {
        "error": "Bad request",
        "description": "expiration_date cannot be changed after the token is created",
    }


@pytest.mark.parametrize("field", ["token", "created_at", "owner"])
def test_patch_refuses_fields_outside_the_patch_set(client: httpx2.Client, field: str) -> None:
    """Only TOKEN_PATCH_FIELDS may be sent in a PATCH."""
    token = create(client)
    response = client.patch(contract.token_path(token["token"]), json={field: "x"})
    assert response.status_code == 400
    assert field in response.json()["description"]


def test_patch_rechecks_the_rules_on_the_merged_token(client: httpx2.Client) -> None:
    """Removing the last grant of a maps token is refused, and the token is left unchanged."""
    token = create(client)
    response = client.patch(contract.token_path(token["token"]), json={"grants": []})
    assert response.status_code == 400
    assert "at least one grant" in response.json()["description"]
    assert client.get(contract.token_path(token["token"])).json() == token
    widened = client.patch(contract.token_path(token["token"]), json={"allowed_apis": ["imports", "maps"]})
    assert widened.status_code == 400


def test_patch_refuses_a_body_that_is_not_json(client: httpx2.Client) -> None:
    """A non-JSON PATCH body is a 400."""
    token = create(client)
    response = client.patch(contract.token_path(token["token"]), content=b"name=x")
    assert response.status_code == 400


def test_delete_answers_204_with_an_empty_body_and_the_token_is_gone(client: httpx2.Client) -> None:
    """DELETE /v3/tokens/{token} -> 204, then the token is 404 and no longer listed."""
    keep, drop = create(client), create(client)
    response = client.delete(contract.token_path(drop["token"]))
    assert response.status_code == 204
    assert response.content == b""
    assert client.get(contract.token_path(drop["token"])).status_code == 404
    assert client.delete(contract.token_path(drop["token"])).status_code == 404
    listed = client.get(contract.TOKENS_PATH).json()
    assert [t["token"] for t in listed["data"]] == [keep["token"]]
    assert listed["total"] == 1


# --- the caller's own tokens (contract D; A for the item paths) --------------------------


def m2m_caller(client: httpx2.Client, anonymous: httpx2.Client, name: str = "Nightly job") -> httpx2.Client:
    """A client authenticated as a new M2M OAuth client, through the documented exchange."""
    created = client.post(contract.OAUTH_CLIENTS_PATH, json={"name": name, "app_type": "m2m"}).json()
    form = {
        "grant_type": "client_credentials",
        "client_id": created["client_id"],
        "client_secret": created["client_secret"],
        "audience": contract.AUTH_AUDIENCE,
    }
    reply = anonymous.post(contract.AUTH_TOKEN_PATH, data=form)
    assert reply.status_code == 200, reply.text
    anonymous.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
    return anonymous


def listed(client: httpx2.Client) -> tuple[list[str], int]:
    body = client.get(contract.TOKENS_PATH).json()
    return [t["token"] for t in body["data"]], body["total"]


def test_the_list_shows_only_the_callers_own_tokens(client: httpx2.Client, anonymous: httpx2.Client) -> None:
    """GET /v3/tokens (D: the caller's own tokens only): an M2M client and the user each see theirs."""
    mine = create(client, name="user-token")
    robot = m2m_caller(client, anonymous)
    theirs = create(robot, name="robot-token")
    assert listed(client) == ([mine["token"]], 1)
    assert listed(robot) == ([theirs["token"]], 1)


def test_another_callers_token_is_404_on_every_item_path(client: httpx2.Client, anonymous: httpx2.Client) -> None:
    """(A) GET/PATCH/DELETE of someone else's token answer as if it did not exist, and change nothing."""
    robot = m2m_caller(client, anonymous)
    theirs = create(robot, name="robot-token")
    path = contract.token_path(theirs["token"])
    assert client.get(path).status_code == contract.OTHER_CALLERS_TOKEN_STATUS
    assert client.patch(path, json={"name": "taken"}).status_code == contract.OTHER_CALLERS_TOKEN_STATUS
    assert client.delete(path).status_code == contract.OTHER_CALLERS_TOKEN_STATUS
    assert client.get(path).json()["description"] == client.get(contract.token_path("eyJ.nope.x")).json()["description"]
    assert robot.get(path).json() == theirs
    assert robot.delete(path).status_code == 204


def test_only_a_signature_the_sandbox_made_names_an_m2m_caller(
    sandbox: RunningSandbox, client: httpx2.Client, anonymous: httpx2.Client
) -> None:
    """A hand-made JWT carrying a client's `sub` is just another user bearer: it sees the user's tokens."""
    robot = m2m_caller(client, anonymous)
    create(robot, name="robot-token")
    mine = create(client, name="user-token")
    real = robot.headers["Authorization"].removeprefix("Bearer ")
    header, body, signature = real.split(".")
    forged = f"{header}.{body}.{signature[:-2]}{'BB' if signature.endswith('AA') else 'AA'}"
    assert sandbox.store.caller(real).endswith("@clients")
    assert sandbox.store.caller(forged) == sandbox.store.caller("test-login") == "user"
    assert sandbox.store.caller(f"{header}.{body}é.{signature}é") == "user"
    robot.headers["Authorization"] = f"Bearer {forged}"
    assert listed(robot) == ([mine["token"]], 1)
