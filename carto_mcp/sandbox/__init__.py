"""An embedded CARTO-compatible API (starlette + sqlite) for the demo mode, tests and benchmarks.

It implements `carto-api.md` — paths, bodies, validation, status codes, error shapes,
JWT-shaped tokens and show-once M2M secrets — so everything above it runs against real HTTP
with no CARTO account. Use it in-process (`httpx2.ASGITransport(app=create_app())`), on a
loopback port for tests (`with running_sandbox() as sandbox: sandbox.url`), or as a server
(`serve(port=8765, db_path=default_db_path())`).
"""

from __future__ import annotations

from carto_mcp.sandbox.app import create_app
from carto_mcp.sandbox.server import running_sandbox, serve
from carto_mcp.sandbox.store import SandboxStore, default_db_path

__all__ = ["SandboxStore", "create_app", "default_db_path", "running_sandbox", "serve"]
