"""Change tools: update_credential and revoke_credential, both behind the confirmation policy.

A destructive call (every revoke; an update that removes grants, APIs, referers or URLs) is
confirmed by elicitation when the client can ask its user, else by a second call carrying a
one-time code bound to the exact operation. `--yes` skips confirmation. Declining changes
nothing and is not an error.

The change is planned once per call, by a resolver both the approval resolver and the body
use (one GET of the credential as it is); `token_change` and `client_change` (from the
credentials layer) take the tool's token and client arguments by name and validate them.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from pydantic import Field

from carto_mcp.credentials import Plan, client_change, the_change, token_change
from carto_mcp.models.kinds import CredentialKind
from carto_mcp.models.oauth_clients import (
    ALLOWED_ORIGINS,
    CALLBACKS,
    LOGIN_URI,
    LOGOUT_URLS,
    WEB_ORIGINS,
    OAuthClientUpdate,
    Title,
)
from carto_mcp.models.results import ClientDetail, Revoked, TokenDetail, Updated
from carto_mcp.models.schema import Maybe
from carto_mcp.models.tokens import ApiList, Grant, Referer, TokenName, TokenUpdate
from carto_mcp.server.confirm import Confirm, NotAsked, ask, describe, verdict
from carto_mcp.server.registry import CHANGES, ToolSpec
from carto_mcp.server.state import state_of
from carto_mcp.server.tools._args import ConfirmArg, CredentialId, KindArg, ProfileArg, Url, UrlList

GrantList = Annotated[list[Grant], Field(max_length=200)]

# --- resolvers -----------------------------------------------------------------------------


async def update_plan(
    ctx: Context[Any, Any],
    kind: CredentialKind,
    id: str,
    profile: str | None,
    token: Annotated[TokenUpdate | None, Resolve(token_change)],
    client: Annotated[OAuthClientUpdate | None, Resolve(client_change)],
) -> Plan:
    return await state_of(ctx).credentials(profile).plan_update(kind, id, the_change(kind, token, client))


async def revoke_plan(ctx: Context[Any, Any], kind: CredentialKind, id: str, profile: str | None) -> Plan:
    return await state_of(ctx).credentials(profile).plan_revoke(kind, id)


def approve_update(
    ctx: Context[Any, Any], plan: Annotated[Plan, Resolve(update_plan)], confirm: str | None
) -> NotAsked | Elicit[Confirm]:
    question = describe(plan.kind, plan.id, plan.name, plan.losses, "Update")
    return ask(ctx, state_of(ctx).settings, question, code=confirm, needed=bool(plan.losses))


def approve_revoke(
    ctx: Context[Any, Any], plan: Annotated[Plan, Resolve(revoke_plan)], confirm: str | None
) -> NotAsked | Elicit[Confirm]:
    return ask(ctx, state_of(ctx).settings, describe(plan.kind, plan.id, plan.name, (), "Revoke"), code=confirm)


# --- tools ---------------------------------------------------------------------------------


async def update_credential(
    ctx: Context[Any, Any],
    kind: KindArg,
    id: CredentialId,
    plan: Annotated[Plan, Resolve(update_plan)],
    approval: Annotated[ElicitationResult[Confirm], Resolve(approve_update)],
    name: Maybe[TokenName] = None,
    grants: Annotated[Maybe[GrantList], Field(description="Token: replace all grants with these.")] = None,
    add_grants: Annotated[Maybe[GrantList], Field(description="Token: grants to add to the current ones.")] = None,
    remove_grants: Annotated[Maybe[GrantList], Field(description="Token: grants to remove.")] = None,
    apis: Annotated[Maybe[ApiList], Field(description="Token: the new allowed APIs (replaces the list).")] = None,
    referers: Annotated[
        Maybe[Annotated[list[Referer], Field(max_length=100)]],
        Field(description="Token: the new referer list (replaces it)."),
    ] = None,
    expiration_date: Annotated[
        Maybe[Annotated[str, Field(max_length=40)]],
        Field(
            description="Not changeable: CARTO fixes a token's expiry at creation. Passing it is "
            "an error; create a replacement token instead.",
        ),
    ] = None,
    title: Maybe[Title] = None,
    login_uri: Annotated[Maybe[Url], Field(description=LOGIN_URI)] = None,
    callbacks: Annotated[Maybe[UrlList], Field(description=CALLBACKS)] = None,
    logout_urls: Annotated[Maybe[UrlList], Field(description=LOGOUT_URLS)] = None,
    web_origins: Annotated[Maybe[UrlList], Field(description=WEB_ORIGINS)] = None,
    allowed_origins: Annotated[Maybe[UrlList], Field(description=ALLOWED_ORIGINS)] = None,
    confirm: ConfirmArg = None,
    profile: ProfileArg = None,
) -> Updated:
    """Change a token's name, grants (replace, or add_grants/remove_grants), APIs or referers, or an OAuth
    client's title and URLs. A token's expiry cannot change. Changes that remove access need
    confirmation. Example: {"kind": "token", "id": "3f9a1c2e", "apis": ["maps"]}
    """
    # The change arguments are read by the plan's resolvers; the body acts on the plan.
    state = state_of(ctx)
    op = state.operation("update_credential", profile, plan)
    base: dict[str, Any] = {"kind": kind, "id": plan.id, "removes": list(plan.losses), "warnings": list(plan.warnings)}
    match verdict(approval, state.confirmer, op, confirm):
        case "declined" | "cancelled" as why:
            return Updated.not_made(why, message=f"Not updated: the user {why}. Nothing changed.", **base)
        case "preview":
            return Updated(
                status="confirmation_required",
                confirmation_code=state.confirmer.issue(op),
                message=describe(plan.kind, plan.id, plan.name, plan.losses, "Update")
                + " Nothing changed yet: if the user agrees, call update_credential again with the same arguments "
                "and confirm=<confirmation_code>.",
                **base,
            )
    detail = await state.credentials(profile).update(plan)
    if isinstance(detail, TokenDetail):
        return Updated(status="updated", token=detail, **base)
    assert isinstance(detail, ClientDetail)
    return Updated(status="updated", client=detail, **base)


async def revoke_credential(
    ctx: Context[Any, Any],
    kind: KindArg,
    id: CredentialId,
    plan: Annotated[Plan, Resolve(revoke_plan)],
    approval: Annotated[ElicitationResult[Confirm], Resolve(approve_revoke)],
    confirm: ConfirmArg = None,
    profile: ProfileArg = None,
) -> Revoked:
    """Delete a token or an OAuth client (M2M revoke is the same call). Immediate and unrecoverable: apps
    using it stop working. Asks for confirmation first. Example: {"kind": "m2m", "id": "AbC123"}
    """
    state = state_of(ctx)
    op = state.operation("revoke_credential", profile, plan)
    base: dict[str, Any] = {"kind": kind, "id": plan.id, "name": plan.name}
    match verdict(approval, state.confirmer, op, confirm):
        case "declined" | "cancelled" as why:
            return Revoked.not_made(
                why, message=f"Not revoked: the user {why} the confirmation. Nothing changed.", **base
            )
        case "preview":
            return Revoked(
                status="confirmation_required",
                confirmation_code=state.confirmer.issue(op),
                expires_in_seconds=state.confirmer.ttl,
                message=describe(plan.kind, plan.id, plan.name, (), "Revoke")
                + " Nothing changed yet: show this to the user and, if they agree, call revoke_credential again "
                "with the same kind and id and confirm=<confirmation_code>.",
                **base,
            )
    await state.credentials(profile).revoke(plan)
    return Revoked(status="revoked", message=f"Revoked {kind} {plan.id}. It stops working immediately.", **base)


TOOLS = (
    ToolSpec(update_credential, "Update a credential", CHANGES),
    ToolSpec(revoke_credential, "Revoke a credential", CHANGES),
)
