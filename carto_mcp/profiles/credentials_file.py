"""The CARTO CLI's two files, read and checked into typed values.

`~/.carto_credentials.json` holds named profiles (`current_profile` picks one); an old file
with a single profile at the root is migrated on first use. `~/.carto/config.json` is the
CLI's legacy config, read for backwards compatibility. Every check names the file and the
full key (`profiles.qa.token`) and says how to fix it, without quoting a value: the files
hold tokens. Nothing here looks at flags or the environment; the caller passes what it needs.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carto_mcp.errors import ProfileError
from carto_mcp.files import home_dir, json_type, read_json_object
from carto_mcp.profiles.migration import MIGRATED_PROFILE, migrate, nested_from_old
from carto_mcp.profiles.types import ENV_PROFILE
from carto_mcp.profiles.values import check_tenant, clean, clean_token

__all__ = [
    "LEGACY_BASE_URL_KEYS",
    "LEGACY_TOKEN_KEYS",
    "METADATA_FIELDS",
    "PROFILE_FIELDS",
    "CredentialsFile",
    "FileProfile",
    "LegacyFile",
    "default_credentials_path",
    "default_legacy_path",
    "legacy_token",
    "legacy_token_key",
    "load_credentials",
    "load_legacy",
    "optional_string",
    "read_profile",
    "select_profile",
]

#: (D) Fields of one profile in ~/.carto_credentials.json.
PROFILE_FIELDS = ("token", "tenant_id", "tenant_domain", "organization_id", "organization_name", "user_email")
#: The descriptive ones, copied onto a resolved profile as they are.
METADATA_FIELDS = PROFILE_FIELDS[2:]
#: (A) Keys read from the legacy ~/.carto/config.json, first match wins.
LEGACY_TOKEN_KEYS = ("token", "access_token", "api_token", "api_key")
LEGACY_BASE_URL_KEYS = ("base_url", "api_base_url")


def default_credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    """`~/.carto_credentials.json`, the home directory taken from `environ` when given."""
    return home_dir(environ) / ".carto_credentials.json"


def default_legacy_path(environ: Mapping[str, str] | None = None) -> Path:
    """`~/.carto/config.json`, the CLI's legacy config, the home directory taken from `environ` when given."""
    return home_dir(environ) / ".carto" / "config.json"


@dataclass(frozen=True)
class CredentialsFile:
    """The credentials file as read: its profiles are still unchecked JSON until `read_profile`."""

    path: Path
    current_profile: str | None
    profiles: Mapping[str, Any]
    old_format: bool
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class LegacyFile:
    """The legacy config as read; its keys are checked only when it is the source used."""

    path: Path
    data: Mapping[str, Any]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class FileProfile:
    """One validated credentials-file profile, and how it was chosen (for the result's reason)."""

    name: str
    how: str
    token: str | None
    tenant_id: str | None
    meta: Mapping[str, str | None]


def load_credentials(path: Path, *, migrate_old: bool) -> CredentialsFile | None:
    """The credentials file, None when there is none; an old-format file is migrated if `migrate_old`.

    Without `migrate_old` (doctor) an old file is read the same way, in memory only.
    """
    fix = "fix the file, or move it aside and run `carto auth login`"
    loaded = read_json_object(path, what="credentials file", fix=fix, error=ProfileError)
    if loaded is None:
        return None
    data, st = loaded.data, loaded.stat
    warnings: list[str] = []
    if "profiles" in data:
        profiles = data["profiles"]
        if not isinstance(profiles, dict):
            raise ProfileError(
                f"`profiles` in {path} must be a JSON object mapping names to profiles, not {json_type(profiles)}",
                fix=fix,
            )
        current = data.get("current_profile")
        if current is not None and not isinstance(current, str):
            raise ProfileError(
                f"`current_profile` in {path} must be a string (a profile name), not {json_type(current)}", fix=fix
            )
        state = CredentialsFile(path, clean(current), profiles, False, ())
    elif any(key in data for key in PROFILE_FIELDS):
        # Old single-profile format: the profile's fields sit at the root.
        migrated = nested_from_old(data)
        if migrate_old:
            note, new_stat = migrate(path, loaded.raw, st, migrated)
            if note:
                warnings.append(note)
            if new_stat is not None:
                st = new_stat
        state = CredentialsFile(path, MIGRATED_PROFILE, migrated["profiles"], True, ())
    else:
        current = data.get("current_profile")
        state = CredentialsFile(path, current if isinstance(current, str) else None, {}, False, ())
    warnings.extend(_permission_warnings(path, st))
    return CredentialsFile(state.path, state.current_profile, state.profiles, state.old_format, tuple(warnings))


def load_legacy(path: Path, *, credentials_path: Path) -> LegacyFile | None:
    """The legacy config, None when there is none; `credentials_path` is where its fix points."""
    fix = f"fix it, or remove it and run `carto auth login` to create {credentials_path}"
    loaded = read_json_object(path, what="legacy config", fix=fix, error=ProfileError)
    if loaded is None:
        return None
    return LegacyFile(path, loaded.data, tuple(_permission_warnings(path, loaded.stat)))


def select_profile(
    state: CredentialsFile,
    *,
    flag: str | None,
    env: str | None,
    require_login: bool,
    base_url_given: Callable[[], bool],
) -> FileProfile:
    """The profile the CLI would use: --profile > CARTO_PROFILE > current_profile > the only one."""
    names = list(state.profiles)
    explicit = clean(flag)
    if explicit:
        name, how = explicit, "chosen by --profile"
    elif env_name := clean(env):
        name, how = env_name, f"chosen by {ENV_PROFILE}"
    elif state.current_profile:
        name, how = state.current_profile, "the file's current_profile"
    elif len(names) == 1:
        name, how = names[0], "the only profile in the file"
    else:
        raise ProfileError(
            f"{state.path} has several profiles ({', '.join(names)}) and no current_profile",
            fix=f"pass --profile NAME or set {ENV_PROFILE}",
        )
    return read_profile(state, name, how, require_login=require_login, base_url_given=base_url_given)


def read_profile(
    state: CredentialsFile, name: str, how: str, *, require_login: bool, base_url_given: Callable[[], bool]
) -> FileProfile:
    """Profile `name`, every field checked; `require_login` also demands a token and a tenant.

    `base_url_given` is asked only when the tenant is missing, since a base URL given on the
    command line or in the environment makes it unnecessary (self-hosted tenants); asking may
    raise for a malformed URL, so it is not asked sooner.
    """
    path = state.path
    if name not in state.profiles:
        existing = ", ".join(state.profiles) or "none"
        raise ProfileError(
            f"profile {name!r} ({how}) is not in {path}; existing profiles: {existing}.",
            fix=f"Pick one of those with --profile, or run `carto auth login --profile {name}`",
        )
    entry = state.profiles[name]
    fix = f"run `carto auth login --profile {name}`"
    if not isinstance(entry, dict):
        raise ProfileError(f"`profiles.{name}` in {path} must be a JSON object, not {json_type(entry)}", fix=fix)
    values: dict[str, str | None] = {}
    for key in PROFILE_FIELDS:
        value = entry.get(key)
        if value is not None and not isinstance(value, str):
            raise ProfileError(f"`profiles.{name}.{key}` in {path} must be a string, not {json_type(value)}", fix=fix)
        values[key] = clean(value)
    token = clean_token(values["token"], f"`profiles.{name}.token` in {path}")
    tenant_id = values["tenant_id"]
    if require_login:
        missing = [key for key, val in (("token", token), ("tenant_id", tenant_id)) if not val]
        if "tenant_id" in missing and base_url_given():
            missing.remove("tenant_id")
        if missing:
            raise ProfileError(f"profile {name!r} in {path} has no {' and no '.join(missing)}", fix=fix)
    if tenant_id:
        check_tenant(tenant_id, f"`profiles.{name}.tenant_id` in {path}", fix)
    meta = {key: values[key] for key in METADATA_FIELDS}
    return FileProfile(name=name, how=how, token=token, tenant_id=tenant_id, meta=meta)


def legacy_token_key(data: Mapping[str, Any]) -> str | None:
    """The first of LEGACY_TOKEN_KEYS holding a non-blank string: the one the token is read from."""
    return next((key for key in LEGACY_TOKEN_KEYS if isinstance(data.get(key), str) and data[key].strip()), None)


def legacy_token(legacy: LegacyFile, *, credentials_path: Path) -> str:
    """The legacy config's token; its absence is an error pointing at `carto auth login`."""
    key = legacy_token_key(legacy.data)
    token = clean_token(legacy.data[key], f"`{key}` in {legacy.path}") if key else None
    if not token:
        raise ProfileError(
            f"legacy config {legacy.path} holds no token: looked for the keys {', '.join(LEGACY_TOKEN_KEYS)}",
            fix=f"run `carto auth login` to create {credentials_path}",
        )
    return token


def optional_string(data: Mapping[str, Any], key: str, path: Path) -> str | None:
    """A top-level string field of the legacy config, None when absent or blank."""
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProfileError(f"`{key}` in {path} must be a string, not {json_type(value)}", fix="fix the file")
    return clean(value)


def _permission_warnings(path: Path, st: os.stat_result) -> list[str]:
    """A token file others can read is a leak waiting to happen, but not a reason to stop."""
    if os.name != "posix":
        return []
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return [
            f"{path} can be read or changed by other users (mode {mode:03o}); run `chmod 600 {path}` "
            "so only you can read your CARTO token"
        ]
    return []
