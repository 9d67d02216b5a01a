"""The package's import graph has no cycle, counting function-local and TYPE_CHECKING imports.

A lazy import inside a function is still a dependency: it hides a cycle until the day the
function runs first. Edges point at the most specific module named (`from carto_mcp.api
import client` depends on `carto_mcp.api.client`, `from carto_mcp.api import CartoClient`
on the package `carto_mcp.api` itself); a package's `__init__` importing its own submodules
is an edge like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

import carto_mcp

ROOT = Path(carto_mcp.__file__).parent


def modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _specific(name: str, known: dict[str, Path]) -> str | None:
    """The longest prefix of a dotted name that is one of our modules."""
    parts = name.split(".")
    while parts:
        candidate = ".".join(parts)
        if candidate in known:
            return candidate
        parts.pop()
    return None


def edges(module: str, path: Path, known: dict[str, Path]) -> set[str]:
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, node.module] if node.module else base)
            else:
                origin = node.module or ""
            targets = [f"{origin}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            found = _specific(target, known)
            if found is not None and found != module:
                out.add(found)
    return out


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_package_has_no_import_cycle() -> None:
    """Every module's imports, wherever they are written, form a graph without cycles."""
    known = modules()
    graph = {name: edges(name, path, known) for name, path in known.items()}
    assert sum(len(v) for v in graph.values()) > len(known)  # the walk really saw the imports
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_finds_a_cycle_and_a_lazy_import() -> None:
    """The checker itself: a cycle through a function-local import is reported."""
    known = {"pkg": Path("pkg/__init__.py"), "pkg.a": Path("pkg/a.py"), "pkg.b": Path("pkg/b.py")}
    graph = {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
    assert find_cycle({"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": set()}) is None
    assert _specific("pkg.a.Thing", known) == "pkg.a" and _specific("os.path", known) is None
