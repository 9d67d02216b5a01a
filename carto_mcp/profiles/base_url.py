"""The API base URL rule, written once for every source:

    --base-url > CARTO_MCP_BASE_URL > `base_url` / `api_base_url` (legacy config only)
               > https://{tenant_id}.api.carto.com

The override is looked up on its own (`base_url_override`) because callers need it at
different moments: a token source checks it before touching the credentials file, and a
profile needs no tenant_id when one is given. `choose_base_url` then applies the rest of the
rule; each source passes its own wording for where a tenant came from and why there is none.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from carto_mcp.contract import BASE_URL_TEMPLATE
from carto_mcp.errors import ProfileError
from carto_mcp.profiles.types import ENV_BASE_URL, ProfileInputs
from carto_mcp.profiles.values import check_tenant, clean

__all__ = ["BASE_URL_FIX", "NO_BASE_URL", "BaseUrl", "base_url_override", "choose_base_url", "normalize_base_url"]

NO_BASE_URL = "no API base URL"
BASE_URL_FIX = "pass --base-url or log in with `carto auth login` so the profile has a tenant_id"


@dataclass(frozen=True)
class BaseUrl:
    """A base URL (no trailing slash) and where it came from, for `doctor` and `whoami`."""

    url: str
    origin: str


def normalize_base_url(value: str, origin: str) -> str:
    """The URL without trailing slashes; anything but an http(s) URL with a host is refused."""
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        # A URL with userinfo may carry a password: then it is not echoed at all.
        shown = "" if "@" in value else f" (got {value.strip()[:80]!r})"
        raise ProfileError(
            f"{origin} must be an http(s) URL such as https://gcp-us-east1.api.carto.com{shown}", fix="fix the value"
        )
    return url


def base_url_override(inputs: ProfileInputs, environ: Mapping[str, str]) -> BaseUrl | None:
    """`--base-url`, else `CARTO_MCP_BASE_URL`: the part of the rule that beats every file."""
    value = clean(inputs.base_url)
    if value:
        return BaseUrl(normalize_base_url(value, "--base-url"), "--base-url")
    value = clean(environ.get(ENV_BASE_URL))
    if value:
        return BaseUrl(normalize_base_url(value, ENV_BASE_URL), ENV_BASE_URL)
    return None


def choose_base_url(
    override: BaseUrl | None,
    *,
    tenant_id: str | None,
    tenant_origin: str,
    unavailable: str | None,
    configured: Sequence[tuple[str, object]] = (),
    tenant_fix: str | None = None,
) -> BaseUrl:
    """The whole rule, given the override already looked up.

    `configured` holds (origin, raw value) pairs of base URLs the file itself names, in key
    order (only the legacy config has them). `tenant_fix`, when given, checks the tenant id
    here, at the point it is used: the legacy config is not validated up front, while a
    credentials-file profile's tenant is. `unavailable` says why there is no URL, if known.
    """
    if override is not None:
        return override
    for origin, value in configured:
        if isinstance(value, str) and value.strip():
            return BaseUrl(normalize_base_url(value, origin), origin)
    if tenant_id:
        if tenant_fix is not None:
            check_tenant(tenant_id, tenant_origin, tenant_fix)
        return BaseUrl(BASE_URL_TEMPLATE.format(tenant_id=tenant_id), tenant_origin)
    raise ProfileError(f"{NO_BASE_URL} ({unavailable})" if unavailable else NO_BASE_URL, fix=BASE_URL_FIX)
