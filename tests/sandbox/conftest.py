"""Fixtures for the sandbox tests: a loopback sandbox with faults enabled and a client bound to it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest

from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox

BEARER = "test-login"
#: The sandbox is plain HTTP on loopback: skip loading the CA bundle (about 0.1 s per client).
NO_TLS = False


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh database file for tests that start their own sandboxes."""
    return tmp_path / "sandbox.sqlite3"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningSandbox]:
    """One loopback sandbox (faults enabled) per test module: starting one per test costs ~0.2 s."""
    path = tmp_path_factory.mktemp("sandbox") / "sandbox.sqlite3"
    with running_sandbox(path, faults=True) as running:
        yield running


@pytest.fixture
def sandbox(served: RunningSandbox) -> RunningSandbox:
    """The module's sandbox, emptied: no tokens, clients, faults, counters or rejected bearers."""
    served.store.clear()
    served.app.state.faults.reset()
    return served


@pytest.fixture
def client(sandbox: RunningSandbox) -> Iterator[httpx2.Client]:
    with httpx2.Client(
        base_url=sandbox.url, headers={"Authorization": f"Bearer {BEARER}"}, timeout=10, verify=NO_TLS
    ) as http:
        yield http


@pytest.fixture
def anonymous(sandbox: RunningSandbox) -> Iterator[httpx2.Client]:
    """A client that sends no Authorization header."""
    with httpx2.Client(base_url=sandbox.url, timeout=10, verify=NO_TLS) as http:
        yield http
