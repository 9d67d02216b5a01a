"""Credentials resolution, exactly as the CARTO CLI does it, plus headless M2M client credentials.

Priority, first found wins:

    1. --token                                    source "flag"
    2. CARTO_API_TOKEN                            source "env"
    3. CARTO_CLIENT_ID + CARTO_CLIENT_SECRET      source "client_credentials" (token=None;
       (or --client-id + --client-secret-file)    the API layer exchanges them)
    4. ~/.carto_credentials.json                  source "credentials_file"
       profile = --profile > CARTO_PROFILE > current_profile > the only profile
    5. ~/.carto/config.json (legacy)              source "legacy_file"

Base URL = --base-url > CARTO_MCP_BASE_URL > https://{tenant_id}.api.carto.com, the tenant
coming from the selected credentials-file profile (also for sources 1-3, when the file exists).

Old single-profile credentials files are migrated to the nested format on first use: atomic
write, original kept as `<file>.bak`, mode 0600; when the file cannot be written the migration
happens in memory only and the result carries a warning. Every message, warning and repr
shows secrets masked (`eyJh…x9Qk`), never in full. Nothing here reads `os.environ` unless no
`environ` mapping is passed in.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from carto_mcp.contract import BASE_URL_TEMPLATE
from carto_mcp.errors import ProfileError
from carto_mcp.files import atomic_write, json_type
from carto_mcp.masking import jwt_payload, mask, strip_bearer

__all__ = [
    "ENV_API_TOKEN",
    "ENV_BASE_URL",
    "ENV_CLIENT_ID",
    "ENV_CLIENT_SECRET",
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

logger = logging.getLogger(__name__)

ProfileSource = Literal["flag", "env", "client_credentials", "credentials_file", "legacy_file", "sandbox"]

#: Environment variables read by the resolver (the first three are the CARTO CLI's own).
ENV_API_TOKEN = "CARTO_API_TOKEN"
ENV_PROFILE = "CARTO_PROFILE"
ENV_CLIENT_ID = "CARTO_CLIENT_ID"
ENV_CLIENT_SECRET = "CARTO_CLIENT_SECRET"
ENV_BASE_URL = "CARTO_MCP_BASE_URL"
_ENV_VARS = (ENV_API_TOKEN, ENV_PROFILE, ENV_CLIENT_ID, ENV_CLIENT_SECRET, ENV_BASE_URL)

#: (D) Fields of one profile in ~/.carto_credentials.json.
PROFILE_FIELDS = ("token", "tenant_id", "tenant_domain", "organization_id", "organization_name", "user_email")
#: (A) Keys read from the legacy ~/.carto/config.json, first match wins.
LEGACY_TOKEN_KEYS = ("token", "access_token", "api_token", "api_key")
LEGACY_BASE_URL_KEYS = ("base_url", "api_base_url")

_MIGRATED_PROFILE = "default"
_DEFAULT_NAME = "default"
_LEGACY_NAME = "legacy"
_TENANT_RE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,126}[A-Za-z0-9])?$")
_NO_BASE_URL = "no API base URL: pass --base-url or log in with `carto auth login` so the profile has a tenant_id"
_NO_CREDENTIALS = "no CARTO credentials found: run `carto auth login`, or set CARTO_API_TOKEN, or pass --token"


# --- public data ----------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class ProfileInputs:
    """What the command line passes in; every field is optional (empty strings count as unset)."""

    token: str | None = None
    profile: str | None = None
    base_url: str | None = None
    client_id: str | None = None
    client_secret: str | None = None

    def __repr__(self) -> str:
        return (
            f"ProfileInputs(token={_masked_or_none(self.token)}, profile={self.profile!r}, "
            f"base_url={self.base_url!r}, client_id={self.client_id!r}, "
            f"client_secret={_masked_or_none(self.client_secret)})"
        )


@dataclass(frozen=True, repr=False)
class ResolvedProfile:
    """The credentials one server instance uses, and why; its repr never shows a secret."""

    name: str
    source: ProfileSource
    reason: str
    token: str | None
    base_url: str
    tenant_id: str | None = None
    tenant_domain: str | None = None
    organization_id: str | None = None
    organization_name: str | None = None
    user_email: str | None = None
    client_id: str | None = None
    client_secret: str | None = None
    path: Path | None = None
    warnings: tuple[str, ...] = ()
    #: Where the base URL came from ("--base-url", "CARTO_MCP_BASE_URL", "tenant_id of profile 'x'", …).
    base_url_origin: str | None = None

    @property
    def masked_token(self) -> str:
        """The token as `eyJh…x9Qk` ("" when there is none yet, as for client credentials)."""
        return mask(self.token)

    def token_expiry(self) -> datetime | None:
        """When the token expires, from its unverified JWT `exp` claim; None when unreadable."""
        if not self.token:
            return None
        payload = jwt_payload(self.token)
        exp = payload.get("exp") if payload else None
        if isinstance(exp, bool) or not isinstance(exp, (int, float)):
            return None
        try:
            return datetime.fromtimestamp(exp, tz=timezone.utc)
        except (OverflowError, OSError, ValueError):
            return None

    def public(self) -> dict[str, Any]:
        """Everything safe to show a person or a model: secrets appear masked or not at all."""
        expiry = self.token_expiry()
        return {
            "name": self.name,
            "source": self.source,
            "reason": self.reason,
            "base_url": self.base_url,
            "base_url_origin": self.base_url_origin,
            "tenant_id": self.tenant_id,
            "tenant_domain": self.tenant_domain,
            "organization_id": self.organization_id,
            "organization_name": self.organization_name,
            "user_email": self.user_email,
            "masked_token": self.masked_token or None,
            "token_expires_at": expiry.isoformat() if expiry else None,
            "client_id": self.client_id,
            "has_client_secret": bool(self.client_secret),
            "path": str(self.path) if self.path else None,
            "warnings": list(self.warnings),
        }

    def __repr__(self) -> str:
        return (
            f"ResolvedProfile(name={self.name!r}, source={self.source!r}, base_url={self.base_url!r}, "
            f"token={_masked_or_none(self.token)}, client_id={self.client_id!r}, "
            f"client_secret={_masked_or_none(self.client_secret)}, path={self.path!r}, "
            f"warnings={len(self.warnings)})"
        )


@dataclass(frozen=True)
class SourceReport:
    """One credentials source as `carto-mcp doctor` shows it; `detail` never holds a secret."""

    source: str
    present: bool
    used: bool
    detail: str


def default_credentials_path(environ: Mapping[str, str] | None = None) -> Path:
    """`~/.carto_credentials.json`, the home directory taken from `environ` when given."""
    return _home(environ) / ".carto_credentials.json"


def default_legacy_path(environ: Mapping[str, str] | None = None) -> Path:
    """`~/.carto/config.json`, the CLI's legacy config, the home directory taken from `environ` when given."""
    return _home(environ) / ".carto" / "config.json"


def sandbox_profile(base_url: str) -> ResolvedProfile:
    """The fixed profile of the embedded sandbox API (no CARTO account involved)."""
    return ResolvedProfile(
        name="sandbox",
        source="sandbox",
        reason="--sandbox: the embedded sandbox API (no CARTO account)",
        token="sandbox-token",
        base_url=base_url.strip().rstrip("/"),
        base_url_origin="--sandbox",
    )


# --- internal file model --------------------------------------------------------------------


@dataclass(frozen=True)
class _CredentialsFile:
    path: Path
    current_profile: str | None
    profiles: Mapping[str, Any]
    old_format: bool
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _LegacyFile:
    path: Path
    data: Mapping[str, Any]
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _Profile:
    """One validated credentials-file profile."""

    name: str
    how: str
    token: str | None
    tenant_id: str | None
    meta: Mapping[str, str | None]


@dataclass
class _Attempt:
    """Bookkeeping of one resolution, so `inspect` can say which source failed."""

    failed_source: str | None = None
    warnings: list[str] = field(default_factory=list)


class ProfileResolver:
    """Resolves the profile for one server; cheap to call again: the result is cached per file state."""

    def __init__(
        self,
        inputs: ProfileInputs = ProfileInputs(),
        *,
        environ: Mapping[str, str] | None = None,
        credentials_path: Path | None = None,
        legacy_path: Path | None = None,
    ) -> None:
        self._inputs = inputs
        self._environ: Mapping[str, str] = os.environ if environ is None else environ
        self._credentials_path = Path(credentials_path) if credentials_path else default_credentials_path(environ)
        self._legacy_path = Path(legacy_path) if legacy_path else default_legacy_path(environ)
        self._cache: dict[object, tuple[object, ResolvedProfile]] = {}
        self._lock = threading.Lock()

    @property
    def credentials_path(self) -> Path:
        """The credentials file this resolver reads."""
        return self._credentials_path

    @property
    def legacy_path(self) -> Path:
        """The legacy config file this resolver reads."""
        return self._legacy_path

    # --- public API -----------------------------------------------------------------------

    def resolve(self) -> ResolvedProfile:
        """The winning profile; re-read when either file or a relevant env var changed."""
        return self._cached("main", lambda: self._resolve(_Attempt(), migrate=True))

    def refresh(self) -> ResolvedProfile:
        """Forget every cached result and resolve again (after a 401: the login may have been renewed)."""
        with self._lock:
            self._cache.clear()
        return self.resolve()

    def profile_names(self) -> list[str]:
        """Profile names in the credentials file, in file order ([] when there is no file)."""
        state = self._load_credentials(migrate=False)
        return list(state.profiles) if state else []

    def resolve_named(self, name: str) -> ResolvedProfile:
        """A specific credentials-file profile, its own token, with the usual base-URL rules."""
        return self._cached(("named", name), lambda: self._resolve_named(name))

    def inspect(self) -> list[SourceReport]:
        """Every source in priority order: whether it is present, whether it won, and why (no secrets)."""
        attempt = _Attempt()
        winner: ResolvedProfile | None = None
        error: str | None = None
        try:
            winner = self._resolve(attempt, migrate=False)
        except ProfileError as exc:
            error = str(exc)
        reports = [
            self._inspect_flag(),
            self._inspect_env(),
            self._inspect_client_credentials(),
            self._inspect_credentials_file(),
            self._inspect_legacy_file(),
        ]
        out: list[SourceReport] = []
        for report in reports:
            used = winner is not None and winner.source == report.source
            detail = report.detail
            if error and attempt.failed_source == report.source:
                detail = f"found but cannot be used: {error}"
            elif used and winner is not None:
                detail = f"{detail} — used: {winner.reason}"
            out.append(SourceReport(report.source, report.present, used, detail))
        return out

    # --- caching ----------------------------------------------------------------------------

    def _state_key(self) -> object:
        return (
            _file_signature(self._credentials_path),
            _file_signature(self._legacy_path),
            tuple(self._environ.get(name) for name in _ENV_VARS),
        )

    def _cached(self, slot: object, compute: Callable[[], ResolvedProfile]) -> ResolvedProfile:
        with self._lock:
            key = self._state_key()
            hit = self._cache.get(slot)
            if hit is not None and hit[0] == key:
                return hit[1]
            result = compute()
            # The key taken *before* reading: a write made meanwhile (or our own migration)
            # changes the signature, so the next call reads the file again.
            self._cache[slot] = (key, result)
            return result

    # --- resolution ---------------------------------------------------------------------------

    def _env(self, name: str) -> str | None:
        return _clean(self._environ.get(name))

    def _client_credentials(self) -> tuple[tuple[str, str] | None, tuple[str, str] | None]:
        cid = _clean(self._inputs.client_id)
        cid_pair = (cid, "--client-id") if cid else None
        if cid_pair is None and (value := self._env(ENV_CLIENT_ID)):
            cid_pair = (value, ENV_CLIENT_ID)
        secret = _clean(self._inputs.client_secret)
        secret_pair = (secret, "--client-secret-file") if secret else None
        if secret_pair is None and (value := self._env(ENV_CLIENT_SECRET)):
            secret_pair = (value, ENV_CLIENT_SECRET)
        return cid_pair, secret_pair

    def _base_url_override(self) -> tuple[str, str] | None:
        value = _clean(self._inputs.base_url)
        if value:
            return _normalize_base_url(value, "--base-url"), "--base-url"
        value = self._env(ENV_BASE_URL)
        if value:
            return _normalize_base_url(value, ENV_BASE_URL), ENV_BASE_URL
        return None

    def _resolve(self, attempt: _Attempt, *, migrate: bool) -> ResolvedProfile:
        attempt.failed_source = "flag"
        flag_token = _clean_token(self._inputs.token, "--token")
        attempt.failed_source = "env"
        env_token = _clean_token(self._environ.get(ENV_API_TOKEN), ENV_API_TOKEN) if not flag_token else None
        cid, secret = self._client_credentials()

        source: ProfileSource
        if flag_token:
            source, token = "flag", flag_token
            reason = "--token was given (it overrides CARTO_API_TOKEN, client credentials and the credentials file)"
        elif env_token:
            source, token = "env", env_token
            reason = f"{ENV_API_TOKEN} is set (it overrides the credentials file)"
        elif cid or secret:
            source, token = "client_credentials", None
            attempt.failed_source = source
            if cid is None or secret is None:
                raise ProfileError(_incomplete_pair_message(cid, secret))
            reason = (
                f"M2M client credentials are set ({cid[1]} and {secret[1]}) and neither --token "
                f"nor {ENV_API_TOKEN} was given"
            )
        else:
            return self._resolve_from_files(attempt, migrate=migrate)

        attempt.failed_source = source
        if source != "client_credentials" and (cid is None) != (secret is None):
            attempt.warnings.append(f"{_incomplete_pair_message(cid, secret)} (ignored: a token was given)")
        return self._override_profile(source, token, reason, cid, secret, attempt, migrate=migrate)

    def _override_profile(
        self,
        source: ProfileSource,
        token: str | None,
        reason: str,
        cid: tuple[str, str] | None,
        secret: tuple[str, str] | None,
        attempt: _Attempt,
        *,
        migrate: bool,
    ) -> ResolvedProfile:
        """A flag/env/client-credentials profile; tenant and org metadata from the file when it parses."""
        warnings = attempt.warnings
        override = self._base_url_override()
        profile: _Profile | None = None
        path: Path | None = None
        problem: str | None = None
        try:
            state = self._load_credentials(migrate=migrate)
            if state is not None:
                warnings.extend(state.warnings)
                if state.profiles:
                    profile = self._select(state, require_login=False)
                    path = state.path
        except ProfileError as exc:
            problem = str(exc)
            warnings.append(f"the credentials file was not used for tenant and organization details: {problem}")

        if override:
            base_url, origin = override
        elif profile is not None and profile.tenant_id:
            base_url = BASE_URL_TEMPLATE.format(tenant_id=profile.tenant_id)
            origin = f"tenant_id of profile {profile.name!r} in {path}"
        else:
            looked = f" ({problem})" if problem else ""
            raise ProfileError(f"{_NO_BASE_URL}{looked}")
        return ResolvedProfile(
            name=profile.name if profile else _DEFAULT_NAME,
            source=source,
            reason=reason,
            token=token,
            base_url=base_url,
            tenant_id=profile.tenant_id if profile else None,
            client_id=cid[0] if (cid and secret and source == "client_credentials") else None,
            client_secret=secret[0] if (cid and secret and source == "client_credentials") else None,
            path=path,
            warnings=tuple(warnings),
            base_url_origin=origin,
            **(_meta_kwargs(profile.meta) if profile else {}),
        )

    def _resolve_from_files(self, attempt: _Attempt, *, migrate: bool) -> ResolvedProfile:
        attempt.failed_source = "credentials_file"
        state = self._load_credentials(migrate=migrate)
        if state is not None and state.profiles:
            profile = self._select(state, require_login=True)
            return self._file_profile(state, profile, attempt, reason_prefix=True)

        attempt.failed_source = "legacy_file"
        legacy = self._load_legacy()
        if legacy is not None:
            return self._legacy_profile(legacy, attempt)

        attempt.failed_source = None
        creds_status = "not found" if state is None else "holds no profiles"
        raise ProfileError(
            f"{_NO_CREDENTIALS} (looked at {self._credentials_path}: {creds_status}; {self._legacy_path}: not found)"
        )

    def _resolve_named(self, name: str) -> ResolvedProfile:
        state = self._load_credentials(migrate=True)
        if state is None:
            raise ProfileError(
                f"no credentials file at {self._credentials_path}, so there is no profile {name!r}: "
                f"run `carto auth login --profile {name}`"
            )
        profile = self._profile(state, name, "requested by name", require_login=True)
        return self._file_profile(state, profile, _Attempt(), reason_prefix=False)

    def _file_profile(
        self, state: _CredentialsFile, profile: _Profile, attempt: _Attempt, *, reason_prefix: bool
    ) -> ResolvedProfile:
        override = self._base_url_override()
        if override:
            base_url, origin = override
        elif profile.tenant_id:  # _profile(require_login=True) guarantees it without an override
            base_url = BASE_URL_TEMPLATE.format(tenant_id=profile.tenant_id)
            origin = f"tenant_id of profile {profile.name!r}"
        else:
            raise ProfileError(f"{_NO_BASE_URL} (profile {profile.name!r} in {state.path} has no tenant_id)")
        reason = f"profile {profile.name!r} from {state.path} ({profile.how})"
        if reason_prefix:
            reason = f"no --token, {ENV_API_TOKEN} or client credentials, so {reason}"
        return ResolvedProfile(
            name=profile.name,
            source="credentials_file",
            reason=reason,
            token=profile.token,
            base_url=base_url,
            tenant_id=profile.tenant_id,
            path=state.path,
            warnings=(*attempt.warnings, *state.warnings),
            base_url_origin=origin,
            **_meta_kwargs(profile.meta),
        )

    def _legacy_profile(self, legacy: _LegacyFile, attempt: _Attempt) -> ResolvedProfile:
        path, data = legacy.path, legacy.data
        token: str | None = None
        for key in LEGACY_TOKEN_KEYS:
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                token = _clean_token(value, f"`{key}` in {path}")
                break
        if not token:
            raise ProfileError(
                f"legacy config {path} holds no token: looked for the keys {', '.join(LEGACY_TOKEN_KEYS)}; "
                f"run `carto auth login` to create {self._credentials_path}"
            )
        tenant_id = _opt_str(data, "tenant_id", path)
        override = self._base_url_override()
        base_url: str | None = None
        origin = ""
        if override:
            base_url, origin = override
        else:
            for key in LEGACY_BASE_URL_KEYS:
                value = data.get(key)
                if isinstance(value, str) and value.strip():
                    base_url, origin = _normalize_base_url(value, f"`{key}` in {path}"), f"`{key}` in {path}"
                    break
            if base_url is None and tenant_id:
                _check_tenant(tenant_id, f"`tenant_id` in {path}", "run `carto auth login`")
                base_url, origin = BASE_URL_TEMPLATE.format(tenant_id=tenant_id), f"`tenant_id` in {path}"
        if base_url is None:
            raise ProfileError(
                f"{_NO_BASE_URL} (legacy config {path} has none of the keys "
                f"{', '.join((*LEGACY_BASE_URL_KEYS, 'tenant_id'))})"
            )
        meta = {key: _opt_str(data, key, path) for key in PROFILE_FIELDS[2:]}
        return ResolvedProfile(
            name=_LEGACY_NAME,
            source="legacy_file",
            reason=(
                f"no --token, {ENV_API_TOKEN}, client credentials or credentials-file profile, "
                f"so the legacy config {path}"
            ),
            token=token,
            base_url=base_url,
            tenant_id=tenant_id,
            path=path,
            warnings=(*attempt.warnings, *legacy.warnings),
            base_url_origin=origin,
            **_meta_kwargs(meta),
        )

    # --- profile selection --------------------------------------------------------------------

    def _select(self, state: _CredentialsFile, *, require_login: bool) -> _Profile:
        names = list(state.profiles)
        explicit = _clean(self._inputs.profile)
        if explicit:
            name, how = explicit, "chosen by --profile"
        elif env_name := self._env(ENV_PROFILE):
            name, how = env_name, f"chosen by {ENV_PROFILE}"
        elif state.current_profile:
            name, how = state.current_profile, "the file's current_profile"
        elif len(names) == 1:
            name, how = names[0], "the only profile in the file"
        else:
            raise ProfileError(
                f"{state.path} has several profiles ({', '.join(names)}) and no current_profile: "
                f"pass --profile NAME or set {ENV_PROFILE}"
            )
        return self._profile(state, name, how, require_login=require_login)

    def _profile(self, state: _CredentialsFile, name: str, how: str, *, require_login: bool) -> _Profile:
        path = state.path
        if name not in state.profiles:
            existing = ", ".join(state.profiles) or "none"
            raise ProfileError(
                f"profile {name!r} ({how}) is not in {path}; existing profiles: {existing}. "
                f"Pick one of those with --profile, or run `carto auth login --profile {name}`"
            )
        entry = state.profiles[name]
        fix = f"run `carto auth login --profile {name}`"
        if not isinstance(entry, dict):
            raise ProfileError(f"`profiles.{name}` in {path} must be a JSON object, not {json_type(entry)}; {fix}")
        values: dict[str, str | None] = {}
        for key in PROFILE_FIELDS:
            value = entry.get(key)
            if value is not None and not isinstance(value, str):
                raise ProfileError(f"`profiles.{name}.{key}` in {path} must be a string, not {json_type(value)}; {fix}")
            values[key] = _clean(value)
        token = _clean_token(values["token"], f"`profiles.{name}.token` in {path}")
        tenant_id = values["tenant_id"]
        if require_login:
            missing = [key for key, val in (("token", token), ("tenant_id", tenant_id)) if not val]
            if "tenant_id" in missing and self._base_url_override():
                missing.remove("tenant_id")  # --base-url makes the tenant unnecessary
            if missing:
                raise ProfileError(f"profile {name!r} in {path} has no {' and no '.join(missing)}; {fix}")
        if tenant_id:
            _check_tenant(tenant_id, f"`profiles.{name}.tenant_id` in {path}", fix)
        meta = {key: values[key] for key in PROFILE_FIELDS[2:]}
        return _Profile(name=name, how=how, token=token, tenant_id=tenant_id, meta=meta)

    # --- files ---------------------------------------------------------------------------------

    def _load_credentials(self, *, migrate: bool) -> _CredentialsFile | None:
        path = self._credentials_path
        fix = "fix the file, or move it aside and run `carto auth login`"
        loaded = _read_json_object(path, "credentials file", fix)
        if loaded is None:
            return None
        data, raw, st = loaded
        warnings: list[str] = []
        if "profiles" in data:
            profiles = data["profiles"]
            if not isinstance(profiles, dict):
                raise ProfileError(
                    f"`profiles` in {path} must be a JSON object mapping names to profiles, "
                    f"not {json_type(profiles)}; {fix}"
                )
            current = data.get("current_profile")
            if current is not None and not isinstance(current, str):
                raise ProfileError(
                    f"`current_profile` in {path} must be a string (a profile name), not {json_type(current)}; {fix}"
                )
            state = _CredentialsFile(path, _clean(current), profiles, False, ())
        elif any(key in data for key in PROFILE_FIELDS):
            # Old single-profile format: the profile's fields sit at the root.
            entry = {key: value for key, value in data.items() if key != "current_profile"}
            migrated: dict[str, Any] = {"current_profile": _MIGRATED_PROFILE, "profiles": {_MIGRATED_PROFILE: entry}}
            if migrate:
                note, new_stat = _migrate(path, raw, st, migrated)
                if note:
                    warnings.append(note)
                if new_stat is not None:
                    st = new_stat
            state = _CredentialsFile(path, _MIGRATED_PROFILE, migrated["profiles"], True, ())
        else:
            current = data.get("current_profile")
            state = _CredentialsFile(path, current if isinstance(current, str) else None, {}, False, ())
        warnings.extend(_permission_warnings(path, st))
        return _CredentialsFile(state.path, state.current_profile, state.profiles, state.old_format, tuple(warnings))

    def _load_legacy(self) -> _LegacyFile | None:
        path = self._legacy_path
        fix = f"fix it, or remove it and run `carto auth login` to create {self._credentials_path}"
        loaded = _read_json_object(path, "legacy config", fix)
        if loaded is None:
            return None
        data, _raw, st = loaded
        return _LegacyFile(path, data, tuple(_permission_warnings(path, st)))

    # --- doctor ----------------------------------------------------------------------------------

    def _inspect_flag(self) -> SourceReport:
        value = _clean(self._inputs.token)
        if value:
            return SourceReport("flag", True, False, f"--token was given ({mask(strip_bearer(value))})")
        return SourceReport("flag", False, False, "no --token given")

    def _inspect_env(self) -> SourceReport:
        value = self._env(ENV_API_TOKEN)
        if value:
            return SourceReport("env", True, False, f"{ENV_API_TOKEN} is set ({mask(strip_bearer(value))})")
        return SourceReport("env", False, False, f"{ENV_API_TOKEN} is not set")

    def _inspect_client_credentials(self) -> SourceReport:
        cid, secret = self._client_credentials()
        if cid and secret:
            detail = f"client id {cid[0]!r} from {cid[1]}, secret ({mask(secret[0])}) from {secret[1]}"
            return SourceReport("client_credentials", True, False, detail)
        if cid or secret:
            return SourceReport("client_credentials", True, False, _incomplete_pair_message(cid, secret))
        detail = f"{ENV_CLIENT_ID}/{ENV_CLIENT_SECRET} are not set and no --client-id/--client-secret-file given"
        return SourceReport("client_credentials", False, False, detail)

    def _inspect_credentials_file(self) -> SourceReport:
        path = self._credentials_path
        try:
            state = self._load_credentials(migrate=False)
        except ProfileError as exc:
            return SourceReport("credentials_file", True, False, f"unusable: {exc}")
        if state is None:
            return SourceReport("credentials_file", False, False, f"not found at {path}")
        if not state.profiles:
            return SourceReport("credentials_file", True, False, f"{path} holds no profiles")
        parts = [f"{path}: {len(state.profiles)} profile(s): {', '.join(state.profiles)}"]
        if state.old_format:
            parts.append("old single-profile format (migrated to the nested format on first use)")
        try:
            profile = self._select(state, require_login=False)
            parts.append(f"selected {profile.name!r} ({profile.how})")
            if profile.token:
                parts.append(f"token {mask(profile.token)}")
        except ProfileError as exc:
            parts.append(f"no profile selected: {exc}")
        parts.extend(state.warnings)
        return SourceReport("credentials_file", True, False, "; ".join(parts))

    def _inspect_legacy_file(self) -> SourceReport:
        path = self._legacy_path
        try:
            legacy = self._load_legacy()
        except ProfileError as exc:
            return SourceReport("legacy_file", True, False, f"unusable: {exc}")
        if legacy is None:
            return SourceReport("legacy_file", False, False, f"not found at {path}")
        key = next(
            (k for k in LEGACY_TOKEN_KEYS if isinstance(legacy.data.get(k), str) and legacy.data[k].strip()), None
        )
        if key is None:
            detail = f"{path} exists but holds none of the keys {', '.join(LEGACY_TOKEN_KEYS)}"
        else:
            detail = f"{path}: token ({mask(strip_bearer(legacy.data[key]))}) under `{key}`"
        return SourceReport("legacy_file", True, False, "; ".join([detail, *legacy.warnings]))


def resolve_profile(
    inputs: ProfileInputs = ProfileInputs(),
    *,
    environ: Mapping[str, str] | None = None,
    credentials_path: Path | None = None,
    legacy_path: Path | None = None,
) -> ResolvedProfile:
    """One-shot resolution: `ProfileResolver(...).resolve()`."""
    return ProfileResolver(
        inputs, environ=environ, credentials_path=credentials_path, legacy_path=legacy_path
    ).resolve()


# --- helpers -----------------------------------------------------------------------------------


def _home(environ: Mapping[str, str] | None) -> Path:
    if environ is not None:
        for key in ("HOME", "USERPROFILE"):
            value = environ.get(key)
            if value:
                return Path(value)
    return Path.home()


def _clean(value: str | None) -> str | None:
    """A stripped string, or None when unset or blank."""
    if value is None:
        return None
    value = value.strip()
    return value or None


def _masked_or_none(value: str | None) -> str:
    return repr(mask(value)) if value else "None"


def _clean_token(value: str | None, origin: str) -> str | None:
    """The bare token (no `Bearer ` prefix), None when blank; refuse values that cannot be a bearer."""
    if value is None or not value.strip():
        return None
    token = strip_bearer(value)
    if not token:
        return None
    if any(ch.isspace() or not ch.isprintable() for ch in token):
        raise ProfileError(
            f"the token in {origin} contains spaces, line breaks or control characters, so it cannot be sent "
            "as a bearer token; copy it again without them"
        )
    return token


def _incomplete_pair_message(cid: tuple[str, str] | None, secret: tuple[str, str] | None) -> str:
    if cid is not None:
        return (
            f"M2M client credentials are incomplete: a client id is set (from {cid[1]}) but the client secret "
            f"is missing; set {ENV_CLIENT_SECRET} or pass --client-secret-file"
        )
    origin = secret[1] if secret else ENV_CLIENT_SECRET
    return (
        f"M2M client credentials are incomplete: a client secret is set (from {origin}) but the client id "
        f"is missing; set {ENV_CLIENT_ID} or pass --client-id"
    )


def _normalize_base_url(value: str, origin: str) -> str:
    url = value.strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        shown = "" if "@" in value else f" (got {value.strip()[:80]!r})"
        raise ProfileError(
            f"{origin} must be an http(s) URL such as https://gcp-us-east1.api.carto.com{shown}; fix the value"
        )
    return url


def _check_tenant(tenant_id: str, origin: str, fix: str) -> None:
    if not _TENANT_RE.match(tenant_id):
        raise ProfileError(
            f"{origin} is not a valid tenant id (letters, digits, dots and dashes, such as gcp-us-east1); {fix}"
        )


def _opt_str(data: Mapping[str, Any], key: str, path: Path) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ProfileError(f"`{key}` in {path} must be a string, not {json_type(value)}; fix the file")
    return _clean(value)


def _meta_kwargs(meta: Mapping[str, str | None]) -> dict[str, Any]:
    return {key: meta.get(key) for key in PROFILE_FIELDS[2:]}


def _file_signature(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size


def _read_json_object(path: Path, what: str, fix: str) -> tuple[dict[str, Any], bytes, os.stat_result] | None:
    """The file's JSON object, raw bytes and stat; None when the file does not exist."""
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):
            raise ProfileError(f"{what} {path} is not a regular file; {fix}")
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ProfileError(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}; {fix}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ProfileError(f"{what} {path} is not UTF-8 text; {fix}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # exc.msg is the parser's complaint only; the document (which holds tokens) is never quoted.
        raise ProfileError(
            f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}; {fix}"
        ) from None
    if not isinstance(data, dict):
        raise ProfileError(f"{what} {path} must hold a JSON object at the top level, not {json_type(data)}; {fix}")
    return data, raw, st


def _permission_warnings(path: Path, st: os.stat_result) -> list[str]:
    if os.name != "posix":
        return []
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        return [
            f"{path} can be read or changed by other users (mode {mode:03o}); run `chmod 600 {path}` "
            "so only you can read your CARTO token"
        ]
    return []


def _write_backup(path: Path, raw: bytes) -> tuple[Path, bool]:
    """Keep the original bytes next to the file, never overwriting a different earlier backup.

    Returns the backup path and whether this call created it.
    """
    for n in range(100):
        backup = path.with_name(f"{path.name}.bak" if n == 0 else f"{path.name}.bak.{n}")
        try:
            fd = os.open(backup, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            try:
                if backup.read_bytes() == raw:
                    return backup, False
            except OSError:
                pass
            continue
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
                fh.flush()
                os.fsync(fh.fileno())
        except BaseException:
            backup.unlink(missing_ok=True)
            raise
        return backup, True
    raise FileExistsError(f"too many backups of {path.name}")


def _migrate(
    path: Path, raw: bytes, st: os.stat_result, migrated: Mapping[str, Any]
) -> tuple[str | None, os.stat_result | None]:
    """Rewrite an old-format file in the nested format, atomically, keeping `<file>.bak`.

    Returns a note for the result's warnings (or None) and the new file's stat when written.
    On any failure the file is left exactly as it was and the caller uses `migrated` in memory.
    """
    payload = (json.dumps(migrated, indent=2) + "\n").encode("utf-8")
    in_memory = "using the migrated profile in memory; the file is unchanged"
    if not os.access(path, os.W_OK):
        return (
            f"{path} is in the old single-profile format but is read-only, so it was not migrated; "
            f"{in_memory}. Make it writable or run `carto auth login` to rewrite it",
            None,
        )
    backup: tuple[Path, bool] | None = None
    try:
        backup = _write_backup(path, raw)

        def unchanged() -> None:
            current = path.stat()
            if (current.st_mtime_ns, current.st_size) != (st.st_mtime_ns, st.st_size):
                # Someone (e.g. `carto auth login`) wrote the file meanwhile: theirs wins.
                raise _Raced()

        atomic_write(path, payload, mode=0o600, before_replace=unchanged)
        new_stat = path.stat()
    except _Raced:
        _drop_new_backup(backup)
        return None, None
    except OSError as exc:
        _drop_new_backup(backup)
        reason = exc.strerror or type(exc).__name__
        return (
            f"could not migrate {path} from the old single-profile format ({reason}); {in_memory}. "
            f"Make {path.parent} writable or run `carto auth login` to rewrite it",
            None,
        )
    logger.info("migrated %s to the multi-profile format; original kept at %s", path, backup[0])
    return f"migrated {path} to the multi-profile format; the original is kept at {backup[0]}", new_stat


class _Raced(Exception):
    """The file changed while it was being migrated."""


def _drop_new_backup(backup: tuple[Path, bool] | None) -> None:
    """A failed migration leaves nothing behind: the temporary file is gone, and so is a backup it made."""
    if backup is not None and backup[1]:
        backup[0].unlink(missing_ok=True)
