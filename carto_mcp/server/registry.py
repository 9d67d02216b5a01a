"""Tools declared once: each tool module lists its `ToolSpec`s, and the server picks from that list.

A spec is the function — whose signature the SDK turns into the input schema, whose return
model becomes the output schema, and whose docstring is the description a model reads — its
title and its annotations. Every tool function takes the request context as its `ctx` parameter.
Read-only mode keeps the specs whose annotations say `readOnlyHint`; `--tools` and
`--exclude-tools` filter by name or glob. Nothing else names the tools.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from mcp_types import ToolAnnotations

from carto_mcp.errors import InputError
from carto_mcp.models.kinds import CredentialKind

__all__ = ["CHANGES", "CREATES", "READS", "ToolSpec", "select_tools"]

#: Reads: nothing changes, the same call gives the same answer, the answer comes from CARTO.
READS = ToolAnnotations(read_only_hint=True, idempotent_hint=True, open_world_hint=True)
#: Creates: a new credential each call.
CREATES = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
#: Changes that can take access away (updates, revokes): confirmed first.
CHANGES = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True, open_world_hint=True)


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the server registers it."""

    fn: Callable[..., Awaitable[Any]]
    title: str
    annotations: ToolAnnotations
    #: The kind a tool acts on when it takes no `kind` argument (for audit lines).
    kind: CredentialKind | None = None

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def description(self) -> str:
        """What the model reads: the tool function's docstring as one paragraph (purpose, when, an example)."""
        return " ".join((self.fn.__doc__ or "").split())

    @property
    def read_only(self) -> bool:
        return bool(self.annotations.read_only_hint)

    def tool_annotations(self) -> ToolAnnotations:
        """The annotations with the title filled in, as hosts show them."""
        return self.annotations.model_copy(update={"title": self.title})


def select_tools(
    specs: Sequence[ToolSpec], *, read_only: bool, include: Iterable[str], exclude: Iterable[str]
) -> list[ToolSpec]:
    """The tools to register. Unknown names or globs matching nothing are an error listing the valid ones."""
    names = [spec.name for spec in specs]
    include, exclude = list(include), list(exclude)
    for pattern in (*include, *exclude):
        if not fnmatch.filter(names, pattern):
            raise InputError(
                f"--tools/--exclude-tools: {pattern!r} matches no tool. Valid tools: {', '.join(names)}", field="tools"
            )
    chosen = [s for s in specs if not include or any(fnmatch.fnmatchcase(s.name, p) for p in include)]
    chosen = [s for s in chosen if not any(fnmatch.fnmatchcase(s.name, p) for p in exclude)]
    if read_only:
        chosen = [s for s in chosen if s.read_only]
    if not chosen:
        reads = [s.name for s in specs if s.read_only]
        raise InputError(
            "--tools/--exclude-tools/--read-only leave no tool to serve. Read-only tools: "
            f"{', '.join(reads)}; all tools: {', '.join(names)}",
            field="tools",
        )
    return chosen
