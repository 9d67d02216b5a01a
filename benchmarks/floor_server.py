"""The cold-start floor: the smallest possible MCPServer with one tool, same Python, same SDK.

`python benchmarks/floor_server.py` serves it over stdio. Nothing else may be added here: it
is the yardstick `carto-mcp serve` is compared against.
"""

from mcp.server.mcpserver import MCPServer

mcp = MCPServer("floor")


@mcp.tool()
def ping() -> str:
    """Answer pong."""
    return "pong"


if __name__ == "__main__":
    mcp.run()
