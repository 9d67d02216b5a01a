"""What a credential tool means, independent of MCP: listing, planned changes, rotation, secret delivery.

Depends on `carto_mcp.api` and `carto_mcp.models` only; `carto_mcp.server` is its one caller.
"""

from __future__ import annotations

from carto_mcp.credentials.changes import Plan, client_change, the_change, token_change
from carto_mcp.credentials.delivery import FileSink, InlineSink, RevealSink, SecretsDir, SecretSink, choose
from carto_mcp.credentials.guard import Guard
from carto_mcp.credentials.listing import ListQuery, Progress
from carto_mcp.credentials.reveal import RevealStore
from carto_mcp.credentials.rotation import replacement, same_lifetime
from carto_mcp.credentials.secrets import SecretFile, env_name
from carto_mcp.credentials.service import M2M_VARIABLES, Credentials, Rotation

__all__ = [
    "M2M_VARIABLES",
    "Credentials",
    "FileSink",
    "Guard",
    "InlineSink",
    "ListQuery",
    "Plan",
    "Progress",
    "RevealSink",
    "RevealStore",
    "Rotation",
    "SecretFile",
    "SecretSink",
    "SecretsDir",
    "choose",
    "client_change",
    "env_name",
    "replacement",
    "same_lifetime",
    "the_change",
    "token_change",
]
