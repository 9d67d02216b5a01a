"""Fixtures for the API client tests: the anyio backend, a loopback sandbox and its admin routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox

from ._support import Admin


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[RunningSandbox]:
    """The sandbox API over real HTTP on a loopback port, with the fault routes on."""
    with running_sandbox(tmp_path / "sandbox.sqlite3", faults=True) as running:
        yield running


@pytest.fixture
def admin(sandbox: RunningSandbox) -> Iterator[Admin]:
    helper = Admin(sandbox.url)
    try:
        yield helper
    finally:
        helper.close()
