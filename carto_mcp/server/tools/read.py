"""Read tools: list_credentials, get_credential and audit_credentials (read-only, idempotent)."""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from carto_mcp.credentials import ListQuery, Progress
from carto_mcp.models.results import AuditReport, CredentialDetail, CredentialList
from carto_mcp.models.rules import EXPIRY_PATTERN
from carto_mcp.models.schema import Maybe
from carto_mcp.server.registry import READS, ToolSpec
from carto_mcp.server.state import state_of
from carto_mcp.server.tools._args import CredentialId, KindArg, ListKindArg, ProfileArg


async def list_credentials(
    ctx: Context[Any, Any],
    kind: ListKindArg = "all",
    text: Annotated[
        Maybe[Annotated[str, Field(max_length=256)]], Field(description="Case-insensitive text in the name or title.")
    ] = None,
    expiring_within: Annotated[
        Maybe[Annotated[str, Field(pattern=EXPIRY_PATTERN, max_length=40)]],
        Field(
            description="Only tokens that have not expired and expire within this span ('7d', '2w', '1m') or "
            "before this date.",
        ),
    ] = None,
    expired: Annotated[Maybe[bool], Field(description="true: only expired tokens; false: only unexpired ones.")] = None,
    limit: Annotated[int, Field(ge=1, le=500, description="Rows per page (default 50, max 500).")] = 50,
    cursor: Annotated[
        Maybe[Annotated[str, Field(max_length=512)]], Field(description="next_cursor from the previous page.")
    ] = None,
    fresh: Annotated[
        bool,
        Field(
            description="Read CARTO now instead of a listing read in the last few seconds (this server's own "
            "changes always show at once; set it to see a change made elsewhere just now)."
        ),
    ] = False,
    profile: ProfileArg = None,
) -> CredentialList:
    """List CARTO API Access Tokens and SPA/M2M OAuth clients as compact rows (secrets never shown). Use it
    to find a credential's id, or to audit what exists and what expires soon. Filter by kind, text (in
    the name/title), expiring_within (e.g. '7d') or expired; page with limit and cursor. Example:
    {"kind": "token", "expiring_within": "7d"}
    """

    query = ListQuery(kind, text, expiring_within, expired, limit, cursor, fresh)
    return await state_of(ctx).credentials(profile).list_page(query, _progress(ctx))


def _progress(ctx: Context[Any, Any]) -> Progress:
    async def progress(seen: int, total: int | None) -> None:
        await ctx.report_progress(seen, total, f"read {seen} credentials" + (f" of {total}" if total else ""))

    return progress


async def get_credential(
    ctx: Context[Any, Any], kind: KindArg, id: CredentialId, profile: ProfileArg = None
) -> CredentialDetail:
    """Full detail of one credential: a token's grants, APIs, referers and expiry, or an OAuth client's
    URLs. Secrets are masked. Example: {"kind": "token", "id": "3f9a1c2e"}
    """
    return await state_of(ctx).credentials(profile).get(kind, id)


async def audit_credentials(
    ctx: Context[Any, Any],
    expiring_within: Annotated[
        str,
        Field(
            pattern=EXPIRY_PATTERN,
            max_length=40,
            description="Report tokens that expire within this span ('14d', '1m') or before this date.",
        ),
    ] = "14d",
    limit: Annotated[int, Field(ge=1, le=500, description="Findings to return, most risky first (default 50).")] = 50,
    fresh: Annotated[bool, Field(description="Read CARTO now instead of a listing from the last few seconds.")] = False,
    profile: ProfileArg = None,
) -> AuditReport:
    """Audit every credential once and report risks, most serious first, each with the tool call that would
    fix it: '*' all-sources grants, broad wildcard patterns, breaches of the active policy, Import API
    tokens, Maps tokens without referers, tokens that never expire, are expired or expire soon, duplicate
    tokens, OAuth clients with http:// or localhost URLs. Changes nothing. Example: {"expiring_within": "7d"}
    """
    return await state_of(ctx).credentials(profile).audit(expiring_within, limit, _progress(ctx), fresh=fresh)


TOOLS = (
    ToolSpec(list_credentials, "List credentials", READS),
    ToolSpec(get_credential, "Get a credential", READS),
    ToolSpec(audit_credentials, "Audit credentials", READS),
)
