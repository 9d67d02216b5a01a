"""`carto-mcp install CLIENT`: merge into each client's config, idempotently, atomically, never silently."""

from __future__ import annotations

import argparse
import json
import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from carto_mcp import install
from carto_mcp.install import CLIENTS, add_install_parser, default_command, default_config_path, run_install

ALL_CLIENTS = sorted(CLIENTS)
#: Distinctive fake values: the secrecy assertions grep for them in full.
TOKEN = "eyJfake.inst.allx-secret-IN57-not-real"
OTHER_SECRET = "ghp_fakeOtherServerSecret0000XYZ"


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="carto-mcp")
    sub = top.add_subparsers(dest="command")
    add_install_parser(sub)
    return top


def run(
    capsys: pytest.CaptureFixture[str], argv: list[str], environ: dict[str, str] | None = None
) -> tuple[int, str, str]:
    args = parser().parse_args(["install", *argv])
    assert args.command == "install"  # `--command` must not clobber the subcommand's dest
    code = run_install(args, environ if environ is not None else {"HOME": "/nonexistent-home"})
    out, err = capsys.readouterr()
    return code, out, err


def key(client: str) -> str:
    return CLIENTS[client].servers_key


def expected_entry(client: str, command: str = "carto-mcp", args: list[str] | None = None) -> dict[str, Any]:
    entry: dict[str, Any] = {"type": "stdio"} if CLIENTS[client].stdio_type else {}
    entry.update({"command": command, "args": args or ["serve"]})
    return entry


def other_config(client: str) -> dict[str, Any]:
    """A config as a person would have it: other servers (one with a secret, last) and other settings."""
    return {
        "theme": "dark",
        key(client): {
            "filesystem": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"]},
            "remote": {"type": "http", "url": "https://mcp.example.test/mcp"},
            "github": {"command": "github-mcp", "args": [], "env": {"GITHUB_TOKEN": OTHER_SECRET}},
        },
        "zzz_last_setting": {"nested": [1, 2, 3]},
    }


def write_json(path: Path, data: Any, indent: int | str = 2) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    raw = (json.dumps(data, indent=indent) + "\n").encode()
    path.write_bytes(raw)
    return raw


# --- fresh files, merging, idempotency ---------------------------------------------------------


@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_fresh_file_is_created_with_the_entry(client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "deep" / "dir" / "config.json"
    code, out, err = run(capsys, [client, "--config", str(config), "--command", "carto-mcp"])
    assert code == 0, err
    data = json.loads(config.read_text())
    assert data == {key(client): {"carto": expected_entry(client)}}
    assert str(config) in out and "added" in out
    assert "Next:" in out  # what to do now (restart the client)
    assert not config.with_name("config.json.bak").exists()  # nothing to back up


@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_other_servers_and_settings_are_kept(client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    before = other_config(client)
    write_json(config, before)
    code, _out, err = run(capsys, [client, "--config", str(config), "--command", "carto-mcp"])
    assert code == 0, err
    after = json.loads(config.read_text())
    assert list(after) == list(before)  # top-level keys kept, in their order
    assert after["theme"] == "dark" and after["zzz_last_setting"] == before["zzz_last_setting"]
    servers = after[key(client)]
    assert list(servers) == ["filesystem", "remote", "github", "carto"]
    for name, entry in before[key(client)].items():
        assert servers[name] == entry
    assert servers["carto"] == expected_entry(client)


@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_second_run_changes_nothing_and_says_so(
    client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    original = write_json(config, other_config(client))
    argv = [client, "--config", str(config), "--command", "carto-mcp", "--read-only"]
    assert run(capsys, argv)[0] == 0
    backup = config.with_name("config.json.bak")
    first, first_backup, first_mtime = config.read_bytes(), backup.read_bytes(), config.stat().st_mtime_ns
    assert first_backup == original

    code, out, _err = run(capsys, argv)
    assert code == 0
    assert "already up to date" in out and "nothing changed" in out
    assert config.read_bytes() == first
    assert config.stat().st_mtime_ns == first_mtime  # not even rewritten
    assert backup.read_bytes() == first_backup


@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_backup_holds_the_previous_content(client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    original = write_json(config, other_config(client))
    config.chmod(0o640)
    code, out, _err = run(capsys, [client, "--config", str(config), "--command", "carto-mcp"])
    assert code == 0
    backup = config.with_name("config.json.bak")
    assert backup.read_bytes() == original
    assert str(backup) in out
    if os.name == "posix":
        assert stat.S_IMODE(config.stat().st_mode) == 0o640  # the file keeps its permissions
    # A later change backs up the content it replaces.
    current = config.read_bytes()
    assert run(capsys, [client, "--config", str(config), "--command", "carto-mcp", "--read-only"])[0] == 0
    assert backup.read_bytes() == current


@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_dry_run_prints_a_diff_and_writes_nothing(
    client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    original = write_json(config, other_config(client))
    code, out, _err = run(capsys, [client, "--config", str(config), "--command", "carto-mcp", "--dry-run"])
    assert code == 0
    assert config.read_bytes() == original
    assert not config.with_name("config.json.bak").exists()
    assert f"--- {config}" in out and f"+++ {config}" in out and "@@" in out
    assert '+    "carto": {' in out
    assert "was not changed" in out
    assert OTHER_SECRET not in out  # diff context next to another server's env is masked

    fresh = tmp_path / "absent" / "config.json"
    code, out, _err = run(capsys, [client, "--config", str(fresh), "--dry-run"])
    assert code == 0 and "--- /dev/null" in out
    assert not fresh.exists() and not fresh.parent.exists()


# --- refusals -------------------------------------------------------------------------------------


MALFORMED = {
    "invalid json": (b'{\n  "mcpServers": {\n    "x": {"command": "a",}\n  }\n}\n', "line 3"),
    "comment": (b'{\n  // my servers\n  "servers": {}\n}\n', "line 2"),
    "top-level array": (b"[1, 2]\n", "top level"),
}


@pytest.mark.parametrize("client", ALL_CLIENTS)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_config_is_refused_and_untouched(
    client: str, case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    raw, where = MALFORMED[case]
    config.write_bytes(raw)
    code, out, err = run(capsys, [client, "--config", str(config), "--command", "carto-mcp"])
    assert code == 1
    assert config.read_bytes() == raw
    assert not config.with_name("config.json.bak").exists()
    assert str(config) in err and where in err and "untouched" in err
    assert out == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]  # no temp file left behind


@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_servers_key_that_is_not_an_object_is_refused(
    client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    raw = write_json(config, {"other": True, key(client): ["not", "an", "object"]})
    code, _out, err = run(capsys, [client, "--config", str(config)])
    assert code == 1
    assert config.read_bytes() == raw
    assert str(config) in err and repr(key(client)) in err and "line 3, column 3" in err


# --- tokens -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_no_token_is_written_without_embed_token(
    client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    environ = {"HOME": str(tmp_path), "CARTO_API_TOKEN": TOKEN}
    code, out, err = run(capsys, [client, "--config", str(config), "--command", "carto-mcp"], environ)
    assert code == 0
    assert TOKEN not in config.read_text() and TOKEN not in out + err
    assert "env" not in json.loads(config.read_text())[key(client)]["carto"]
    assert "carto auth login" in out  # the default credential path is named


@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_embed_token_writes_it_with_a_warning(client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    write_json(config, other_config(client))
    environ = {"HOME": str(tmp_path), "CARTO_API_TOKEN": f"Bearer {TOKEN}"}
    argv = [client, "--config", str(config), "--command", "carto-mcp", "--embed-token"]
    code, out, err = run(capsys, [*argv, "--dry-run"], environ)
    assert code == 0 and TOKEN not in out + err  # the diff shows it masked
    code, out, err = run(capsys, argv, environ)
    assert code == 0
    entry = json.loads(config.read_text())[key(client)]["carto"]
    assert entry["env"] == {"CARTO_API_TOKEN": TOKEN}
    assert "warning" in err and "plain text" in err
    assert TOKEN not in out + err
    if os.name == "posix":
        assert stat.S_IMODE(config.stat().st_mode) & 0o077 == 0  # tightened: it now holds a token


def test_embed_token_without_the_variable_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    code, _out, err = run(capsys, ["cursor", "--config", str(config), "--embed-token"], {"HOME": str(tmp_path)})
    assert code == 2 and "CARTO_API_TOKEN" in err
    assert not config.exists()


def test_a_token_already_in_the_entry_is_kept_and_flagged(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    write_json(config, {"mcpServers": {"carto": {"command": "old", "args": [], "env": {"CARTO_API_TOKEN": TOKEN}}}})
    code, out, err = run(capsys, ["cursor", "--config", str(config), "--command", "carto-mcp"])
    assert code == 0
    assert json.loads(config.read_text())["mcpServers"]["carto"]["env"] == {"CARTO_API_TOKEN": TOKEN}
    assert "already sets CARTO_API_TOKEN" in err
    assert TOKEN not in out + err


# --- options ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_profile_read_only_and_sandbox_reach_the_args(
    client: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    argv = [client, "--config", str(config), "--command", "/opt/carto/bin/carto-mcp"]
    assert run(capsys, [*argv, "--profile", "staging", "--read-only"])[0] == 0
    entry = json.loads(config.read_text())[key(client)]["carto"]
    assert entry == expected_entry(client, "/opt/carto/bin/carto-mcp", ["serve", "--profile", "staging", "--read-only"])
    # Every written command line is one `carto-mcp` itself accepts.
    from carto_mcp.cli import build_parser

    parsed, extra = build_parser().parse_known_args(entry["args"])
    assert extra == [] and parsed.command == "serve"
    assert parsed.profile == "staging" and parsed.read_only

    # Changing options updates the same entry; --sandbox replaces the profile.
    assert run(capsys, [*argv, "--sandbox"])[0] == 0
    entry = json.loads(config.read_text())[key(client)]["carto"]
    assert entry["args"] == ["serve", "--sandbox"]


def test_name_picks_the_server_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    assert run(capsys, ["gemini", "--config", str(config), "--name", "carto-staging", "--profile", "staging"])[0] == 0
    assert list(json.loads(config.read_text())["mcpServers"]) == ["carto-staging"]
    assert run(capsys, ["gemini", "--config", str(config), "--name", "  "])[0] == 2


def test_an_existing_entry_keeps_the_users_own_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    entry = {"command": "old", "args": ["serve", "--yes"], "env": {"CARTO_MCP_AUDIT_LOG": "/var/log/a"}, "x": 1}
    write_json(config, {"mcpServers": {"carto": entry}})
    code, out, _err = run(capsys, ["cursor", "--config", str(config), "--command", "carto-mcp", "--read-only"])
    assert code == 0 and "updated" in out
    assert json.loads(config.read_text())["mcpServers"]["carto"] == {
        "command": "carto-mcp",
        "args": ["serve", "--read-only"],
        "env": {"CARTO_MCP_AUDIT_LOG": "/var/log/a"},
        "x": 1,
    }


def test_a_remote_entry_of_the_same_name_is_replaced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    write_json(config, {"servers": {"carto": {"type": "http", "url": "https://x.test/mcp"}}})
    assert run(capsys, ["vscode", "--config", str(config), "--command", "carto-mcp"])[0] == 0
    assert json.loads(config.read_text())["servers"]["carto"] == expected_entry("vscode")


def test_indentation_is_kept(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    write_json(config, other_config("cursor"), indent=4)
    assert run(capsys, ["cursor", "--config", str(config), "--command", "carto-mcp"])[0] == 0
    assert '\n    "mcpServers": {\n        "filesystem"' in config.read_text()


def test_an_empty_file_counts_as_an_empty_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.json"
    config.write_text("\n")
    assert run(capsys, ["cursor", "--config", str(config), "--command", "carto-mcp"])[0] == 0
    assert json.loads(config.read_text()) == {"mcpServers": {"carto": expected_entry("cursor")}}


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_a_symlinked_config_stays_a_symlink(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = tmp_path / "dotfiles" / "settings.json"
    write_json(real, {"mcpServers": {}})
    link = tmp_path / "settings.json"
    link.symlink_to(real)
    assert run(capsys, ["gemini", "--config", str(link), "--command", "carto-mcp"])[0] == 0
    assert link.is_symlink()
    assert "carto" in json.loads(real.read_text())["mcpServers"]


# --- where configs live, and the default command ----------------------------------------------------


@pytest.mark.parametrize(
    ("client", "platform", "expected"),
    [
        ("claude-desktop", "darwin", "HOME/Library/Application Support/Claude/claude_desktop_config.json"),
        ("claude-desktop", "win32", "APPDATA/Claude/claude_desktop_config.json"),
        ("claude-desktop", "linux", "HOME/.config/Claude/claude_desktop_config.json"),
        ("claude-code", "linux", "CWD/.mcp.json"),
        ("cursor", "darwin", "HOME/.cursor/mcp.json"),
        ("vscode", "win32", "CWD/.vscode/mcp.json"),
        ("gemini", "linux", "HOME/.gemini/settings.json"),
    ],
)
def test_default_config_paths(client: str, platform: str, expected: str, tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path / "home"), "APPDATA": str(tmp_path / "appdata")}
    path = default_config_path(client, environ, platform=platform, cwd=tmp_path / "project")
    roots = {"HOME": tmp_path / "home", "APPDATA": tmp_path / "appdata", "CWD": tmp_path / "project"}
    root, rest = expected.split("/", 1)
    assert path == roots[root] / rest


def test_linux_claude_desktop_honours_xdg_config_home(tmp_path: Path) -> None:
    environ = {"HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    path = default_config_path("claude-desktop", environ, platform="linux")
    assert path == tmp_path / "xdg" / "Claude" / "claude_desktop_config.json"


@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_without_config_the_usual_file_is_written(
    client: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    environ = {"HOME": str(home), "APPDATA": str(tmp_path / "appdata"), "PATH": ""}
    code, out, _err = run(capsys, [client], environ)
    assert code == 0
    path = default_config_path(client, environ, cwd=project)
    assert str(path) in out
    assert json.loads(path.read_text())[key(client)]["carto"] == expected_entry(client)  # no PATH: bare name
    if sys.platform != "win32":
        assert (project if CLIENTS[client].scope == "project" else home) in path.parents


@pytest.mark.skipif(os.name != "posix", reason="executable bits")
def test_default_command_is_the_absolute_path_on_path(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "carto-mcp"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert default_command({"PATH": f"{tmp_path / 'nothing'}{os.pathsep}{bindir}"}) == str(exe)
    assert default_command({"PATH": str(tmp_path / "nothing")}) == "carto-mcp"
    assert default_command({}) == "carto-mcp"


def test_help_names_every_client_and_its_file() -> None:
    top = parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    text = sub.choices["install"].format_help()
    for client in ALL_CLIENTS:
        assert client in text
    assert "claude_desktop_config.json" in text and "--dry-run" in text and "--embed-token" in text


def test_the_entry_builder_matches_the_written_entry() -> None:
    entry = install.build_entry("vscode", command="c", profile="p", read_only=True, sandbox=False)
    assert entry == {"type": "stdio", "command": "c", "args": ["serve", "--profile", "p", "--read-only"]}
