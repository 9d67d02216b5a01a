"""Change tools: update_credential and revoke_credential, both behind the confirmation policy.

A destructive call (every revoke; an update that removes grants, APIs, referers or URLs) is
confirmed by elicitation when the client can ask its user, else by a second call carrying a
one-time code bound to the exact operation. `--yes` skips confirmation. Declining changes
nothing and is not an error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import (
    AcceptedElicitation,
    Context,
    Elicit,
    ElicitationResult,
    Resolve,
)
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from carto_mcp.api import CartoClient
from carto_mcp.models import (
    ClientDetail,
    Grant,
    OAuthClientUpdate,
    Revoked,
    TokenDetail,
    TokenState,
    TokenUpdate,
    Updated,
)
from carto_mcp.models.oauth_clients import ALLOWED_ORIGINS, CALLBACKS, LOGIN_URI, LOGOUT_URLS, WEB_ORIGINS, Title
from carto_mcp.models.tokens import ApiList, Referer, TokenName
from carto_mcp.server.app import AppState, CartoMCP, state_of
from carto_mcp.server.errors import tool_errors
from carto_mcp.server.reply import summarized
from carto_mcp.server.safety import Confirm as ConfirmForm
from carto_mcp.server.safety import Operation, describe
from carto_mcp.server.tools._args import Confirm, CredentialId, Kind, ProfileArg
from carto_mcp.server.tools.read import fetch_client

UrlList = Annotated[list[Annotated[str, Field(min_length=1, max_length=2048)]], Field(max_length=100)]
GrantList = Annotated[list[Grant], Field(max_length=200)]


class NotAsked(BaseModel):
    """The approval resolver's answer when it did not elicit, and why."""

    reason: Literal["yes", "code", "harmless", "cannot_elicit"]


@dataclass
class Plan:
    """A change worked out before it is sent: what it is, what it removes, how to name it."""

    kind: str
    id: str
    name: str | None
    target: str
    body: dict[str, Any] = field(default_factory=dict)
    losses: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def operation(self, tool: str, profile: str) -> Operation:
        """What a confirmation code for this plan is bound to; a revoke has no change body."""
        change = json.dumps(self.body, sort_keys=True) if self.body else ""
        return Operation(tool, profile, self.kind, self.id, change)


def revoke_operation(profile: str, kind: str, ident: str) -> Operation:
    """The operation a revoke_credential code authorizes (also handed out by rotate_token)."""
    return Plan(kind, ident, None, ident).operation("revoke_credential", profile)


async def plan_revoke(api: CartoClient, kind: str, ident: str) -> Plan:
    if kind == "token":
        value = await api.resolve_token(ident)
        token = await api.get_token(value)
        return Plan(kind, token.id, token.name, value)
    client = await fetch_client(api, kind, ident)  # type: ignore[arg-type]
    return Plan(kind, client.client_id, client.title, client.client_id)


async def plan_update(api: CartoClient, kind: str, ident: str, args: dict[str, Any]) -> Plan:
    token_args = {
        k: args.get(k) for k in ("name", "grants", "add_grants", "remove_grants", "apis", "referers", "expiration_date")
    }
    client_args = {
        k: args.get(k) for k in ("title", "login_uri", "callbacks", "logout_urls", "web_origins", "allowed_origins")
    }
    if kind == "token":
        stray = sorted(k for k, v in client_args.items() if v is not None)
        if stray:
            raise ValueError(f"{', '.join(stray)} apply to OAuth clients, not tokens")
        change = TokenUpdate(**token_args)
        value = await api.resolve_token(ident)
        token = await api.get_token(value)
        before = TokenState.of(
            name=token.name,
            grants=[
                Grant.model_construct(connection=g.connection_name, source=g.source, kind=g.kind) for g in token.grants
            ],
            apis=token.allowed_apis,
            referers=token.referers,
        )
        after = change.apply(before)
        warnings = after.warnings()
        return Plan(kind, token.id, token.name, value, after.patch_body(before), before.losses(after), warnings)
    stray = sorted(k for k, v in token_args.items() if v is not None)
    if stray:
        raise ValueError(f"{', '.join(stray)} apply to tokens, not {kind} clients")
    change_c = OAuthClientUpdate(**client_args)
    change_c.check_kind(kind)
    client = await fetch_client(api, kind, ident)  # type: ignore[arg-type]
    return Plan(
        kind,
        client.client_id,
        client.title,
        client.client_id,
        change_c.changes(client.model_dump()),
        change_c.losses(client.model_dump()),
    )


def _can_elicit(ctx: Context[Any, Any], state: AppState) -> bool:
    caps = ctx.client_capabilities
    return not state.settings.stateless and caps is not None and caps.elicitation is not None


async def approve_revoke(ctx: Context[Any, Any], kind: str, id: str, confirm: str | None, profile: str | None) -> Any:
    """Resolver: elicit approval for a revoke when the client can ask its user."""
    state = state_of(ctx)
    if state.settings.yes:
        return NotAsked(reason="yes")
    if confirm is not None:
        return NotAsked(reason="code")
    if not _can_elicit(ctx, state):
        return NotAsked(reason="cannot_elicit")
    with tool_errors(
        state, "revoke_credential", kind=kind, ident=id, mutating=True, audit_errors_only=True, profile=profile
    ):
        plan = await plan_revoke(state.api_for(profile), kind, id)
    return Elicit(describe(plan.kind, plan.id, plan.name, [], "Revoke"), ConfirmForm)


async def approve_update(
    ctx: Context[Any, Any],
    kind: str,
    id: str,
    confirm: str | None,
    name: str | None,
    grants: list[Grant] | None,
    add_grants: list[Grant] | None,
    remove_grants: list[Grant] | None,
    apis: list[str] | None,
    referers: list[str] | None,
    expiration_date: str | None,
    title: str | None,
    login_uri: str | None,
    callbacks: list[str] | None,
    logout_urls: list[str] | None,
    web_origins: list[str] | None,
    allowed_origins: list[str] | None,
    profile: str | None,
) -> Any:
    """Resolver: elicit approval for an update that removes access, when the client can ask."""
    state = state_of(ctx)
    if state.settings.yes:
        return NotAsked(reason="yes")
    if confirm is not None:
        return NotAsked(reason="code")
    args = dict(locals())
    with tool_errors(
        state, "update_credential", kind=kind, ident=id, mutating=True, audit_errors_only=True, profile=profile
    ):
        plan = await plan_update(state.api_for(profile), kind, id, args)
    if not plan.losses:
        return NotAsked(reason="harmless")
    if not _can_elicit(ctx, state):
        return NotAsked(reason="cannot_elicit")
    return Elicit(describe(plan.kind, plan.id, plan.name, plan.losses, "Update"), ConfirmForm)


def decide(approval: ElicitationResult[Any], state: AppState, op: Operation, confirm: str | None) -> str:
    """'proceed', 'declined', 'cancelled' or 'preview' — and check a code when one was given."""
    if not isinstance(approval, AcceptedElicitation):
        return "declined" if approval.action == "decline" else "cancelled"
    data = approval.data
    if isinstance(data, ConfirmForm):
        return "proceed" if data.confirm else "declined"
    if isinstance(data, NotAsked):
        if data.reason in ("yes", "harmless"):
            return "proceed"
        if data.reason == "code" and confirm is not None:
            state.confirmer.check(op, confirm)
            return "proceed"
    return "preview"


def register(server: CartoMCP, allowed: set[str]) -> None:
    if "update_credential" in allowed:
        server.add_tool(
            summarized(update_credential),
            title="Update a credential",
            description=(
                "Change a token's name, grants (replace, or add_grants/remove_grants), APIs or referers, or an "
                "OAuth client's title and URLs. A token's expiry cannot change. Changes that remove access need "
                'confirmation. Example: {"kind": "token", "id": "3f9a1c2e", "apis": ["maps"]}'
            ),
            annotations=ToolAnnotations(
                title="Update a credential",
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=True,
                open_world_hint=True,
            ),
        )
    if "revoke_credential" in allowed:
        server.add_tool(
            summarized(revoke_credential),
            title="Revoke a credential",
            description=(
                "Delete a token or an OAuth client (M2M revoke is the same call). Immediate and unrecoverable: "
                'apps using it stop working. Asks for confirmation first. Example: {"kind": "m2m", '
                '"id": "AbC123"}'
            ),
            annotations=ToolAnnotations(
                title="Revoke a credential",
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=True,
                open_world_hint=True,
            ),
        )


async def revoke_credential(
    ctx: Context[Any, Any],
    kind: Kind,
    id: CredentialId,
    approval: Annotated[ElicitationResult[ConfirmForm], Resolve(approve_revoke)],
    confirm: Confirm = None,
    profile: ProfileArg = None,
) -> Revoked:
    state = state_of(ctx)
    with tool_errors(state, "revoke_credential", kind=kind, ident=id, mutating=True, profile=profile) as note:
        api = state.api_for(profile)
        plan = await plan_revoke(api, kind, id)
        note["id"] = plan.id
        op = plan.operation("revoke_credential", state.profile_label(profile))
        verdict = decide(approval, state, op, confirm)
        if verdict in ("declined", "cancelled"):
            note["outcome"] = verdict
            return Revoked(
                status="cancelled",
                kind=kind,
                id=plan.id,
                name=plan.name,
                message=f"Not revoked: the user {verdict} the confirmation. Nothing changed.",
            )
        if verdict == "preview":
            note["outcome"] = "confirmation_required"
            return Revoked(
                status="confirmation_required",
                kind=kind,
                id=plan.id,
                name=plan.name,
                confirmation_code=state.confirmer.issue(op),
                expires_in_seconds=state.confirmer.ttl,
                message=describe(plan.kind, plan.id, plan.name, [], "Revoke")
                + " Nothing changed yet: show this to the user and, if they agree, call revoke_credential again "
                "with the same kind and id and confirm=<confirmation_code>.",
            )
        if kind == "token":
            await api.delete_token(plan.target)
        else:
            await api.delete_client(plan.target)
        note["outcome"] = "revoked"
        return Revoked(
            status="revoked",
            kind=kind,
            id=plan.id,
            name=plan.name,
            message=f"Revoked {kind} {plan.id}. It stops working immediately.",
        )


async def update_credential(
    ctx: Context[Any, Any],
    kind: Kind,
    id: CredentialId,
    approval: Annotated[ElicitationResult[ConfirmForm], Resolve(approve_update)],
    name: TokenName | None = None,
    grants: Annotated[GrantList | None, Field(description="Token: replace all grants with these.")] = None,
    add_grants: Annotated[GrantList | None, Field(description="Token: grants to add to the current ones.")] = None,
    remove_grants: Annotated[GrantList | None, Field(description="Token: grants to remove.")] = None,
    apis: Annotated[ApiList | None, Field(description="Token: the new allowed APIs (replaces the list).")] = None,
    referers: Annotated[
        list[Referer] | None, Field(max_length=100, description="Token: the new referer list (replaces it).")
    ] = None,
    expiration_date: Annotated[
        str | None,
        Field(
            max_length=40,
            description="Not changeable: CARTO fixes a token's expiry at creation. Passing it is "
            "an error; create a replacement token instead.",
        ),
    ] = None,
    title: Title | None = None,
    login_uri: Annotated[str | None, Field(max_length=2048, description=LOGIN_URI)] = None,
    callbacks: Annotated[UrlList | None, Field(description=CALLBACKS)] = None,
    logout_urls: Annotated[UrlList | None, Field(description=LOGOUT_URLS)] = None,
    web_origins: Annotated[UrlList | None, Field(description=WEB_ORIGINS)] = None,
    allowed_origins: Annotated[UrlList | None, Field(description=ALLOWED_ORIGINS)] = None,
    confirm: Confirm = None,
    profile: ProfileArg = None,
) -> Updated:
    state = state_of(ctx)
    args = {k: v for k, v in locals().items() if k not in ("ctx", "approval", "state", "kind", "id", "confirm")}
    with tool_errors(state, "update_credential", kind=kind, ident=id, mutating=True, profile=profile) as note:
        api = state.api_for(profile)
        plan = await plan_update(api, kind, id, args)
        note["id"] = plan.id
        op = plan.operation("update_credential", state.profile_label(profile))
        verdict = decide(approval, state, op, confirm)
        base: dict[str, Any] = {"kind": kind, "id": plan.id, "removes": plan.losses, "warnings": plan.warnings}
        if verdict in ("declined", "cancelled"):
            note["outcome"] = verdict
            return Updated(status="cancelled", message=f"Not updated: the user {verdict}. Nothing changed.", **base)
        if verdict == "preview":
            note["outcome"] = "confirmation_required"
            return Updated(
                status="confirmation_required",
                confirmation_code=state.confirmer.issue(op),
                message=describe(plan.kind, plan.id, plan.name, plan.losses, "Update")
                + " Nothing changed yet: if the user agrees, call update_credential again with the same arguments "
                "and confirm=<confirmation_code>.",
                **base,
            )
        if kind == "token":
            token = (await api.update_token(plan.target, plan.body)) if plan.body else await api.get_token(plan.target)
            note["outcome"] = "updated"
            return Updated(status="updated", token=TokenDetail.of(token), **base)
        client = (await api.update_client(plan.target, plan.body)) if plan.body else await api.get_client(plan.target)
        note["outcome"] = "updated"
        return Updated(status="updated", client=ClientDetail.of(client, kind), **base)
