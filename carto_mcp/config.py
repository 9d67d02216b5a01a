"""The settings of one run, from flags and environment, in one place.

`serve`, `call`, `doctor` and `install` define their credential and safety flags here and
turn them into one frozen `Settings` the same way: a flag wins over its environment
variable, and both are read nowhere else. A desktop host can only pass environment
variables, so every option that matters there has one.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, TypeVar, get_args

from carto_mcp.errors import InputError
from carto_mcp.profiles import ProfileInputs

if TYPE_CHECKING:
    from carto_mcp.policy_file import ActivePolicy

__all__ = [
    "ENV_ALLOWED_HOSTS",
    "ENV_AUDIT_KEY",
    "ENV_AUDIT_LOG",
    "ENV_AUTH_TOKEN",
    "ENV_AUTH_URL",
    "ENV_CACHE_TTL",
    "ENV_CONFIRM_KEY",
    "ENV_EXCLUDE_TOOLS",
    "ENV_MAX_CONCURRENCY",
    "ENV_POLICY",
    "ENV_PROFILES",
    "ENV_READ_ONLY",
    "ENV_REVEAL_TTL",
    "ENV_SANDBOX",
    "ENV_SANDBOX_DB",
    "ENV_SECRETS",
    "ENV_SECRETS_DIR",
    "ENV_TOOLS",
    "ENV_YES",
    "MAX_MESSAGE_BYTES",
    "SecretMode",
    "Settings",
    "add_credential_flags",
    "add_safety_flags",
    "add_secret_flags",
    "add_tuning_flags",
    "audit_key",
    "check_sandbox_db",
    "concurrency",
    "port_number",
    "read_secret_file",
    "seconds",
    "settings_from",
    "split_csv",
    "truthy",
]

T = TypeVar("T")

#: Every transport refuses a message larger than this (stdio: a JSON-RPC error; HTTP: 413).
MAX_MESSAGE_BYTES = 1024 * 1024

ENV_READ_ONLY = "CARTO_MCP_READ_ONLY"
ENV_YES = "CARTO_MCP_YES"
ENV_SANDBOX = "CARTO_MCP_SANDBOX"
ENV_SANDBOX_DB = "CARTO_MCP_SANDBOX_DB"
ENV_TOOLS = "CARTO_MCP_TOOLS"
ENV_EXCLUDE_TOOLS = "CARTO_MCP_EXCLUDE_TOOLS"
ENV_AUDIT_LOG = "CARTO_MCP_AUDIT_LOG"
ENV_AUDIT_KEY = "CARTO_MCP_AUDIT_KEY"
ENV_CONFIRM_KEY = "CARTO_MCP_CONFIRM_KEY"
ENV_PROFILES = "CARTO_MCP_PROFILES"
ENV_AUTH_URL = "CARTO_MCP_AUTH_URL"
ENV_AUTH_TOKEN = "CARTO_MCP_AUTH_TOKEN"
ENV_ALLOWED_HOSTS = "CARTO_MCP_ALLOWED_HOSTS"
ENV_MAX_CONCURRENCY = "CARTO_MCP_MAX_CONCURRENCY"
ENV_POLICY = "CARTO_MCP_POLICY"
ENV_CACHE_TTL = "CARTO_MCP_CACHE_TTL"
ENV_SECRETS = "CARTO_MCP_SECRETS"
ENV_SECRETS_DIR = "CARTO_MCP_SECRETS_DIR"
ENV_REVEAL_TTL = "CARTO_MCP_REVEAL_TTL"

#: Where a new secret goes: a one-time page (URL elicitation), a 0600 file, or the tool result.
SecretMode = Literal["reveal", "file", "inline"]
SECRET_MODES: tuple[SecretMode, ...] = get_args(SecretMode)
#: Seconds a reveal page answers before its secret is wiped, unless --reveal-ttl says otherwise.
DEFAULT_REVEAL_TTL = 600.0

#: Page requests in flight at once during a walk, unless --max-concurrency says otherwise.
DEFAULT_MAX_CONCURRENCY = 8
#: The most --max-concurrency accepts: beyond it a walk only trades CARTO's rate limit for nothing.
MAX_CONCURRENCY_LIMIT = 32
#: Seconds a full listing is reused for changes made elsewhere (this server's own changes clear it at once).
DEFAULT_CACHE_TTL = 30.0
#: The shortest audit key accepted: a shorter one could be guessed from the lines it seals.
MIN_AUDIT_KEY_LENGTH = 16


@dataclass(frozen=True)
class Settings:
    """Everything that shapes one server (or one `doctor` check), decided before it starts."""

    profile: ProfileInputs = field(default_factory=ProfileInputs)
    sandbox: bool = False
    #: The sandbox's sqlite file; None is a throwaway in-memory sandbox.
    sandbox_db: Path | None = None
    read_only: bool = False
    tools: tuple[str, ...] = ()
    exclude_tools: tuple[str, ...] = ()
    yes: bool = False
    audit_log: Path | None = None
    #: HMAC key that seals the audit log's lines (never shown: not even in this object's repr).
    audit_key: bytes | None = field(default=None, repr=False)
    confirm_key: bytes | None = None
    confirm_ttl: int = 300
    stateless: bool = False
    debug: bool = False
    credentials_path: Path | None = None
    legacy_path: Path | None = None
    auth_url: str | None = None
    #: Extra credentials-file profiles tools may switch to with their `profile` argument.
    profiles: tuple[str, ...] = ()
    #: Page requests in flight at once during a walk of a large account.
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    #: Seconds a full listing is reused (0: never reused).
    cache_ttl: float = DEFAULT_CACHE_TTL
    #: The organization's rules for what may be created (--policy), checked before any request.
    policy: ActivePolicy | None = None
    #: Where new secrets go (--secrets); None: reveal when the client can open URLs, else file, else inline.
    secrets: SecretMode | None = None
    #: The directory `file` delivery writes one 0600 `.env` file per secret into (--secrets-dir).
    secrets_dir: Path | None = None
    #: Seconds a reveal page answers once before its secret is wiped.
    reveal_ttl: float = DEFAULT_REVEAL_TTL


def truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def split_csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def add_credential_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that decide which CARTO credentials (or which sandbox) a command uses."""
    g = parser.add_argument_group("credentials (same as the CARTO CLI)")
    g.add_argument(
        "--profile", help="profile in ~/.carto_credentials.json (default: CARTO_PROFILE, then current_profile)"
    )
    g.add_argument("--token", help="override the API token for this run (prefer CARTO_API_TOKEN: flags show in ps)")
    g.add_argument("--base-url", help="override the API base URL (default https://{tenant_id}.api.carto.com)")
    g.add_argument(
        "--profiles",
        help=f"comma list of more credentials-file profiles tools may switch to with their `profile` argument "
        f"(env {ENV_PROFILES}); default: only the resolved profile",
    )
    g.add_argument(
        "--client-id",
        help="M2M client id for headless auth (or CARTO_M2M_CLIENT_ID, the CLI's name; or CARTO_CLIENT_ID)",
    )
    g.add_argument(
        "--client-secret-file",
        type=Path,
        help="file holding the M2M client secret (or CARTO_M2M_CLIENT_SECRET; or CARTO_CLIENT_SECRET)",
    )
    g.add_argument(
        "--auth-url",
        help=f"M2M client-credentials token endpoint (env {ENV_AUTH_URL}; default https://auth.carto.com/oauth/token)",
    )
    g.add_argument(
        "--sandbox", action="store_true", help=f"use the embedded sandbox API instead of CARTO (env {ENV_SANDBOX}=1)"
    )
    g.add_argument(
        "--sandbox-db", type=Path, help=f"sandbox sqlite file (default: under the user data dir; env {ENV_SANDBOX_DB})"
    )
    g.add_argument("--throwaway", action="store_true", help="with --sandbox: an in-memory sandbox that is gone on exit")
    g.add_argument("--debug", action="store_true", help="log CARTO requests to stderr (tokens masked)")


def add_safety_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that decide which tools exist and what needs confirmation."""
    g = parser.add_argument_group("safety policy (each also settable by environment variable)")
    g.add_argument(
        "--read-only",
        action="store_true",
        help="register only the five read tools: list_credentials, get_credential, audit_credentials, whoami, "
        "list_profiles "
        f"({ENV_READ_ONLY}=1)",
    )
    g.add_argument("--tools", help=f"comma list of tool names or globs to register ({ENV_TOOLS})")
    g.add_argument("--exclude-tools", help=f"comma list of tool names or globs to leave out ({ENV_EXCLUDE_TOOLS})")
    g.add_argument(
        "--yes",
        action="store_true",
        help=f"skip confirmation of destructive calls, for trusted automation ({ENV_YES}=1)",
    )
    g.add_argument(
        "--audit-log",
        type=Path,
        help=f"append one hash-chained JSON line per mutating call to this file ({ENV_AUDIT_LOG}); "
        "check it with `carto-mcp audit-log verify`",
    )
    g.add_argument(
        "--audit-key-file",
        type=Path,
        help=f"file holding the HMAC key that seals the audit log's lines (or {ENV_AUDIT_KEY}); without a key "
        "the lines are chained with plain SHA-256",
    )
    g.add_argument(
        "--policy",
        type=Path,
        help=f"TOML file of rules for what may be created (APIs, connections, grant kinds, expiry, referers, "
        f"client URLs, hourly limits), enforced before any request reaches CARTO ({ENV_POLICY}); "
        "`carto-mcp policy check FILE` validates one",
    )
    add_secret_flags(parser)


def add_secret_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that decide where a new token value or M2M client secret goes."""
    g = parser.add_argument_group("where new secrets go (token values, M2M client secrets)")
    g.add_argument(
        "--secrets",
        choices=SECRET_MODES,
        help=f"reveal: a one-time page on 127.0.0.1 the client opens for the person (URL elicitation); file: a "
        f"0600 .env file under --secrets-dir; inline: in the tool result, so in the conversation (env "
        f"{ENV_SECRETS}). Default: reveal when the client can open URLs, else file when --secrets-dir is set, "
        "else inline with a warning. reveal never silently becomes inline",
    )
    g.add_argument(
        "--secrets-dir",
        type=Path,
        help=f"directory for file delivery: one 0600 .env file per new secret, named for the credential "
        f"(env {ENV_SECRETS_DIR}); created 0700 if missing",
    )
    g.add_argument(
        "--reveal-ttl",
        type=reveal_seconds,
        help=f"seconds a reveal page answers (once) before its secret is wiped (env {ENV_REVEAL_TTL}; default "
        f"{DEFAULT_REVEAL_TTL:g})",
    )


def add_tuning_flags(parser: argparse.ArgumentParser) -> None:
    """The flags that decide how a large account is read."""
    g = parser.add_argument_group("large accounts")
    g.add_argument(
        "--max-concurrency",
        type=concurrency,
        help=f"page requests in flight at once when walking a long list, 1 to {MAX_CONCURRENCY_LIMIT} (env "
        f"{ENV_MAX_CONCURRENCY}; default {DEFAULT_MAX_CONCURRENCY}); halved for the rest of a walk on a 429",
    )
    g.add_argument(
        "--cache-ttl",
        type=seconds,
        help=f"seconds a full listing is reused by list, id lookups and rotation (env {ENV_CACHE_TTL}; default "
        f"{DEFAULT_CACHE_TTL:g}; 0 turns it off); this server's own changes clear it at once, changes made "
        "elsewhere show after at most this long, or at once with list_credentials(fresh=true)",
    )


def concurrency(text: str) -> int:
    """argparse type of --max-concurrency."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if not 1 <= value <= MAX_CONCURRENCY_LIMIT:
        raise argparse.ArgumentTypeError(f"{value} is not between 1 and {MAX_CONCURRENCY_LIMIT}")
    return value


def seconds(text: str) -> float:
    """argparse type of --cache-ttl: seconds, 0 or more."""
    return _seconds_between(text, 0, 86400)


def reveal_seconds(text: str) -> float:
    """argparse type of --reveal-ttl: 30 seconds to a day."""
    return _seconds_between(text, 30, 86400)


def _seconds_between(text: str, low: float, high: float) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{text} is not between {low:g} and {high:g} seconds")
    return value


def secret_mode(text: str) -> SecretMode:
    """CARTO_MCP_SECRETS, read as --secrets is."""
    for mode in SECRET_MODES:
        if text.strip().lower() == mode:
            return mode
    raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(SECRET_MODES)}")


def secrets_dir(path: Path, flag: str) -> Path:
    """The secrets dir, made (0700) if missing; a clear error when it cannot be one."""
    path = path.expanduser()
    if not path.is_absolute():
        path = path.absolute()
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(
            f"{flag} {path} is a file, not a directory", field="secrets_dir", fix="name a directory"
        ) from None
    except OSError as exc:
        raise InputError(
            f"{flag} {path} cannot be created ({exc.strerror or type(exc).__name__})",
            field="secrets_dir",
            fix="create it yourself (mode 0700) or name another directory",
        ) from None
    if not path.is_dir():
        raise InputError(f"{flag} {path} is not a directory", field="secrets_dir", fix="name a directory")
    return path


def _from_env(environ: Mapping[str, str], name: str, parse: Callable[[str], T]) -> T | None:
    """A tuning variable, parsed as its flag would be; a bad value is an error that names the variable."""
    raw = environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return parse(raw)
    except argparse.ArgumentTypeError as exc:
        raise InputError(f"{name}: {exc}", field=name.lower(), fix=f"set {name} to a valid value or unset it") from None


def read_secret_file(path: Path, flag: str) -> str:
    """The secret a `--...-file` flag points at, stripped; a clear error when it cannot be read."""
    field = flag.lstrip("-").replace("-", "_")
    fix = f"point {flag} at a readable file holding only the secret"
    try:
        value = path.expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InputError(
            f"{flag}: cannot read {path} ({exc.strerror or type(exc).__name__})", field=field, fix=fix
        ) from None
    except UnicodeDecodeError:
        raise InputError(f"{flag}: {path} is not UTF-8 text", field=field, fix=fix) from None
    if not value:
        raise InputError(f"{flag}: {path} is empty", field=field, fix=fix)
    return value


def audit_key(environ: Mapping[str, str], key_file: Path | None, flag: str) -> bytes | None:
    """The audit HMAC key from `key_file` (read as `flag` names it) or else `CARTO_MCP_AUDIT_KEY`; None if neither.

    Surrounding whitespace is dropped either way, so the same key given as a file or a variable
    is the same key. The key itself never appears in a message: only its length does.
    """
    if key_file is not None:
        text, source = read_secret_file(key_file, flag), f"{flag} {key_file}"
    else:
        text, source = environ.get(ENV_AUDIT_KEY, "").strip(), ENV_AUDIT_KEY
    if not text:
        return None
    if len(text) < MIN_AUDIT_KEY_LENGTH:
        raise InputError(
            f"{source}: the audit key is {len(text)} characters long; it must have at least {MIN_AUDIT_KEY_LENGTH}",
            field="audit_key",
            fix="make one with: python -c 'import secrets; print(secrets.token_hex(32))'",
        )
    return text.encode("utf-8")


#: The first bytes of every sqlite database file.
_SQLITE_HEADER = b"SQLite format 3\x00"


def check_sandbox_db(path: Path) -> Path:
    """A sandbox database the user named: a sqlite file, or a new file in a directory that exists."""
    path = path.expanduser()
    where = f"--sandbox-db {path}"
    if path.is_dir():
        raise InputError(f"{where} is a directory", field="sandbox_db", fix="name a file, such as sandbox.sqlite3")
    if not path.parent.is_dir():
        raise InputError(
            f"{where}: the directory {path.parent} does not exist", field="sandbox_db", fix="create it first"
        )
    try:
        with path.open("rb") as handle:
            head = handle.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return path
    except OSError as exc:
        raise InputError(f"{where} cannot be read ({exc.strerror or type(exc).__name__})", field="sandbox_db") from None
    if head and head != _SQLITE_HEADER:
        raise InputError(
            f"{where} is not a sqlite database", field="sandbox_db", fix="name a new file, or one the sandbox made"
        )
    return path


def port_number(text: str) -> int:
    """argparse type of every --port: a TCP port, said plainly when it is not one."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"{port} is not a TCP port (1 to 65535)")
    return port


def _path(value: str | None) -> Path | None:
    return Path(value).expanduser() if value else None


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    """Settings from parsed flags (a flag a command does not define counts as not given) and `environ`."""

    def flag(name: str) -> object:
        return getattr(args, name, None)

    secret_file = flag("client_secret_file")
    secret = read_secret_file(Path(str(secret_file)), "--client-secret-file") if secret_file else None
    sandbox = bool(flag("sandbox")) or truthy(environ.get(ENV_SANDBOX))
    throwaway = bool(flag("throwaway"))
    if throwaway and not sandbox:
        raise InputError("--throwaway only applies with --sandbox", field="throwaway", fix="add --sandbox or drop it")
    given_db = _as_path(flag("sandbox_db")) or _path(environ.get(ENV_SANDBOX_DB))
    sandbox_db = check_sandbox_db(given_db) if given_db is not None else None
    if sandbox and not throwaway and sandbox_db is None:
        from carto_mcp.sandbox.store import default_db_path  # only a sandbox run needs the sandbox

        sandbox_db = default_db_path(environ)
    key = environ.get(ENV_CONFIRM_KEY)
    audit_log = _as_path(flag("audit_log")) or _path(environ.get(ENV_AUDIT_LOG))
    key_file = _as_path(flag("audit_key_file"))
    if key_file is not None and audit_log is None:
        raise InputError(
            "--audit-key-file only applies with an audit log",
            field="audit_key_file",
            fix=f"add --audit-log PATH (or {ENV_AUDIT_LOG}), or drop --audit-key-file",
        )
    secrets = _secret_settings(args, environ)
    return Settings(
        policy=_policy(_as_path(flag("policy")), environ.get(ENV_POLICY)),
        profile=ProfileInputs(
            token=_str(flag("token")),
            profile=_str(flag("profile")),
            base_url=_str(flag("base_url")),
            client_id=_str(flag("client_id")),
            client_secret=secret,
        ),
        sandbox=sandbox,
        sandbox_db=None if throwaway else sandbox_db,
        read_only=bool(flag("read_only")) or truthy(environ.get(ENV_READ_ONLY)),
        tools=split_csv(_str(flag("tools")) or environ.get(ENV_TOOLS)),
        exclude_tools=split_csv(_str(flag("exclude_tools")) or environ.get(ENV_EXCLUDE_TOOLS)),
        yes=bool(flag("yes")) or truthy(environ.get(ENV_YES)),
        audit_log=audit_log,
        audit_key=audit_key(environ, key_file, "--audit-key-file") if audit_log is not None else None,
        confirm_key=key.encode() if key else None,
        profiles=split_csv(_str(flag("profiles")) or environ.get(ENV_PROFILES)),
        auth_url=_str(flag("auth_url")) or environ.get(ENV_AUTH_URL) or None,
        stateless=bool(flag("stateless")),
        debug=bool(flag("debug")),
        max_concurrency=_int(flag("max_concurrency"))
        or _from_env(environ, ENV_MAX_CONCURRENCY, concurrency)
        or DEFAULT_MAX_CONCURRENCY,
        cache_ttl=_first_number(flag("cache_ttl"), _from_env(environ, ENV_CACHE_TTL, seconds), DEFAULT_CACHE_TTL),
        secrets=secrets.mode,
        secrets_dir=secrets.directory,
        reveal_ttl=secrets.reveal_ttl,
    )


@dataclass(frozen=True)
class _Secrets:
    mode: SecretMode | None
    directory: Path | None
    reveal_ttl: float


def _secret_settings(args: argparse.Namespace, environ: Mapping[str, str]) -> _Secrets:
    """--secrets, --secrets-dir and --reveal-ttl: `file` needs a dir, and a dir is made now, not at the first create."""
    flagged = getattr(args, "secrets", None)
    mode = secret_mode(flagged) if isinstance(flagged, str) else _from_env(environ, ENV_SECRETS, secret_mode)
    given = _as_path(getattr(args, "secrets_dir", None))
    flag_name = "--secrets-dir" if given is not None else ENV_SECRETS_DIR
    given = given or _path(environ.get(ENV_SECRETS_DIR))
    if mode == "file" and given is None:
        raise InputError(
            "--secrets file needs a directory to write to",
            field="secrets_dir",
            fix=f"add --secrets-dir DIR (or {ENV_SECRETS_DIR}), or choose --secrets reveal or inline",
        )
    ttl = _first_number(
        getattr(args, "reveal_ttl", None), _from_env(environ, ENV_REVEAL_TTL, reveal_seconds), DEFAULT_REVEAL_TTL
    )
    return _Secrets(mode, secrets_dir(given, flag_name) if given is not None else None, ttl)


def _policy(flag: Path | None, env: str | None) -> ActivePolicy | None:
    """The policy a flag or the environment names, read and checked now: a bad file stops the run."""
    if flag is None and not (env or "").strip():
        return None
    from carto_mcp.policy_file import load_policy  # only a run with a policy reads TOML

    return load_policy(flag, "--policy") if flag is not None else load_policy(Path(str(env).strip()), ENV_POLICY)


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first_number(*values: object) -> float:
    """The first given number (0 counts as given), else 0."""
    return next((float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)), 0.0)


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _as_path(value: object) -> Path | None:
    return value if isinstance(value, Path) else None
