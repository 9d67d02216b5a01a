"""The CARTO clients of one server, opened on first use.

Resolving a profile reads files and building a client imports the HTTP and model layers;
neither is needed to answer `initialize` or `tools/list`, so both wait for the first tool call.
A profile that cannot be used is reported by every call that needs it (and logged once), so a
desktop host shows the fix instead of a server that died at launch.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mcp.server.mcpserver.exceptions import ToolError

if TYPE_CHECKING:
    import httpx2 as httpx

    from carto_mcp.api import BearerSource, CartoClient
    from carto_mcp.profiles import ProfileResolver, ResolvedProfile
    from carto_mcp.server.settings import ServerSettings

logger = logging.getLogger("carto_mcp.server")

SANDBOX_URL = "http://sandbox.carto-mcp.invalid"
NO_PROFILE = "No CARTO profile is configured. Run `carto-mcp doctor`."


@dataclass(frozen=True)
class Connection:
    """One profile's client, or why it could not be opened."""

    api: CartoClient | None
    profile: ResolvedProfile | None
    problem: str | None = None


def bearer_for(profile: ResolvedProfile, resolver: ProfileResolver, settings: ServerSettings) -> BearerSource:
    """Pick how requests authenticate, from where the profile came from."""
    from carto_mcp import contract
    from carto_mcp.api import ClientCredentialsBearer, FileBearer, StaticBearer

    if profile.source == "client_credentials":
        assert profile.client_id and profile.client_secret
        token_url = settings.auth_url or contract.AUTH_TOKEN_URL
        return ClientCredentialsBearer(
            profile.client_id, profile.client_secret, token_url=token_url, profile_name=profile.name
        )
    if profile.source in ("credentials_file", "legacy_file"):
        return FileBearer(resolver)
    return StaticBearer(profile.token or "", profile_name=profile.name, source=profile.source)


class Connections:
    """The server's own profile plus those allowed with --profiles, each opened once, lazily."""

    def __init__(
        self,
        settings: ServerSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: dict[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self._transport = transport
        self._environ = environ
        self._opened: dict[str | None, Connection] = {}
        self._resolver: ProfileResolver | None = None
        self._lock = threading.Lock()

    def get(self, name: str | None = None) -> Connection:
        """The connection for a profile (None = the server's own); refuses profiles not allowed."""
        default = self.get_default()
        if name is None or (default.profile is not None and name == default.profile.name):
            return default
        if name not in self.settings.profiles or self.settings.sandbox:
            allowed = ", ".join(self.names())
            raise ToolError(
                f"profile: '{name[:60]}' is not allowed on this server (allowed: {allowed}). Start it with "
                "--profiles NAME,... to allow switching."
            )
        with self._lock:
            if name not in self._opened:
                self._opened[name] = self._open_named(name)
            return self._opened[name]

    def get_default(self) -> Connection:
        with self._lock:
            if None not in self._opened:
                self._opened[None] = self._open_default()
            return self._opened[None]

    def names(self) -> list[str]:
        default = self.get_default()
        own = default.profile.name if default.profile else "(none)"
        extra = [] if self.settings.sandbox else [n for n in self.settings.profiles if n != own]
        return [own, *extra]

    async def aclose(self) -> None:
        with self._lock:
            opened, self._opened = list(self._opened.values()), {}
        for conn in opened:
            if conn.api is not None:
                await conn.api.aclose()

    def _resolver_for(self) -> ProfileResolver:
        from carto_mcp.profiles import ProfileResolver

        if self._resolver is None:
            self._resolver = ProfileResolver(
                self.settings.profile,
                environ=self._environ,
                credentials_path=self.settings.credentials_path,
                legacy_path=self.settings.legacy_path,
            )
        return self._resolver

    def _open_default(self) -> Connection:
        from carto_mcp.api import CartoClient, ProfileError, StaticBearer

        if self.settings.sandbox:
            import httpx2 as httpx

            from carto_mcp.profiles import sandbox_profile
            from carto_mcp.sandbox import create_app

            profile = sandbox_profile(SANDBOX_URL)
            auth: BearerSource = StaticBearer(profile.token or "sandbox", profile_name=profile.name, source="sandbox")
            transport = self._transport or httpx.ASGITransport(app=create_app(self.settings.sandbox_db))
            return Connection(CartoClient(base_url=SANDBOX_URL, auth=auth, transport=transport), profile)
        resolver = self._resolver_for()
        try:
            profile = resolver.resolve()
            auth = bearer_for(profile, resolver, self.settings)
        except ProfileError as exc:
            logger.error("No usable CARTO profile: %s", exc)
            return Connection(None, None, str(exc))
        for warning in profile.warnings:
            logger.warning("%s", warning)
        client = CartoClient(base_url=profile.base_url, auth=auth, transport=self._transport)
        return Connection(client, profile)

    def _open_named(self, name: str) -> Connection:
        from carto_mcp.api import CartoClient, FileBearer, ProfileError

        resolver = self._resolver_for()
        try:
            profile = resolver.resolve_named(name)
        except ProfileError as exc:
            return Connection(None, None, str(exc))
        client = CartoClient(
            base_url=profile.base_url, auth=FileBearer(resolver, profile=name), transport=self._transport
        )
        return Connection(client, profile)


def require(conn: Connection) -> tuple[CartoClient, ResolvedProfile]:
    if conn.api is None or conn.profile is None:
        raise ToolError(conn.problem or NO_PROFILE)
    return conn.api, conn.profile
