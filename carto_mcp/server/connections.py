"""The CARTO clients of one server (or one `doctor` run), opened on first use.

Resolving a profile reads files, and building a client imports the HTTP and model layers;
neither is needed to answer `initialize` or `tools/list`, so both wait for the first call.
A profile that cannot be used is reported by every call that needs it (and logged once), so a
desktop host shows the fix instead of a server that died at launch. `doctor` opens its client
here too, so it checks exactly what `serve` would use.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from carto_mcp.errors import CartoError, InputError, ProfileError

if TYPE_CHECKING:
    import httpx2 as httpx

    from carto_mcp.api import BearerSource, CartoClient, RetryPolicy
    from carto_mcp.config import Settings
    from carto_mcp.credentials import Credentials
    from carto_mcp.profiles import ProfileResolver, ResolvedProfile
    from carto_mcp.sandbox import SandboxStore

__all__ = ["SANDBOX_URL", "Connections", "ProfileClient", "bearer_for"]

logger = logging.getLogger("carto_mcp.server")

#: The in-process sandbox's base URL; `.invalid` so nothing could ever resolve it on a network.
SANDBOX_URL = "http://sandbox.carto-mcp.invalid"
NO_PROFILE = "No CARTO profile is configured. Run `carto-mcp doctor`."


@dataclass(frozen=True)
class ProfileClient:
    """One profile's CARTO client and credential operations — or the error that kept it from opening."""

    profile: ResolvedProfile | None
    credentials: Credentials | None
    error: CartoError | None = None

    @property
    def api(self) -> CartoClient:
        return self.require()[0].api

    def require(self) -> tuple[Credentials, ResolvedProfile]:
        """The credentials and profile, or the profile error again (a fresh one each call)."""
        if self.credentials is None or self.profile is None:
            if self.error is not None:
                raise ProfileError(self.error.message, fix=self.error.fix)
            raise ProfileError(NO_PROFILE)
        return self.credentials, self.profile


def bearer_for(profile: ResolvedProfile, resolver: ProfileResolver, settings: Settings) -> BearerSource:
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
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: dict[str, str] | None = None,
        retry: RetryPolicy | None = None,
        per_page: int | None = None,
        quiet: bool = False,
    ) -> None:
        """`quiet` leaves profile problems and warnings unlogged, for `doctor`, which reports them itself."""
        self.settings = settings
        self._quiet = quiet
        self._transport = transport
        self._environ = environ
        self._retry = retry
        self._per_page = per_page
        self._opened: dict[str | None, ProfileClient] = {}
        self._resolver: ProfileResolver | None = None
        self._store: SandboxStore | None = None
        self._lock = threading.Lock()

    @property
    def resolver(self) -> ProfileResolver:
        """The profile resolver every connection of this server shares (built on first use)."""
        from carto_mcp.profiles import ProfileResolver

        if self._resolver is None:
            self._resolver = ProfileResolver(
                self.settings.profile,
                environ=self._environ,
                credentials_path=self.settings.credentials_path,
                legacy_path=self.settings.legacy_path,
            )
        return self._resolver

    def default(self) -> ProfileClient:
        with self._lock:
            if None not in self._opened:
                self._opened[None] = self._open_default()
            return self._opened[None]

    def get(self, name: str | None = None) -> ProfileClient:
        """The connection for a profile (None = the server's own); refuses profiles not allowed."""
        default = self.default()
        if name is None or (default.profile is not None and name == default.profile.name):
            return default
        if name not in self.settings.profiles or self.settings.sandbox:
            raise InputError(
                f"profile: '{name[:60]}' is not allowed on this server (allowed: {', '.join(self.names())})",
                field="profile",
                fix="start it with --profiles NAME,... to allow switching.",
            )
        with self._lock:
            if name not in self._opened:
                self._opened[name] = self._open_named(name)
            return self._opened[name]

    def names(self) -> list[str]:
        default = self.default()
        own = default.profile.name if default.profile else "(none)"
        extra = [] if self.settings.sandbox else [n for n in self.settings.profiles if n != own]
        return [own, *extra]

    async def aclose(self) -> None:
        with self._lock:
            opened, self._opened = list(self._opened.values()), {}
            store, self._store = self._store, None
        for conn in opened:
            if conn.credentials is not None:
                await conn.credentials.api.aclose()
        if store is not None:
            store.close()

    def _client(self, base_url: str, auth: BearerSource, transport: httpx.AsyncBaseTransport | None) -> CartoClient:
        from carto_mcp.api import CartoClient

        options = {"per_page": self._per_page} if self._per_page else {}
        return CartoClient(
            base_url=base_url,
            auth=auth,
            transport=transport,
            retry=self._retry,
            max_concurrency=self.settings.max_concurrency,
            **options,
        )

    def _connected(self, profile: ResolvedProfile, client: CartoClient) -> ProfileClient:
        from carto_mcp.credentials import Credentials, Guard

        policy = self.settings.policy
        guard = Guard(policy.for_profile(profile.name), str(policy.path)) if policy else None
        return ProfileClient(profile, Credentials(client, cache_ttl=self.settings.cache_ttl, guard=guard))

    def _open_default(self) -> ProfileClient:
        from carto_mcp.api import StaticBearer

        if self.settings.sandbox:
            from carto_mcp.profiles import sandbox_profile

            profile = sandbox_profile(SANDBOX_URL)
            auth: BearerSource = StaticBearer(profile.token or "sandbox", profile_name=profile.name, source="sandbox")
            return self._connected(profile, self._client(SANDBOX_URL, auth, self._transport or self._sandbox()))
        resolver = self.resolver
        try:
            profile = resolver.resolve()
            auth = bearer_for(profile, resolver, self.settings)
        except ProfileError as exc:
            if not self._quiet:
                logger.error("No usable CARTO profile: %s", exc)
            return ProfileClient(None, None, exc)
        for warning in () if self._quiet else profile.warnings:
            logger.warning("%s", warning)
        return self._connected(profile, self._client(profile.base_url, auth, self._transport))

    def _open_named(self, name: str) -> ProfileClient:
        from carto_mcp.api import FileBearer

        resolver = self.resolver
        try:
            profile = resolver.resolve_named(name)
        except ProfileError as exc:
            return ProfileClient(None, None, exc)
        return self._connected(
            profile, self._client(profile.base_url, FileBearer(resolver, profile=name), self._transport)
        )

    def _sandbox(self) -> httpx.AsyncBaseTransport:
        """The embedded sandbox API, in process: its sqlite store is closed with the connections."""
        import httpx2 as httpx

        from carto_mcp.sandbox import create_app

        app = create_app(self.settings.sandbox_db)
        self._store = app.state.store
        return httpx.ASGITransport(app=app)
