"""Stateless replicas behind a load balancer: two-step confirmation across `carto-mcp serve` processes.

Three real server processes (`serve --transport streamable-http --stateless`) share one loopback
sandbox: A and B with the same `CARTO_MCP_CONFIRM_KEY`, C with another. Each call is a plain
JSON-RPC POST to one replica, as a load balancer would route it, so a confirmation code issued
by one replica has to be honoured (once) by another.

Also structural checks of the deploy/ manifests (Dockerfile, Kubernetes YAML) without a YAML
parser, since PyYAML is not a dependency.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import httpx2
import pytest
from _procs import free_port, stop

from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox
from carto_mcp.server.audit import AuditLog

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

START_TIMEOUT = 60.0
CALL_TIMEOUT = 30.0
KEY = "replica-shared-confirm-key-for-tests"
OTHER_KEY = "another-replica-key-for-tests"
#: The bearer the replicas send to the sandbox (any non-empty value is accepted there).
BEARER = "test-bearer"
HEADERS = {
    "Content-Type": "application/json",
    "Accept": "application/json, text/event-stream",
    "MCP-Protocol-Version": "2025-06-18",
}
GRANT = {"connection": "carto_dw", "source": "carto.shared.demo_table"}


@dataclass
class Replica:
    name: str
    base: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"{self.base}/mcp"

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@dataclass
class Cluster:
    sandbox: RunningSandbox
    a: Replica
    b: Replica
    other_key: Replica


def _env(home: Path, key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARTO_")}
    return {**env, "HOME": str(home), "PYTHONUNBUFFERED": "1", "CARTO_MCP_CONFIRM_KEY": key}


def _start(name: str, sandbox_url: str, key: str, tmp: Path) -> Replica:
    port = free_port()
    log = tmp / f"replica-{name}.log"
    command = [
        sys.executable,
        "-m",
        "carto_mcp",
        "serve",
        "--transport",
        "streamable-http",
        "--stateless",
        "--port",
        str(port),
        "--base-url",
        sandbox_url,
        "--token",
        BEARER,
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=_env(tmp, key))
    return Replica(name, f"http://127.0.0.1:{port}", process, log)


def _wait_healthy(replicas: list[Replica]) -> None:
    """Every replica answers /healthz, within START_TIMEOUT for all of them together."""
    deadline = time.monotonic() + START_TIMEOUT
    waiting = list(replicas)
    while waiting:
        for replica in list(waiting):
            if replica.process.poll() is not None:
                code = replica.process.returncode
                raise AssertionError(f"replica {replica.name} exited ({code}): {replica.output()}")
            try:
                if httpx2.get(f"{replica.base}/healthz", timeout=2.0).status_code == 200:
                    waiting.remove(replica)
            except httpx2.HTTPError:
                pass
        if waiting and time.monotonic() > deadline:
            logs = "\n".join(f"{r.name}: {r.output()[-500:]}" for r in waiting)
            raise AssertionError(f"replicas {[r.name for r in waiting]} not healthy within {START_TIMEOUT} s\n{logs}")
        if waiting:
            time.sleep(0.1)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A loopback sandbox and three replicas (A, B: same key; C: another key), always stopped."""
    tmp = tmp_path_factory.mktemp("replicas")
    with running_sandbox(tmp / "sb.db") as sandbox:
        replicas: list[Replica] = []
        try:
            for name, key in (("A", KEY), ("B", KEY), ("C", OTHER_KEY)):
                replicas.append(_start(name, sandbox.url, key, tmp))
            _wait_healthy(replicas)
            yield Cluster(sandbox, *replicas)
        finally:
            for replica in replicas:
                stop(replica.process)


async def call(replica: Replica, tool: str, arguments: dict[str, Any]) -> tuple[bool, dict[str, Any], str]:
    """One stateless `tools/call` POST: (is_error, structuredContent, text)."""
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": arguments}}
    async with httpx2.AsyncClient(timeout=CALL_TIMEOUT) as http:
        response = await http.post(replica.url, content=json.dumps(body), headers=HEADERS)
    assert response.status_code == 200, f"{replica.name}: HTTP {response.status_code} {response.text[:300]}"
    message = response.json()
    assert "error" not in message, f"{replica.name}: JSON-RPC error {message['error']}"
    result = message["result"]
    text = " ".join(c.get("text", "") for c in result.get("content", []))
    assert "Traceback" not in text
    return bool(result.get("isError")), result.get("structuredContent") or {}, text


async def ok(replica: Replica, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    is_error, structured, text = await call(replica, tool, arguments)
    assert not is_error, f"{replica.name} {tool}: {text}"
    return structured


async def refused(replica: Replica, tool: str, arguments: dict[str, Any]) -> str:
    is_error, _, text = await call(replica, tool, arguments)
    assert is_error, f"{replica.name} {tool} was expected to be refused"
    return text


async def create_token(replica: Replica, name: str) -> dict[str, Any]:
    return await ok(replica, "create_token", {"grants": [GRANT], "apis": ["maps", "sql"], "name": name})


async def test_preview_on_one_replica_confirm_on_the_other_revokes(cluster: Cluster) -> None:
    """create (A) → get by short id (B) → revoke preview (A) → revoke confirm (B): the token is gone;
    the used code replayed on B is refused."""
    a, b, sandbox = cluster.a, cluster.b, cluster.sandbox
    created = await create_token(a, "replica-revoke")
    value, ident = created["token"], created["id"]
    assert sandbox.store.get_token(value) is not None

    got = await ok(b, "get_credential", {"kind": "token", "id": ident})  # B resolves an id it never saw
    assert got["id"] == ident

    preview = await ok(a, "revoke_credential", {"kind": "token", "id": ident})
    assert preview["status"] == "confirmation_required"
    code = preview["confirmation_code"]
    assert code and sandbox.store.get_token(value) is not None, "a preview must not revoke"

    done = await ok(b, "revoke_credential", {"kind": "token", "id": ident, "confirm": code})
    assert done["status"] == "revoked"
    assert sandbox.store.get_token(value) is None

    await refused(b, "revoke_credential", {"kind": "token", "id": ident, "confirm": code})


async def test_a_code_used_on_one_replica_is_refused_when_replayed_there(cluster: Cluster) -> None:
    """An update that removes access (an SPA callback): preview on A, confirm on B, replay on B → already used."""
    a, b, sandbox = cluster.a, cluster.b, cluster.sandbox
    callbacks = ["https://app.example/cb", "https://app.example/old"]
    spa = await ok(a, "create_spa", {"title": "replica-spa", "callbacks": callbacks})
    change = {"kind": "spa", "id": spa["id"], "callbacks": callbacks[:1]}

    preview = await ok(a, "update_credential", change)
    assert preview["status"] == "confirmation_required"
    code = preview["confirmation_code"]
    done = await ok(b, "update_credential", {**change, "confirm": code})
    assert done["status"] == "updated"
    stored = sandbox.store.get_client(spa["id"])
    assert stored is not None and "https://app.example/old" not in json.dumps(stored)

    text = await refused(b, "update_credential", {**change, "confirm": code})
    assert "already used" in text


async def test_a_replica_with_another_key_refuses_the_code(cluster: Cluster) -> None:
    """A code from A is refused by C (different CARTO_MCP_CONFIRM_KEY) and nothing changes; B accepts it."""
    a, b, c, sandbox = cluster.a, cluster.b, cluster.other_key, cluster.sandbox
    created = await create_token(a, "replica-other-key")
    value, ident = created["token"], created["id"]
    code = (await ok(a, "revoke_credential", {"kind": "token", "id": ident}))["confirmation_code"]

    text = await refused(c, "revoke_credential", {"kind": "token", "id": ident, "confirm": code})
    assert "not issued" in text
    assert sandbox.store.get_token(value) is not None

    done = await ok(b, "revoke_credential", {"kind": "token", "id": ident, "confirm": code})
    assert done["status"] == "revoked" and sandbox.store.get_token(value) is None


async def test_a_code_used_on_one_replica_is_refused_on_another(cluster: Cluster) -> None:
    a, b = cluster.a, cluster.b
    callbacks = ["https://app2.example/cb", "https://app2.example/old"]
    spa = await ok(a, "create_spa", {"title": "replica-spa-2", "callbacks": callbacks})
    change = {"kind": "spa", "id": spa["id"], "callbacks": callbacks[:1]}
    code = (await ok(a, "update_credential", change))["confirmation_code"]
    assert (await ok(b, "update_credential", {**change, "confirm": code}))["status"] == "updated"

    await refused(a, "update_credential", {**change, "confirm": code})


# --- deploy/ manifests: structural checks without a YAML parser (PyYAML is not a dependency) ---------

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
_YAML_LINE = re.compile(r'^( *)(- )?([A-Za-z0-9_./"-]+:( .+)?|[^:#]+)$')


def _deploy_text(name: str) -> str:
    path = DEPLOY / name
    assert path.exists(), f"{path} is missing: the deploy folder ships with the repository"
    return path.read_text(encoding="utf-8")


@pytest.mark.parametrize("name", ["k8s/deployment.yaml", "k8s/service.yaml", "k8s/hpa.yaml", "k8s/secret.example.yaml"])
def test_manifests_are_plain_block_yaml(name: str) -> None:
    """No tabs, two-space indentation, one `key: value` / `- item` per line, with apiVersion and kind."""
    text = _deploy_text(name)
    assert "\t" not in text
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _YAML_LINE.match(line)
        assert match, f"{name}:{number}: not a simple YAML line: {line!r}"
        assert len(match.group(1)) % 2 == 0, f"{name}:{number}: odd indentation"
    assert re.search(r"^apiVersion: \S+$", text, re.M) and re.search(r"^kind: \S+$", text, re.M)


def test_dockerfile_runs_the_stateless_http_server_as_non_root_with_a_healthcheck() -> None:
    text = _deploy_text("Dockerfile")
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "pip install" in text and re.search(r"^USER (?!root|0\b)\S+", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n?.*/healthz", text, re.M)
    entrypoint = (
        '["carto-mcp", "serve", "--transport", "streamable-http", "--stateless", "--host", "0.0.0.0", "--port", "8000"]'
    )
    assert f"ENTRYPOINT {entrypoint}" in text


def test_deployment_probes_secrets_resources_and_security_context() -> None:
    text = _deploy_text("k8s/deployment.yaml")
    for probe in ("readinessProbe", "livenessProbe"):
        block = text.split(f"{probe}:", 1)[1].split("Probe:", 1)[0]
        assert "path: /healthz" in block, probe
    secrets = ("CARTO_MCP_AUTH_TOKEN", "CARTO_MCP_CONFIRM_KEY", "CARTO_MCP_AUDIT_KEY")
    for variable in (*secrets, "CARTO_M2M_CLIENT_ID", "CARTO_M2M_CLIENT_SECRET"):
        assert re.search(rf"- name: {variable}\n\s+valueFrom:\n\s+secretKeyRef:", text), variable
    assert re.search(r"resources:\n\s+requests:\n(.|\n)*?limits:", text)
    assert "runAsNonRoot: true" in text and "readOnlyRootFilesystem: true" in text
    hpa = _deploy_text("k8s/hpa.yaml")
    assert "apiVersion: autoscaling/v2" in hpa and "name: cpu" in hpa
    assert "kind: Service" in _deploy_text("k8s/service.yaml")


def test_the_deployments_audit_log_is_a_file_on_a_mounted_volume_the_server_accepts(tmp_path: Path) -> None:
    """A chained log must be a regular file: the manifest's path is under a mounted volume, never a pipe."""
    text = _deploy_text("k8s/deployment.yaml")
    path = re.search(r"- name: CARTO_MCP_AUDIT_LOG\n\s+value: \"([^\"]+)\"", text)
    assert path is not None
    log = PurePosixPath(path.group(1))
    mounts = re.findall(r"mountPath: (\S+)", text)
    assert str(log.parent) in mounts and not str(log).startswith("/dev/")
    # The server accepts that shape of path at start-up (here under a temporary directory).
    AuditLog(tmp_path / log.relative_to("/")).check()


def test_secret_example_holds_placeholders_only() -> None:
    """Every value is an obvious placeholder: nothing that could pass for a real credential."""
    text = _deploy_text("k8s/secret.example.yaml")
    values = re.findall(r"^  ([A-Z0-9_]+): \"([^\"]*)\"$", text, re.M)
    assert {k for k, _ in values} == {
        "CARTO_MCP_AUTH_TOKEN",
        "CARTO_MCP_CONFIRM_KEY",
        "CARTO_MCP_AUDIT_KEY",
        "CARTO_M2M_CLIENT_ID",
        "CARTO_M2M_CLIENT_SECRET",
    }
    for key, value in values:
        assert value.startswith("REPLACE_ME"), key
    for line in text.splitlines():
        if not line.lstrip().startswith("#"):
            assert not re.search(r"[A-Za-z0-9+/=]{24,}", line), f"a long random-looking string: {line!r}"
