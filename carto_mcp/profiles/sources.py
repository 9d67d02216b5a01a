"""The credentials sources, in precedence order, as one table.

`SOURCES` lists each source with how it is used (`resolve`: a profile, or None when the source
is absent and the next one is asked) and how `doctor` describes it (`report`). Resolution and
`inspect` both walk this table, so the order exists once. A source that is present but
unusable raises, and the walk stops there: a broken credentials file is not skipped in favour
of the legacy config, because that would silently use other credentials than the ones the
person set up.

The three sources that bring their own secret (flag, env, client credentials) still take the
tenant and organization details from the credentials file when it parses; when it does not,
that becomes a warning rather than an error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from carto_mcp.errors import ProfileError
from carto_mcp.masking import mask, strip_bearer
from carto_mcp.profiles.base_url import BaseUrl, base_url_override, choose_base_url
from carto_mcp.profiles.credentials_file import (
    LEGACY_BASE_URL_KEYS,
    LEGACY_TOKEN_KEYS,
    METADATA_FIELDS,
    CredentialsFile,
    FileProfile,
    LegacyFile,
    legacy_token,
    legacy_token_key,
    load_credentials,
    load_legacy,
    optional_string,
    read_profile,
    select_profile,
)
from carto_mcp.profiles.types import (
    CLIENT_ID_VARS,
    CLIENT_SECRET_VARS,
    ENV_API_TOKEN,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_GEMINI_CLI,
    ENV_M2M_CLIENT_ID,
    ENV_M2M_CLIENT_SECRET,
    ENV_PROFILE,
    ProfileInputs,
    ProfileSource,
    ResolvedProfile,
)
from carto_mcp.profiles.values import clean, clean_token, refuse_placeholder

__all__ = ["SOURCES", "Attempt", "Lookup", "Presence", "Source", "named_profile", "resolve_first"]

_DEFAULT_NAME = "default"
_LEGACY_NAME = "legacy"
_NO_CREDENTIALS = "no CARTO credentials found"
_LOGIN_FIX = (
    "run `carto auth login`, or set CARTO_API_TOKEN, or pass --token (`carto-mcp serve --sandbox` needs no account)"
)


class _Setting(NamedTuple):
    """A value and where it was given (`--client-id`, `CARTO_CLIENT_ID`, …)."""

    value: str
    origin: str


@dataclass(frozen=True)
class Lookup:
    """What every source may consult: the command line, the environment and the two file paths."""

    inputs: ProfileInputs
    environ: Mapping[str, str]
    credentials_path: Path
    legacy_path: Path

    def env(self, name: str) -> str | None:
        return clean(self.environ.get(name))

    def base_url_override(self) -> BaseUrl | None:
        return base_url_override(self.inputs, self.environ)

    def base_url_given(self) -> bool:
        return self.base_url_override() is not None

    def client_credentials(self) -> tuple[_Setting | None, _Setting | None]:
        """The client id and secret, each from its flag or else its variables (the CLI's names first)."""
        return (
            self._setting(self.inputs.client_id, "--client-id", CLIENT_ID_VARS),
            self._setting(self.inputs.client_secret, "--client-secret-file", CLIENT_SECRET_VARS),
        )

    def _setting(self, flag: str | None, flag_name: str, variables: Sequence[str]) -> _Setting | None:
        value = clean(flag)
        if value:
            return _Setting(value, flag_name)
        for name in variables:
            if value := self.env(name):
                return _Setting(value, name)
        return None

    def load_credentials(self, *, migrate: bool) -> CredentialsFile | None:
        return load_credentials(self.credentials_path, migrate_old=migrate)

    def load_legacy(self) -> LegacyFile | None:
        return load_legacy(self.legacy_path, credentials_path=self.credentials_path)

    def select(self, state: CredentialsFile, *, require_login: bool) -> FileProfile:
        return select_profile(
            state,
            flag=self.inputs.profile,
            env=self.environ.get(ENV_PROFILE),
            require_login=require_login,
            base_url_given=self.base_url_given,
        )


@dataclass
class Attempt:
    """One walk of the table: which source failed (for `inspect`), and what was noted on the way."""

    #: False for `doctor`, which must never rewrite a file.
    migrate: bool
    failed_source: ProfileSource | None = None
    warnings: list[str] = field(default_factory=list)
    #: What each absent file source found, for the error when no source is present at all.
    looked: list[str] = field(default_factory=list)


class Presence(NamedTuple):
    """Whether a source is there, and a one-line detail for `doctor` (no secrets)."""

    present: bool
    detail: str


@dataclass(frozen=True)
class Source:
    """One row of the precedence table."""

    name: ProfileSource
    resolve: Callable[[Lookup, Attempt], ResolvedProfile | None]
    report: Callable[[Lookup], Presence]


def resolve_first(lookup: Lookup, attempt: Attempt) -> ResolvedProfile:
    """The profile from the first present source; a present but unusable one raises."""
    for source in SOURCES:
        attempt.failed_source = source.name
        profile = source.resolve(lookup, attempt)
        if profile is not None:
            return profile
    attempt.failed_source = None
    gemini = _gemini_fix(lookup, (ENV_API_TOKEN, *CLIENT_SECRET_VARS))
    fix = f"{_LOGIN_FIX}; {gemini}" if gemini else _LOGIN_FIX
    raise ProfileError(f"{_NO_CREDENTIALS} (looked at {'; '.join(attempt.looked)})", fix=fix)


def named_profile(lookup: Lookup, name: str) -> ResolvedProfile:
    """Credentials-file profile `name` with its own token, whatever the table would pick."""
    state = lookup.load_credentials(migrate=True)
    if state is None:
        raise ProfileError(
            f"no credentials file at {lookup.credentials_path}, so there is no profile {name!r}",
            fix=f"run `carto auth login --profile {name}`",
        )
    profile = read_profile(state, name, "requested by name", require_login=True, base_url_given=lookup.base_url_given)
    return _file_profile(lookup, state, profile, (), reason_prefix=False)


# --- flag, env and client credentials ----------------------------------------------------------


def _from_flag(lookup: Lookup, attempt: Attempt) -> ResolvedProfile | None:
    token = clean_token(lookup.inputs.token, "--token")
    if not token:
        return None
    reason = "--token was given (it overrides CARTO_API_TOKEN, client credentials and the credentials file)"
    return _token_profile(lookup, attempt, "flag", token, reason)


def _from_env(lookup: Lookup, attempt: Attempt) -> ResolvedProfile | None:
    token = clean_token(lookup.environ.get(ENV_API_TOKEN), ENV_API_TOKEN)
    if not token:
        return None
    return _token_profile(lookup, attempt, "env", token, f"{ENV_API_TOKEN} is set (it overrides the credentials file)")


def _from_client_credentials(lookup: Lookup, attempt: Attempt) -> ResolvedProfile | None:
    cid, secret = lookup.client_credentials()
    if cid is None and secret is None:
        return None
    if cid is None or secret is None:
        # Half a pair where it would win is an error: the person meant to use M2M credentials.
        raise _incomplete_pair(lookup, cid, secret)
    refuse_placeholder(cid.value, cid.origin, what="the client id")
    refuse_placeholder(secret.value, secret.origin, what="the client secret")
    reason = (
        f"M2M client credentials are set ({cid.origin} and {secret.origin}) and neither --token "
        f"nor {ENV_API_TOKEN} was given"
    )
    return _with_file_details(lookup, attempt, "client_credentials", None, reason, client=(cid.value, secret.value))


def _token_profile(lookup: Lookup, attempt: Attempt, source: ProfileSource, token: str, reason: str) -> ResolvedProfile:
    cid, secret = lookup.client_credentials()
    if (cid is None) != (secret is None):
        # Behind a winning token, half a pair changes nothing: worth a warning, not a refusal.
        attempt.warnings.append(f"{_incomplete_pair(lookup, cid, secret)} (ignored: a token was given)")
    return _with_file_details(lookup, attempt, source, token, reason)


def _with_file_details(
    lookup: Lookup,
    attempt: Attempt,
    source: ProfileSource,
    token: str | None,
    reason: str,
    *,
    client: tuple[str, str] | None = None,
) -> ResolvedProfile:
    """A profile whose secret came from elsewhere; tenant and org metadata from the file when it parses."""
    # Looked up first: a bad --base-url is refused before the file is read (and maybe migrated).
    override = lookup.base_url_override()
    warnings = attempt.warnings
    profile: FileProfile | None = None
    path: Path | None = None
    problem: str | None = None
    try:
        state = lookup.load_credentials(migrate=attempt.migrate)
        if state is not None:
            warnings.extend(state.warnings)
            if state.profiles:
                profile = lookup.select(state, require_login=False)
                path = state.path
    except ProfileError as exc:
        problem = str(exc)
        warnings.append(f"the credentials file was not used for tenant and organization details: {problem}")
    base = choose_base_url(
        override,
        tenant_id=profile.tenant_id if profile else None,
        tenant_origin=f"tenant_id of profile {profile.name!r} in {path}" if profile else "",
        unavailable=problem,
    )
    return ResolvedProfile(
        name=profile.name if profile else _DEFAULT_NAME,
        source=source,
        reason=reason,
        token=token,
        base_url=base.url,
        tenant_id=profile.tenant_id if profile else None,
        client_id=client[0] if client else None,
        client_secret=client[1] if client else None,
        path=path,
        warnings=tuple(warnings),
        base_url_origin=base.origin,
        **(_metadata(profile.meta) if profile else {}),
    )


def _incomplete_pair(lookup: Lookup, cid: _Setting | None, secret: _Setting | None) -> ProfileError:
    if cid is not None:
        message = (
            f"M2M client credentials are incomplete: a client id is set (from {cid.origin}) but the client secret "
            "is missing"
        )
        missing, fix = CLIENT_SECRET_VARS, f"set {_either(CLIENT_SECRET_VARS)} or pass --client-secret-file"
    else:
        origin = secret.origin if secret else ENV_M2M_CLIENT_SECRET
        message = (
            f"M2M client credentials are incomplete: a client secret is set (from {origin}) but the client id is "
            "missing"
        )
        missing, fix = CLIENT_ID_VARS, f"set {_either(CLIENT_ID_VARS)} or pass --client-id"
    gemini = _gemini_fix(lookup, missing)
    return ProfileError(message, fix=f"{gemini} Otherwise {fix}" if gemini else fix)


def _either(names: Sequence[str]) -> str:
    """`CARTO_M2M_CLIENT_ID (or CARTO_CLIENT_ID)`: the CLI's name, then the one carto-mcp also reads."""
    return f"{names[0]} (or {', '.join(names[1:])})" if len(names) > 1 else names[0]


def _gemini_fix(lookup: Lookup, names: Sequence[str]) -> str | None:
    """Under Gemini CLI, why an exported secret may be missing here, and how to pass it; else None.

    Gemini CLI drops variables with secret-looking names (and JWT-looking values) from the
    environment of the servers it starts, but expands `$NAME` references written in the entry's
    `env`; so "not set" here may mean "set in the shell, removed on the way".
    """
    if (lookup.environ.get(ENV_GEMINI_CLI) or "").strip() != "1":
        return None
    refs = ", ".join(f'"{name}": "${name}"' for name in names)
    return (
        f"if you exported {' or '.join(names)}: Gemini CLI (GEMINI_CLI=1) removes secret-looking variables from "
        "an MCP server's environment (in GitHub Actions, nearly all of them), so it may never have reached this "
        "server. Reference it in the server's "
        f'"env" in ~/.gemini/settings.json ({refs}), which Gemini expands when it loads its settings, or run '
        "`carto-mcp install gemini` in a shell where it is set, which writes those references."
    )


# --- the two files ---------------------------------------------------------------------------


def _from_credentials_file(lookup: Lookup, attempt: Attempt) -> ResolvedProfile | None:
    state = lookup.load_credentials(migrate=attempt.migrate)
    if state is None or not state.profiles:
        attempt.looked.append(f"{lookup.credentials_path}: {'not found' if state is None else 'holds no profiles'}")
        return None
    profile = lookup.select(state, require_login=True)
    return _file_profile(lookup, state, profile, attempt.warnings, reason_prefix=True)


def _file_profile(
    lookup: Lookup, state: CredentialsFile, profile: FileProfile, warnings: Sequence[str], *, reason_prefix: bool
) -> ResolvedProfile:
    base = choose_base_url(
        lookup.base_url_override(),
        # read_profile(require_login=True) guarantees a tenant when there is no override.
        tenant_id=profile.tenant_id,
        tenant_origin=f"tenant_id of profile {profile.name!r}",
        unavailable=f"profile {profile.name!r} in {state.path} has no tenant_id",
    )
    reason = f"profile {profile.name!r} from {state.path} ({profile.how})"
    if reason_prefix:
        reason = f"no --token, {ENV_API_TOKEN} or client credentials, so {reason}"
    return ResolvedProfile(
        name=profile.name,
        source="credentials_file",
        reason=reason,
        token=profile.token,
        base_url=base.url,
        tenant_id=profile.tenant_id,
        path=state.path,
        warnings=(*warnings, *state.warnings),
        base_url_origin=base.origin,
        **_metadata(profile.meta),
    )


def _from_legacy_file(lookup: Lookup, attempt: Attempt) -> ResolvedProfile | None:
    legacy = lookup.load_legacy()
    if legacy is None:
        attempt.looked.append(f"{lookup.legacy_path}: not found")
        return None
    path, data = legacy.path, legacy.data
    token = legacy_token(legacy, credentials_path=lookup.credentials_path)
    tenant_id = optional_string(data, "tenant_id", path)
    base = choose_base_url(
        lookup.base_url_override(),
        configured=[(f"`{key}` in {path}", data.get(key)) for key in LEGACY_BASE_URL_KEYS],
        tenant_id=tenant_id,
        tenant_origin=f"`tenant_id` in {path}",
        tenant_fix="run `carto auth login`",
        unavailable=f"legacy config {path} has none of the keys {', '.join((*LEGACY_BASE_URL_KEYS, 'tenant_id'))}",
    )
    meta = {key: optional_string(data, key, path) for key in METADATA_FIELDS}
    return ResolvedProfile(
        name=_LEGACY_NAME,
        source="legacy_file",
        reason=(
            f"no --token, {ENV_API_TOKEN}, client credentials or credentials-file profile, so the legacy config {path}"
        ),
        token=token,
        base_url=base.url,
        tenant_id=tenant_id,
        path=path,
        warnings=(*attempt.warnings, *legacy.warnings),
        base_url_origin=base.origin,
        **_metadata(meta),
    )


def _metadata(meta: Mapping[str, str | None]) -> dict[str, Any]:
    return {key: meta.get(key) for key in METADATA_FIELDS}


# --- doctor's view of each source --------------------------------------------------------------


def _report_flag(lookup: Lookup) -> Presence:
    value = clean(lookup.inputs.token)
    if value:
        return Presence(True, f"--token was given ({mask(strip_bearer(value))})")
    return Presence(False, "no --token given")


def _report_env(lookup: Lookup) -> Presence:
    value = lookup.env(ENV_API_TOKEN)
    if value:
        return Presence(True, f"{ENV_API_TOKEN} is set ({mask(strip_bearer(value))})")
    return Presence(False, f"{ENV_API_TOKEN} is not set")


def _report_client_credentials(lookup: Lookup) -> Presence:
    cid, secret = lookup.client_credentials()
    if cid and secret:
        return Presence(
            True, f"client id {cid.value!r} from {cid.origin}, secret ({mask(secret.value)}) from {secret.origin}"
        )
    if cid or secret:
        return Presence(True, str(_incomplete_pair(lookup, cid, secret)))
    return Presence(
        False,
        f"{ENV_M2M_CLIENT_ID}/{ENV_M2M_CLIENT_SECRET} (or {ENV_CLIENT_ID}/{ENV_CLIENT_SECRET}) are not set and no "
        "--client-id/--client-secret-file given",
    )


def _report_credentials_file(lookup: Lookup) -> Presence:
    path = lookup.credentials_path
    try:
        state = lookup.load_credentials(migrate=False)
    except ProfileError as exc:
        return Presence(True, f"unusable: {exc}")
    if state is None:
        return Presence(False, f"not found at {path}")
    if not state.profiles:
        return Presence(True, f"{path} holds no profiles")
    parts = [f"{path}: {len(state.profiles)} profile(s): {', '.join(state.profiles)}"]
    if state.old_format:
        parts.append("old single-profile format (migrated to the nested format on first use)")
    try:
        profile = lookup.select(state, require_login=False)
        parts.append(f"selected {profile.name!r} ({profile.how})")
        if profile.token:
            parts.append(f"token {mask(profile.token)}")
    except ProfileError as exc:
        parts.append(f"no profile selected: {exc}")
    parts.extend(state.warnings)
    return Presence(True, "; ".join(parts))


def _report_legacy_file(lookup: Lookup) -> Presence:
    path = lookup.legacy_path
    try:
        legacy = lookup.load_legacy()
    except ProfileError as exc:
        return Presence(True, f"unusable: {exc}")
    if legacy is None:
        return Presence(False, f"not found at {path}")
    key = legacy_token_key(legacy.data)
    if key is None:
        detail = f"{path} exists but holds none of the keys {', '.join(LEGACY_TOKEN_KEYS)}"
    else:
        detail = f"{path}: token ({mask(strip_bearer(legacy.data[key]))}) under `{key}`"
    return Presence(True, "; ".join([detail, *legacy.warnings]))


#: The precedence order of the CARTO CLI, plus M2M client credentials: first present source wins.
SOURCES: tuple[Source, ...] = (
    Source("flag", _from_flag, _report_flag),
    Source("env", _from_env, _report_env),
    Source("client_credentials", _from_client_credentials, _report_client_credentials),
    Source("credentials_file", _from_credentials_file, _report_credentials_file),
    Source("legacy_file", _from_legacy_file, _report_legacy_file),
)
