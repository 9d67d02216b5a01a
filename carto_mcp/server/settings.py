"""Everything that shapes one server instance, decided before it starts."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from carto_mcp.profiles import ProfileInputs

Transport = Literal["stdio", "streamable-http", "sse"]

#: Every tool, in the order tools/list shows them.
ALL_TOOLS = (
    "list_credentials",
    "get_credential",
    "create_token",
    "create_spa",
    "create_m2m",
    "update_credential",
    "revoke_credential",
    "rotate_token",
    "whoami",
    "list_profiles",
)
READ_TOOLS = ("list_credentials", "get_credential", "whoami", "list_profiles")


@dataclass(frozen=True)
class ServerSettings:
    """Options of `carto-mcp serve`, each also settable by an environment variable in the CLI."""

    profile: ProfileInputs = field(default_factory=ProfileInputs)
    sandbox: bool = False
    sandbox_db: Path | None = None
    read_only: bool = False
    tools: tuple[str, ...] = ()
    exclude_tools: tuple[str, ...] = ()
    yes: bool = False
    audit_log: Path | None = None
    confirm_key: bytes | None = None
    confirm_ttl: int = 300
    stateless: bool = False
    debug: bool = False
    credentials_path: Path | None = None
    legacy_path: Path | None = None
    auth_url: str | None = None
    #: Extra credentials-file profiles tools may switch to with their `profile` argument.
    profiles: tuple[str, ...] = ()
