"""Who the server acts as: whoami and list_profiles (read-only, never a token)."""

from __future__ import annotations

from typing import Any

from mcp.server.mcpserver import Context

from carto_mcp.errors import CartoError
from carto_mcp.models.results import Identity, ProfileRow, Profiles
from carto_mcp.server.registry import READS, ToolSpec
from carto_mcp.server.state import state_of
from carto_mcp.server.tools._args import ProfileArg

LOCAL = READS.model_copy(update={"open_world_hint": False})


async def whoami(ctx: Context[Any, Any], profile: ProfileArg = None) -> Identity:
    """The active CARTO profile: organization, tenant, user email, base URL and where the credentials came
    from. Never returns a token. Example: {}
    """
    p = state_of(ctx).profile(profile)
    # public() is what may be shown (secrets masked); Identity keeps only its own fields of it.
    return Identity.model_validate({**p.public(), "profile": p.name, "sandbox": p.source == "sandbox"})


async def list_profiles(ctx: Context[Any, Any]) -> Profiles:
    """The CARTO profiles this server may use (the default one, plus those allowed with --profiles). Pass a
    name as `profile` to other tools. Example: {}
    """
    state = state_of(ctx)
    rows = []
    for name in state.connections.names():
        active = name == state.profile_name
        try:
            p = state.profile(None if active else name)
        except CartoError:  # a profile that cannot be used is listed, not fatal
            rows.append(ProfileRow(name=name, active=False))
            continue
        rows.append(ProfileRow(name=name, active=active, organization_name=p.organization_name, tenant_id=p.tenant_id))
    return Profiles(profiles=rows, switching_enabled=bool(state.settings.profiles))


TOOLS = (
    ToolSpec(whoami, "Who am I", LOCAL),
    ToolSpec(list_profiles, "List profiles", LOCAL),
)
