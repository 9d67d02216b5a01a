"""Create tools: create_token, create_spa, create_m2m.

The only results that carry a secret in full. With `secret_output_file` they carry none.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context
from mcp_types import ToolAnnotations
from pydantic import Field

from carto_mcp.api import InputError, PermissionDenied
from carto_mcp.models import (
    ClientCreated,
    ClientDetail,
    Grant,
    M2MCreate,
    SpaCreate,
    Token,
    TokenCreate,
    TokenCreated,
    TokenDetail,
)
from carto_mcp.models.oauth_clients import ALLOWED_ORIGINS, CALLBACKS, LOGIN_URI, LOGOUT_URLS, WEB_ORIGINS, Title
from carto_mcp.models.tokens import ApiList, Expiry, Referer, TokenName
from carto_mcp.server.app import CartoMCP, state_of
from carto_mcp.server.errors import tool_errors
from carto_mcp.server.reply import summarized
from carto_mcp.server.safety import check_secret_file, env_name, write_secret_file
from carto_mcp.server.tools._args import Overwrite, ProfileArg, SecretFile

WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False, open_world_hint=True)
UrlList = Annotated[list[Annotated[str, Field(min_length=1, max_length=2048)]], Field(max_length=100)]


def register(server: CartoMCP, allowed: set[str]) -> None:
    if "create_token" in allowed:
        server.add_tool(
            summarized(create_token),
            title="Create an API Access Token",
            description=(
                "Create a CARTO API Access Token scoped to (connection, source) grants, allowed APIs, referers "
                "and an optional expiry. Returns the token value once. Use dry_run to check the request and its "
                'warnings first. Example: {"grants": [{"connection": "carto_dw", "source": '
                '"carto.shared.demo_table"}], "apis": ["maps"], "referers": ["https://myapp.com/"], '
                '"expiration_date": "7d"}'
            ),
            annotations=WRITE.model_copy(update={"title": "Create an API Access Token"}),
        )
    if "create_spa" in allowed:
        server.add_tool(
            summarized(create_spa),
            title="Create an SPA OAuth client",
            description=(
                "Create a Single Page Application OAuth client for browser login flows. Example: "
                '{"title": "My Web App", "callbacks": ["https://myapp.com/callback"], '
                '"web_origins": ["https://myapp.com"]}'
            ),
            annotations=WRITE.model_copy(update={"title": "Create an SPA OAuth client"}),
        )
    if "create_m2m" in allowed:
        server.add_tool(
            summarized(create_m2m),
            title="Create an M2M OAuth client",
            description=(
                "Create a Machine-to-Machine OAuth client for backend services. Returns the client id and the "
                "client secret once (or writes them to secret_output_file). Needs an Enterprise Large plan or "
                'above. Example: {"title": "Backend Service"}'
            ),
            annotations=WRITE.model_copy(update={"title": "Create an M2M OAuth client"}),
        )


async def create_token(
    ctx: Context[Any, Any],
    apis: ApiList,
    grants: Annotated[
        list[Grant], Field(max_length=200, description="(connection, source) pairs the token may read.")
    ] = [],  # noqa: B006 - pydantic copies defaults
    referers: Annotated[list[Referer], Field(max_length=100, description="Allowed referer URLs.")] = [],  # noqa: B006
    name: TokenName | None = None,
    expiration_date: Expiry | None = None,
    dry_run: Annotated[
        bool, Field(description="Only validate and normalize: return the request and warnings, create nothing.")
    ] = False,
    secret_output_file: SecretFile = None,
    secret_variable: Annotated[
        str, Field(max_length=128, description="Variable name used in secret_output_file.")
    ] = "CARTO_API_ACCESS_TOKEN",
    overwrite_secret: Overwrite = False,
    profile: ProfileArg = None,
) -> TokenCreated:
    state = state_of(ctx)
    with tool_errors(state, "create_token", kind="token", mutating=not dry_run, profile=profile) as note:
        request = TokenCreate(grants=grants, apis=apis, referers=referers, name=name, expiration_date=expiration_date)
        if dry_run:
            return TokenCreated(status="dry_run", request=request.to_wire(), warnings=request.warnings)
        variable = env_name(secret_variable)
        if secret_output_file:
            check_secret_file(secret_output_file, [variable], overwrite=overwrite_secret)
        api = state.api_for(profile)
        token = await api.create_token(request.to_wire())
        note["id"] = token.id
        return deliver_token(token, request.warnings, secret_output_file, variable, overwrite_secret)


async def create_spa(
    ctx: Context[Any, Any],
    title: Title,
    login_uri: Annotated[str | None, Field(default=None, max_length=2048, description=LOGIN_URI)] = None,
    callbacks: Annotated[UrlList | None, Field(default=None, description=CALLBACKS)] = None,
    logout_urls: Annotated[UrlList | None, Field(default=None, description=LOGOUT_URLS)] = None,
    web_origins: Annotated[UrlList | None, Field(default=None, description=WEB_ORIGINS)] = None,
    allowed_origins: Annotated[UrlList | None, Field(default=None, description=ALLOWED_ORIGINS)] = None,
    profile: ProfileArg = None,
) -> ClientCreated:
    state = state_of(ctx)
    with tool_errors(state, "create_spa", kind="spa", mutating=True, profile=profile) as note:
        request = SpaCreate(
            title=title,
            login_uri=login_uri,
            callbacks=callbacks,
            logout_urls=logout_urls,
            web_origins=web_origins,
            allowed_origins=allowed_origins,
        )
        client = await state.api_for(profile).create_client(request.to_wire())
        note["id"] = client.client_id
        return ClientCreated(id=client.client_id, detail=ClientDetail.of(client, "spa"))


async def create_m2m(
    ctx: Context[Any, Any],
    title: Title,
    secret_output_file: SecretFile = None,
    overwrite_secret: Overwrite = False,
    profile: ProfileArg = None,
) -> ClientCreated:
    state = state_of(ctx)
    with tool_errors(state, "create_m2m", kind="m2m", mutating=True, profile=profile) as note:
        request = M2MCreate(title=title)
        names = ["CARTO_CLIENT_ID", "CARTO_CLIENT_SECRET"]
        if secret_output_file:
            check_secret_file(secret_output_file, names, overwrite=overwrite_secret)
        try:
            client = await state.api_for(profile).create_client(request.to_wire())
        except PermissionDenied as exc:
            raise PermissionDenied(
                f"{exc} M2M OAuth clients need an Enterprise Large plan or above.",
                status_code=exc.status_code,
            ) from exc
        note["id"] = client.client_id
        secret = client.client_secret
        result = ClientCreated(id=client.client_id, detail=ClientDetail.of(client, "m2m"))
        if secret is None:
            return result.model_copy(update={"warnings": ["CARTO returned no client secret for this M2M client."]})
        if secret_output_file:
            saved = _save_secret(
                secret_output_file, dict(zip(names, (client.client_id, secret), strict=True)), overwrite_secret
            )
            if saved is not None:
                return result.model_copy(update={"secret_file": str(saved), "secret_variables": names})
            result.warnings.append("Could not write secret_output_file; the secret is returned here instead.")
        return result.model_copy(update={"client_secret": secret})


def deliver_token(
    token: Token, warnings: list[str], secret_file: str | None, variable: str, overwrite: bool
) -> TokenCreated:
    """The create result: the token value once, or only where it was written."""
    result = TokenCreated(id=token.id, detail=TokenDetail.of(token), warnings=list(warnings))
    if secret_file:
        saved = _save_secret(secret_file, {variable: token.token}, overwrite)
        if saved is not None:
            return result.model_copy(update={"secret_file": str(saved), "secret_variables": [variable]})
        result.warnings.append("Could not write secret_output_file; the token is returned here instead.")
    return result.model_copy(update={"token": token.token})


def _save_secret(path: str, values: dict[str, str], overwrite: bool) -> Any:
    """Write the secret file after a create; on failure return None so the secret is not lost."""
    try:
        return write_secret_file(path, values, overwrite=overwrite)
    except (OSError, InputError):
        return None
