"""The files under manifests/ agree with the code: tools, env vars, package name and version, commands.

Each client snippet, the MCP Bundle and the registry entry are what people copy or what hosts
install; a drift (a renamed tool, an env var nobody reads, a stale version) breaks them silently,
so every fact they state is checked here against the running server, the CLI and pyproject.toml.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from carto_mcp import cli, config, install, profiles
from carto_mcp.config import Settings
from carto_mcp.server.app import build_server

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser as a package, installed by the `test` extra
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
MANIFESTS = ROOT / "manifests"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
NAME = PYPROJECT["project"]["name"]
VERSION = PYPROJECT["project"]["version"]
JSON_FILES = sorted(MANIFESTS.rglob("*.json"))
MCPB = MANIFESTS / "mcpb"

#: Client snippet -> (servers key, the install client it corresponds to).
SNIPPETS = {
    "claude_desktop_config.json": ("mcpServers", "claude-desktop"),
    "claude-code/.mcp.json": ("mcpServers", "claude-code"),
    "cursor/mcp.json": ("mcpServers", "cursor"),
    "vscode/mcp.json": ("servers", "vscode"),
    "gemini/settings.json": ("mcpServers", "gemini"),
}


def load(relative: str) -> Any:
    return json.loads((MANIFESTS / relative).read_text(encoding="utf-8"))


def server_tools() -> list[Any]:
    return anyio.run(build_server(Settings()).list_tools)


def first_sentence(description: str | None) -> str:
    """The same summary `carto-mcp tools` prints."""
    return (description or "").split(". ")[0].rstrip(".") + "."


def known_env_vars() -> set[str]:
    """Every environment variable the settings and the profile resolver read (each named once, as ENV_*)."""
    return {value for module in (config, profiles) for name, value in vars(module).items() if name.startswith("ENV_")}


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def env_names_in(document: Any) -> set[str]:
    names: set[str] = set()
    for key, value in walk(document):
        if key == "env" and isinstance(value, dict):
            names |= set(value)
        if key == "environmentVariables":
            names |= {item["name"] for item in value}
    return names


def serve_argv(command: str, args: list[str]) -> list[str]:
    """The `carto-mcp` arguments of a launch command (`carto-mcp serve …` or `uvx carto-mcp serve …`)."""
    if command == "uvx":
        assert args[0] in (NAME, f"{NAME}@latest", f"{NAME}=={VERSION}"), args
        return args[1:]
    assert Path(command).name == NAME, command
    return args


def assert_serve(argv: list[str]) -> Any:
    parsed, extra = cli.build_parser().parse_known_args(argv)
    assert extra == [], f"`carto-mcp {' '.join(argv)}`: unknown arguments {extra}"
    assert parsed.command == "serve"
    return parsed


def load_bundle_entry() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mcpb_bundle_server", MCPB / "src" / "server.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- every file parses and is where it should be ------------------------------------------------


def test_the_expected_files_exist() -> None:
    relative = {p.relative_to(MANIFESTS).as_posix() for p in JSON_FILES}
    assert relative >= {*SNIPPETS, "server.json", "mcpb/manifest.json"}
    assert (MANIFESTS / "claude-code" / "README.md").is_file()
    assert (MCPB / "pyproject.toml").is_file()


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.relative_to(MANIFESTS).as_posix())
def test_every_json_file_parses_as_an_object(path: Path) -> None:
    data = json.loads(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and data


@pytest.mark.parametrize("path", JSON_FILES, ids=lambda p: p.relative_to(MANIFESTS).as_posix())
def test_every_env_var_is_one_the_code_reads(path: Path) -> None:
    unknown = env_names_in(json.loads(path.read_text(encoding="utf-8"))) - known_env_vars()
    assert not unknown, f"{path.name} names env vars carto-mcp never reads: {sorted(unknown)}"


# --- client snippets ------------------------------------------------------------------------------


@pytest.mark.parametrize("relative", sorted(SNIPPETS))
def test_client_snippets_run_carto_mcp_serve(relative: str) -> None:
    servers_key, client = SNIPPETS[relative]
    data = load(relative)
    assert install.CLIENTS[client].servers_key == servers_key  # the installer writes the same shape
    servers = data[servers_key]
    assert servers
    for entry in servers.values():
        assert_serve(serve_argv(entry["command"], entry["args"]))
        if install.CLIENTS[client].stdio_type:
            assert entry["type"] == "stdio"
        for name, value in entry.get("env", {}).items():
            if name in (profiles.ENV_API_TOKEN, profiles.ENV_M2M_CLIENT_SECRET):
                assert value.startswith("${"), f"{relative} hard-codes {name}"


def test_claude_desktop_ships_the_installed_entry_first_and_names_the_uvx_one_for_its_release() -> None:
    """`uvx carto-mcp` cannot start before a PyPI release: it must not be the entry people copy first."""
    servers = load("claude_desktop_config.json")["mcpServers"]
    assert list(servers) == ["carto", "carto-uvx-after-release"]
    installed, uvx = servers["carto"], servers["carto-uvx-after-release"]
    assert Path(installed["command"]).name == NAME and Path(installed["command"]).is_absolute()
    assert installed["args"] == ["serve"]
    assert (uvx["command"], uvx["args"]) == ("uvx", [NAME, "serve"])
    for entry in servers.values():
        assert set(entry["env"]) == {profiles.ENV_PROFILE, "CARTO_MCP_READ_ONLY"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme[readme.index("### Claude Desktop") :]
    block = section[section.index("```json\n") + 8 : section.index("\n```", section.index("```json\n"))]
    assert json.loads(block) == load("claude_desktop_config.json")  # the README shows this very file
    assert "which carto-mcp" in section


def test_the_readme_says_which_snippets_need_a_pypi_release() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("**Which snippets need a PyPI release.**")
    paragraph = readme[start : readme.index("\n\n", start)]
    for needs_release in ("carto-uvx-after-release", "uvx carto-mcp serve", "manifests/mcpb/", "manifests/server.json"):
        assert needs_release in paragraph
    claude_code = (MANIFESTS / "claude-code" / "README.md").read_text(encoding="utf-8")
    uvx_line = claude_code.index("claude mcp add carto -- uvx carto-mcp serve")
    assert "released" in claude_code[uvx_line - 200 : uvx_line]


def test_vscode_prompts_for_the_token_as_a_password() -> None:
    data = load("vscode/mcp.json")
    inputs = {item["id"]: item for item in data["inputs"]}
    env = data["servers"]["carto"]["env"]
    match = re.fullmatch(r"\$\{input:([\w.-]+)\}", env[profiles.ENV_API_TOKEN])
    assert match, env
    prompt = inputs[match[1]]
    assert prompt["type"] == "promptString" and prompt["password"] is True


#: `claude mcp add` options as Claude Code 2.1 declares them: `-e`/`-H` are variadic (`<env...>`).
CLAUDE_VARIADIC = {"-e", "--env", "-H", "--header"}
CLAUDE_SINGLE = {"-s", "--scope", "-t", "--transport", "--callback-port", "--client-id"}


def claude_mcp_add(line: str) -> tuple[list[str], dict[str, list[str]], list[str]]:
    """Split a `claude mcp add` line the way Claude Code's parser does: (positionals, options, command).

    A variadic option takes every following word up to the next option or `--`, so a server
    name written after `-e KEY=value` becomes one more value of `-e` (issue 13, item 1).
    """
    words = line.split()
    assert words[:3] == ["claude", "mcp", "add"], line
    head, command = (words[3 : words.index("--")], words[words.index("--") + 1 :]) if "--" in words else (words[3:], [])
    positionals: list[str] = []
    options: dict[str, list[str]] = {}
    i = 0
    while i < len(head):
        word = head[i]
        if word in CLAUDE_VARIADIC:
            values = []
            while i + 1 < len(head) and not head[i + 1].startswith("-"):
                i += 1
                values.append(head[i])
            options.setdefault(word, []).extend(values)
        elif word in CLAUDE_SINGLE:
            i += 1
            options.setdefault(word, []).append(head[i])
        else:
            assert not word.startswith("-"), f"{line}: unknown option {word}"
            positionals.append(word)
        i += 1
    return positionals, options, command


def claude_code_lines() -> list[str]:
    """Every `claude mcp add` line of the two READMEs that document Claude Code."""
    texts = [(MANIFESTS / "claude-code" / "README.md").read_text(encoding="utf-8")]
    texts.append((ROOT / "README.md").read_text(encoding="utf-8"))
    lines = [line.split("#")[0].strip() for text in texts for line in text.splitlines()]
    return [line for line in lines if line.startswith("claude mcp add")]


def test_claude_mcp_add_parsing_catches_a_name_after_e() -> None:
    """The failing form from the issue: `-e` eats the name, leaving no server name at all."""
    positionals, options, _ = claude_mcp_add("claude mcp add -e A=1 -e B=2 carto -- carto-mcp serve")
    assert positionals == [] and options["-e"] == ["A=1", "B=2", "carto"]


@pytest.mark.parametrize("line", claude_code_lines())
def test_claude_code_commands_are_ones_claude_code_accepts(line: str) -> None:
    positionals, options, command = claude_mcp_add(line)
    assert len(positionals) == 1 and re.fullmatch(r"[\w-]+", positionals[0]), f"{line}: no single server name"
    for value in options.get("-e", []):
        name, sep, _ = value.partition("=")
        assert sep and name in known_env_vars(), f"{line}: -e {value} is not KEY=value of a variable we read"
    assert_serve(serve_argv(command[0], command[1:]))


def test_the_claude_code_docs_show_env_options_and_both_scopes() -> None:
    lines = claude_code_lines()
    assert "claude mcp add carto -- carto-mcp serve" in lines
    assert any(claude_mcp_add(line)[1].get("-e") for line in lines)
    assert any(claude_mcp_add(line)[1].get("--scope") == ["project"] for line in lines)
    text = (MANIFESTS / "claude-code" / "README.md").read_text(encoding="utf-8")
    installs = [line for line in text.splitlines() if line.startswith("carto-mcp install")]
    for line in installs:
        assert line.split()[2] in install.CLIENTS


def read_only_texts() -> dict[str, str]:
    """Every place that tells a person what read-only mode leaves."""
    serve = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    row = next(line for line in readme.splitlines() if line.startswith("| `--read-only`"))
    env = {item["name"]: item for item in load("server.json")["packages"][0]["environmentVariables"]}
    return {
        "README --read-only row": row,
        "README Claude Desktop": readme[readme.index("`CARTO_MCP_READ_ONLY=1` registers") :][:200],
        "serve --help": serve["serve"].format_help(),
        "install --help": serve["install"].format_help(),
        "mcpb user_config.read_only": load("mcpb/manifest.json")["user_config"]["read_only"]["description"],
        "server.json CARTO_MCP_READ_ONLY": env["CARTO_MCP_READ_ONLY"]["description"],
    }


@pytest.mark.parametrize("where", sorted(read_only_texts()))
def test_every_read_only_description_names_the_tools_read_only_mode_serves(where: str) -> None:
    """Hosts show five tools under --read-only; every text that describes the mode names those five."""
    tools = anyio.run(build_server(Settings(read_only=True)).list_tools)
    names = [tool.name for tool in tools]
    assert names == ["list_credentials", "get_credential", "audit_credentials", "whoami", "list_profiles"]
    text = " ".join(read_only_texts()[where].split())
    for name in names:
        assert name in text, f"{where} does not name {name}: {text[:300]}"
    assert "list/get" not in text and "list and get" not in text


# --- the MCP Bundle -----------------------------------------------------------------------------------


def test_mcpb_tools_are_the_servers_tools() -> None:
    manifest = load("mcpb/manifest.json")
    expected = [{"name": t.name, "description": first_sentence(t.description)} for t in server_tools()]
    hint = "update manifests/mcpb/manifest.json `tools` to:\n" + json.dumps(expected, indent=2, ensure_ascii=False)
    listed = manifest["tools"]
    assert len({t["name"] for t in listed}) == len(listed), "duplicate tool names"
    assert sorted(listed, key=lambda t: t["name"]) == sorted(expected, key=lambda t: t["name"]), hint
    assert manifest.get("tools_generated", False) is False


def test_mcpb_package_and_version() -> None:
    manifest = load("mcpb/manifest.json")
    assert manifest["name"] == NAME and manifest["version"] == VERSION
    bundle = tomllib.loads((MCPB / "pyproject.toml").read_text(encoding="utf-8"))
    assert bundle["project"]["version"] == VERSION
    assert bundle["project"]["dependencies"] == [f"{NAME}=={VERSION}"]
    assert bundle["project"]["requires-python"] == PYPROJECT["project"]["requires-python"]
    assert manifest["compatibility"]["runtimes"]["python"] == PYPROJECT["project"]["requires-python"]


def test_mcpb_server_runs_the_entry_point_with_user_config() -> None:
    manifest = load("mcpb/manifest.json")
    server = manifest["server"]
    assert manifest["manifest_version"] == "0.4" and server["type"] == "uv"
    entry = server["entry_point"]
    assert (MCPB / entry).is_file()
    config = server["mcp_config"]
    assert config["command"] == "uv" and config["args"][-1] == entry and "${__dirname}" in config["args"]
    user_config = manifest["user_config"]
    referenced = set(re.findall(r"\$\{user_config\.(\w+)\}", json.dumps(config)))
    assert referenced == set(user_config)
    assert config["env"][profiles.ENV_API_TOKEN] == "${user_config.api_token}"
    assert user_config["api_token"]["sensitive"] is True and user_config["api_token"]["required"] is False
    assert user_config["read_only"]["type"] == "boolean"
    assert config["env"]["CARTO_MCP_READ_ONLY"] == "${user_config.read_only}"
    assert config["env"][profiles.ENV_PROFILE] == "${user_config.profile}"
    assert user_config["secrets_dir"]["type"] == "directory" and user_config["secrets_dir"]["required"] is False
    assert config["env"]["CARTO_MCP_SECRETS_DIR"] == "${user_config.secrets_dir}"
    # What the bundle's entry point runs is `carto-mcp serve`.
    assert_serve(load_bundle_entry().ARGV)


def test_mcpb_entry_drops_settings_left_empty() -> None:
    module = load_bundle_entry()
    environ = {
        "CARTO_API_TOKEN": "${user_config.api_token}",
        "CARTO_PROFILE": "staging",
        "CARTO_MCP_READ_ONLY": "${user_config.read_only}",
        "OTHER": "${user_config.other}",
    }
    module.drop_unset_placeholders(environ)
    assert environ == {"CARTO_PROFILE": "staging", "OTHER": "${user_config.other}"}


def bundle_entry(tmp_path: Path, **env: str) -> Any:
    """The bundle's entry point as a host starts it (stdio, on the sandbox), with these settings."""
    from mcp import StdioServerParameters

    manifest = load("mcpb/manifest.json")
    return StdioServerParameters(
        command=sys.executable,
        args=[str(MCPB / manifest["server"]["entry_point"])],
        env={
            "HOME": str(tmp_path),
            "CARTO_MCP_SANDBOX": "1",
            "CARTO_MCP_SANDBOX_DB": str(tmp_path / "sandbox.sqlite3"),
            "CARTO_API_TOKEN": "${user_config.api_token}",
            **env,
        },
    )


@pytest.mark.slow
def test_mcpb_entry_point_serves_the_manifest_tools(tmp_path: Path) -> None:
    """Start the bundle's entry point as a host would (stdio, unsubstituted optional settings)."""
    from mcp import Client

    manifest = load("mcpb/manifest.json")
    params = bundle_entry(
        tmp_path,
        CARTO_PROFILE="${user_config.profile}",
        CARTO_MCP_READ_ONLY="${user_config.read_only}",
        CARTO_MCP_SECRETS_DIR="${user_config.secrets_dir}",
    )

    async def names() -> set[str]:
        with anyio.fail_after(60):
            async with Client(params, read_timeout_seconds=60) as client:
                return {tool.name for tool in (await client.list_tools()).tools}

    assert anyio.run(names) == {tool["name"] for tool in manifest["tools"]}


@pytest.mark.slow
def test_mcpb_secrets_folder_receives_a_new_token(tmp_path: Path) -> None:
    """The bundle's "Folder for new secrets" setting reaches the server: a new token goes to a 0600 file there."""
    from mcp import Client

    folder = tmp_path / "secrets"
    params = bundle_entry(tmp_path, CARTO_MCP_SECRETS_DIR=str(folder))
    grants = [{"connection": "carto_dw", "source": "carto.shared.t"}]
    arguments = {"grants": grants, "apis": ["sql"], "expiration_date": "7d"}

    async def create() -> Any:
        with anyio.fail_after(60):
            async with Client(params, read_timeout_seconds=60) as client:
                return await client.call_tool("create_token", arguments)

    result = anyio.run(create)
    assert not result.is_error
    created = result.structured_content
    assert created["delivery"] == "file" and created.get("token") is None
    written = Path(created["secret_file"])
    assert written.parent == folder and (written.stat().st_mode & 0o777) == 0o600
    assert "CARTO_API_ACCESS_TOKEN=eyJ" in written.read_text(encoding="utf-8")


# --- the MCP registry entry ----------------------------------------------------------------------------


def test_server_json_package_matches_pyproject() -> None:
    data = load("server.json")
    assert data["$schema"].startswith("https://static.modelcontextprotocol.io/schemas/")
    assert data["$schema"].endswith("/server.schema.json")
    assert re.fullmatch(r"[a-zA-Z0-9.-]+/[a-zA-Z0-9._-]+", data["name"])
    assert 1 <= len(data["description"]) <= 100
    assert data["version"] == VERSION
    [package] = data["packages"]
    assert package["registryType"] == "pypi"
    assert package["identifier"] == NAME and package["version"] == VERSION
    assert package["transport"] == {"type": "stdio"}
    assert package.get("runtimeHint") == "uvx"
    argv = [arg["value"] for arg in package.get("runtimeArguments", []) + package["packageArguments"]]
    assert_serve(argv)
    assert NAME in PYPROJECT["project"]["scripts"]  # `uvx carto-mcp` finds a command of that name


def test_server_json_marks_secrets() -> None:
    variables = {item["name"]: item for item in load("server.json")["packages"][0]["environmentVariables"]}
    assert variables[profiles.ENV_API_TOKEN]["isSecret"] is True
    assert variables[profiles.ENV_M2M_CLIENT_SECRET]["isSecret"] is True
    for name, item in variables.items():
        if re.search("TOKEN|SECRET", name):
            assert item["isSecret"] is True, name
        assert item.get("isRequired", False) is False, f"{name}: the credentials file works without it"
        assert "value" not in item, f"{name}: fixed values cannot be configured"


def test_readme_carries_the_registry_name() -> None:
    name = load("server.json")["name"]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"<!-- mcp-name: {name} -->" in readme
