"""How a tool result looks on the wire: structured content plus a short text for people.

The SDK's default text is the structured content pretty-printed, which doubles a 500-row page.
Ours is one summary sentence followed by the same data as compact JSON, so a host that shows
the model only the text still gives it every id, and list rows leave out empty fields.
"""

from __future__ import annotations

import functools
import inspect
import json
import typing
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from mcp_types import CallToolResult, TextContent
from pydantic import BaseModel


def reply(result: BaseModel, summary: str, *, drop_none_in: str | None = None) -> CallToolResult:
    """A CallToolResult whose structuredContent is `result` and whose text starts with `summary`.

    `drop_none_in` names a list field whose items lose their null fields (compact rows).
    """
    data = result.model_dump(mode="json")
    if drop_none_in is not None:
        data[drop_none_in] = [{k: v for k, v in item.items() if v is not None} for item in data[drop_none_in]]
    text = summary + "\n" + json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return CallToolResult(content=[TextContent(type="text", text=text)], structured_content=data)


def summarized(fn: Callable[..., Awaitable[Any]], *, drop_none_in: str | None = None) -> Callable[..., Any]:
    """Register `fn` (which returns a result model with a `summary()`) so it replies through `reply`.

    The wrapper keeps `fn`'s signature and resolved annotations, so the SDK derives the same
    input schema and Resolve plan; the return becomes `Annotated[CallToolResult, Model]`,
    which keeps the model's output schema while the content is ours.
    """
    hints = typing.get_type_hints(fn, include_extras=True)
    model = hints["return"]

    @functools.wraps(fn)
    async def tool(*args: Any, **kwargs: Any) -> Any:
        result = await fn(*args, **kwargs)
        return reply(result, result.summary(), drop_none_in=drop_none_in)

    hints["return"] = Annotated[CallToolResult, model]
    signature = inspect.signature(fn)
    tool.__annotations__ = hints
    tool.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[p.replace(annotation=hints.get(p.name, p.annotation)) for p in signature.parameters.values()],
        return_annotation=hints["return"],
    )
    return tool
