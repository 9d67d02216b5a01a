"""pydantic's complaints about user input, as text that names the field and never echoes the value.

The SDK's default validation text repeats the rejected input, and a rejected input may be a
secret (a token pasted as a pattern, say). Everything that validates what a person or a model
typed goes through `build` (or `describe`, for the SDK's own argument check).
"""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from carto_mcp.errors import InputError

__all__ = ["build", "describe"]

M = TypeVar("M", bound=BaseModel)

#: A long list of problems is cut here; the first few are what a caller fixes first.
MAX_PROBLEMS = 5
_PREFIXES = ("Value error, ", "Assertion failed, ")


def describe(exc: ValidationError) -> str:
    """`field.path: what is wrong` for each problem, joined by `; ` (input values are never repeated)."""
    problems = exc.errors(include_url=False, include_input=False, include_context=False)
    lines = []
    for err in problems[:MAX_PROBLEMS]:
        loc = ".".join(str(p) for p in err.get("loc", ()))
        msg = str(err.get("msg", "invalid value"))
        for prefix in _PREFIXES:
            msg = msg.removeprefix(prefix)
        lines.append(f"{loc}: {msg}" if loc and not msg.startswith(f"{loc}:") else msg)
    if len(problems) > MAX_PROBLEMS:
        lines.append(f"... and {len(problems) - MAX_PROBLEMS} more")
    return "; ".join(lines)


def build(model: type[M], **values: Any) -> M:
    """`model(**values)`, where a refusal is an InputError (a caller's mistake, not a bug)."""
    try:
        return model(**values)
    except ValidationError as exc:
        raise InputError(describe(exc)) from None
