"""Test-only instrumentation: injected faults, request counters and revoked bearers (faults=True)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2
import pytest

from carto_mcp import contract
from carto_mcp.sandbox import create_app
from carto_mcp.sandbox.server import RunningSandbox

from .conftest import BEARER, NO_TLS

FAULTS = "/_sandbox/faults"
REQUESTS = "/_sandbox/requests"


def inject(http: httpx2.Client, **fault: Any) -> None:
    response = http.post(FAULTS, json=fault)
    assert response.status_code == 201, response.text


@pytest.mark.parametrize("status", [429, 500, 503])
def test_a_status_fault_answers_that_status_with_the_error_shape(client: httpx2.Client, status: int) -> None:
    """mode=status -> that status and a JSON {"error", "description"} body, then normal service."""
    inject(client, mode="status", status=status)
    response = client.get(contract.TOKENS_PATH)
    assert response.status_code == status
    assert response.headers["content-type"].startswith("application/json")
    assert set(response.json()) == {"error", "description"}
    assert "retry-after" not in response.headers
    assert client.get(contract.TOKENS_PATH).status_code == 200


def test_a_429_carries_retry_after_and_lasts_the_given_number_of_times(client: httpx2.Client) -> None:
    """retry_after sets the Retry-After header; times=N hits the next N matching requests."""
    inject(client, mode="status", status=429, retry_after=1, times=2)
    first, second, third = (client.get(contract.TOKENS_PATH) for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers["retry-after"] == "1"
    assert first.json()["error"] == "Too many requests"


def test_an_html_fault_answers_like_a_proxy(client: httpx2.Client) -> None:
    """mode=html -> 502 (by default) with a text/html page instead of JSON."""
    inject(client, mode="html")
    response = client.get(contract.TOKENS_PATH)
    assert response.status_code == 502
    assert response.headers["content-type"].startswith("text/html")
    assert "<html>" in response.text and "502 Bad Gateway" in response.text
    inject(client, mode="html", status=504)
    assert client.get(contract.TOKENS_PATH).status_code == 504


def test_a_stall_fault_trips_a_client_timeout_then_answers_normally(sandbox: RunningSandbox) -> None:
    """mode=stall delays the answer by stall_seconds: a shorter client timeout fires; the work still happens."""
    with httpx2.Client(base_url=sandbox.url, headers={"Authorization": "Bearer x"}, verify=NO_TLS) as http:
        inject(http, mode="stall", stall_seconds=1.0, method="POST")
        started = time.monotonic()
        with pytest.raises(httpx2.TimeoutException):
            http.post(contract.TOKENS_PATH, json={"allowed_apis": ["lds"]}, timeout=0.2)
        assert time.monotonic() - started < 1.0
        deadline = time.monotonic() + 5
        while http.get(contract.TOKENS_PATH, timeout=5).json()["total"] == 0:
            assert time.monotonic() < deadline, "the stalled create never completed"
            time.sleep(0.05)


def test_a_stall_fault_without_a_client_timeout_just_delays(client: httpx2.Client) -> None:
    """After stall_seconds the request is handled as usual."""
    inject(client, mode="stall", stall_seconds=0.3)
    started = time.monotonic()
    assert client.get(contract.TOKENS_PATH).status_code == 200
    assert time.monotonic() - started >= 0.3


def test_a_drop_fault_breaks_the_connection_mid_response(client: httpx2.Client) -> None:
    """mode=drop sends headers and a few bytes, then aborts: the client sees a transport error."""
    inject(client, mode="drop")
    with pytest.raises(httpx2.TransportError) as caught:
        client.get(contract.TOKENS_PATH)
    assert isinstance(caught.value, httpx2.RemoteProtocolError)
    assert client.get(contract.TOKENS_PATH).status_code == 200


def test_a_fault_matches_only_its_method_and_path_prefix(client: httpx2.Client) -> None:
    """method and path_prefix restrict which requests consume the fault."""
    inject(client, mode="status", status=503, method="post", path_prefix=contract.TOKENS_PATH)
    assert client.get(contract.TOKENS_PATH).status_code == 200
    assert client.post(contract.OAUTH_CLIENTS_PATH, json={"name": "a", "app_type": "m2m"}).status_code == 201
    assert client.post(contract.TOKENS_PATH, json={"allowed_apis": ["lds"]}).status_code == 503
    assert client.post(contract.TOKENS_PATH, json={"allowed_apis": ["lds"]}).status_code == 201


def test_faults_apply_before_auth(anonymous: httpx2.Client) -> None:
    """A queued fault answers even a request without a bearer (it stands in for the network)."""
    inject(anonymous, mode="status", status=503)
    assert anonymous.get(contract.TOKENS_PATH).status_code == 503
    assert anonymous.get(contract.TOKENS_PATH).status_code == 401


def test_faults_are_consumed_in_the_order_they_were_queued(client: httpx2.Client) -> None:
    """Several queued faults hit successive requests first-in, first-out."""
    inject(client, mode="status", status=500)
    inject(client, mode="status", status=503)
    assert [client.get(contract.TOKENS_PATH).status_code for _ in range(3)] == [500, 503, 200]


def test_deleting_faults_clears_the_queue(client: httpx2.Client) -> None:
    """DELETE /_sandbox/faults -> 204 and no fault fires afterwards."""
    inject(client, mode="status", status=503, times=5)
    assert client.delete(FAULTS).status_code == 204
    assert client.get(contract.TOKENS_PATH).status_code == 200


@pytest.mark.parametrize(
    "fault",
    [
        {"mode": "explode"},
        {},
        {"mode": "status", "status": 200},
        {"mode": "status", "times": 0},
        {"mode": "status", "retry_after": -1},
        {"mode": "stall", "stall_seconds": "long"},
        {"mode": "status", "path_prefix": "v3"},
        {"mode": "status", "color": "red"},
    ],
)
def test_bad_fault_bodies_are_refused_with_400(client: httpx2.Client, fault: dict[str, Any]) -> None:
    """An invalid fault is a 400 with the error shape and nothing is queued."""
    response = client.post(FAULTS, json=fault)
    assert response.status_code == 400
    assert response.json()["error"] == "Bad request"
    assert client.get(contract.TOKENS_PATH).status_code == 200


def test_request_counters_are_keyed_by_route_template_and_can_be_reset(client: httpx2.Client) -> None:
    """GET /_sandbox/requests counts "METHOD /path-template" (token values never appear); DELETE resets."""
    token = client.post(contract.TOKENS_PATH, json={"allowed_apis": ["lds"]}).json()["token"]
    client.get(contract.token_path(token))
    client.get(contract.token_path(token))
    client.get(contract.TOKENS_PATH)
    inject(client, mode="status", status=503)
    client.get(contract.TOKENS_PATH)
    counts = client.get(REQUESTS).json()
    assert counts == {
        f"POST {contract.TOKENS_PATH}": 1,
        f"GET {contract.token_path('{token}')}": 2,
        f"GET {contract.TOKENS_PATH}": 2,
    }
    assert client.delete(REQUESTS).status_code == 204
    assert client.get(REQUESTS).json() == {}


def test_unauthorized_requests_are_counted_too(anonymous: httpx2.Client) -> None:
    """A request refused with 401 was still received, so it counts."""
    assert anonymous.get(contract.TOKENS_PATH).status_code == 401
    assert anonymous.get(REQUESTS).json() == {f"GET {contract.TOKENS_PATH}": 1}


def test_a_rejected_bearer_gets_401_from_then_on(client: httpx2.Client, anonymous: httpx2.Client) -> None:
    """POST /_sandbox/reject-bearer makes that bearer (with or without 'Bearer ') fail with the 401 body."""
    assert anonymous.post("/_sandbox/reject-bearer", json={"bearer": "Bearer expired-login"}).status_code == 204
    refused = anonymous.get(contract.TOKENS_PATH, headers={"Authorization": "Bearer expired-login"})
    assert refused.status_code == 401
    assert refused.json() == contract.UNAUTHORIZED_BODY
    assert client.get(contract.TOKENS_PATH).status_code == 200
    assert anonymous.post("/_sandbox/reject-bearer", json={"bearer": ""}).status_code == 400
    assert anonymous.post("/_sandbox/reject-bearer", json={}).status_code == 400


@pytest.mark.anyio
async def test_the_sandbox_routes_exist_only_with_faults_enabled(tmp_path: Path) -> None:
    """Without faults=True the /_sandbox/ routes are 404 (though requests are still counted in app state)."""
    app = create_app(tmp_path / "db.sqlite3")
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url="http://sandbox", verify=NO_TLS
    ) as http:
        for method, path in [("POST", FAULTS), ("DELETE", FAULTS), ("GET", REQUESTS), ("DELETE", REQUESTS)]:
            assert (await http.request(method, path, json={"mode": "drop"})).status_code == 404
        assert (await http.post("/_sandbox/reject-bearer", json={"bearer": BEARER})).status_code == 404
        assert (await http.get(contract.TOKENS_PATH, headers={"Authorization": "Bearer x"})).status_code == 200
    app.state.store.close()
    assert app.state.faults.counts() == {f"GET {contract.TOKENS_PATH}": 1}


@pytest.mark.anyio
async def test_a_stall_fault_also_works_in_process(tmp_path: Path) -> None:
    """Over httpx2.ASGITransport a stall delays the answer by stall_seconds and then answers normally."""
    app = create_app(tmp_path / "db.sqlite3", faults=True)
    transport = httpx2.ASGITransport(app=app)
    async with httpx2.AsyncClient(transport=transport, base_url="http://sandbox", verify=NO_TLS) as http:
        assert (await http.post(FAULTS, json={"mode": "stall", "stall_seconds": 0.3})).status_code == 201
        started = time.monotonic()
        response = await http.get(contract.TOKENS_PATH, headers={"Authorization": "Bearer x"})
        assert response.status_code == 200
        assert time.monotonic() - started >= 0.3
    app.state.store.close()
