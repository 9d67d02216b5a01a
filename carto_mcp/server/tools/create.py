"""Create tools: create_token, create_spa, create_m2m.

The secret goes where the server's `--secrets` setting and the client allow (a one-time page,
a 0600 file, or the result, with a warning), decided before anything is created; a
`secret_output_file` named in the call wins.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from mcp.server.mcpserver import Context
from pydantic import Field

from carto_mcp.credentials import M2M_VARIABLES, SecretFile, env_name
from carto_mcp.models.oauth_clients import (
    ALLOWED_ORIGINS,
    CALLBACKS,
    LOGIN_URI,
    LOGOUT_URLS,
    WEB_ORIGINS,
    M2MCreate,
    SpaCreate,
    Title,
)
from carto_mcp.models.policy import TokenFacts
from carto_mcp.models.results import ClientCreated, PolicyBreach, TokenCreated
from carto_mcp.models.schema import Maybe
from carto_mcp.models.tokens import ApiList, Expiry, Grant, Referer, TokenCreate, TokenName
from carto_mcp.models.validation import build
from carto_mcp.server.delivery import secret_sink
from carto_mcp.server.registry import CREATES, ToolSpec
from carto_mcp.server.state import state_of
from carto_mcp.server.tools._args import Overwrite, ProfileArg, SecretFileArg, SecretVariable, Url, UrlList


async def create_token(
    ctx: Context[Any, Any],
    apis: ApiList,
    grants: Annotated[
        list[Grant], Field(max_length=200, description="(connection, source) pairs the token may read.")
    ] = [],  # noqa: B006 - pydantic copies defaults
    referers: Annotated[list[Referer], Field(max_length=100, description="Allowed referer URLs.")] = [],  # noqa: B006
    name: Maybe[TokenName] = None,
    expiration_date: Maybe[Expiry] = None,
    dry_run: Annotated[
        bool, Field(description="Only validate and normalize: return the request and warnings, create nothing.")
    ] = False,
    secret_output_file: SecretFileArg = None,
    secret_variable: SecretVariable = "CARTO_API_ACCESS_TOKEN",
    overwrite_secret: Overwrite = False,
    profile: ProfileArg = None,
) -> TokenCreated:
    """Create a CARTO API Access Token scoped to (connection, source) grants, allowed APIs, referers and an
    optional expiry. The value is shown once: on a one-time page for the person when the client can open
    URLs, else in a file or in this result, as the server is set up. Use dry_run to check the request and its warnings
    first. Example: {"grants": [{"connection": "carto_dw", "source": "carto.shared.demo_table"}],
    "apis": ["maps"], "referers": ["https://myapp.com", "https://myapp.com/"], "expiration_date": "7d"}
    """
    request = build(
        TokenCreate, grants=grants, apis=apis, referers=referers, name=name, expiration_date=expiration_date
    )
    state = state_of(ctx)
    if dry_run:
        found = state.guard(profile).token_violations(TokenFacts.of_request(request))
        return TokenCreated(
            status="dry_run",
            request=request.to_wire(),
            warnings=request.warnings,
            policy_violations=[PolicyBreach(**asdict(v)) for v in found],
        )
    variable = env_name(secret_variable)
    secret = SecretFile.requested(
        secret_output_file, [variable], overwrite=overwrite_secret, protected=state.protected_paths
    )
    credentials = state.credentials(profile)
    sink = await secret_sink(ctx, state, requested=secret, variables=[variable])
    return await credentials.create_token(request, sink)


async def create_spa(
    ctx: Context[Any, Any],
    title: Title,
    login_uri: Annotated[Maybe[Url], Field(description=LOGIN_URI)] = None,
    callbacks: Annotated[Maybe[UrlList], Field(description=CALLBACKS)] = None,
    logout_urls: Annotated[Maybe[UrlList], Field(description=LOGOUT_URLS)] = None,
    web_origins: Annotated[Maybe[UrlList], Field(description=WEB_ORIGINS)] = None,
    allowed_origins: Annotated[Maybe[UrlList], Field(description=ALLOWED_ORIGINS)] = None,
    profile: ProfileArg = None,
) -> ClientCreated:
    """Create a Single Page Application OAuth client for browser login flows. Example: {"title": "My Web
    App", "callbacks": ["https://myapp.com/callback"], "web_origins": ["https://myapp.com"]}
    """
    request = build(
        SpaCreate,
        title=title,
        login_uri=login_uri,
        callbacks=callbacks,
        logout_urls=logout_urls,
        web_origins=web_origins,
        allowed_origins=allowed_origins,
    )
    return await state_of(ctx).credentials(profile).create_spa(request)


async def create_m2m(
    ctx: Context[Any, Any],
    title: Title,
    secret_output_file: SecretFileArg = None,
    overwrite_secret: Overwrite = False,
    profile: ProfileArg = None,
) -> ClientCreated:
    """Create a Machine-to-Machine OAuth client for backend services. Returns the client id; the secret is
    shown once, as for create_token (a one-time page, a file, or this result). Needs an Enterprise Large plan or above.
    Example: {"title": "Backend Service"}
    """
    request = build(M2MCreate, title=title)
    state = state_of(ctx)
    secret = SecretFile.requested(
        secret_output_file, M2M_VARIABLES, overwrite=overwrite_secret, protected=state.protected_paths
    )
    credentials = state.credentials(profile)
    sink = await secret_sink(ctx, state, requested=secret, variables=M2M_VARIABLES)
    return await credentials.create_m2m(request, sink)


TOOLS = (
    ToolSpec(create_token, "Create an API Access Token", CREATES, kind="token"),
    ToolSpec(create_spa, "Create an SPA OAuth client", CREATES, kind="spa"),
    ToolSpec(create_m2m, "Create an M2M OAuth client", CREATES, kind="m2m"),
)
