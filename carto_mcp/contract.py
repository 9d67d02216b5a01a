"""The CARTO HTTP contract carto-mcp speaks, in one place.

Every fact here is tagged (D) when CARTO documents it (or its own public code shows it) and
(A) when CARTO is silent and we decided. The API client and the embedded sandbox both read
this module, so correcting an assumption against the real service is a one-place change.
The README's "API compatibility" section lists the same (A) items.

Nothing here was tested against a live tenant.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

# --- base URL and auth -----------------------------------------------------------------

#: (D) The API base URL is built from the profile's tenant id unless --base-url overrides it.
BASE_URL_TEMPLATE: Final = "https://{tenant_id}.api.carto.com"

#: (D) M2M client-credentials exchange (Auth0 at auth.carto.com), form-encoded.
AUTH_TOKEN_URL: Final = "https://auth.carto.com/oauth/token"
AUTH_AUDIENCE: Final = "carto-cloud-native-api"
#: (A) Path of the exchange relative to a base URL, used when the sandbox emulates it.
AUTH_TOKEN_PATH: Final = "/oauth/token"
#: (D) Lifetime CARTO reports for an M2M access token, in seconds.
AUTH_TOKEN_LIFETIME: Final = 86400

#: (D) Body of a 401 when the bearer is missing, invalid or expired.
UNAUTHORIZED_BODY: Final[Mapping[str, Any]] = {"error": "Token not defined", "status": 401}

# --- Tokens API v3 -----------------------------------------------------------------------

#: (D) Collection and item paths. The item path segment is the token string itself.
TOKENS_PATH: Final = "/v3/tokens"


def token_path(token: str) -> str:
    """(D) GET|PATCH|DELETE address of one token; the token value is the id."""
    return f"{TOKENS_PATH}/{token}"


#: (D) `GET /v3/tokens` lists the caller's own tokens only. (A) Another caller's token is
#: invisible on its item path too: GET, PATCH and DELETE answer this status, as for a token
#: that does not exist, so a value never reveals whether someone else holds it.
OTHER_CALLERS_TOKEN_STATUS: Final = 404

#: (D, CLI output) A token object may carry an id of its own besides the JWT (`tok_…`); the jti still works.
TOKEN_ID: Final = "id"
TOKEN_ID_PREFIX: Final = "tok_"

#: (D) Wire names of a token create body (snake_case, as CARTO's guide code sends them).
TOKEN_FIELDS: Final = ("name", "grants", "allowed_apis", "referers", "expiration_date")
#: (D) Wire names inside a grant.
GRANT_CONNECTION: Final = "connection_name"
GRANT_SOURCE: Final = "source"
#: (A) Fields a token PATCH accepts. expiration_date is immutable (D).
TOKEN_PATCH_FIELDS: Final = ("name", "grants", "allowed_apis", "referers")

#: (D) The APIs a token may allow. The Workspace "MCP Server" scope has no known wire value.
ALLOWED_APIS: Final = ("sql", "maps", "imports", "lds")

# --- pagination (A) ------------------------------------------------------------------------

#: (A) List replies are {"data": [...], "total": N}, paged with ?page=1&per_page=50.
PAGE_PARAM: Final = "page"
PER_PAGE_PARAM: Final = "per_page"
DEFAULT_PER_PAGE: Final = 50
MAX_PER_PAGE: Final = 100
LIST_ENVELOPE: Final = "data"
LIST_TOTAL: Final = "total"
#: (A) Other envelopes the client also accepts from the real service.
LIST_ENVELOPE_ALTERNATIVES: Final = ("data", "results", "tokens", "items", "clients")


def list_items(body: Any) -> tuple[list[Any], int | None] | None:
    """Pull the rows (and the total, when given) out of a list reply; None if the shape is unknown.

    (A) The documented shape is {"data": [...], "total": N}; a bare array and the common
    alternative envelope keys are accepted too, so a different real shape degrades gracefully.
    """
    if isinstance(body, list):
        return body, None
    if isinstance(body, dict):
        for key in LIST_ENVELOPE_ALTERNATIVES:
            rows = body.get(key)
            if isinstance(rows, list):
                total = body.get(LIST_TOTAL)
                return rows, total if isinstance(total, int) else None
    return None


# --- OAuth clients (A: CARTO publishes no REST API for them) ---------------------------

OAUTH_CLIENTS_PATH: Final = "/v3/oauth-clients"
#: (A) Filter parameter for listing one client kind.
OAUTH_TYPE_PARAM: Final = "type"


def oauth_client_path(client_id: str) -> str:
    """(A) GET|PATCH|DELETE address of one OAuth client."""
    return f"{OAUTH_CLIENTS_PATH}/{client_id}"


#: (A) Tool-level (CLI) names -> Auth0-style wire names.
OAUTH_FIELD_MAP: Final[Mapping[str, str]] = {
    "title": "name",
    "login_uri": "initiate_login_uri",
    "callbacks": "callbacks",
    "logout_urls": "allowed_logout_urls",
    "web_origins": "web_origins",
    "allowed_origins": "allowed_origins",
}
#: (A) Wire field that tells SPA from M2M.
OAUTH_APP_TYPE: Final = "app_type"
OAUTH_CLIENT_ID: Final = "client_id"
OAUTH_CLIENT_SECRET: Final = "client_secret"
#: (D) The CLI's --json create output is camelCase; accept both casings.
OAUTH_CAMEL_ALIASES: Final[Mapping[str, str]] = {"clientId": "client_id", "clientSecret": "client_secret"}


def oauth_to_wire(fields: Mapping[str, Any]) -> dict[str, Any]:
    """Map CLI-named OAuth client fields to wire names, dropping unset ones."""
    return {OAUTH_FIELD_MAP[key]: value for key, value in fields.items() if value is not None}


def oauth_from_wire(body: Mapping[str, Any]) -> dict[str, Any]:
    """Map a wire OAuth client object to CLI names, accepting camelCase ids; unknown keys kept."""
    reverse = {wire: cli for cli, wire in OAUTH_FIELD_MAP.items()}
    out: dict[str, Any] = {}
    for key, value in body.items():
        key = OAUTH_CAMEL_ALIASES.get(key, key)
        out[reverse.get(key, key)] = value
    return out


# --- rules shared by the models and the sandbox ---------------------------------------

#: (A) A source with no dot matching this is a Named Source (the Named Sources API's rule).
NAMED_SOURCE_RE: Final = re.compile(r"^[a-z0-9_-]{3,51}$")
#: (A) A source starting with SELECT or WITH (after whitespace, any case) is a SQL query.
QUERY_RE: Final = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)
#: (A) Token values are JWTs: three base64url parts; their unverified payload has `a` and `jti`.
JWT_RE: Final = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
#: (A) Prefix of service-generated token names when none is given (D: "tk_shortid").
GENERATED_NAME_PREFIX: Final = "tk_"

# --- errors ----------------------------------------------------------------------------

#: (D) Error bodies look like {"error": "...", "description": "..."}; (A) the message is
#: read from the first of these keys that holds a string.
ERROR_MESSAGE_KEYS: Final = ("description", "error_description", "message", "detail", "error")


def error_message(body: Any) -> str | None:
    """The service's own words from an error body, or None when it holds none."""
    if isinstance(body, dict):
        parts = [body.get("error"), body.get("description") or body.get("error_description")]
        words = [p for p in parts if isinstance(p, str) and p]
        if words:
            return ": ".join(dict.fromkeys(words))
        for key in ERROR_MESSAGE_KEYS:
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
    return None
