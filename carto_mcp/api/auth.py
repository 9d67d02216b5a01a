"""Where the bearer for each request comes from, and how it is renewed after a 401.

Three cases, matching the profile's source:
- a fixed token (`--token`, `CARTO_API_TOKEN`, the sandbox): used as is;
- a credentials-file profile: re-read when the file changes, so a `carto auth login` refresh
  is picked up without a restart; after a 401 the file is re-read once;
- M2M client credentials: exchanged for an access token (client-credentials grant), cached
  until shortly before it expires, renewed transparently.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import anyio
import httpx2 as httpx

from carto_mcp import contract, errors
from carto_mcp.api._http import log_request, log_response, read_json, transport_errors
from carto_mcp.masking import strip_bearer

if TYPE_CHECKING:
    from carto_mcp.profiles import ProfileResolver, ResolvedProfile

#: Renew an exchanged access token this long before it expires.
RENEW_MARGIN = 300.0


class BearerSource(Protocol):
    """Supplies the bearer token; `renew` says whether a retry after a 401 could succeed."""

    profile_name: str
    source: str

    async def bearer(self, http: httpx.AsyncClient) -> str: ...

    async def renew(self, http: httpx.AsyncClient) -> bool: ...

    def secrets(self) -> tuple[str, ...]: ...


@dataclass
class StaticBearer:
    """A token that never changes during the process (flag, env var, sandbox)."""

    token: str
    profile_name: str = "default"
    source: str = "flag"

    def __post_init__(self) -> None:
        self.token = strip_bearer(self.token)

    async def bearer(self, http: httpx.AsyncClient) -> str:
        return self.token

    async def renew(self, http: httpx.AsyncClient) -> bool:
        return False

    def secrets(self) -> tuple[str, ...]:
        return (self.token,)


class FileBearer:
    """A credentials-file profile, re-read when the file changes and once after a 401."""

    source = "credentials_file"

    def __init__(self, resolver: ProfileResolver, *, profile: str | None = None) -> None:
        self._resolver = resolver
        self._named = profile
        first = self._profile()
        self.profile_name = first.name
        self._last = first.token or ""

    def _profile(self, refresh: bool = False) -> ResolvedProfile:
        if refresh:
            self._resolver.refresh()
        return self._resolver.resolve_named(self._named) if self._named else self._resolver.resolve()

    async def bearer(self, http: httpx.AsyncClient) -> str:
        self._last = self._profile().token or ""
        return self._last

    async def renew(self, http: httpx.AsyncClient) -> bool:
        before = self._last
        try:
            self._last = self._profile(refresh=True).token or ""
        except errors.ProfileError:
            return False
        return bool(self._last) and self._last != before

    def secrets(self) -> tuple[str, ...]:
        return (self._last,)


class ClientCredentialsBearer:
    """Headless M2M auth: exchange client id + secret for an access token and cache it."""

    source = "client_credentials"

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        token_url: str = contract.AUTH_TOKEN_URL,
        audience: str = contract.AUTH_AUDIENCE,
        profile_name: str = "default",
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self.token_url = token_url
        self.audience = audience
        self.profile_name = profile_name
        self._token: str | None = None
        self._expires = 0.0
        self._margin = RENEW_MARGIN
        self._lock = anyio.Lock()
        self.exchanges = 0

    async def bearer(self, http: httpx.AsyncClient) -> str:
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires - self._margin:
                await self._exchange(http)
            assert self._token is not None
            return self._token

    async def renew(self, http: httpx.AsyncClient) -> bool:
        async with self._lock:
            self._token = None
            await self._exchange(http)
        return True

    def secrets(self) -> tuple[str, ...]:
        return tuple(s for s in (self._secret, self._token) if s)

    async def _exchange(self, http: httpx.AsyncClient) -> None:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret,
            "audience": self.audience,
        }
        request = http.build_request("POST", self.token_url, data=form)
        log_request(request, self.secrets())
        started = time.monotonic()
        with transport_errors("POST", self.token_url, creating=False, what="token exchange"):
            response = await http.send(request)
        log_response(response, time.monotonic() - started, self.secrets())
        self.exchanges += 1
        if response.status_code >= 500:
            raise errors.ServiceError(
                f"The M2M token exchange failed on the auth server's side ({response.status_code}) at "
                f"POST {self.token_url}. The client credentials were not judged: retry later.",
                status_code=response.status_code,
                method="POST",
                url=self.token_url,
            )
        body = read_json(response)
        if response.status_code >= 400:
            said = contract.error_message(body) or f"HTTP {response.status_code}"
            raise errors.AuthError(
                f"The M2M client-credentials exchange for client '{self.client_id}' failed ({said}) at "
                f"POST {self.token_url}. Check CARTO_M2M_CLIENT_ID / CARTO_M2M_CLIENT_SECRET (or CARTO_CLIENT_ID / "
                "CARTO_CLIENT_SECRET, or --client-id / --client-secret-file).",
                status_code=response.status_code,
                method="POST",
                url=self.token_url,
                shown=(self.client_id,),  # an id, not a secret: shown whole, whatever characters it has
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise errors.BadResponse(f"The token exchange at {self.token_url} returned no access_token.")
        lifetime = body.get("expires_in", contract.AUTH_TOKEN_LIFETIME)
        lifetime = float(lifetime) if isinstance(lifetime, int | float) else float(contract.AUTH_TOKEN_LIFETIME)
        self._token = token
        self._expires = time.monotonic() + lifetime
        # Renew shortly before expiry; a short-lived token must not be renewed on every request.
        self._margin = min(RENEW_MARGIN, lifetime / 2)
