"""rotate_token: replace a token with one of the same reach, then revoke the old one after confirmation.

The replacement exists (and is delivered) before the old token goes, and the old one goes
only once the person agrees — or stays for a grace period with `keep_old`. If revoking it
fails, the result still holds the new token and says the old one still works.
"""

from __future__ import annotations

from typing import Annotated, Any

from mcp.server.mcpserver import Context, Elicit, ElicitationResult, Resolve
from pydantic import Field

from carto_mcp.credentials import SecretFile, env_name, replacement
from carto_mcp.models.policy import TokenFacts
from carto_mcp.models.results import Rotated
from carto_mcp.models.schema import Maybe
from carto_mcp.models.tokens import Expiry, TokenName
from carto_mcp.models.wire import Token
from carto_mcp.server.confirm import Confirm, NotAsked, Operation, ask, verdict
from carto_mcp.server.delivery import secret_sink
from carto_mcp.server.registry import CHANGES, ToolSpec
from carto_mcp.server.state import state_of
from carto_mcp.server.tools._args import CredentialId, Overwrite, ProfileArg, SecretFileArg, SecretVariable


async def rotation_target(ctx: Context[Any, Any], id: str, profile: str | None) -> Token:
    return await state_of(ctx).credentials(profile).token(id)


def approve_rotation(
    ctx: Context[Any, Any],
    old: Annotated[Token, Resolve(rotation_target)],
    keep_old: bool,
    name: str | None,
    expiration_date: str | None,
    profile: str | None,
) -> NotAsked | Elicit[Confirm]:
    """Accepting revokes the old token; declining keeps it, with the replacement made.

    The replacement is checked against the policy first: a person is never asked to approve a
    rotation the policy will refuse.
    """
    request = replacement(old, name=name, expiration_date=expiration_date)
    guard = state_of(ctx).guard(profile)
    guard.enforce(guard.token_violations(TokenFacts.of_request(request)), "replacement token")
    if keep_old:
        return NotAsked(reason="keep_old")
    label = f"token {old.id}" + (f" ({old.name})" if old.name else "")
    question = (
        f"Rotate {label}: create a replacement with the same grants, APIs and referers, then revoke {old.id}? "
        "Revocation cannot be undone. Decline to create the replacement but keep the old token for now."
    )
    return ask(ctx, state_of(ctx).settings, question, code=None)


async def rotate_token(
    ctx: Context[Any, Any],
    id: CredentialId,
    old: Annotated[Token, Resolve(rotation_target)],
    approval: Annotated[ElicitationResult[Confirm], Resolve(approve_rotation)],
    name: Maybe[TokenName] = None,
    expiration_date: Maybe[Expiry] = None,
    keep_old: Annotated[
        bool, Field(description="Keep the old token for a grace period (revoke it later with revoke_credential).")
    ] = False,
    secret_output_file: SecretFileArg = None,
    secret_variable: SecretVariable = "CARTO_API_ACCESS_TOKEN",
    overwrite_secret: Overwrite = False,
    profile: ProfileArg = None,
) -> Rotated:
    """Replace a token: create a new one with the same grants, APIs and referers (new name/expiry
    optional), deliver its value once as create_token does, then revoke the old one after confirmation
    — or keep it for a grace period with keep_old. Example: {"id": "3f9a1c2e", "expiration_date": "90d"}
    """
    state = state_of(ctx)
    revoke_op = Operation("revoke_credential", state.profile_label(profile), "token", old.id)
    decision = verdict(approval, state.confirmer, revoke_op, None)
    if decision == "cancelled":
        return Rotated(status="cancelled", old_id=old.id, message="Not rotated: cancelled. Nothing changed.")
    request = replacement(old, name=name, expiration_date=expiration_date)
    variable = env_name(secret_variable)
    secret = SecretFile.requested(
        secret_output_file, [variable], overwrite=overwrite_secret, protected=state.protected_paths
    )
    sink = await secret_sink(ctx, state, requested=secret, variables=[variable])
    done = await state.credentials(profile).rotate(old, request, sink, revoke_old=decision == "proceed")
    new_id = done.new.id
    later = f"When every app uses {new_id}, revoke the old token with revoke_credential(kind='token', id='{old.id}'"
    if done.old_revoked:
        return Rotated(
            status="rotated",
            old_id=old.id,
            new=done.new,
            old_revoked=True,
            message=f"Created {new_id} and revoked {old.id}. Switch every app to the new token now.",
        )
    if done.revoke_error is not None:
        return Rotated(
            status="replacement_created",
            old_id=old.id,
            new=done.new,
            message=f"Created {new_id}, but revoking the old token {old.id} failed, so it still works: "
            f"{done.revoke_error} {later}) to retry.",
        )
    if decision == "preview":
        return Rotated(
            status="replacement_created",
            old_id=old.id,
            new=done.new,
            confirmation_code=state.confirmer.issue(revoke_op),
            message=f"Created {new_id}; the old token {old.id} still works. {later}, confirm=<confirmation_code>)"
            f" once the user agrees; the code is valid {state.confirmer.ttl // 60} minutes.",
        )
    return Rotated(
        status="replacement_created",
        old_id=old.id,
        new=done.new,
        message=f"Created {new_id}; the old token {old.id} was kept and still works. {later}).",
    )


TOOLS = (
    ToolSpec(
        rotate_token, "Rotate an API Access Token", CHANGES.model_copy(update={"idempotent_hint": False}), kind="token"
    ),
)
