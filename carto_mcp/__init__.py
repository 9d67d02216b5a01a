"""carto-mcp: an MCP server that manages CARTO developer credentials with guard rails for agents."""

__version__ = "0.1.0"

__all__ = ["__version__"]
