"""MCP prompts for the common jobs and a resource with the token rules, for agents to read first.

The rules text restates `carto_mcp.models.rules` and the CARTO user manual in a model's terms;
the prompts walk through a job with the tools, least privilege first.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

from mcp.server.mcpserver import MCPServer
from pydantic import Field

if TYPE_CHECKING:
    from carto_mcp.policy_file import ActivePolicy

RULES_URI = "carto://rules/tokens"
POLICY_URI = "carto://policy"

TOKEN_RULES = """\
# CARTO API Access Token rules

## Allowed APIs
- `sql`, `maps`, `imports`, `lds` (the Workspace "MCP Server" scope is not supported here).
- `imports` cannot be combined with any other API: make a separate token for the Import API.
- `sql` and `maps` need at least one grant. `lds` needs none.
- Maps accepts every grant kind. SQL only accepts query, named-source and all-sources grants:
  a table or pattern grant on a token whose only reading API is `sql` is useless (a warning).

## Grants: (connection, source) pairs
- table / tileset / raster: a fully qualified name, e.g. `carto.shared.demo_table`.
- pattern: a wildcard that must contain a dot, e.g. `carto.shared.CARTO_*`. `*`, `**` and
  `table*` are refused. Fewer than two segments before the `*` (e.g. `carto.*.demo_*`) is
  allowed but broad. A pattern grants every matching resource, current and future.
- query: SQL starting with SELECT or WITH; may use `@param` parameters.
- named source: a bare name (3-51 lowercase letters, digits, `_`, `-`).
- all sources: `*` — everything on the connection, including future tables. Use sparingly.

## Referers
- URLs the token may be used from; the service compares each with the browser's Referer header.
  Full paths are often stripped by browsers, so list sites, not pages.
- CARTO's documents disagree on the trailing slash: the user manual says the header usually ends
  in `/` and asks for it; CARTO's agent skills report that a referer stored with the slash makes
  every tile fail with 403 "Unauthorized referer". When unsure, list both forms:
  `https://myapp.com` and `https://myapp.com/`.

## Expiry
- Optional; ISO date (`2027-01-01`), datetime, or shorthand `1d`, `2w`, `6m`, `1y`. It must be in
  the future and cannot be changed later: to change it, rotate the token.
- Tokens without expiry never expire.

## Least privilege, in order
1. Only the APIs the app calls (a public map usually needs `maps` alone).
2. The narrowest grant: one table, or a query, before a pattern; a pattern before `*`.
3. Referers for any token that ships to a browser.
4. An expiry whenever the use is temporary.
5. Revocation is immediate and unrecoverable: check nothing uses a token first.
"""


def register(server: MCPServer[Any], policy: ActivePolicy | None = None) -> None:
    server.resource(
        RULES_URI,
        name="token-rules",
        title="CARTO token rules",
        description="Allowed APIs, grant kinds, wildcard patterns, referers and expiry rules for API Access Tokens.",
        mime_type="text/markdown",
    )(token_rules)

    def active_policy() -> str:
        return policy_text(policy)

    server.resource(
        POLICY_URI,
        name="policy",
        title="This server's policy",
        description="The organization's rules for what may be created here (in words and as JSON); "
        "requests that break them are refused before they reach CARTO.",
        mime_type="text/markdown",
    )(active_policy)
    server.prompt(
        name="least_privilege_map_token",
        title="Least-privilege token for a public map",
        description="Create the narrowest API Access Token a public web map needs.",
    )(least_privilege_map_token)
    server.prompt(
        name="rotate_expiring_tokens",
        title="Rotate tokens expiring soon",
        description="Find tokens that expire soon and rotate them one by one, with confirmation.",
    )(rotate_expiring_tokens)


def token_rules() -> str:
    return TOKEN_RULES


def policy_text(policy: ActivePolicy | None) -> str:
    """The active policy in words, then as JSON; or a plain statement that there is none."""
    if policy is None:
        return (
            "# Policy\n\nNo policy is active on this server (no --policy / CARTO_MCP_POLICY): every request that "
            "CARTO's own rules (carto://rules/tokens) accept is allowed. Still prefer least privilege."
        )
    as_json = json.dumps(policy.as_json(), indent=2, ensure_ascii=False)
    return f"# Policy\n\n{policy.in_words()}\n\n## As JSON\n\n```json\n{as_json}\n```\n"


def least_privilege_map_token(
    source: Annotated[str, Field(description="Table, tileset or query the map shows, e.g. carto.shared.airports")],
    site: Annotated[str, Field(description="Web site that embeds the map, e.g. https://myapp.com/")],
    connection: Annotated[str, Field(description="CARTO connection name")] = "carto_dw",
    days: Annotated[str, Field(description="Lifetime in days, e.g. 30")] = "30",
) -> str:
    origin = site.rstrip("/")
    return (
        f"Create a least-privilege CARTO API Access Token for a public web map on {site} showing {source} "
        f"(connection {connection}).\n"
        f"1. Read the resources {RULES_URI} and {POLICY_URI} (this server's policy: follow it).\n"
        '2. Call create_token with dry_run=true, apis=["maps"] only, one grant '
        f'{{"connection": "{connection}", "source": "{source}"}}, referers=["{origin}", "{origin}/"] (both '
        "forms, since CARTO's documents disagree on the trailing slash) and "
        f'expiration_date="{days}d". Show me the normalized request and every warning.\n'
        "3. If I agree, call create_token again without dry_run and give me the token once; tell me to store it "
        "now, because it will not be shown again."
    )


def rotate_expiring_tokens(
    within: Annotated[str, Field(description="How soon, e.g. 7d or 2w")] = "7d",
) -> str:
    return (
        f"Rotate my CARTO API Access Tokens that expire within {within}.\n"
        f"0. Read the resource {POLICY_URI}: a replacement must follow this server's policy (e.g. its max expiry).\n"
        f'1. Call list_credentials with kind="token" and expiring_within="{within}"; show me the list.\n'
        "2. For each token I approve, call rotate_token with its id. It creates a replacement with the same "
        "grants, APIs and referers and delivers the new value once; the old token is revoked only after I confirm.\n"
        "3. Summarize which apps must switch to which new token id. Never print a token value again after the "
        "rotate result."
    )
