"""Credentials resolution, exactly as the CARTO CLI does it, plus headless M2M client credentials.

Priority, first found wins (the table is `sources.SOURCES`):

    1. --token                                    source "flag"
    2. CARTO_API_TOKEN                            source "env"
    3. CARTO_M2M_CLIENT_ID + _SECRET (the CLI's    source "client_credentials" (token=None;
       names; or CARTO_CLIENT_ID + _SECRET, or     the API layer exchanges them)
       --client-id + --client-secret-file)
    4. ~/.carto_credentials.json                  source "credentials_file"
       profile = --profile > CARTO_PROFILE > current_profile > the only profile
    5. ~/.carto/config.json (legacy)              source "legacy_file"

Base URL = --base-url > CARTO_MCP_BASE_URL > https://{tenant_id}.api.carto.com, the tenant
coming from the selected credentials-file profile (also for sources 1-3, when the file exists);
the whole rule is `base_url.choose_base_url`.

Old single-profile credentials files are migrated to the nested format on first use: atomic
write, original kept as `<file>.bak`, mode 0600; when the file cannot be written the migration
happens in memory only and the result carries a warning. Every message, warning and repr
shows secrets masked (`eyJh…x9Qk`), never in full. Nothing here reads `os.environ` unless no
`environ` mapping is passed in.

Modules, bottom up: `types` (the values and variable names), `values` (what a token or tenant
may be), `base_url`, `migration`, `credentials_file` (both files, read and checked), `sources`
(the precedence table) and `resolver` (the cached resolver). Import from here, not from them.
"""

from __future__ import annotations

from carto_mcp.profiles.credentials_file import default_credentials_path, default_legacy_path
from carto_mcp.profiles.resolver import ProfileResolver, resolve_profile
from carto_mcp.profiles.types import (
    CLIENT_ID_VARS,
    CLIENT_SECRET_VARS,
    ENV_API_TOKEN,
    ENV_BASE_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_M2M_CLIENT_ID,
    ENV_M2M_CLIENT_SECRET,
    ENV_PROFILE,
    ProfileInputs,
    ProfileSource,
    ResolvedProfile,
    SourceReport,
    sandbox_profile,
)

__all__ = [
    "CLIENT_ID_VARS",
    "CLIENT_SECRET_VARS",
    "ENV_API_TOKEN",
    "ENV_BASE_URL",
    "ENV_CLIENT_ID",
    "ENV_CLIENT_SECRET",
    "ENV_M2M_CLIENT_ID",
    "ENV_M2M_CLIENT_SECRET",
    "ENV_PROFILE",
    "ProfileInputs",
    "ProfileResolver",
    "ProfileSource",
    "ResolvedProfile",
    "SourceReport",
    "default_credentials_path",
    "default_legacy_path",
    "resolve_profile",
    "sandbox_profile",
]
