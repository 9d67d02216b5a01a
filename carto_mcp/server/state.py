"""What every tool call can reach, built once per server in its lifespan (no module globals)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp.server.mcpserver import Context

from carto_mcp.config import Settings
from carto_mcp.server.audit import AuditLog
from carto_mcp.server.confirm import Confirmer, Operation
from carto_mcp.server.connections import Connections
from carto_mcp.server.reveal import RevealDesk

if TYPE_CHECKING:
    from carto_mcp.credentials import Credentials, Guard, Plan
    from carto_mcp.profiles import ResolvedProfile

__all__ = ["AppState", "state_of"]


@dataclass(frozen=True)
class AppState:
    """The connections, the settings and the guard rails of one server."""

    connections: Connections
    settings: Settings
    confirmer: Confirmer
    audit: AuditLog | None
    #: The one-time pages new secrets wait on (kept by the server, so a page outlives the call that made it).
    reveals: RevealDesk

    @property
    def profile_name(self) -> str:
        profile = self.connections.default().profile
        return profile.name if profile else "(none)"

    def credentials(self, profile: str | None) -> Credentials:
        """The credential operations of a profile the server allows (None = the server's own)."""
        return self.connections.get(profile).require()[0]

    def profile(self, profile: str | None) -> ResolvedProfile:
        return self.connections.get(profile).require()[1]

    def guard(self, profile: str | None) -> Guard:
        """The policy for a profile, without opening it: a dry run needs no CARTO connection."""
        from carto_mcp.credentials import Guard

        policy = self.settings.policy
        if policy is None:
            return Guard(None)
        return Guard(policy.for_profile(self.profile_label(profile)), str(policy.path))

    @property
    def protected_paths(self) -> tuple[Path, ...]:
        """Files a secret may never be written over: the CARTO login, the legacy config, our own state."""
        resolver = self.connections.resolver
        policy = self.settings.policy.path if self.settings.policy else None
        own = (self.settings.audit_log, self.settings.sandbox_db, policy)
        return (resolver.credentials_path, resolver.legacy_path, *(path for path in own if path is not None))

    def profile_label(self, profile: str | None) -> str:
        """The profile a call acts as, for audit lines and confirmation codes."""
        return profile or self.profile_name

    def operation(self, tool: str, profile: str | None, plan: Plan) -> Operation:
        """What a confirmation code for this plan is bound to."""
        return Operation(tool, self.profile_label(profile), plan.kind, plan.id, plan.binding())


def state_of(ctx: Context[Any, Any]) -> AppState:
    state = ctx.request_context.lifespan_context
    assert isinstance(state, AppState)
    return state
