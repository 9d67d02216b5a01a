"""Tool definitions computed once, so start-up builds no schemas.

Registering a tool makes the SDK build a pydantic model and two JSON schemas per tool: about
a tenth of a second for our tools, paid before the first `tools/list` on every desktop launch.
`catalog.json` holds exactly what `tools/list` returns (a test regenerates it and compares), so
the server answers `tools/list` from the file and builds each tool on its first call.

Regenerate after changing a tool: `python -m carto_mcp.server.catalog --write`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from carto_mcp import __version__

CATALOG_FILE = Path(__file__).with_name("catalog.json")

#: Which module registers each tool, in the order tools/list shows them.
TOOL_MODULES: dict[str, str] = {
    "list_credentials": "read",
    "get_credential": "read",
    "create_token": "create",
    "create_spa": "create",
    "create_m2m": "create",
    "update_credential": "modify",
    "revoke_credential": "modify",
    "rotate_token": "extras",
    "whoami": "extras",
    "list_profiles": "extras",
}


def fingerprint() -> dict[str, str]:
    """What the definitions depend on besides our own code; a mismatch means generate live."""
    import pydantic

    return {"carto_mcp": __version__, "pydantic": pydantic.VERSION}


def load(path: Path = CATALOG_FILE) -> dict[str, dict[str, Any]] | None:
    """The stored definitions by tool name, or None when missing, unreadable or stale."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("fingerprint") != fingerprint():
        return None
    tools = data.get("tools")
    if not isinstance(tools, list):
        return None
    return {t["name"]: t for t in tools if isinstance(t, dict) and "name" in t}


def generate() -> dict[str, Any]:
    """Build every tool the live way and dump what tools/list would return."""
    import anyio

    from carto_mcp.server.app import build_server, materialize_all
    from carto_mcp.server.settings import ServerSettings

    server = build_server(ServerSettings())
    materialize_all(server)
    tools = anyio.run(server.live_tools)
    return {
        "fingerprint": fingerprint(),
        "tools": [t.model_dump(mode="json", by_alias=True, exclude_none=True) for t in tools],
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    fresh = json.dumps(generate(), indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    if "--write" in args:
        CATALOG_FILE.write_text(fresh, encoding="utf-8")
        print(f"wrote {CATALOG_FILE}")
        return 0
    current = CATALOG_FILE.read_text(encoding="utf-8") if CATALOG_FILE.exists() else ""
    if current != fresh:
        print(f"{CATALOG_FILE} is stale: run `python -m carto_mcp.server.catalog --write`", file=sys.stderr)
        return 1
    print("catalog is up to date")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
