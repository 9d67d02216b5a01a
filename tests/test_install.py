"""`carto-mcp install CLIENT`: merge into each client's config, idempotently, atomically, never silently."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import anyio
import pytest

from carto_mcp import install
from carto_mcp.install import (
    CLIENTS,
    InstallError,
    add_install_parser,
    default_config_path,
    default_launcher,
    run_install,
)

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
    entry = json.loads(config.read_text())[key(client)]["carto"]
    # Gemini gets a reference to the variable (it strips the variable itself); nobody gets the value.
    assert entry.get("env") == ({"CARTO_API_TOKEN": "$CARTO_API_TOKEN"} if client == "gemini" else None)
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


#: Every variable `install gemini` passes on by reference, each set to a distinctive fake value.
GEMINI_ENV = {
    "CARTO_API_TOKEN": TOKEN,
    "CARTO_CLIENT_ID": "fake-client-id-GM01",
    "CARTO_CLIENT_SECRET": "fake-client-secret-not-real-GM02",
    "CARTO_M2M_CLIENT_ID": "fake-m2m-id-GM03",
    "CARTO_M2M_CLIENT_SECRET": "fake-m2m-secret-not-real-GM04",
    "CARTO_MCP_AUTH_URL": "https://auth.example.test/oauth/token",
    "CARTO_PROFILE": "staging-GM05",
    "CARTO_MCP_BASE_URL": "https://gcp-us-east1.api.example.test",
}


def test_gemini_gets_references_to_the_credential_variables_and_no_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a token and a client-credentials pair exported, `install gemini` writes `"NAME": "$NAME"` only."""
    from carto_mcp.cli import main

    config = tmp_path / "settings.json"
    environ = {"HOME": str(tmp_path), "PATH": "", **GEMINI_ENV}
    assert main(["install", "gemini", "--config", str(config), "--dry-run"], environ) == 0
    assert main(["install", "gemini", "--config", str(config)], environ) == 0
    out, err = capsys.readouterr()
    raw = config.read_text()
    assert json.loads(raw)["mcpServers"]["carto"]["env"] == {name: f"${name}" for name in GEMINI_ENV}
    for value in GEMINI_ENV.values():
        assert value not in raw and value not in out + err  # not even the non-secret ones: names only
    assert "references: " + ", ".join(GEMINI_ENV) in out
    assert "Trust folder" in out and "/permissions trust" in out  # Gemini ignores untrusted folders


def test_gemini_references_only_what_is_set_and_none_on_the_sandbox(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "settings.json"
    environ = {"HOME": str(tmp_path), "CARTO_CLIENT_ID": "cid", "CARTO_CLIENT_SECRET": "x-GM06", "CARTO_PROFILE": " "}
    assert run(capsys, ["gemini", "--config", str(config), "--command", "carto-mcp"], environ)[0] == 0
    env = json.loads(config.read_text())["mcpServers"]["carto"]["env"]
    assert env == {"CARTO_CLIENT_ID": "$CARTO_CLIENT_ID", "CARTO_CLIENT_SECRET": "$CARTO_CLIENT_SECRET"}
    sandbox = tmp_path / "sandbox.json"
    code, out, _err = run(capsys, ["gemini", "--config", str(sandbox), "--command", "carto-mcp", "--sandbox"], environ)
    assert code == 0 and "env" not in json.loads(sandbox.read_text())["mcpServers"]["carto"]
    assert "  references:" not in out


def test_a_reference_already_in_the_entry_is_not_flagged_as_an_embedded_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "settings.json"
    argv = ["gemini", "--config", str(config), "--command", "carto-mcp"]
    assert run(capsys, argv, {"HOME": str(tmp_path), "CARTO_API_TOKEN": TOKEN})[0] == 0
    code, _out, err = run(capsys, [*argv, "--read-only"], {"HOME": str(tmp_path)})
    assert code == 0 and "already sets" not in err
    assert json.loads(config.read_text())["mcpServers"]["carto"]["env"] == {"CARTO_API_TOKEN": "$CARTO_API_TOKEN"}


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
    # In process (argv[0] is pytest, not the script): this interpreter with -m, whatever PATH holds.
    assert json.loads(path.read_text())[key(client)]["carto"] == expected_entry(
        client, sys.executable, ["-m", "carto_mcp", "serve"]
    )
    if sys.platform != "win32":
        assert (project if CLIENTS[client].scope == "project" else home) in path.parents


def fake_script(directory: Path, name: str = "carto-mcp") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / name
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    return script


def test_the_launcher_is_the_running_script_by_its_resolved_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = fake_script(tmp_path / "venv" / "bin")
    launcher = default_launcher(str(script), sys.executable)
    assert launcher.command == str(script.resolve()) and launcher.prefix == ()
    assert "carto-mcp script" in launcher.how
    # Started by a relative path (./venv/bin/carto-mcp) or through a symlink: still the real file.
    monkeypatch.chdir(tmp_path)
    assert default_launcher("venv/bin/carto-mcp", sys.executable).command == str(script.resolve())
    if os.name == "posix":
        link = tmp_path / "carto-mcp"
        link.symlink_to(script)
        assert default_launcher(str(link), sys.executable).command == str(script.resolve())


def test_the_launcher_is_this_python_with_m_when_not_run_as_the_script(tmp_path: Path) -> None:
    """`python -m carto_mcp install` (argv[0] is __main__.py), or a script of another name, or a missing one."""
    main = Path(sys.modules["carto_mcp"].__file__ or "").parent / "__main__.py"
    not_executable = tmp_path / "carto-mcp"
    not_executable.write_text("")
    for argv0 in (str(main), str(fake_script(tmp_path / "bin", "pytest")), str(tmp_path / "nowhere" / "carto-mcp")):
        launcher = default_launcher(argv0, sys.executable)
        assert (launcher.command, launcher.prefix) == (sys.executable, ("-m", "carto_mcp")), argv0
        assert "-m carto_mcp" in launcher.how
    if os.name == "posix":
        assert default_launcher(str(not_executable), sys.executable).prefix == ("-m", "carto_mcp")


def test_no_launcher_at_all_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InstallError) as caught:
        default_launcher("", str(tmp_path / "no-python"))
    assert "--command" in str(caught.value)


def test_a_given_command_that_is_not_found_here_is_written_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.json"
    code, out, err = run(capsys, ["cursor", "--config", str(config), "--command", "carto-mcp"], {"PATH": ""})
    assert code == 0 and "'carto-mcp' is not on this PATH" in err
    assert "as given with --command" in out
    assert json.loads(config.read_text())["mcpServers"]["carto"]["command"] == "carto-mcp"
    bindir = tmp_path / "bin"
    fake_script(bindir)
    code, _out, err = run(capsys, ["cursor", "--config", str(config), "--command", "carto-mcp"], {"PATH": str(bindir)})
    assert code == 0 and "note" not in err
    missing = str(tmp_path / "gone" / "carto-mcp")
    code, _out, err = run(capsys, ["cursor", "--config", str(config), "--command", missing], {"PATH": ""})
    assert code == 0 and f"{missing} does not exist" in err


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
    entry = install.build_entry("cursor", command="py", prefix=("-m", "carto_mcp"), sandbox=True)
    assert entry == {"command": "py", "args": ["-m", "carto_mcp", "serve", "--sandbox"]}


# --- what install writes starts this installation, with no PATH at all -------------------------------


def installed_script() -> Path:
    """The `carto-mcp` script of the environment running the tests (pip puts it next to the interpreter)."""
    scripts = Path(sysconfig.get_path("scripts"))
    script = next((p for p in (scripts / "carto-mcp", scripts / "carto-mcp.exe") if p.is_file()), None)
    assert script is not None, f"no carto-mcp script in {scripts}: install the package (pip install -e .)"
    return script


#: How a person may run `install` without carto-mcp on PATH: the venv's script by path, or the module.
INSTALL_LAUNCHES = {
    "script": lambda: [str(installed_script())],
    "module": lambda: [sys.executable, "-m", "carto_mcp"],
}


def tool_names(command: str, args: list[str], env: dict[str, str], cwd: Path) -> set[str]:
    """Start `command args` as a host does (stdio), initialize, and list the tools; bounded by a timeout."""
    from mcp import Client, StdioServerParameters

    params = StdioServerParameters(command=command, args=args, env=env, cwd=str(cwd))

    async def names() -> set[str]:
        with anyio.fail_after(60):
            async with Client(params, read_timeout_seconds=60) as client:
                return {tool.name for tool in (await client.list_tools()).tools}

    return anyio.run(names)


@pytest.mark.slow
@pytest.mark.parametrize("launch", sorted(INSTALL_LAUNCHES))
@pytest.mark.parametrize("client", ALL_CLIENTS)
def test_install_with_an_empty_path_writes_a_command_that_starts_the_server(
    client: str, launch: str, tmp_path: Path
) -> None:
    """Run by absolute path with PATH empty, `install` still writes a command that exists and serves MCP."""
    config = tmp_path / "config.json"
    env = {"HOME": str(tmp_path), "PATH": ""}
    argv = [*INSTALL_LAUNCHES[launch](), "install", client, "--sandbox", "--config", str(config)]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    entry = json.loads(config.read_text())[key(client)]["carto"]
    command, args = entry["command"], entry["args"]
    assert Path(command).is_absolute() and Path(command).is_file()
    if launch == "script":
        assert (command, args) == (str(installed_script().resolve()), ["serve", "--sandbox"])
    else:
        assert (command, args) == (sys.executable, ["-m", "carto_mcp", "serve", "--sandbox"])
    assert f"runs:   {command} " in done.stdout  # the output says what it wrote

    # The host's side: the written command and args, with no PATH either.
    names = tool_names(command, args, {"HOME": str(tmp_path), "PATH": ""}, tmp_path)
    assert {"list_credentials", "create_token", "whoami"} <= names
