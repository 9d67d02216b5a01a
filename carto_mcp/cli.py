"""`carto-mcp`: serve the MCP server, call one tool, list tools, run the sandbox API, verify an audit log.

Only argument parsing and exit codes live here. stdout belongs to the protocol on stdio and
to results for `call`; every log line goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carto_mcp import __version__, logs
from carto_mcp.audit_cli import add_audit_parser, run_audit
from carto_mcp.config import (
    ENV_ALLOWED_HOSTS,
    ENV_AUDIT_KEY,
    ENV_AUTH_TOKEN,
    Settings,
    add_credential_flags,
    add_safety_flags,
    add_tuning_flags,
    audit_key,
    check_sandbox_db,
    port_number,
    read_secret_file,
    settings_from,
    split_csv,
)
from carto_mcp.doctor import add_doctor_parser, run_doctor
from carto_mcp.errors import CartoError, InputError
from carto_mcp.install import add_install_parser, run_install
from carto_mcp.policy_cli import add_policy_parser, run_policy

if TYPE_CHECKING:
    from carto_mcp.credentials.reveal import RevealStore

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
  carto-mcp policy check policy.toml             # validate a policy file before `serve --policy`
  carto-mcp audit --fail-on high                 # report risky credentials, most serious first
  carto-mcp audit-log verify audit.jsonl         # is the --audit-log file whole?

Credentials are found as the CARTO CLI finds them: --token > CARTO_API_TOKEN >
CARTO_M2M_CLIENT_ID/CARTO_M2M_CLIENT_SECRET > ~/.carto_credentials.json (--profile > CARTO_PROFILE >
current_profile) > ~/.carto/config.json.
"""


def build_parser() -> argparse.ArgumentParser:
    """Every command's parser (argparse only: no command's code is imported to build it)."""
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
    serve.add_argument("--port", type=port_number, default=8000, help="HTTP port (default 8000)")
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
    add_credential_flags(serve)
    add_safety_flags(serve)
    add_tuning_flags(serve)

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
    add_credential_flags(call)
    add_safety_flags(call)
    add_tuning_flags(call)

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
    sandbox.add_argument("--port", type=port_number, default=8765)
    sandbox.add_argument("--host", default="127.0.0.1")
    sandbox.add_argument("--db", type=Path, help="sqlite file (default: under the user data dir)")
    sandbox.add_argument(
        "--latency-ms", type=float, default=0.0, help="delay every request this long, like a CARTO API far away"
    )
    sandbox.add_argument("--jitter-ms", type=float, default=0.0, help="and up to this much more, at random")
    sandbox.add_argument(
        "--instrument",
        action="store_true",
        help="serve the test-only /_sandbox/ routes (request counts, in-flight peak, fault switches); never for "
        "anything but test tools",
    )
    sandbox.add_argument(
        "--token-ids", action="store_true", help="give each token object an id of its own (tok_…), as the CLI shows"
    )

    add_doctor_parser(sub)
    add_install_parser(sub)
    add_policy_parser(sub)
    add_audit_parser(sub)
    _add_audit_log_parser(sub)
    return parser


VERIFY_DESCRIPTION = f"""\
Check that an audit log written by `serve --audit-log` is whole.

Every line is one JSON object. Its "hash" covers all of its other keys, and its "prev" is the
hash of the line before it (64 zeros on a file's first line). So:
  - an edited line no longer matches its own hash;
  - a deleted, inserted or moved line breaks the link: the line after the gap names a prev
    that is not the hash of the line now before it.
Each problem is reported with its line number, then a summary: lines, first and last time, key ids.

Keys. A server with {ENV_AUDIT_KEY} set seals its lines with HMAC-SHA256 and writes
the key's id ("key_id", a fingerprint, never the key) in each line; verify needs that key
(--key-file, or {ENV_AUDIT_KEY}) and names the id it is missing, or the id of a wrong key.
Without a key the hash is plain SHA-256: it shows damage and careless edits, but anyone who can
write the file can recompute every hash after changing it. With a key given, plain lines after
the last keyed line are problems: anyone could have appended them.

Torn lines. A crash in the middle of a write can leave a last line without its end. verify
reports it; the next line a server writes starts on a new line and records the break
("chain_break"), and verify then shows the torn line as a warning that names it.

What it cannot prove. Lines cut from the END of the log leave a shorter log that is still a
valid chain, and a whole file can be replaced by another valid one. Keep the last hash this
prints somewhere else (a ticket, another machine) and pass it back with --last-hash: the log
must still hold that line. verify takes no lock: on a live log, a line being written at that
instant can show as torn; run it again.
"""

VERIFY_EPILOG = """\
exit status: 0 intact (warnings are printed), 1 not intact, 2 not checked (the file cannot be
read, is not an audit log, or its lines need a key that was not given).

examples:
  carto-mcp audit-log verify ~/carto-mcp-audit.jsonl
  CARTO_MCP_AUDIT_KEY=... carto-mcp audit-log verify audit.jsonl --json
  carto-mcp audit-log verify audit.jsonl --key-file old.key --key-file new.key
  carto-mcp audit-log verify audit.jsonl --last-hash 5e0c…(the 64 digits printed last time)
"""


def _add_audit_log_parser(sub: Any) -> None:
    audit = sub.add_parser(
        "audit-log",
        help="check the audit log written with --audit-log (hash chain, HMAC key)",
        description="Tools for the --audit-log file.",
    )
    actions = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    verify = actions.add_parser(
        "verify",
        help="report the first edited, deleted, reordered or torn line; exit 0 when intact",
        description=VERIFY_DESCRIPTION,
        epilog=VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verify.add_argument("path", type=Path, metavar="PATH", help="the audit log file")
    verify.add_argument(
        "--key-file",
        type=Path,
        metavar="FILE",
        action="append",
        default=[],
        help=f"file holding a key the log was sealed with (repeatable, for a key that changed; or {ENV_AUDIT_KEY})",
    )
    verify.add_argument(
        "--last-hash", metavar="HASH", help="a last hash printed by an earlier verify: the log must still hold it"
    )
    verify.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def cmd_serve(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from carto_mcp.server.app import build_server

    settings = settings_from(args, environ)
    server = build_server(settings)
    if args.transport == "stdio":
        if sys.stdin.isatty():
            print(
                "carto-mcp: serving MCP on stdin/stdout, which is what an MCP host (Claude Desktop, Cursor, ...) "
                "launches.\nTo try a tool by hand instead: carto-mcp call list_credentials --sandbox. "
                "Ctrl-C stops this server.",
                file=sys.stderr,
            )
        from carto_mcp.server.stdio import serve_stdio

        return serve_stdio(server)
    import anyio

    from carto_mcp.server.http import build_http_app, serve_http

    token = environ.get(ENV_AUTH_TOKEN)
    if args.auth_token_file:
        token = read_secret_file(args.auth_token_file, "--auth-token-file")
    server.reveals.behind_bearer = bool(token)  # a browser opening a reveal link sends no bearer
    app = build_http_app(
        server,
        transport=args.transport,
        host=args.host,
        port=args.port,
        stateless=args.stateless,
        auth_token=token,
        allowed_origins=tuple(args.allow_origin),
        allowed_hosts=(*args.allow_host, *split_csv(environ.get(ENV_ALLOWED_HOSTS))),
        routes=server.reveals.routes(),
    )
    path = "/sse" if args.transport == "sse" else "/mcp"
    print(f"carto-mcp {args.transport} on http://{args.host}:{args.port}{path}", file=sys.stderr)
    anyio.run(lambda: serve_http(app, host=args.host, port=args.port, log_level="info" if args.debug else "warning"))
    return 0


def cmd_call(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    import anyio

    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        print(f"carto-mcp call: arguments are not JSON ({exc.msg} at column {exc.colno}).", file=sys.stderr)
        return 2
    except RecursionError:
        print("carto-mcp call: arguments are nested too deeply to be tool arguments.", file=sys.stderr)
        return 2
    except ValueError:  # a number with thousands of digits
        print("carto-mcp call: arguments hold a number too long to read.", file=sys.stderr)
        return 2
    if not isinstance(arguments, dict):
        print('carto-mcp call: arguments must be a JSON object, like \'{"kind": "token"}\'.', file=sys.stderr)
        return 2
    settings = settings_from(args, environ)
    is_error = anyio.run(_call_tool, settings, args.tool, arguments)
    return 1 if is_error else 0


async def _call_tool(settings: Settings, tool: str, arguments: dict[str, Any]) -> bool:
    """One tool call through a real MCP client session (in-process), as a host would make it; True on an error.

    At a terminal the client can answer questions and open pages: confirmations are asked on
    stderr, and a new secret's one-time page is printed there as a URL (stdout gets only the
    result). The process then stays until the page is opened or expires, since the page goes
    away with it. The session speaks the handshake revisions, where a tool may ask mid-call.
    """
    from mcp import Client

    from carto_mcp.server.app import build_server

    terminal = sys.stdin.isatty() and sys.stderr.isatty()
    server = build_server(settings)
    options: dict[str, Any] = {"elicitation_callback": _terminal_elicitation, "mode": "legacy"} if terminal else {}
    async with Client(server, **options) as client:
        result = await client.call_tool(tool, arguments)
        if result.is_error:
            payload: Any = {"error": " ".join(getattr(c, "text", "") for c in result.content)}
        elif result.structured_content is not None:
            payload = result.structured_content
        else:
            payload = [c.model_dump(mode="json", exclude_none=True) for c in result.content]
        print(json.dumps(payload, indent=2, ensure_ascii=False), flush=True)
        await _wait_for_reveals(server.reveals.store)
    return bool(result.is_error)


async def _wait_for_reveals(store: RevealStore) -> None:
    """Keep the one-time pages up until they are opened or expire; Ctrl-C shows what is left on the terminal."""
    import anyio

    if not store.pending():
        return
    minutes = max(1, round(store.ttl / 60))
    print(
        f"\nWaiting for the one-time page above to be opened (it expires in {minutes} min). Ctrl-C stops "
        "waiting and shows the secret here instead.",
        file=sys.stderr,
        flush=True,
    )
    try:
        while store.pending():
            await anyio.sleep(0.2)
    except anyio.get_cancelled_exc_class():
        for page in store.take_all():  # the terminal is where the CARTO CLI shows a secret, too
            print(f"\n{page.title}:", file=sys.stderr)
            for name, value in page.values:
                print(f"  {name}={value}", file=sys.stderr)
        raise


async def _terminal_elicitation(context: Any, params: Any) -> Any:
    """Ask the person at the terminal, as a desktop host would show a confirmation dialog or open a link."""
    import anyio
    from mcp_types import ElicitResult

    if getattr(params, "mode", None) == "url":
        print(f"\n{params.message}\n  {params.url}", file=sys.stderr, flush=True)
        return ElicitResult(action="accept")

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

    tools = anyio.run(build_server(Settings()).list_tools)
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


def cmd_sandbox(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from carto_mcp.sandbox import default_db_path, serve

    serve(
        host=args.host,
        port=args.port,
        db_path=check_sandbox_db(args.db) if args.db else default_db_path(environ),
        faults=args.instrument,
        latency_ms=max(args.latency_ms, 0.0),
        jitter_ms=max(args.jitter_ms, 0.0),
        token_ids=args.token_ids,
    )
    return 0


def cmd_audit_log(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    """`audit-log verify`: the report on stdout, its verdict as the exit status; a usage problem is 2."""
    from carto_mcp.audit_verify import verify

    if args.audit_command != "verify":
        print(
            "carto-mcp audit-log: give an action: verify PATH (see carto-mcp audit-log verify --help)", file=sys.stderr
        )
        return 2
    try:
        keys = [key for key in (audit_key(environ, None, "--key-file"),) if key is not None]
        keys += [key for path in args.key_file if (key := audit_key({}, path, "--key-file")) is not None]
        report = verify(args.path, keys, last_hash=args.last_hash)
    except InputError as exc:
        if args.json:
            print(json.dumps({"path": str(args.path), "intact": False, "error": str(exc)}, ensure_ascii=False))
        print(f"carto-mcp audit-log verify: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), indent=2, ensure_ascii=False) if args.json else report.text())
    return report.exit_code


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # `call TOOL --sandbox '{...}'`: argparse leaves a JSON argument placed after options unparsed.
    if args.command == "call" and len(extra) == 1 and args.arguments == "{}" and not extra[0].startswith("-"):
        args.arguments, extra = extra[0], []
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command is None:
        parser.print_help()
        return 2
    logs.configure(getattr(args, "debug", False))
    try:
        if args.command == "serve":
            return cmd_serve(args, environ)
        if args.command == "call":
            return cmd_call(args, environ)
        if args.command == "tools":
            return cmd_tools()
        if args.command == "sandbox":
            return cmd_sandbox(args, environ)
        if args.command == "doctor":
            return run_doctor(args, environ)
        if args.command == "install":
            return run_install(args, environ)
        if args.command == "policy":
            return run_policy(args, environ)
        if args.command == "audit":
            return run_audit(args, environ)
        if args.command == "audit-log":
            return cmd_audit_log(args, environ)
    except CartoError as exc:
        print(f"carto-mcp: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    parser.error(f"unknown command {args.command!r}")
    return 2
