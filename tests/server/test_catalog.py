"""The stored tool catalog is exactly what the SDK generates, so tools/list can be served from it."""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from carto_mcp.server import catalog
from carto_mcp.server.app import build_server, materialize_all
from carto_mcp.server.settings import ALL_TOOLS, ServerSettings


def test_the_stored_catalog_equals_a_fresh_generation() -> None:
    """catalog.json is regenerated from the live tool functions and must match byte for byte."""
    fresh = json.dumps(catalog.generate(), indent=1, ensure_ascii=False, sort_keys=True) + "\n"
    stored = catalog.CATALOG_FILE.read_text(encoding="utf-8")
    assert stored == fresh, "run `python -m carto_mcp.server.catalog --write` after changing a tool"


def test_every_tool_has_a_module_and_a_catalog_entry() -> None:
    """TOOL_MODULES, the catalog and the settings name the same tools in the same order."""
    stored = catalog.load()
    assert stored is not None
    assert list(catalog.TOOL_MODULES) == list(ALL_TOOLS) == list(stored)


def test_tools_list_from_the_catalog_equals_the_live_list_for_each_policy() -> None:
    """Served from the file or generated live, tools/list is the same, read-only and filtered too."""
    for settings in (ServerSettings(), ServerSettings(read_only=True), ServerSettings(exclude_tools=("*_m2m",))):
        server = build_server(settings)
        served = anyio.run(server.list_tools)
        assert not server._built  # nothing was built to answer tools/list
        materialize_all(server)
        live = anyio.run(server.live_tools)
        assert [t.model_dump() for t in served] == [t.model_dump() for t in live]


def test_a_stale_catalog_is_ignored(tmp_path: Path) -> None:
    """A catalog from another version (or pydantic) is not trusted: tools/list falls back to live generation."""
    path = tmp_path / "catalog.json"
    data = json.loads(catalog.CATALOG_FILE.read_text(encoding="utf-8"))
    data["fingerprint"]["pydantic"] = "0.0"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert catalog.load(path) is None
    path.write_text("{not json", encoding="utf-8")
    assert catalog.load(path) is None
