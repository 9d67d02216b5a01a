"""Where a cold start goes, phase by phase, in a fresh interpreter: `python -m benchmarks._phases carto|floor`.

Prints one JSON object: seconds spent importing, building the server (tool registration) and
answering tools/list in-process. With `--profile PATH`, also writes a cProfile of the build.
"""

from __future__ import annotations

import sys
import time

_T0 = time.perf_counter()


def main() -> None:
    import json

    arm = sys.argv[1]
    profile_path = sys.argv[3] if len(sys.argv) > 3 and sys.argv[2] == "--profile" else None
    if arm == "carto":
        import carto_mcp.cli  # noqa: F401  (what `python -m carto_mcp serve` imports first)
        from carto_mcp.config import Settings
        from carto_mcp.server.app import build_server

        def build() -> object:
            return build_server(Settings(sandbox=True))
    else:
        from mcp.server.mcpserver import MCPServer

        def build() -> object:
            mcp = MCPServer("floor")

            @mcp.tool()
            def ping() -> str:
                return "pong"

            return mcp

    import anyio

    imported = time.perf_counter()
    profiler = None
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    server = build()
    if profiler is not None:
        profiler.disable()
    built = time.perf_counter()
    tools = anyio.run(server.list_tools)  # type: ignore[attr-defined]
    listed = time.perf_counter()
    if profiler is not None and profile_path:
        import io
        import pstats

        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(40)
        with open(profile_path, "w", encoding="utf-8") as fh:
            fh.write(f"cProfile of build_server(Settings(sandbox=True)) ({len(tools)} tools)\n\n")
            fh.write(out.getvalue())
    print(
        json.dumps(
            {"import_s": imported - _T0, "build_s": built - imported, "list_s": listed - built, "tools": len(tools)}
        )
    )


if __name__ == "__main__":
    main()
