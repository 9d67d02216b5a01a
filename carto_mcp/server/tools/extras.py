"""Agent-native extras: rotate_token, whoami and list_profiles.

Rotation is create-then-revoke: the replacement exists (and is shown once) before the old
token goes, and the old one goes only after confirmation — or stays for a grace period.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal, cast

from mcp.server.mcpserver import AcceptedElicitation, Context, Elicit, ElicitationResult, Resolve
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from carto_mcp.models import Grant, TokenCreate, TokenCreated
from carto_mcp.models.results import utcnow
from carto_mcp.models.rules import format_expiry, parse_timestamp
from carto_mcp.models.tokens import ApiName, Expiry, TokenName
from carto_mcp.server.app import CartoMCP, state_of
from carto_mcp.server.errors import tool_errors
from carto_mcp.server.reply import summarized
from carto_mcp.server.safety import Confirm as ConfirmForm
from carto_mcp.server.safety import check_secret_file, env_name
from carto_mcp.server.tools._args import CredentialId, Overwrite, ProfileArg, SecretFile
from carto_mcp.server.tools.create import deliver_token
from carto_mcp.server.tools.modify import revoke_operation


class Rotated(BaseModel):
    status: Literal["rotated", "replacement_created", "cancelled"]
    old_id: str
    new: TokenCreated | None = None
    old_revoked: bool = False
    confirmation_code: str | None = Field(
        default=None,
        description="Pass to revoke_credential(kind='token', id=old_id, confirm=...) to revoke the old token.",
    )
    message: str

    def summary(self) -> str:
        return self.message


class Identity(BaseModel):
    """Who the server acts as. Never holds a token."""

    profile: str
    source: str
    reason: str
    base_url: str
    tenant_id: str | None = None
    tenant_domain: str | None = None
    organization_id: str | None = None
    organization_name: str | None = None
    user_email: str | None = None
    sandbox: bool = False

    def summary(self) -> str:
        org = f", organization {self.organization_name}" if self.organization_name else ""
        user = f", user {self.user_email}" if self.user_email else ""
        where = "the embedded SANDBOX (no CARTO account)" if self.sandbox else self.base_url
        return f"Profile '{self.profile}' ({self.source}) on {where}{org}{user}."


class ProfileRow(BaseModel):
    name: str
    active: bool
    organization_name: str | None = None
    tenant_id: str | None = None


class Profiles(BaseModel):
    profiles: list[ProfileRow]
    switching_enabled: bool = Field(description="True when tools accept a `profile` argument (--profiles a,b).")

    def summary(self) -> str:
        names = ", ".join(p.name + (" (active)" if p.active else "") for p in self.profiles)
        switch = "" if self.switching_enabled else " Switching is off: start the server with --profiles to allow it."
        return f"Profiles: {names}.{switch}"


async def approve_rotation(ctx: Context[Any, Any], id: str, keep_old: bool, profile: str | None) -> Any:
    """Resolver: when the client can ask its user, ask before rotating (accept = revoke the old token)."""
    state = state_of(ctx)
    caps = ctx.client_capabilities
    if keep_old or state.settings.yes or state.settings.stateless or caps is None or caps.elicitation is None:
        return None
    with tool_errors(
        state, "rotate_token", kind="token", ident=id, mutating=True, audit_errors_only=True, profile=profile
    ):
        api = state.api_for(profile)
        token = await api.get_token(await api.resolve_token(id))
    label = f"token {token.id}" + (f" ({token.name})" if token.name else "")
    return Elicit(
        f"Rotate {label}: create a replacement with the same grants, APIs and referers, then revoke {token.id}? "
        "Revocation cannot be undone. Decline to create the replacement but keep the old token for now.",
        ConfirmForm,
    )


def register(server: CartoMCP, allowed: set[str]) -> None:
    if "rotate_token" in allowed:
        server.add_tool(
            summarized(rotate_token),
            title="Rotate an API Access Token",
            description=(
                "Replace a token: create a new one with the same grants, APIs and referers (new name/expiry "
                "optional), return its value once, then revoke the old one after confirmation — or keep it for a "
                'grace period with keep_old. Example: {"id": "3f9a1c2e", "expiration_date": "90d"}'
            ),
            annotations=ToolAnnotations(
                title="Rotate an API Access Token",
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=False,
                open_world_hint=True,
            ),
        )
    if "whoami" in allowed:
        server.add_tool(
            summarized(whoami),
            title="Who am I",
            description=(
                "The active CARTO profile: organization, tenant, user email, base URL and where the credentials "
                "came from. Never returns a token. Example: {}"
            ),
            annotations=ToolAnnotations(
                title="Who am I", read_only_hint=True, idempotent_hint=True, open_world_hint=False
            ),
        )
    if "list_profiles" in allowed:
        server.add_tool(
            summarized(list_profiles),
            title="List profiles",
            description=(
                "The CARTO profiles this server may use (the default one, plus those allowed with --profiles). "
                "Pass a name as `profile` to other tools. Example: {}"
            ),
            annotations=ToolAnnotations(
                title="List profiles", read_only_hint=True, idempotent_hint=True, open_world_hint=False
            ),
        )


async def rotate_token(
    ctx: Context[Any, Any],
    id: CredentialId,
    approval: Annotated[ElicitationResult[ConfirmForm], Resolve(approve_rotation)],
    name: TokenName | None = None,
    expiration_date: Expiry | None = None,
    keep_old: Annotated[
        bool, Field(description="Keep the old token for a grace period (revoke it later with revoke_credential).")
    ] = False,
    secret_output_file: SecretFile = None,
    secret_variable: Annotated[str, Field(max_length=128, description="Variable name in secret_output_file.")] = (
        "CARTO_API_ACCESS_TOKEN"
    ),
    overwrite_secret: Overwrite = False,
    profile: ProfileArg = None,
) -> Rotated:
    state = state_of(ctx)
    with tool_errors(state, "rotate_token", kind="token", ident=id, mutating=True, profile=profile) as note:
        api = state.api_for(profile)
        old = await api.get_token(await api.resolve_token(id))
        note["id"] = old.id
        decision = rotation_decision(approval, keep_old=keep_old, yes=state.settings.yes)
        if decision == "cancel":
            note["outcome"] = "cancelled"
            return Rotated(status="cancelled", old_id=old.id, message="Not rotated: cancelled. Nothing changed.")
        request = TokenCreate(
            grants=[Grant(connection=g.connection_name, source=g.source) for g in old.grants],
            apis=cast("list[ApiName]", old.allowed_apis),  # validated by TokenCreate: the wire list is plain str
            referers=old.referers,
            name=name or (f"{old.name}-rotated" if old.name else None),
            expiration_date=expiration_date or same_lifetime(old.created_at, old.expiration_date),
        )
        variable = env_name(secret_variable)
        if secret_output_file:
            check_secret_file(secret_output_file, [variable], overwrite=overwrite_secret)
        new = await api.create_token(request.to_wire())
        created = deliver_token(new, request.warnings, secret_output_file, variable, overwrite_secret)
        if decision == "revoke":
            await api.delete_token(old.token)
            note["outcome"] = "rotated"
            return Rotated(
                status="rotated",
                old_id=old.id,
                new=created,
                old_revoked=True,
                message=f"Created {new.id} and revoked {old.id}. Switch every app to the new token now.",
            )
        note["outcome"] = "replacement_created"
        later = f"When every app uses {new.id}, revoke the old token with revoke_credential(kind='token', id='{old.id}'"
        if decision == "code":
            code = state.confirmer.issue(revoke_operation(state.profile_label(profile), "token", old.id))
            return Rotated(
                status="replacement_created",
                old_id=old.id,
                new=created,
                confirmation_code=code,
                message=f"Created {new.id}; the old token {old.id} still works. {later}, confirm=<confirmation_code>)"
                f" once the user agrees; the code is valid {state.confirmer.ttl // 60} minutes.",
            )
        return Rotated(
            status="replacement_created",
            old_id=old.id,
            new=created,
            message=f"Created {new.id}; the old token {old.id} was kept and still works. {later}).",
        )


def rotation_decision(approval: ElicitationResult[Any], *, keep_old: bool, yes: bool) -> str:
    """'cancel' (nothing), 'revoke' (create + revoke), 'keep' (create only) or 'code' (create, hand a revoke code)."""
    if not isinstance(approval, AcceptedElicitation):
        return "cancel" if approval.action == "cancel" else "keep"
    if keep_old:
        return "keep"
    if yes:
        return "revoke"
    if isinstance(approval.data, ConfirmForm):
        return "revoke" if approval.data.confirm else "keep"
    return "code"


def same_lifetime(created_at: str | None, expiration_date: str | None) -> str | None:
    """The replacement keeps the old token's lifetime, counted from now; never widened to 'never expires'.

    A token that never expired gets a replacement that never expires; one whose creation time
    is unknown gets a day, so the caller is nudged to pass expiration_date explicitly.
    """
    created, expires = parse_timestamp(created_at), parse_timestamp(expiration_date)
    if expires is None:
        return None
    lifetime = expires - created if created is not None and expires > created else timedelta(days=1)
    return format_expiry(utcnow() + max(lifetime, timedelta(hours=1)))


async def whoami(ctx: Context[Any, Any], profile: ProfileArg = None) -> Identity:
    state = state_of(ctx)
    with tool_errors(state, "whoami"):
        p = state.profile_for(profile)
        return Identity(
            profile=p.name,
            source=p.source,
            reason=p.reason,
            base_url=p.base_url,
            tenant_id=p.tenant_id,
            tenant_domain=p.tenant_domain,
            organization_id=p.organization_id,
            organization_name=p.organization_name,
            user_email=p.user_email,
            sandbox=p.source == "sandbox",
        )


async def list_profiles(ctx: Context[Any, Any]) -> Profiles:
    state = state_of(ctx)
    with tool_errors(state, "list_profiles"):
        rows = []
        for name in state.profile_names():
            try:
                p = state.profile_for(name if name != state.profile_name else None)
                rows.append(
                    ProfileRow(
                        name=name,
                        active=name == state.profile_name,
                        organization_name=p.organization_name,
                        tenant_id=p.tenant_id,
                    )
                )
            except Exception:  # a broken profile is listed, not fatal
                rows.append(ProfileRow(name=name, active=False))
        return Profiles(profiles=rows, switching_enabled=bool(state.settings.profiles))
