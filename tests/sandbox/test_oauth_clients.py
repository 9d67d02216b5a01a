"""SPA and M2M OAuth clients (contract A) and the M2M client-credentials exchange, over loopback HTTP."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx2
import pytest

from carto_mcp import contract
from carto_mcp.masking import jwt_payload
from carto_mcp.sandbox import create_app, running_sandbox
from carto_mcp.sandbox.server import RunningSandbox

from .conftest import NO_TLS

SPA_LISTS = ("callbacks", "allowed_logout_urls", "web_origins", "allowed_origins")


def create(client: httpx2.Client, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post(contract.OAUTH_CLIENTS_PATH, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


def spa(client: httpx2.Client, name: str = "My app", **fields: Any) -> dict[str, Any]:
    return create(client, {"name": name, "app_type": "spa", **fields})


def m2m(client: httpx2.Client, name: str = "Nightly job") -> dict[str, Any]:
    return create(client, {"name": name, "app_type": "m2m"})


def exchange_form(client_id: str, secret: str, **overrides: str) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "audience": contract.AUTH_AUDIENCE,
    }
    form.update(overrides)
    return form


def test_create_spa_returns_201_with_an_id_and_every_spa_field(client: httpx2.Client) -> None:
    """An SPA create answers 201 with client_id (32 alphanumerics), created_at, the URL lists and no secret."""
    created = spa(
        client,
        initiate_login_uri="https://myapp.com/login",
        callbacks=["https://myapp.com/callback", "https://myapp.com/callback"],
        web_origins=["https://myapp.com"],
    )
    assert re.fullmatch(r"[A-Za-z0-9]{32}", created[contract.OAUTH_CLIENT_ID])
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z", created["created_at"])
    assert created["name"] == "My app"
    assert created[contract.OAUTH_APP_TYPE] == "spa"
    assert created["initiate_login_uri"] == "https://myapp.com/login"
    assert created["callbacks"] == ["https://myapp.com/callback"]
    assert created["web_origins"] == ["https://myapp.com"]
    assert created["allowed_logout_urls"] == [] and created["allowed_origins"] == []
    assert contract.OAUTH_CLIENT_SECRET not in created


def test_the_m2m_secret_appears_only_in_the_create_reply(client: httpx2.Client, sandbox: RunningSandbox) -> None:
    """client_secret (64 chars) is in the 201 reply and never again: not in GET, list, PATCH, nor the db file."""
    created = m2m(client)
    secret = created[contract.OAUTH_CLIENT_SECRET]
    assert len(secret) == 64
    assert set(created) == {contract.OAUTH_CLIENT_ID, "name", contract.OAUTH_APP_TYPE, "created_at", "client_secret"}
    path = contract.oauth_client_path(created[contract.OAUTH_CLIENT_ID])
    reads = [
        client.get(path),
        client.get(contract.OAUTH_CLIENTS_PATH),
        client.get(contract.OAUTH_CLIENTS_PATH, params={"type": "m2m"}),
        client.patch(path, json={"name": "Renamed"}),
    ]
    for response in reads:
        assert response.status_code == 200
        assert secret not in response.text
        assert contract.OAUTH_CLIENT_SECRET not in response.text
    db_path = sandbox.store.path
    assert db_path is not None
    stored = b"".join(p.read_bytes() for p in db_path.parent.glob(db_path.name + "*"))
    assert secret.encode() not in stored


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"app_type": "spa"}, "name is required"),
        ({"name": "", "app_type": "spa"}, "name"),
        ({"name": "x"}, "app_type"),
        ({"name": "x", "app_type": "web"}, "app_type"),
        ({"name": "x", "app_type": "m2m", "callbacks": ["https://a.example/"]}, "M2M client accepts name"),
        ({"name": "x", "app_type": "spa", "callbacks": ["not a url"]}, "not an absolute http(s) URL"),
        ({"name": "x", "app_type": "spa", "initiate_login_uri": "javascript:alert(1)"}, "initiate_login_uri"),
        ({"name": "x", "app_type": "spa", "web_origins": "https://a.example"}, "list of strings"),
        ({"name": "x", "app_type": "spa", "logout_urls": []}, "unknown field 'logout_urls'"),
        ({"name": "x", "app_type": "spa", "client_id": "mine"}, "unknown field 'client_id'"),
    ],
)
def test_create_refuses_bad_bodies_with_400(client: httpx2.Client, body: dict[str, Any], needle: str) -> None:
    """Invalid client bodies are a 400 with the API error shape and nothing is stored."""
    response = client.post(contract.OAUTH_CLIENTS_PATH, json=body)
    assert response.status_code == 400
    assert response.json()["error"] == "Bad request"
    assert needle in response.json()["description"]
    assert client.get(contract.OAUTH_CLIENTS_PATH).json()["total"] == 0


def test_list_filters_by_type_and_pages(client: httpx2.Client) -> None:
    """GET /v3/oauth-clients?type=spa|m2m filters; no type lists both; paging as for tokens."""
    spas = [spa(client, f"spa{i}")["client_id"] for i in range(2)]
    m2ms = [m2m(client, f"m2m{i}")["client_id"] for i in range(3)]

    def ids(**params: Any) -> tuple[list[str], int]:
        body = client.get(contract.OAUTH_CLIENTS_PATH, params=params).json()
        return [c["client_id"] for c in body["data"]], body["total"]

    assert ids(type="spa") == (spas, 2)
    assert ids(type="m2m") == (m2ms, 3)
    assert ids() == (spas + m2ms, 5)
    assert ids(page=3, per_page=2) == (m2ms[2:], 5)
    assert ids(type="m2m", page=2, per_page=2) == (m2ms[2:], 3)
    bad = client.get(contract.OAUTH_CLIENTS_PATH, params={"type": "oauth"})
    assert bad.status_code == 400 and bad.json()["error"] == "Bad request"


def test_get_returns_one_client(client: httpx2.Client) -> None:
    """GET /v3/oauth-clients/{client_id} returns the stored client."""
    created = spa(client, callbacks=["https://myapp.com/cb"])
    response = client.get(contract.oauth_client_path(created["client_id"]))
    assert response.status_code == 200
    assert response.json() == created


def test_patch_updates_spa_fields_and_keeps_the_rest(client: httpx2.Client) -> None:
    """PATCH replaces the given SPA fields; the id, type and creation time are kept."""
    created = spa(client, callbacks=["https://a.example/cb"], web_origins=["https://a.example"])
    change = {"name": "Renamed", "callbacks": ["https://b.example/cb"], "initiate_login_uri": "https://b.example/"}
    response = client.patch(contract.oauth_client_path(created["client_id"]), json=change)
    assert response.status_code == 200
    assert response.json() == {**created, **change}


@pytest.mark.parametrize(
    ("kind", "change", "needle"),
    [
        ("spa", {"client_id": "x"}, "client_id cannot be changed"),
        ("spa", {"app_type": "m2m"}, "app_type cannot be changed"),
        ("spa", {"name": ""}, "name"),
        ("spa", {"callbacks": ["nope"]}, "not an absolute http(s) URL"),
        ("m2m", {"callbacks": ["https://a.example/cb"]}, "M2M client accepts name"),
        ("m2m", {"client_secret": "mine"}, "client_secret cannot be changed"),
    ],
)
def test_patch_refuses_invalid_or_immutable_changes(
    client: httpx2.Client, kind: str, change: dict[str, Any], needle: str
) -> None:
    """A PATCH that breaks a rule or touches an immutable field is a 400; the client is unchanged."""
    created = spa(client) if kind == "spa" else m2m(client)
    created.pop(contract.OAUTH_CLIENT_SECRET, None)
    path = contract.oauth_client_path(created["client_id"])
    response = client.patch(path, json=change)
    assert response.status_code == 400
    assert needle in response.json()["description"]
    assert client.get(path).json() == created


def test_delete_answers_204_and_unknown_clients_are_404(client: httpx2.Client) -> None:
    """DELETE -> 204 with no body; GET/PATCH/DELETE of an unknown client_id -> 404 with the error shape."""
    created = m2m(client)
    path = contract.oauth_client_path(created["client_id"])
    response = client.delete(path)
    assert response.status_code == 204 and response.content == b""
    for method in ("GET", "PATCH", "DELETE"):
        gone = client.request(method, path, json={"name": "x"} if method == "PATCH" else None)
        assert gone.status_code == 404
        assert gone.json()["error"] == "Not found"
        assert created["client_id"] in gone.json()["description"]


def test_exchange_with_valid_m2m_credentials_returns_a_bearer(client: httpx2.Client, anonymous: httpx2.Client) -> None:
    """POST /oauth/token (form, no bearer needed) -> 200 {access_token (JWT), scope, expires_in, token_type}."""
    created = m2m(client)
    response = anonymous.post(
        contract.AUTH_TOKEN_PATH, data=exchange_form(created["client_id"], created["client_secret"])
    )
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "scope", "expires_in", "token_type"}
    assert body["scope"] == "" and body["token_type"] == "Bearer"
    assert body["expires_in"] == contract.AUTH_TOKEN_LIFETIME
    assert contract.JWT_RE.match(body["access_token"])
    payload = jwt_payload(body["access_token"])
    assert payload is not None and payload["sub"] == f"{created['client_id']}@clients"
    usable = anonymous.get(contract.TOKENS_PATH, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert usable.status_code == 200


@pytest.mark.parametrize("case", ["wrong secret", "unknown client", "missing secret", "missing id", "spa client"])
def test_exchange_refuses_wrong_or_missing_credentials_with_401(
    client: httpx2.Client, anonymous: httpx2.Client, case: str
) -> None:
    """Bad client credentials -> 401 {"error": "access_denied", "error_description": "Unauthorized"}."""
    created = m2m(client)
    client_id, secret = created["client_id"], created["client_secret"]
    form = {
        "wrong secret": exchange_form(client_id, secret[:-1] + ("a" if secret[-1] != "a" else "b")),
        "unknown client": exchange_form("x" * 32, secret),
        "missing secret": {k: v for k, v in exchange_form(client_id, secret).items() if k != "client_secret"},
        "missing id": {k: v for k, v in exchange_form(client_id, secret).items() if k != "client_id"},
        "spa client": exchange_form(spa(client)["client_id"], secret),
    }[case]
    response = anonymous.post(contract.AUTH_TOKEN_PATH, data=form)
    assert response.status_code == 401
    assert response.json() == {"error": "access_denied", "error_description": "Unauthorized"}


def test_exchange_refuses_other_grant_types_with_400(client: httpx2.Client, anonymous: httpx2.Client) -> None:
    """grant_type other than client_credentials -> 400 unsupported_grant_type; missing -> 400 invalid_request."""
    created = m2m(client)
    form = exchange_form(created["client_id"], created["client_secret"], grant_type="password")
    response = anonymous.post(contract.AUTH_TOKEN_PATH, data=form)
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
    assert "error_description" in response.json()
    form.pop("grant_type")
    missing = anonymous.post(contract.AUTH_TOKEN_PATH, data=form)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


def test_exchange_for_another_audience_is_403(client: httpx2.Client, anonymous: httpx2.Client) -> None:
    """An audience other than carto-cloud-native-api is refused as Auth0 does (403 access_denied)."""
    created = m2m(client)
    form = exchange_form(created["client_id"], created["client_secret"], audience="https://elsewhere")
    response = anonymous.post(contract.AUTH_TOKEN_PATH, data=form)
    assert response.status_code == 403
    assert response.json()["error"] == "access_denied"


def test_exchanges_are_counted(client: httpx2.Client, anonymous: httpx2.Client) -> None:
    """Every exchange shows up in the request counters as "POST /oauth/token"."""
    created = m2m(client)
    for _ in range(3):
        anonymous.post(contract.AUTH_TOKEN_PATH, data=exchange_form(created["client_id"], created["client_secret"]))
    assert client.get("/_sandbox/requests").json()[f"POST {contract.AUTH_TOKEN_PATH}"] == 3


@pytest.mark.anyio
async def test_the_access_token_lifetime_is_configurable(tmp_path: Path) -> None:
    """create_app(access_token_lifetime=N) makes the exchange report expires_in = N."""
    app = create_app(tmp_path / "db.sqlite3", access_token_lifetime=60)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox", verify=NO_TLS) as http:
        created = (
            await http.post(
                contract.OAUTH_CLIENTS_PATH,
                json={"name": "j", "app_type": "m2m"},
                headers={"Authorization": "Bearer x"},
            )
        ).json()
        response = await http.post(
            contract.AUTH_TOKEN_PATH, data=exchange_form(created["client_id"], created["client_secret"])
        )
    app.state.store.close()
    assert response.json()["expires_in"] == 60
    payload = jwt_payload(response.json()["access_token"])
    assert payload is not None and payload["exp"] - payload["iat"] == 60


def test_an_m2m_secret_created_before_a_restart_still_exchanges(db_path: Path) -> None:
    """Client secrets persist (as digests) in the db file, so a restarted sandbox accepts them."""
    with running_sandbox(db_path) as first:
        headers = {"Authorization": "Bearer x"}
        with httpx2.Client(base_url=first.url, headers=headers, verify=NO_TLS, timeout=10) as http:
            created = m2m(http)
    with running_sandbox(db_path) as again, httpx2.Client(base_url=again.url, verify=NO_TLS, timeout=10) as http:
        response = http.post(
            contract.AUTH_TOKEN_PATH, data=exchange_form(created["client_id"], created["client_secret"])
        )
    assert response.status_code == 200
