"""`carto-mcp doctor`: which credentials the server would use, why, and whether they work.

It resolves the profile exactly as `carto-mcp serve` does (the same flags and environment, read
by `carto_mcp.config`, and the same connection code, `server.connections`), lists every
credentials source it saw in priority order, checks the token's
expiry and the credentials file's permissions, and — unless `--offline` — makes one cheap
authenticated call (the first page of the token list, one row) and reports its latency.

Every problem comes with its fix. Nothing printed contains a token or a secret: the profile
and source reports are already masked, and API errors are worded without secrets.
"""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from carto_mcp import __version__
from carto_mcp.config import (
    ENV_AUDIT_KEY,
    ENV_CACHE_TTL,
    ENV_MAX_CONCURRENCY,
    ENV_POLICY,
    ENV_REVEAL_TTL,
    ENV_SECRETS,
    ENV_SECRETS_DIR,
    Settings,
    add_credential_flags,
    add_secret_flags,
    add_tuning_flags,
    settings_from,
)
from carto_mcp.errors import CartoError

__all__ = ["Check", "DoctorReport", "add_doctor_parser", "diagnose", "run_doctor"]

Status = Literal["ok", "warn", "fail"]

#: Packages whose versions matter when reporting a problem.
PACKAGES = ("carto-mcp", "mcp", "httpx2", "pydantic")
#: A token expiring sooner than this is a warning.
EXPIRY_WARNING_DAYS = 7
#: The connectivity probe gives up after this long (one attempt, no retries).
PROBE_DEADLINE = 10.0

_LOGIN_FIX = (
    "run `carto auth login` (the CARTO CLI) to create ~/.carto_credentials.json, or set CARTO_API_TOKEN, "
    "or pass --token; `carto-mcp serve --sandbox` works with no CARTO account"
)

EPILOG = """\
examples:
  carto-mcp doctor                         # the profile `carto-mcp serve` would use, and one API call
  carto-mcp doctor --offline               # no network: only what is configured
  carto-mcp doctor --profile staging --json
  CARTO_API_TOKEN=... carto-mcp doctor     # check a token before putting it in a client config

Exit status 0 when nothing failed (warnings are listed with their fixes), 1 otherwise.
Tokens and secrets are shown masked (eyJh…x9Qk), never in full.
"""


@dataclass(frozen=True)
class Check:
    """One line of the report; `fix` is empty when there is nothing to do."""

    name: str
    status: Status
    detail: str
    fix: str = ""


@dataclass
class DoctorReport:
    checks: list[Check]
    profile: dict[str, Any] | None
    sources: list[dict[str, Any]]
    versions: dict[str, str | None]
    latency_ms: float | None = None

    @property
    def healthy(self) -> bool:
        return all(check.status != "fail" for check in self.checks)

    def to_json(self) -> dict[str, Any]:
        return {
            "healthy": self.healthy,
            "checks": [asdict(check) for check in self.checks],
            "profile": self.profile,
            "sources": self.sources,
            "versions": self.versions,
            "latency_ms": self.latency_ms,
        }


# --- argparse --------------------------------------------------------------------------------


def add_doctor_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `doctor` to the `carto-mcp` subcommands, with every flag of `serve` that picks credentials."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "doctor",
        help="check versions, which CARTO credentials are used and why, and that they work",
        description="Show which credentials `carto-mcp serve` would use and why (every source, in priority "
        "order), the profile, tenant and base URL, the token's expiry, the credentials file's permissions and, "
        "unless --offline, the latency of one authenticated call. Each problem is listed with its fix. It takes "
        "the same credential flags and environment variables as `serve`, so pass what your client config passes.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--offline", action="store_true", help="make no network call")
    add_credential_flags(parser)
    add_tuning_flags(parser)
    add_secret_flags(parser)
    parser.add_argument("--policy", type=Path, help=f"the policy file serve is given ({ENV_POLICY}): checked and shown")
    return parser


def run_doctor(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run `carto-mcp doctor`: print the report; 0 when no check failed, 1 otherwise."""
    report = diagnose(args, environ)
    if getattr(args, "json", False):
        print(json.dumps(report.to_json(), indent=2, ensure_ascii=False))
    else:
        print(render_text(report))
    return 0 if report.healthy else 1


# --- the checks --------------------------------------------------------------------------------


def diagnose(args: argparse.Namespace, environ: Mapping[str, str]) -> DoctorReport:
    """Every check, in the order a person would read them; the client is opened as `serve` opens it."""
    import anyio

    versions = _versions()
    checks = [_python_check(), _packages_check(versions)]
    try:
        settings = settings_from(args, environ)
    except CartoError as exc:
        name = _SETTING_CHECKS.get(getattr(exc, "field", None) or "", "settings")
        checks.append(Check(name, "fail", exc.message, exc.fix or ""))
        # The rest of the report is made without the settings that could not be used.
        settings = settings_from(
            argparse.Namespace(
                **{**vars(args), "client_secret_file": None, "policy": None, "secrets": None, "secrets_dir": None}
            ),
            {
                k: v
                for k, v in environ.items()
                if k not in (ENV_MAX_CONCURRENCY, ENV_CACHE_TTL, ENV_POLICY, ENV_AUDIT_KEY, *_SECRET_ENV)
            },
        )
        found = (_walk_check(settings), _policy_check(settings), _secrets_check(settings))
        checks += [check for check in found if check.name != name]
    else:
        checks += [_walk_check(settings), _policy_check(settings), _secrets_check(settings)]
    report, latency = anyio.run(_check_connections, settings, environ, bool(getattr(args, "offline", False)))
    checks.extend(report.checks)
    return DoctorReport(
        checks=checks, profile=report.profile, sources=report.sources, versions=versions, latency_ms=latency
    )


#: Which check reports a settings problem, by the flag it names.
_SETTING_CHECKS = {
    "client_secret_file": "client secret",
    "audit_key": "audit key",
    ENV_MAX_CONCURRENCY.lower(): "large accounts",
    ENV_CACHE_TTL.lower(): "large accounts",
    "policy": "policy",
    "secrets": "secrets",
    "secrets_dir": "secrets",
    ENV_SECRETS.lower(): "secrets",
    ENV_REVEAL_TTL.lower(): "secrets",
}
_SECRET_ENV = (ENV_SECRETS, ENV_SECRETS_DIR, ENV_REVEAL_TTL)


def _secrets_check(settings: Settings) -> Check:
    """Where new secrets will go; a warning only when `--secrets inline` sends every one into the conversation."""
    ttl = f"reveal pages answer once, for {settings.reveal_ttl:g} s"
    where = f"files under {settings.secrets_dir}" if settings.secrets_dir else None
    if settings.secrets == "inline":
        return Check("secrets", "warn", "--secrets inline: every new secret goes into the conversation", _SECRETS_FIX)
    if settings.secrets == "file":
        return Check("secrets", "ok", f"file: {where}")
    if settings.secrets == "reveal":
        fallback = where or "no fallback: a create refused (before anything is sent) if the client cannot"
        return Check("secrets", "ok", f"reveal: a one-time page the client opens ({ttl}); else {fallback}")
    if where is None:  # the default: said plainly, with the fix, but not a problem of this set-up
        return Check(
            "secrets",
            "ok",
            f"reveal when the client can open URLs ({ttl}); otherwise inline, in the conversation (to avoid "
            "that, add --secrets-dir DIR)",
        )
    return Check("secrets", "ok", f"reveal when the client can open URLs ({ttl}); otherwise {where}")


_SECRETS_FIX = "add --secrets-dir DIR (or CARTO_MCP_SECRETS_DIR) so a client that cannot open URLs gets a 0600 file"


def _policy_check(settings: Settings) -> Check:
    if settings.policy is None:
        return Check("policy", "ok", f"none: no --policy or {ENV_POLICY}; CARTO's own rules only")
    return Check("policy", "ok", settings.policy.summary())


def _walk_check(settings: Settings) -> Check:
    cache = f"listings reused for {settings.cache_ttl:g} s" if settings.cache_ttl else "listing cache off"
    return Check("large accounts", "ok", f"page walks: up to {settings.max_concurrency} requests at once; {cache}")


async def _check_connections(
    settings: Settings, environ: Mapping[str, str], offline: bool
) -> tuple[DoctorReport, float | None]:
    from carto_mcp.api import RetryPolicy
    from carto_mcp.server.connections import Connections

    connections = Connections(
        settings,
        environ=dict(environ),
        retry=RetryPolicy(attempts=1, deadline=PROBE_DEADLINE),
        per_page=1,
        quiet=True,
    )
    checks: list[Check] = []
    try:
        sources = [asdict(report) for report in connections.resolver.inspect()]
        conn = connections.default()
        profile = conn.profile
        if settings.sandbox:
            checks.append(
                Check(
                    "credentials",
                    "warn",
                    "--sandbox: the embedded sandbox API, no CARTO account; the sources below are not used",
                    "drop --sandbox (and unset CARTO_MCP_SANDBOX) to check your CARTO credentials",
                )
            )
            profile = None
        elif conn.error is not None or profile is None:
            error = conn.error
            checks.append(
                Check(
                    "credentials", "fail", error.message if error else "no profile", (error and error.fix) or _LOGIN_FIX
                )
            )
        else:
            checks.append(Check("credentials", "ok", f"{profile.source}: {profile.reason}"))
            checks.append(_profile_check(profile))
            checks.append(_token_check(profile))
            for warning in profile.warnings:
                if "chmod" not in warning:  # permissions get their own check below
                    checks.append(Check("profile warning", "warn", warning, "see the warning"))
            checks.extend(_extra_profile_checks(connections, settings))
        checks.extend(_permission_checks(connections.resolver.credentials_path, connections.resolver.legacy_path))
        latency: float | None = None
        if offline:
            checks.append(Check("connectivity", "ok", "skipped (--offline)"))
        elif conn.credentials is not None:
            check, latency = await _probe(conn, settings)
            checks.append(check)
        else:
            checks.append(
                Check("connectivity", "warn", "not tried: no usable credentials", "fix the credentials first")
            )
    finally:
        await connections.aclose()
    public = profile.public() if profile is not None else None
    return DoctorReport(checks=checks, profile=public, sources=sources, versions={}), latency


def _extra_profile_checks(connections: Any, settings: Settings) -> list[Check]:
    """Each profile `--profiles` lets tools switch to: can it be used?"""
    out = []
    for name in settings.profiles:
        try:
            conn = connections.get(name)
            _, profile = conn.require()
        except CartoError as exc:
            out.append(
                Check(f"profile {name}", "fail", exc.message, exc.fix or f"run `carto auth login --profile {name}`")
            )
            continue
        out.append(Check(f"profile {name}", "ok", f"allowed by --profiles; base URL {profile.base_url}"))
    return out


def _versions() -> dict[str, str | None]:
    import platform
    from importlib import metadata

    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _python_check() -> Check:
    import platform

    return Check("python", "ok", f"{platform.python_version()} ({sys.executable})")


def _packages_check(versions: Mapping[str, str | None]) -> Check:
    detail = ", ".join(f"{name} {versions.get(name) or 'missing'}" for name in PACKAGES)
    missing = [name for name in PACKAGES if name != "carto-mcp" and not versions.get(name)]
    if missing:
        return Check(
            "packages", "fail", detail, f"reinstall carto-mcp (`pip install -U carto-mcp`); missing: {missing}"
        )
    installed = versions.get("carto-mcp")
    if installed and installed != __version__:
        return Check(
            "packages",
            "warn",
            f"{detail}; the code is {__version__} but the installed metadata says {installed}",
            "reinstall carto-mcp (`pip install -e .` in a checkout) so both agree",
        )
    return Check("packages", "ok", detail)


def _profile_check(profile: Any) -> Check:
    tenant = f"tenant {profile.tenant_id}" if profile.tenant_id else "no tenant_id"
    parts = [f"{profile.name!r} ({tenant})", f"base URL {profile.base_url}"]
    if profile.base_url_origin:
        parts[-1] += f" (from {profile.base_url_origin})"
    if profile.organization_name or profile.user_email:
        who = ", ".join(v for v in (profile.user_email, profile.organization_name) if v)
        parts.append(who)
    return Check("profile", "ok", "; ".join(parts))


def _token_check(profile: Any) -> Check:
    if profile.source == "client_credentials":
        return Check(
            "token",
            "ok",
            f"M2M client {profile.client_id!r}: an access token is exchanged on the first request",
        )
    masked = profile.masked_token or "(none)"
    expiry = profile.token_expiry()
    if expiry is None:
        return Check("token", "ok", f"{masked}; expiry unknown (not a readable JWT)")
    left = expiry - datetime.now(timezone.utc)
    when = expiry.isoformat(timespec="seconds")
    if profile.source in ("credentials_file", "legacy_file"):
        renew = "run `carto auth login` to renew the login"
    else:
        renew = "create a new token (create_token, or Workspace > Developers) and update CARTO_API_TOKEN / --token"
    if left.total_seconds() <= 0:
        return Check("token", "fail", f"{masked} expired at {when}", renew)
    days = left.total_seconds() / 86400
    human = f"in {days:.0f} days" if days >= 2 else f"in {left.total_seconds() / 3600:.1f} hours"
    if days < EXPIRY_WARNING_DAYS:
        return Check("token", "warn", f"{masked} expires at {when} ({human})", renew)
    return Check("token", "ok", f"{masked} expires at {when} ({human})")


def _permission_checks(*paths: Path) -> list[Check]:
    out: list[Check] = []
    for path in paths:
        label = "credentials file" if path.name == ".carto_credentials.json" else "legacy config"
        try:
            st = path.stat()
        except FileNotFoundError:
            if label == "credentials file":
                out.append(Check(label, "ok", f"{path}: not present"))
            continue
        except OSError as exc:
            out.append(Check(label, "warn", f"{path}: cannot stat ({exc.strerror})", f"check {path.parent}"))
            continue
        mode = stat.S_IMODE(st.st_mode)
        if os.name != "posix":
            out.append(Check(label, "ok", f"{path} (permissions are not checked on this OS)"))
        elif mode & 0o077:
            out.append(
                Check(
                    label,
                    "warn",
                    f"{path} mode {mode:03o}: other users can read or change it, and it holds your token",
                    f"chmod 600 {path}",
                )
            )
        else:
            out.append(Check(label, "ok", f"{path} mode {mode:03o}"))
    return out


async def _probe(conn: Any, settings: Settings) -> tuple[Check, float | None]:
    """One authenticated request with the client `serve` would build: the first token-list page, one row."""
    from carto_mcp.api._http import HELP
    from carto_mcp.server.connections import SANDBOX_URL

    api = conn.api
    where = (
        f"the embedded sandbox (db {settings.sandbox_db or 'throwaway'})"
        if api.base_url == SANDBOX_URL
        else api.base_url
    )
    started = time.perf_counter()
    try:
        async with api.walking() as ahead:
            pages = api.token_pages(ahead)
            try:
                rows: list[Any] = await anext(pages, [])  # the first page only: nothing is fetched ahead before it
            finally:
                await pages.aclose()
    except CartoError as exc:
        message = str(exc).replace(HELP, "").strip()
        return Check("connectivity", "fail", f"GET /v3/tokens at {where}: {message}", _api_fix(exc, conn.profile)), None
    latency = round((time.perf_counter() - started) * 1000, 1)
    seen = "a token" if rows else "no tokens yet"
    return Check("connectivity", "ok", f"GET /v3/tokens at {where}: authenticated, {seen}, {latency:.0f} ms"), latency


def _api_fix(exc: Exception, profile: Any) -> str:
    from carto_mcp.api import AuthError, PermissionDenied, TransportError

    login = profile is None or profile.source in ("credentials_file", "legacy_file")
    if isinstance(exc, AuthError):
        if login:
            return "run `carto auth login` to renew the login (add --profile NAME for another profile)"
        return (
            "the token was refused: the Tokens API needs the login token `carto auth login` stores, not an API "
            "Access Token; unset CARTO_API_TOKEN (or drop --token) to use your login, or check the value"
        )
    if isinstance(exc, PermissionDenied):
        return (
            "the credentials work but may not manage tokens: use a user login (`carto auth login`) rather than an "
            "API Access Token"
        )
    if isinstance(exc, TransportError):
        return (
            "check the network, proxy and base URL (--base-url, CARTO_MCP_BASE_URL, the profile's tenant_id); "
            "`carto-mcp doctor --offline` checks the rest"
        )
    return "retry in a moment; if it persists, run with `carto-mcp serve --debug` to see the request"


# --- rendering -----------------------------------------------------------------------------------

_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}


def render_text(report: DoctorReport) -> str:
    """Aligned `check: status — detail` lines, the sources, then each problem with its fix."""
    width = max(len(check.name) for check in report.checks) + 1
    lines = ["carto-mcp doctor"]
    for check in report.checks:
        lines.append(f"  {check.name + ':':<{width}} {_MARK[check.status]:<4} — {check.detail}")
    lines.append("")
    lines.append("credential sources, highest priority first:")
    src_width = max((len(s["source"]) for s in report.sources), default=0)
    for n, source in enumerate(report.sources, 1):
        state = "USED" if source["used"] else ("seen" if source["present"] else "—")
        lines.append(f"  {n}. {source['source']:<{src_width}}  {state:<4}  {source['detail']}")
    problems = [check for check in report.checks if check.status != "ok"]
    lines.append("")
    if not problems:
        lines.append("healthy: no problems found.")
    else:
        failed = sum(1 for check in problems if check.status == "fail")
        lines.append(
            ("healthy, with warnings:" if failed == 0 else f"NOT healthy: {failed} check(s) failed.") + " What to do:"
        )
        for check in problems:
            lines.append(f"  - {check.name} ({_MARK[check.status]}): {check.fix or check.detail}")
    return "\n".join(lines)
