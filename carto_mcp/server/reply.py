"""How a tool result looks on the wire: structured content plus a short text for people.

The SDK's default text is the structured content pretty-printed, which doubles a 500-row page.
Ours is one summary sentence followed by the same data as compact JSON, so a host that shows
the model only the text still gives it every id; fields without a value are left out.
"""

from __future__ import annotations

import json
from typing import Any, Protocol

from mcp_types import CallToolResult, TextContent

__all__ = ["Result", "reply"]


class Result(Protocol):
    """A tool's result model: what it holds (`model_dump`) and one sentence about it (`summary`)."""

    def model_dump(self, *, mode: str = ..., exclude_none: bool = ...) -> dict[str, Any]: ...

    def summary(self) -> str: ...


def reply(result: Result) -> CallToolResult:
    """A CallToolResult whose structuredContent is `result` and whose text starts with its summary."""
    data = result.model_dump(mode="json", exclude_none=True)
    text = result.summary() + "\n" + json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)
