"""`carto-mcp install CLIENT`: add the server to an MCP client's config file, safely.

One entry is written or updated under the client's servers key; every other server and key
is kept. A second run with the same options changes nothing. The previous file is kept as
`<file>.bak` and the new one replaces it atomically, so a crash never leaves half a config.
A config that does not parse is refused and left exactly as it was. No token is written
unless `--embed-token` asks for it: by default the server finds the `carto auth login`
profile on its own, as the CARTO CLI does.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import stat
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carto_mcp.config import ENV_AUTH_URL
from carto_mcp.errors import InputError, InstallError
from carto_mcp.files import atomic_write, home_dir, json_type, read_json_object
from carto_mcp.masking import ELLIPSIS, mask, strip_bearer
from carto_mcp.profiles import (
    ENV_API_TOKEN,
    ENV_BASE_URL,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_M2M_CLIENT_ID,
    ENV_M2M_CLIENT_SECRET,
    ENV_PROFILE,
)

__all__ = [
    "CLIENTS",
    "ClientSpec",
    "InstallError",
    "Launcher",
    "add_install_parser",
    "build_entry",
    "default_config_path",
    "default_launcher",
    "run_install",
]

DEFAULT_NAME = "carto"
#: The console script `pip install` creates (`carto-mcp.exe` on Windows).
SCRIPT_NAME = "carto-mcp"


@dataclass(frozen=True)
class ClientSpec:
    """How one MCP client stores its servers."""

    label: str
    #: The top-level key holding the servers object.
    servers_key: str
    #: Whether entries carry `"type": "stdio"` (VS Code requires it; Claude Code writes it).
    stdio_type: bool
    #: "project" files live in the current directory and are usually committed.
    scope: str
    #: What to do after the file changed.
    next_step: str
    #: Variables written as `"NAME": "$NAME"` when set: the client drops them from the server's
    #: environment but expands such references in the entry's `env` (Gemini CLI).
    env_references: tuple[str, ...] = ()


#: Gemini CLI removes variables whose names look secret (TOKEN, SECRET, KEY, AUTH, …) and values that
#: look like a JWT from an MCP server's environment, so exported credentials never reach the server.
#: It expands `$NAME` in the entry's `env` from its own environment when it loads settings; the
#: non-secret names are referenced too, so one shell's set-up reaches the server whole.
GEMINI_REFERENCES = (
    ENV_API_TOKEN,
    ENV_CLIENT_ID,
    ENV_CLIENT_SECRET,
    ENV_M2M_CLIENT_ID,
    ENV_M2M_CLIENT_SECRET,
    ENV_AUTH_URL,
    ENV_PROFILE,
    ENV_BASE_URL,
)


CLIENTS: dict[str, ClientSpec] = {
    "claude-desktop": ClientSpec(
        "Claude Desktop",
        "mcpServers",
        False,
        "user",
        "Quit Claude Desktop completely (not just its window) and open it again; the CARTO tools then appear "
        "under the tools menu.",
    ),
    "claude-code": ClientSpec(
        "Claude Code",
        "mcpServers",
        True,
        "project",
        "Start `claude` in this directory and approve the project server when asked; `/mcp` shows its status.",
    ),
    "cursor": ClientSpec(
        "Cursor",
        "mcpServers",
        False,
        "user",
        "Restart Cursor (or toggle the server in Settings > MCP) so it starts the server.",
    ),
    "vscode": ClientSpec(
        "VS Code",
        "servers",
        True,
        "project",
        "Reload the VS Code window, then start the server from `MCP: List Servers` and use it in agent mode.",
    ),
    "gemini": ClientSpec(
        "Gemini CLI",
        "mcpServers",
        False,
        "user",
        "Gemini CLI starts MCP servers only in a folder you trust (elsewhere `gemini mcp list` shows "
        "`○ … Disabled`): start `gemini` in your project folder and choose `1. Trust folder` when it asks "
        '"Do you trust the files in this folder?" (later: `/permissions trust` inside gemini). '
        "Then `/mcp` lists the server and its tools.",
        GEMINI_REFERENCES,
    ),
}

EPILOG = """\
where each client keeps its config (use --config to pick another file):
  claude-desktop  macOS   ~/Library/Application Support/Claude/claude_desktop_config.json
                  Windows %APPDATA%\\Claude\\claude_desktop_config.json
                  Linux   ~/.config/Claude/claude_desktop_config.json
  claude-code     ./.mcp.json (project scope, "mcpServers")
  cursor          ~/.cursor/mcp.json
  vscode          ./.vscode/mcp.json (workspace, "servers")
  gemini          ~/.gemini/settings.json

examples:
  carto-mcp install claude-desktop --dry-run        # show the change, write nothing
  carto-mcp install claude-desktop --read-only      # only the five read tools
  carto-mcp install cursor --profile staging
  carto-mcp install vscode --sandbox                # try it with no CARTO account
  carto-mcp install claude-code --command carto-mcp # a command that works on every machine

Other servers and settings in the file are kept; a second run changes nothing. The previous
file is saved as <file>.bak. No token is written unless --embed-token is given: the server
reads your `carto auth login` profile (~/.carto_credentials.json) by itself.
"""

_SECRET_KEY = re.compile(r"token|secret|password|passwd|api[_-]?key|auth|credential|bearer", re.IGNORECASE)
_JSON_STRING_PAIR = re.compile(r'^(?P<head>\s*"(?P<key>(?:[^"\\]|\\.)*)"\s*:\s*)"(?P<value>(?:[^"\\]|\\.)*)"')


# --- argparse --------------------------------------------------------------------------------


def add_install_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `install CLIENT` to the `carto-mcp` subcommands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "install",
        help="add carto-mcp to an MCP client's config (Claude Desktop, Claude Code, Cursor, VS Code, Gemini CLI)",
        description="Write or update the carto-mcp server entry in an MCP client's config file. Every other "
        "server and setting is kept, the old file is saved as <file>.bak, and a second run changes nothing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("client", choices=sorted(CLIENTS), help="the MCP client to configure")
    parser.add_argument("--config", type=Path, help="config file to edit instead of the client's usual one")
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"server key in the config (default {DEFAULT_NAME!r})")
    parser.add_argument("--profile", help="CARTO profile the server uses (`serve --profile NAME`)")
    parser.add_argument(
        "--read-only",
        action="store_true",
        help="register only the five read tools: list_credentials, get_credential, audit_credentials, whoami, "
        "list_profiles "
        "(`serve --read-only`)",
    )
    parser.add_argument(
        "--sandbox", action="store_true", help="run on the embedded sandbox API, no CARTO account (`serve --sandbox`)"
    )
    parser.add_argument(
        "--command",
        dest="server_command",
        metavar="COMMAND",
        help="executable the client launches (default: this installation's own `carto-mcp` script by its "
        "absolute path, or this Python with `-m carto_mcp`)",
    )
    parser.add_argument(
        "--embed-token",
        action="store_true",
        help=f"copy {ENV_API_TOKEN} from your environment into the entry's env (stored in plain text; "
        "not recommended: the default uses your `carto auth login` profile)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the change as a unified diff and write nothing")
    return parser


# --- paths and the entry ---------------------------------------------------------------------


def default_config_path(
    client: str, environ: Mapping[str, str], *, platform: str | None = None, cwd: Path | None = None
) -> Path:
    """The file `client` reads its MCP servers from, for this OS, home directory and working directory."""
    platform = sys.platform if platform is None else platform
    home = home_dir(environ)
    cwd = Path.cwd() if cwd is None else cwd
    if client == "claude-desktop":
        if platform == "darwin":
            base = home / "Library" / "Application Support"
        elif platform.startswith(("win", "cygwin")):
            base = Path(environ["APPDATA"]) if environ.get("APPDATA") else home / "AppData" / "Roaming"
        else:
            base = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else home / ".config"
        return base / "Claude" / "claude_desktop_config.json"
    if client == "claude-code":
        return cwd / ".mcp.json"
    if client == "cursor":
        return home / ".cursor" / "mcp.json"
    if client == "vscode":
        return cwd / ".vscode" / "mcp.json"
    if client == "gemini":
        return home / ".gemini" / "settings.json"
    raise InputError(f"unknown client {client!r}; choose one of {', '.join(sorted(CLIENTS))}", field="client")


@dataclass(frozen=True)
class Launcher:
    """The command a client starts, the arguments before `serve`, and why it is that one (for the output)."""

    command: str
    #: `("-m", "carto_mcp")` when the interpreter runs the package rather than the script.
    prefix: tuple[str, ...] = ()
    how: str = ""


def default_launcher(argv0: str, executable: str) -> Launcher:
    """A command that starts this very installation, found without PATH.

    Hosts do not see the shell's PATH, and `install` may run from a venv that is not activated
    or as `python -m carto_mcp`; a bare `carto-mcp` would then start nothing (or another copy).
    So: the running `carto-mcp` script when `argv0` is it, else this interpreter with `-m`.
    """
    script = _running_script(argv0)
    if script is not None:
        return Launcher(str(script), (), "this installation's carto-mcp script")
    if executable and Path(executable).is_file():
        # Not resolved: a venv's python is a symlink, and following it would leave the venv.
        return Launcher(
            str(Path(executable).absolute()),
            ("-m", "carto_mcp"),
            "this installation's Python with `-m carto_mcp` (install was not run as the carto-mcp script)",
        )
    raise InstallError(
        "cannot tell which command starts this installation: it was not run as the carto-mcp script and the "
        "Python interpreter's path is unknown",
        fix="pass --command with the absolute path of carto-mcp",
    )


def _running_script(argv0: str) -> Path | None:
    """The `carto-mcp` script this process was started as (resolved), or None when it was not."""
    if not argv0:
        return None
    path = Path(argv0)
    if path.name.lower().removesuffix(".exe") != SCRIPT_NAME:
        return None
    candidates = [path] if path.suffix else [path, path.with_name(path.name + ".exe")]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.resolve()
    return None


def _check_given_command(command: str, environ: Mapping[str, str]) -> str | None:
    """A note when a `--command` cannot be found here; it may still exist where the file is used."""
    if os.path.isabs(command) or os.sep in command or (os.altsep and os.altsep in command):
        if not Path(command).is_file():
            return f"{command} does not exist on this machine"
        return None
    if shutil.which(command, path=environ.get("PATH") or os.defpath) is None:
        return f"{command!r} is not on this PATH; the client must find it on its own PATH"
    return None


def build_entry(
    client: str,
    *,
    command: str,
    prefix: Sequence[str] = (),
    profile: str | None = None,
    read_only: bool = False,
    sandbox: bool = False,
    env: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The server entry this installer writes for `client` (before merging with an existing one)."""
    spec = CLIENTS[client]
    args = [*prefix, "serve"]
    if sandbox:
        args.append("--sandbox")
    if profile:
        args += ["--profile", profile]
    if read_only:
        args.append("--read-only")
    entry: dict[str, Any] = {}
    if spec.stdio_type:
        entry["type"] = "stdio"
    entry["command"] = command
    entry["args"] = args
    if env:
        entry["env"] = dict(env)
    return entry


def _merge_entry(existing: Any, new: dict[str, Any]) -> dict[str, Any]:
    """`new` over an existing stdio entry, keeping the keys and env vars the user added there."""
    if not isinstance(existing, dict) or "command" not in existing:
        return new  # absent, or a remote (url) entry: replaced outright
    merged = {key: value for key, value in existing.items() if key != "env"}
    merged.update({key: value for key, value in new.items() if key != "env"})
    env: dict[str, Any] = {}
    if isinstance(existing.get("env"), dict):
        env.update(existing["env"])
    env.update(new.get("env", {}))
    if env or "env" in existing:
        merged["env"] = env
    return merged


# --- reading and writing -------------------------------------------------------------------------


@dataclass
class _Loaded:
    raw: bytes | None  # None: the file does not exist
    data: dict[str, Any]
    mode: int | None
    indent: str | int


def _load(path: Path, spec: ClientSpec) -> _Loaded:
    fix = (
        "it was left untouched. Fix the file (comments and trailing commas are not JSON), or add the "
        f"{spec.servers_key!r} entry by hand as shown in `manifests/` of carto-mcp"
    )
    loaded = read_json_object(path, what=f"{spec.label} config", fix=fix, error=InstallError, empty_ok=True)
    if loaded is None:
        return _Loaded(None, {}, None, 2)
    mode = stat.S_IMODE(loaded.stat.st_mode)
    servers = loaded.data.get(spec.servers_key)
    if servers is not None and not isinstance(servers, dict):
        text = loaded.raw.decode("utf-8-sig")
        line, col = _key_position(text, spec.servers_key)
        where = f" (line {line}, column {col})" if line else ""
        raise InstallError(
            f"{spec.servers_key!r} in {path}{where} must be a JSON object mapping server names to entries, not "
            f"{json_type(servers)}; it was left untouched",
            fix="fix it, then run this command again",
        )
    return _Loaded(loaded.raw, loaded.data, mode, _detect_indent(loaded.raw.decode("utf-8-sig")))


def _key_position(text: str, key: str) -> tuple[int | None, int | None]:
    found = re.search(r'"' + re.escape(key) + r'"\s*:', text)
    if not found:
        return None, None
    line = text.count("\n", 0, found.start()) + 1
    col = found.start() - (text.rfind("\n", 0, found.start()) + 1) + 1
    return line, col


def _detect_indent(text: str) -> str | int:
    """Keep the file's own indentation (tabs or N spaces) so the diff shows only what changed."""
    for line in text.splitlines()[1:]:
        stripped = line.lstrip(" \t")
        if stripped and stripped != line:
            lead = line[: len(line) - len(stripped)]
            return "\t" if lead.startswith("\t") else len(lead)
    return 2


def _render(data: Mapping[str, Any], indent: str | int) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


def _redact(line: str, secrets: tuple[str, ...]) -> str:
    """A diff line with our token and any secret-looking JSON string value masked."""
    for secret in secrets:
        if secret:
            line = line.replace(secret, mask(secret))
    prefix, body = line[:1], line[1:]
    found = _JSON_STRING_PAIR.match(body)
    value = found["value"] if found else ""
    if found and _SECRET_KEY.search(found["key"]) and value and not value.startswith("$") and ELLIPSIS not in value:
        body = f'{found["head"]}"{mask(found["value"])}"{body[found.end() :]}'
    return prefix + body


# --- the command ---------------------------------------------------------------------------------


def run_install(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """Run `carto-mcp install`; 0 when the config is (or already was) up to date, 1 when refused, 2 on bad usage."""
    try:
        return _install(args, environ)
    except InstallError as exc:
        print(f"carto-mcp install: {exc}", file=sys.stderr)
        return 1


def _install(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    client: str = args.client
    spec = CLIENTS[client]
    name = (args.name or "").strip()
    if not name:
        print("carto-mcp install: --name must not be empty.", file=sys.stderr)
        return 2
    env: dict[str, str] = {}
    token: str | None = None
    if args.embed_token:
        token = strip_bearer(environ.get(ENV_API_TOKEN, "") or "")
        if not token:
            print(
                f"carto-mcp install: --embed-token copies {ENV_API_TOKEN} from your environment, but it is not set. "
                "Set it, or leave out --embed-token to use your `carto auth login` profile.",
                file=sys.stderr,
            )
            return 2
        env[ENV_API_TOKEN] = token
    references = {} if args.sandbox else _references(spec, environ, skip=env)
    env.update(references)
    profile = (args.profile or "").strip() or None
    if args.sandbox and (profile or token):
        print("carto-mcp install: note: --sandbox ignores credentials (profile, token).", file=sys.stderr)
    elif profile and token:
        print(
            f"carto-mcp install: note: the embedded {ENV_API_TOKEN} wins over --profile {profile} "
            "(as in the CARTO CLI).",
            file=sys.stderr,
        )
    given = (args.server_command or "").strip()
    if given:
        launcher = Launcher(given, (), "as given with --command")
    else:
        launcher = default_launcher(sys.argv[0], sys.executable)
    command = launcher.command
    new_entry = build_entry(
        client,
        command=command,
        prefix=launcher.prefix,
        profile=profile,
        read_only=args.read_only,
        sandbox=args.sandbox,
        env=env,
    )
    problem = _check_given_command(command, environ) if given else None
    if problem:
        print(f"carto-mcp install: note: {problem}.", file=sys.stderr)

    path = Path(args.config).expanduser() if args.config else default_config_path(client, environ)
    target = path.resolve() if path.is_symlink() else path  # write through a dotfiles symlink, keep the link
    loaded = _load(target, spec)
    servers = loaded.data.get(spec.servers_key)
    existing = servers.get(name) if isinstance(servers, dict) else None
    entry = _merge_entry(existing, new_entry)
    new_data = dict(loaded.data)
    new_servers = dict(servers) if isinstance(servers, dict) else {}
    new_servers[name] = entry
    new_data[spec.servers_key] = new_servers

    kept_token = (
        not args.embed_token
        and isinstance(entry.get("env"), dict)
        and bool(entry["env"].get(ENV_API_TOKEN))
        and not _is_reference(entry["env"][ENV_API_TOKEN])
        and existing is not None
    )
    if kept_token:
        print(
            f"carto-mcp install: note: the existing {name!r} entry in {path} already sets {ENV_API_TOKEN} in its env; "
            "it was kept. Remove it there to use your `carto auth login` profile instead.",
            file=sys.stderr,
        )

    if loaded.raw is not None and new_data == loaded.data:
        print(f"{spec.label}: server {name!r} in {path} is already up to date; nothing changed.")
        return 0

    new_text = _render(new_data, loaded.indent)
    old_text = loaded.raw.decode("utf-8-sig") if loaded.raw is not None else ""
    secrets = (token,) if token else ()
    if args.dry_run:
        import difflib

        diff = difflib.unified_diff(
            old_text.splitlines(),
            new_text.splitlines(),
            fromfile=str(path) if loaded.raw is not None else "/dev/null",
            tofile=str(path),
            lineterm="",
        )
        for line in diff:
            print(_redact(line, secrets))
        print(f"dry run: {path} was not changed.")
        return 0

    if token:
        print(
            f"carto-mcp install: warning: writing your CARTO API token in plain text to {path} "
            f"(as {mask(token)}). Anyone who can read that file can use it"
            + (
                "; this file is usually committed to version control, so do not commit it."
                if spec.scope == "project"
                else "."
            ),
            file=sys.stderr,
        )
    mode = loaded.mode if loaded.mode is not None else (0o644 if spec.scope == "project" else 0o600)
    if token:
        mode &= ~0o077
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        backup: Path | None = None
        if loaded.raw is not None:
            backup = target.with_name(target.name + ".bak")
            atomic_write(backup, loaded.raw, mode=loaded.mode if loaded.mode is not None else 0o600)
        atomic_write(target, new_text.encode("utf-8"), mode=mode)
    except OSError as exc:
        raise InstallError(
            f"could not write {path}: {exc.strerror or type(exc).__name__}; the original is unchanged"
        ) from None

    verb = "updated" if existing is not None else "added"
    print(f"{spec.label}: {verb} server {name!r} in {path}")
    print(f"  runs:   {' '.join(_shell_word(w) for w in [entry['command'], *entry['args']])}")
    print(f"  command: {launcher.how}")
    if backup is not None:
        print(f"  backup: {backup}")
    if args.sandbox:
        print("  credentials: none (the embedded sandbox API)")
    elif token:
        print(f"  credentials: {ENV_API_TOKEN} embedded in the entry's env ({mask(token)})")
    elif references:
        print(
            f"  credentials: the referenced variables as set where {spec.label} runs, "
            "else your `carto auth login` profile"
        )
    elif not kept_token:
        print("  credentials: your `carto auth login` profile (check with `carto-mcp doctor`)")
    if references:
        print(
            f'  references: {", ".join(references)} written as "$NAME" (names, never values): {spec.label} '
            "removes secret-looking variables from a server's environment, but expands these references"
        )
    if spec.scope == "project" and os.path.isabs(command) and not args.server_command:
        print(
            "  note: the command is an absolute path on this machine; for a file shared with a team, "
            "rerun with --command carto-mcp so it works on every machine."
        )
    print(f"Next: {spec.next_step}")
    return 0


def _references(spec: ClientSpec, environ: Mapping[str, str], *, skip: Mapping[str, str]) -> dict[str, str]:
    """`{"NAME": "$NAME"}` for each of the client's reference variables set now (never their values)."""
    return {name: f"${name}" for name in spec.env_references if name not in skip and (environ.get(name) or "").strip()}


def _is_reference(value: object) -> bool:
    """A `$NAME` / `${NAME}` reference the client expands, as opposed to a value written in the file."""
    return isinstance(value, str) and value.startswith("$")


def _shell_word(word: str) -> str:
    return word if word and re.fullmatch(r"[\w@%+=:,./-]+", word) else "'" + word.replace("'", "'\\''") + "'"
