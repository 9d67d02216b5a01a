"""Every tool the server can offer, in the order `tools/list` shows them (each module declares its own)."""

from __future__ import annotations

from carto_mcp.server.registry import ToolSpec
from carto_mcp.server.tools import change, create, identity, read, rotate

__all__ = ["TOOLS"]

TOOLS: tuple[ToolSpec, ...] = (*read.TOOLS, *create.TOOLS, *change.TOOLS, *rotate.TOOLS, *identity.TOOLS)
