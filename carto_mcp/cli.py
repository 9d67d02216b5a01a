"""`carto-mcp`: serve the MCP server, call one tool, list tools, run the sandbox API.

Only argument parsing and exit codes live here. stdout belongs to the protocol on stdio and
to results for `call`; every log line goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from carto_mcp import __version__

EPILOG_MAIN = """\
examples:
  carto-mcp serve --sandbox                      # MCP over stdio, on the embedded sandbox (no account)
  carto-mcp serve                                # MCP over stdio, on your `carto auth login` profile
  carto-mcp serve --transport streamable-http --port 8000
  carto-mcp call list_credentials '{"kind": "token"}' --sandbox
  carto-mcp tools
  carto-mcp sandbox --port 8765                  # the sandbox API over HTTP, for curl
  carto-mcp doctor                               # which credentials win, and does the API answer?
  carto-mcp install claude-desktop --read-only   # add the server to a client's config

Credentials are found as the CARTO CLI finds them: --token > CARTO_API_TOKEN >
CARTO_CLIENT_ID/CARTO_CLIENT_SECRET > ~/.carto_credentials.json (--profile > CARTO_PROFILE >
current_profile) > ~/.carto/config.json.
"""

ENV_FLAGS = {
    "read_only": "CARTO_MCP_READ_ONLY",
    "yes": "CARTO_MCP_YES",
    "sandbox": "CARTO_MCP_SANDBOX",
}


def _truthy(value: str | None) -> bool:
    return (value or "").strip().lower() in ("1", "true", "yes", "on")


def _csv(value: str | None) -> tuple[str, ...]:
    return tuple(v.strip() for v in (value or "").split(",") if v.strip())


def _add_profile_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("credentials (same as the CARTO CLI)")
    g.add_argument(
        "--profile", help="profile in ~/.carto_credentials.json (default: CARTO_PROFILE, then current_profile)"
    )
    g.add_argument("--token", help="override the API token for this run (prefer CARTO_API_TOKEN: flags show in ps)")
    g.add_argument("--base-url", help="override the API base URL (default https://{tenant_id}.api.carto.com)")
    g.add_argument(
        "--profiles",
        help="comma list of more credentials-file profiles tools may switch to with their `profile` argument "
        "(env CARTO_MCP_PROFILES); default: only the resolved profile",
    )
    g.add_argument("--client-id", help="M2M client id for headless auth (or CARTO_CLIENT_ID)")
    g.add_argument(
        "--client-secret-file", type=Path, help="file holding the M2M client secret (or CARTO_CLIENT_SECRET)"
    )
    g.add_argument(
        "--auth-url",
        help="M2M client-credentials token endpoint (env CARTO_MCP_AUTH_URL; default https://auth.carto.com/oauth/token)",
    )
    g.add_argument(
        "--sandbox", action="store_true", help="use the embedded sandbox API instead of CARTO (env CARTO_MCP_SANDBOX=1)"
    )
    g.add_argument(
        "--sandbox-db",
        type=Path,
        help="sandbox sqlite file (default: under the user data dir; env CARTO_MCP_SANDBOX_DB)",
    )
    g.add_argument("--throwaway", action="store_true", help="with --sandbox: an in-memory sandbox that is gone on exit")
    g.add_argument("--debug", action="store_true", help="log CARTO requests to stderr (tokens masked)")


def _add_policy_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("safety policy (each also settable by environment variable)")
    g.add_argument(
        "--read-only",
        action="store_true",
        help="register only list_credentials and get_credential (CARTO_MCP_READ_ONLY=1)",
    )
    g.add_argument("--tools", help="comma list of tool names or globs to register (CARTO_MCP_TOOLS)")
    g.add_argument("--exclude-tools", help="comma list of tool names or globs to leave out (CARTO_MCP_EXCLUDE_TOOLS)")
    g.add_argument(
        "--yes",
        action="store_true",
        help="skip confirmation of destructive calls, for trusted automation (CARTO_MCP_YES=1)",
    )
    g.add_argument(
        "--audit-log", type=Path, help="append one JSON line per mutating call to this file (CARTO_MCP_AUDIT_LOG)"
    )


ADMIN_COMMANDS = {
    "doctor": "check versions, which CARTO credentials are used and why, and that they work",
    "install": "add carto-mcp to an MCP client's config (Claude Desktop, Claude Code, Cursor, VS Code, Gemini CLI)",
}


def build_parser(*, admin: bool = True) -> argparse.ArgumentParser:
    """The full parser; `admin=False` leaves `doctor`/`install` as stubs so `serve` starts faster."""
    parser = argparse.ArgumentParser(
        prog="carto-mcp",
        description="MCP server that lets AI agents manage CARTO developer credentials "
        "(API Access Tokens, SPA and M2M OAuth clients) with guard rails.",
        epilog=EPILOG_MAIN,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-v", "--version", action="version", version=f"carto-mcp {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the MCP server (stdio by default)",
        description="Run the MCP server. stdio is what desktop and IDE clients launch; streamable-http and sse "
        "serve remote or multi-client setups.",
        epilog="examples:\n  carto-mcp serve --sandbox\n  carto-mcp serve --profile staging --read-only\n"
        "  CARTO_MCP_AUTH_TOKEN=... carto-mcp serve --transport streamable-http --host 0.0.0.0 --stateless\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--transport", choices=["stdio", "streamable-http", "sse"], default="stdio")
    serve.add_argument("--host", default="127.0.0.1", help="HTTP bind address (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8000, help="HTTP port (default 8000)")
    serve.add_argument(
        "--stateless", action="store_true", help="streamable HTTP without sessions, for replicas behind a load balancer"
    )
    serve.add_argument(
        "--auth-token-file",
        type=Path,
        help="file with the bearer secret MCP clients must send (or CARTO_MCP_AUTH_TOKEN)",
    )
    serve.add_argument(
        "--allow-origin", action="append", default=[], help="extra browser Origin allowed to call the HTTP endpoint"
    )
    serve.add_argument(
        "--allow-host",
        action="append",
        default=[],
        help="Host name clients use to reach a non-loopback bind (repeatable; env CARTO_MCP_ALLOWED_HOSTS); "
        "without it any Host is accepted there, since a bearer is required",
    )
    _add_profile_flags(serve)
    _add_policy_flags(serve)

    call = sub.add_parser(
        "call",
        help="run one tool through an in-process MCP client and print its JSON result",
        description="Run one tool through a real MCP client session and print the structured result as JSON. "
        "Exit status 1 when the tool reports an error.",
        epilog="examples:\n"
        '  carto-mcp call create_token \'{"grants": [{"connection": "carto_dw", "source": "*"}], '
        '"apis": ["sql", "maps"], "expiration_date": "7d"}\' --sandbox\n'
        '  carto-mcp call list_credentials \'{"kind": "token"}\' --sandbox\n'
        '  carto-mcp call revoke_credential \'{"kind": "token", "id": "3f9a1c2e"}\' --sandbox --yes\n',
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    call.add_argument("tool", help="tool name (see `carto-mcp tools`)")
    call.add_argument("arguments", nargs="?", default="{}", help="JSON object of arguments (default {})")
    _add_profile_flags(call)
    _add_policy_flags(call)

    sub.add_parser("tools", help="list the tools and their arguments")

    sandbox = sub.add_parser(
        "sandbox",
        help="serve the embedded CARTO-compatible sandbox API over HTTP",
        description="Serve the sandbox API (sqlite-backed, CARTO-compatible) on 127.0.0.1 for curl or other "
        "clients. Any non-empty bearer is accepted.",
        epilog="example:\n  carto-mcp sandbox --port 8765 &\n"
        "  curl -H 'Authorization: Bearer x' http://127.0.0.1:8765/v3/tokens\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sandbox.add_argument("--port", type=int, default=8765)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--db", type=Path, help="sqlite file (default: under the user data dir)")

    if admin:
        from carto_mcp.doctor import add_doctor_parser
        from carto_mcp.install import add_install_parser

        add_doctor_parser(sub)
        add_install_parser(sub)
    else:
        for name, text in ADMIN_COMMANDS.items():
            sub.add_parser(name, help=text)
    return parser


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    """Flags win over environment variables; both feed one frozen ServerSettings."""
    from carto_mcp.profiles import ProfileInputs
    from carto_mcp.server.settings import ServerSettings

    secret = None
    if args.client_secret_file:
        secret = _read_secret_file(args.client_secret_file, "--client-secret-file")
    sandbox_db = args.sandbox_db or (
        Path(environ["CARTO_MCP_SANDBOX_DB"]) if environ.get("CARTO_MCP_SANDBOX_DB") else None
    )
    sandbox = args.sandbox or _truthy(environ.get("CARTO_MCP_SANDBOX"))
    if sandbox and not args.throwaway and sandbox_db is None:
        from carto_mcp.sandbox import default_db_path

        sandbox_db = default_db_path()
    key = environ.get("CARTO_MCP_CONFIRM_KEY")
    audit = args.audit_log or (Path(environ["CARTO_MCP_AUDIT_LOG"]) if environ.get("CARTO_MCP_AUDIT_LOG") else None)
    return ServerSettings(
        profile=ProfileInputs(
            token=args.token,
            profile=args.profile,
            base_url=args.base_url,
            client_id=args.client_id,
            client_secret=secret,
        ),
        sandbox=sandbox,
        sandbox_db=None if args.throwaway else sandbox_db,
        read_only=args.read_only or _truthy(environ.get("CARTO_MCP_READ_ONLY")),
        tools=_csv(args.tools or environ.get("CARTO_MCP_TOOLS")),
        exclude_tools=_csv(args.exclude_tools or environ.get("CARTO_MCP_EXCLUDE_TOOLS")),
        yes=args.yes or _truthy(environ.get("CARTO_MCP_YES")),
        audit_log=audit,
        confirm_key=key.encode() if key else None,
        profiles=_csv(args.profiles or environ.get("CARTO_MCP_PROFILES")),
        auth_url=args.auth_url or environ.get("CARTO_MCP_AUTH_URL") or None,
        stateless=getattr(args, "stateless", False),
        debug=args.debug,
    )


def _read_secret_file(path: Path, flag: str) -> str:
    from carto_mcp.api.errors import ProfileError

    try:
        value = path.expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ProfileError(f"{flag}: cannot read {path} ({exc.strerror}).") from None
    if not value:
        raise ProfileError(f"{flag}: {path} is empty.")
    return value


def configure_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("carto-mcp %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("carto_mcp")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.INFO)
    root.propagate = False
    # httpx2 logs every request URL at INFO, and a token's URL holds the token itself.
    for noisy in ("httpx2", "httpcore2", "httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def cmd_serve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from carto_mcp.server.app import build_server

    settings = settings_from_args(args, environ)
    server = build_server(settings)
    if args.transport == "stdio":
        if sys.stdin.isatty():
            print(
                "carto-mcp: serving MCP on stdin/stdout, which is what an MCP host (Claude Desktop, Cursor, ...) "
                "launches.\nTo try a tool by hand instead: carto-mcp call list_credentials --sandbox. "
                "Ctrl-C stops this server.",
                file=sys.stderr,
            )
        server.run("stdio")
        return 0
    import anyio

    from carto_mcp.server.http import build_http_app, serve_http

    token = environ.get("CARTO_MCP_AUTH_TOKEN")
    if args.auth_token_file:
        token = _read_secret_file(args.auth_token_file, "--auth-token-file")
    app = build_http_app(
        server,
        transport=args.transport,
        host=args.host,
        port=args.port,
        stateless=args.stateless,
        auth_token=token,
        allowed_origins=tuple(args.allow_origin),
        allowed_hosts=tuple(args.allow_host) + _csv(environ.get("CARTO_MCP_ALLOWED_HOSTS")),
    )
    path = "/sse" if args.transport == "sse" else "/mcp"
    print(f"carto-mcp {args.transport} on http://{args.host}:{args.port}{path}", file=sys.stderr)
    anyio.run(lambda: serve_http(app, host=args.host, port=args.port, log_level="debug" if args.debug else "warning"))
    return 0


def cmd_call(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import anyio

    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        print(f"carto-mcp call: arguments are not JSON ({exc.msg} at column {exc.colno}).", file=sys.stderr)
        return 2
    if not isinstance(arguments, dict):
        print('carto-mcp call: arguments must be a JSON object, like \'{"kind": "token"}\'.', file=sys.stderr)
        return 2
    settings = settings_from_args(args, environ)
    payload, is_error = anyio.run(_call_tool, settings, args.tool, arguments)
    print(json.dumps(payload, indent=2, ensure_ascii=False))
    return 1 if is_error else 0


async def _call_tool(settings: Any, tool: str, arguments: dict[str, Any]) -> tuple[Any, bool]:
    """One tool call through a real MCP client session (in-process), as a host would make it."""
    from mcp import Client

    from carto_mcp.server.app import build_server

    callback = _terminal_elicitation if sys.stdin.isatty() and sys.stderr.isatty() else None
    async with Client(build_server(settings), elicitation_callback=callback) as client:
        result = await client.call_tool(tool, arguments)
    if result.is_error:
        text = " ".join(getattr(c, "text", "") for c in result.content)
        return {"error": text}, True
    if result.structured_content is not None:
        return result.structured_content, False
    return [c.model_dump(mode="json", exclude_none=True) for c in result.content], False


async def _terminal_elicitation(context: Any, params: Any) -> Any:
    """Ask the person at the terminal, as a desktop host would show a confirmation dialog."""
    import anyio
    from mcp_types import ElicitResult

    def ask() -> str:
        print(f"\n{params.message}", file=sys.stderr)
        print("Proceed? [y/N] ", end="", file=sys.stderr, flush=True)
        return sys.stdin.readline().strip().lower()

    answer = await anyio.to_thread.run_sync(ask)
    if answer in ("y", "yes"):
        return ElicitResult(action="accept", content={"confirm": True})
    return ElicitResult(action="decline")


def cmd_tools() -> int:
    import anyio

    from carto_mcp.server.app import build_server
    from carto_mcp.server.settings import ServerSettings

    tools = anyio.run(build_server(ServerSettings()).list_tools)
    for tool in tools:
        print(f"{tool.name} — {tool.title}")
        print(f"  {(tool.description or '').split('. ')[0].rstrip('.')}.")
        props = tool.input_schema.get("properties", {})
        required = set(tool.input_schema.get("required", []))
        for name, spec in props.items():
            kind = _schema_type(spec)
            flag = "required" if name in required else "optional"
            desc = spec.get("description", "")
            print(f"    {name} ({kind}, {flag}){': ' + desc[:110] if desc else ''}")
        print()
    return 0


def _schema_type(spec: dict[str, Any]) -> str:
    if "enum" in spec:
        return "|".join(str(v) for v in spec["enum"])
    if "anyOf" in spec:
        return " or ".join(_schema_type(s) for s in spec["anyOf"] if s.get("type") != "null")
    if spec.get("type") == "array":
        items = spec.get("items", {})
        return f"list of {_schema_type(items) if 'type' in items or 'enum' in items else 'objects'}"
    return str(spec.get("type", "object"))


def cmd_sandbox(args: argparse.Namespace) -> int:
    from carto_mcp.sandbox import default_db_path, serve

    serve(host=args.host, port=args.port, db_path=args.db or default_db_path())
    return 0


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(admin=command in ADMIN_COMMANDS)
    args, extra = parser.parse_known_args(argv)
    # `call TOOL --sandbox '{...}'`: argparse leaves a JSON argument placed after options unparsed.
    if args.command == "call" and len(extra) == 1 and args.arguments == "{}" and not extra[0].startswith("-"):
        args.arguments, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    configure_logging(getattr(args, "debug", False))
    from carto_mcp.api.errors import CartoError

    try:
        if args.command == "serve":
            return cmd_serve(args, environ)
        if args.command == "call":
            return cmd_call(args, environ)
        if args.command == "tools":
            return cmd_tools()
        if args.command == "sandbox":
            return cmd_sandbox(args)
        if args.command == "doctor":
            from carto_mcp.doctor import run_doctor

            return run_doctor(args, environ)
        if args.command == "install":
            from carto_mcp.install import run_install

            return run_install(args, environ)
    except CartoError as exc:
        print(f"carto-mcp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2
