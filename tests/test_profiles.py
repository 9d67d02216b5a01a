"""Profile resolution: the CARTO CLI's priority table, the credentials file, migration and secrecy."""

from __future__ import annotations

import base64
import json
import os
import stat
import sys
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from carto_mcp import profiles
from carto_mcp.errors import ProfileError
from carto_mcp.profiles import (
    ProfileInputs,
    ProfileResolver,
    ResolvedProfile,
    SourceReport,
    default_credentials_path,
    default_legacy_path,
    migration,
    resolve_profile,
    sandbox_profile,
)

# Distinctive fake values: none of them is (or looks like) a real credential, and every
# secrecy assertion greps for them in full.
FILE_TOKEN = "eyJfake.aaaa.bbbb-secret-ZZ91"
FILE_TOKEN_2 = "eyJfake.cccc.dddd-secret-QQ47"  # same length as FILE_TOKEN on purpose
STAGING_TOKEN = "eyJfake.stag.ing0-secret-SS23"
FLAG_TOKEN = "eyJfake.flag.flag-secret-FF11"
ENV_TOKEN = "eyJfake.envv.envv-secret-EE22"
LEGACY_TOKEN = "eyJfake.lgcy.lgcy-secret-LL33"
CLIENT_SECRET = "fake-m2m-secret-not-real-CS44"
SECRETS = (FILE_TOKEN, FILE_TOKEN_2, STAGING_TOKEN, FLAG_TOKEN, ENV_TOKEN, LEGACY_TOKEN, CLIENT_SECRET)


def nested_file(current: str | None = "production") -> dict[str, Any]:
    data: dict[str, Any] = {
        "profiles": {
            "production": {
                "token": FILE_TOKEN,
                "tenant_id": "gcp-us-east1",
                "tenant_domain": "carto.example.test",
                "organization_id": "ac_fake0001",
                "organization_name": "example-prod",
                "user_email": "dev@example.test",
            },
            "staging": {
                "token": STAGING_TOKEN,
                "tenant_id": "gcp-eu-west1",
                "tenant_domain": "staging.example.test",
                "organization_id": "ac_fake0002",
                "organization_name": "example-staging",
                "user_email": "dev@example.test",
            },
        }
    }
    if current is not None:
        data["current_profile"] = current
    return data


OLD_FORMAT = {
    "token": FILE_TOKEN,
    "tenant_id": "gcp-us-east1",
    "tenant_domain": "carto.example.test",
    "organization_id": "ac_fake0001",
    "organization_name": "example-prod",
    "user_email": "dev@example.test",
}


@pytest.fixture(autouse=True)
def environ(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict[str, str]:
    """A clean environment: no CARTO_* variables anywhere and HOME in a temporary directory."""
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith("CARTO_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("USERPROFILE", str(home))
    return {"HOME": str(home)}


@pytest.fixture
def home(environ: dict[str, str]) -> Path:
    return Path(environ["HOME"])


@pytest.fixture
def creds_path(home: Path) -> Path:
    return home / ".carto_credentials.json"


@pytest.fixture
def legacy_path(home: Path) -> Path:
    return home / ".carto" / "config.json"


def write_json(path: Path, data: Any, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2))
    path.chmod(mode)
    return path


def resolver(environ: dict[str, str], **inputs: str) -> ProfileResolver:
    return ProfileResolver(ProfileInputs(**inputs), environ=environ)


def resolve_error(environ: dict[str, str], **inputs: str) -> str:
    with pytest.raises(ProfileError) as info:
        resolver(environ, **inputs).resolve()
    return str(info.value)


def assert_no_secret(*texts: object) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in str(text)


def fake_jwt(payload: dict[str, Any]) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"eyJfake.{body}.fake-signature-ZZ91"


# --- priority table -------------------------------------------------------------------------


def test_the_token_flag_wins_over_every_other_source(environ, creds_path, legacy_path):
    """--token beats CARTO_API_TOKEN, client credentials, the credentials file and the legacy file."""
    write_json(creds_path, nested_file())
    write_json(legacy_path, {"token": LEGACY_TOKEN, "tenant_id": "gcp-us-east1"})
    environ.update({"CARTO_API_TOKEN": ENV_TOKEN, "CARTO_CLIENT_ID": "cid", "CARTO_CLIENT_SECRET": CLIENT_SECRET})
    result = resolver(environ, token=FLAG_TOKEN).resolve()
    assert (result.source, result.token) == ("flag", FLAG_TOKEN)
    assert result.client_id is None and result.client_secret is None
    assert "--token" in result.reason


def test_the_env_token_wins_over_client_credentials_and_files(environ, creds_path, legacy_path):
    """CARTO_API_TOKEN beats client credentials and both files, and the reason says so."""
    write_json(creds_path, nested_file())
    write_json(legacy_path, {"token": LEGACY_TOKEN, "tenant_id": "gcp-us-east1"})
    environ.update({"CARTO_API_TOKEN": ENV_TOKEN, "CARTO_CLIENT_ID": "cid", "CARTO_CLIENT_SECRET": CLIENT_SECRET})
    result = resolver(environ).resolve()
    assert (result.source, result.token) == ("env", ENV_TOKEN)
    assert result.reason == "CARTO_API_TOKEN is set (it overrides the credentials file)"


def test_client_credentials_from_env_win_over_the_credentials_file(environ, creds_path):
    """CARTO_CLIENT_ID + CARTO_CLIENT_SECRET give a client_credentials profile with no token yet."""
    write_json(creds_path, nested_file())
    environ.update({"CARTO_CLIENT_ID": "fake-client-id", "CARTO_CLIENT_SECRET": CLIENT_SECRET})
    result = resolver(environ).resolve()
    assert result.source == "client_credentials"
    assert result.token is None
    assert (result.client_id, result.client_secret) == ("fake-client-id", CLIENT_SECRET)
    assert result.base_url == "https://gcp-us-east1.api.carto.com"
    assert "CARTO_CLIENT_ID" in result.reason


def test_client_credentials_from_arguments_are_used_without_env(environ):
    """--client-id and the --client-secret-file value are a client_credentials source on their own."""
    result = resolver(
        environ, client_id="fake-client-id", client_secret=CLIENT_SECRET, base_url="https://api.example.test"
    ).resolve()
    assert (result.source, result.client_id, result.client_secret) == (
        "client_credentials",
        "fake-client-id",
        CLIENT_SECRET,
    )
    assert result.name == "default"
    assert "--client-id" in result.reason


@pytest.mark.parametrize(
    ("set_vars", "missing"),
    [
        ({"CARTO_CLIENT_ID": "fake-client-id"}, "CARTO_CLIENT_SECRET"),
        ({"CARTO_CLIENT_SECRET": CLIENT_SECRET}, "CARTO_CLIENT_ID"),
    ],
)
def test_half_a_client_credentials_pair_is_an_error_naming_the_missing_half(environ, set_vars, missing):
    """Only one of CARTO_CLIENT_ID / CARTO_CLIENT_SECRET set raises a ProfileError naming the other."""
    environ.update(set_vars)
    message = resolve_error(environ, base_url="https://api.example.test")
    assert "incomplete" in message and missing in message
    assert_no_secret(message)


@pytest.mark.parametrize(
    ("present", "missing", "flag"),
    [
        ({"CARTO_CLIENT_ID": "fake-client-id"}, "CARTO_CLIENT_SECRET", "--client-secret-file"),
        # In GitHub Actions Gemini CLI strips nearly every variable, the client id too.
        ({"CARTO_CLIENT_SECRET": CLIENT_SECRET}, "CARTO_CLIENT_ID", "--client-id"),
    ],
)
def test_under_gemini_a_missing_half_says_gemini_may_have_removed_it(environ, present, missing, flag):
    """Gemini CLI strips variables from a server's env: the error says so and how to pass the missing one."""
    environ.update({**present, "GEMINI_CLI": "1"})
    with pytest.raises(ProfileError) as info:
        resolver(environ, base_url="https://api.example.test").resolve()
    fix = info.value.fix or ""
    assert "Gemini CLI" in fix and f'"{missing}": "${missing}"' in fix
    assert "carto-mcp install gemini" in fix and flag in fix
    assert f"the client {missing.split('_')[-1].lower()} is missing" in info.value.message
    assert_no_secret(str(info.value))


def test_under_gemini_no_credentials_at_all_names_the_stripped_variables(environ):
    environ["GEMINI_CLI"] = "1"
    with pytest.raises(ProfileError) as info:
        resolver(environ).resolve()
    fix = info.value.fix or ""
    assert "carto auth login" in fix
    assert '"CARTO_API_TOKEN": "$CARTO_API_TOKEN"' in fix and "carto-mcp install gemini" in fix


@pytest.mark.parametrize("gemini", [None, "0", ""])
def test_without_gemini_the_errors_say_nothing_about_it(environ, gemini):
    if gemini is not None:
        environ["GEMINI_CLI"] = gemini
    assert "Gemini" not in resolve_error(environ)
    environ["CARTO_CLIENT_ID"] = "fake-client-id"
    assert "Gemini" not in resolve_error(environ, base_url="https://api.example.test")


def test_half_a_client_credentials_pair_is_only_a_warning_when_a_token_wins(environ):
    """An incomplete pair behind a winning token is reported as a warning, not an error."""
    environ.update({"CARTO_API_TOKEN": ENV_TOKEN, "CARTO_CLIENT_ID": "fake-client-id"})
    result = resolver(environ, base_url="https://api.example.test").resolve()
    assert result.source == "env"
    assert any("CARTO_CLIENT_SECRET" in w for w in result.warnings)


def test_the_credentials_file_wins_over_the_legacy_file(environ, creds_path, legacy_path):
    """With no token or client credentials, the credentials file beats ~/.carto/config.json."""
    write_json(creds_path, nested_file())
    write_json(legacy_path, {"token": LEGACY_TOKEN, "tenant_id": "gcp-us-east1"})
    result = resolver(environ).resolve()
    assert (result.source, result.name, result.token, result.path) == (
        "credentials_file",
        "production",
        FILE_TOKEN,
        creds_path,
    )
    assert result.tenant_domain == "carto.example.test"
    assert result.organization_id == "ac_fake0001"
    assert result.organization_name == "example-prod"
    assert result.user_email == "dev@example.test"
    assert "current_profile" in result.reason


@pytest.mark.parametrize("key", ["token", "access_token", "api_token", "api_key"])
def test_the_legacy_file_is_used_when_nothing_else_is_there(environ, legacy_path, key):
    """~/.carto/config.json is the last source; its token is read from any of the known keys."""
    write_json(legacy_path, {key: LEGACY_TOKEN, "tenant_id": "gcp-us-east1"})
    result = resolver(environ).resolve()
    assert (result.source, result.token, result.path) == ("legacy_file", LEGACY_TOKEN, legacy_path)
    assert result.base_url == "https://gcp-us-east1.api.carto.com"


def test_the_legacy_token_keys_are_tried_in_the_documented_order(environ, legacy_path):
    """`token` is preferred over `access_token`, `api_token` and `api_key`."""
    write_json(legacy_path, {"api_key": FILE_TOKEN, "token": LEGACY_TOKEN, "tenant_id": "gcp-us-east1"})
    assert resolver(environ).resolve().token == LEGACY_TOKEN


@pytest.mark.parametrize("key", ["base_url", "api_base_url"])
def test_the_legacy_base_url_keys_beat_its_tenant_id(environ, legacy_path, key):
    """A legacy `base_url`/`api_base_url` is used over the tenant template, trailing slash removed."""
    write_json(legacy_path, {"token": LEGACY_TOKEN, key: "https://carto.example.test/api/", "tenant_id": "x"})
    assert resolver(environ).resolve().base_url == "https://carto.example.test/api"


@pytest.mark.parametrize(
    ("inputs", "env", "expected", "how"),
    [
        ({"profile": "staging"}, {"CARTO_PROFILE": "production"}, "staging", "--profile"),
        ({}, {"CARTO_PROFILE": "staging"}, "staging", "CARTO_PROFILE"),
        ({}, {}, "production", "current_profile"),
    ],
)
def test_the_profile_is_chosen_by_flag_then_env_then_current_profile(environ, creds_path, inputs, env, expected, how):
    """--profile beats CARTO_PROFILE, which beats the file's current_profile."""
    write_json(creds_path, nested_file(current="production"))
    environ.update(env)
    result = resolver(environ, **inputs).resolve()
    assert result.name == expected
    assert how in result.reason


def test_the_only_profile_is_used_when_there_is_no_current_profile(environ, creds_path):
    """A file with exactly one profile and no current_profile uses that profile."""
    data = nested_file(current=None)
    del data["profiles"]["staging"]
    write_json(creds_path, data)
    result = resolver(environ).resolve()
    assert result.name == "production"
    assert "only profile" in result.reason


def test_several_profiles_without_a_current_profile_is_an_error_listing_them(environ, creds_path):
    """With several profiles and no current_profile the error lists them and says how to choose."""
    write_json(creds_path, nested_file(current=None))
    message = resolve_error(environ)
    assert str(creds_path) in message
    assert "production" in message and "staging" in message
    assert "--profile" in message and "CARTO_PROFILE" in message


def test_a_token_source_takes_tenant_and_org_from_the_selected_file_profile(environ, creds_path):
    """For flag/env tokens the base URL and org metadata come from the profile chosen as usual."""
    write_json(creds_path, nested_file())
    environ.update({"CARTO_API_TOKEN": ENV_TOKEN, "CARTO_PROFILE": "staging"})
    result = resolver(environ).resolve()
    assert (result.source, result.name, result.token) == ("env", "staging", ENV_TOKEN)
    assert result.base_url == "https://gcp-eu-west1.api.carto.com"
    assert result.organization_name == "example-staging"
    assert result.path == creds_path


def test_a_token_source_without_a_credentials_file_needs_a_base_url(environ):
    """A flag token with no file and no --base-url is refused with the documented message."""
    message = resolve_error(environ, token=FLAG_TOKEN)
    assert message.startswith("no API base URL")
    assert message.endswith("; pass --base-url or log in with `carto auth login` so the profile has a tenant_id")
    result = resolver(environ, token=FLAG_TOKEN, base_url="https://api.example.test").resolve()
    assert (result.name, result.base_url, result.path) == ("default", "https://api.example.test", None)


def test_a_broken_credentials_file_behind_a_token_is_a_warning_when_a_base_url_is_given(environ, creds_path):
    """A token with --base-url still works when the file is broken; the problem becomes a warning."""
    creds_path.write_text("{not json")
    result = resolver(environ, token=FLAG_TOKEN, base_url="https://api.example.test").resolve()
    assert result.source == "flag"
    assert any(str(creds_path) in w and "not valid JSON" in w for w in result.warnings)


# --- tokens and base URLs -----------------------------------------------------------------------


@pytest.mark.parametrize("where", ["flag", "env", "file", "legacy"])
def test_a_bearer_prefix_is_stripped_from_every_source(environ, creds_path, legacy_path, where):
    """Tokens are accepted with or without `Bearer `; the resolved token never has it."""
    bearer = f"Bearer {FILE_TOKEN}"
    inputs: dict[str, str] = {}
    if where == "flag":
        inputs = {"token": bearer, "base_url": "https://api.example.test"}
    elif where == "env":
        environ.update({"CARTO_API_TOKEN": bearer, "CARTO_MCP_BASE_URL": "https://api.example.test"})
    elif where == "file":
        data = nested_file()
        data["profiles"]["production"]["token"] = bearer
        write_json(creds_path, data)
    else:
        write_json(legacy_path, {"token": bearer, "tenant_id": "gcp-us-east1"})
    assert resolver(environ, **inputs).resolve().token == FILE_TOKEN


def test_a_token_with_an_inner_line_break_is_refused_without_echoing_it(environ):
    """A token that cannot be a bearer value is a ProfileError that does not show the token."""
    message = resolve_error(environ, token=f"{FLAG_TOKEN}\n{FLAG_TOKEN}", base_url="https://api.example.test")
    assert "--token" in message
    assert_no_secret(message)


PLACEHOLDERS = [
    "${input:carto-api-token}",  # VS Code's prompt, passed on by a client without `inputs` (mcporter)
    "$CARTO_API_TOKEN",  # a Gemini-style reference nobody expanded
    "${CARTO_API_TOKEN}",
    "${env:CARTO_API_TOKEN}",  # Cursor / VS Code
    "$env:CARTO_API_TOKEN",  # PowerShell
    "Bearer ${input:x}",
]


@pytest.mark.parametrize("placeholder", PLACEHOLDERS)
@pytest.mark.parametrize("where", ["flag", "env", "file", "legacy"])
def test_a_placeholder_token_is_refused_naming_where_it_came_from(environ, creds_path, legacy_path, where, placeholder):
    """An unsubstituted `${input:…}` / `$VAR` is not a token: refused before any request, naming its source."""
    inputs: dict[str, str] = {"base_url": "https://api.example.test"}
    if where == "flag":
        inputs["token"] = placeholder
        origin = "--token"
    elif where == "env":
        environ["CARTO_API_TOKEN"] = placeholder
        origin = "CARTO_API_TOKEN"
    elif where == "file":
        data = nested_file()
        data["profiles"]["production"]["token"] = placeholder
        write_json(creds_path, data)
        origin = f"`profiles.production.token` in {creds_path}"
    else:
        write_json(legacy_path, {"token": placeholder, "tenant_id": "gcp-us-east1"})
        origin = str(legacy_path)
    with pytest.raises(ProfileError) as info:
        resolver(environ, **inputs).resolve()
    bare = placeholder.removeprefix("Bearer ")
    assert origin in info.value.message and f"`{bare}`" in info.value.message
    assert "did not substitute" in info.value.message
    assert "inputs" in (info.value.fix or "")


@pytest.mark.parametrize("where", ["CARTO_CLIENT_ID", "CARTO_CLIENT_SECRET"])
def test_a_placeholder_client_credential_is_refused(environ, where):
    environ.update({"CARTO_CLIENT_ID": "fake-client-id", "CARTO_CLIENT_SECRET": CLIENT_SECRET})
    environ[where] = "${input:m2m}"
    message = resolve_error(environ, base_url="https://api.example.test")
    assert where in message and "`${input:m2m}`" in message and "did not substitute" in message
    assert_no_secret(message)


@pytest.mark.parametrize("token", ["eyJfake.a$b.c", "tok$", "$", "${", "a${input:x}", "$1abc"])
def test_a_token_that_merely_contains_a_dollar_is_accepted(environ, token):
    resolved = resolver(environ, token=token, base_url="https://api.example.test").resolve()
    assert resolved.token == token


@pytest.mark.parametrize(
    ("inputs", "env", "expected", "origin"),
    [
        (
            {"base_url": "https://flag.example.test/api/"},
            {"CARTO_MCP_BASE_URL": "https://env.example.test"},
            "https://flag.example.test/api",
            "--base-url",
        ),
        ({}, {"CARTO_MCP_BASE_URL": "https://env.example.test//"}, "https://env.example.test", "CARTO_MCP_BASE_URL"),
        ({}, {}, "https://gcp-us-east1.api.carto.com", "tenant_id"),
    ],
)
def test_the_base_url_is_flag_then_env_then_tenant_template(environ, creds_path, inputs, env, expected, origin):
    """--base-url beats CARTO_MCP_BASE_URL, which beats https://{tenant_id}.api.carto.com; no trailing slash."""
    write_json(creds_path, nested_file())
    environ.update(env)
    result = resolver(environ, **inputs).resolve()
    assert result.base_url == expected
    assert result.base_url_origin is not None and origin in result.base_url_origin


def test_a_base_url_without_a_scheme_is_refused(environ):
    """A base URL that is not http(s) raises a ProfileError naming where it came from."""
    message = resolve_error(environ, token=FLAG_TOKEN, base_url="gcp-us-east1.api.carto.com")
    assert "--base-url" in message and "https://" in message


def test_a_profile_without_tenant_id_is_usable_with_an_explicit_base_url(environ, creds_path):
    """--base-url makes a profile's tenant_id unnecessary (self-hosted tenants)."""
    write_json(creds_path, {"current_profile": "onprem", "profiles": {"onprem": {"token": FILE_TOKEN}}})
    result = resolver(environ, base_url="https://carto.example.test/api").resolve()
    assert (result.name, result.base_url) == ("onprem", "https://carto.example.test/api")


# --- migration ----------------------------------------------------------------------------------


def test_an_old_format_file_is_migrated_atomically_with_a_backup(environ, creds_path):
    """The root-level profile becomes profiles.default, .bak keeps the original bytes, mode is 0600."""
    write_json(creds_path, OLD_FORMAT, mode=0o644)
    original = creds_path.read_bytes()
    result = resolver(environ).resolve()
    assert (result.source, result.name, result.token) == ("credentials_file", "default", FILE_TOKEN)
    assert json.loads(creds_path.read_text()) == {"current_profile": "default", "profiles": {"default": OLD_FORMAT}}
    backup = creds_path.with_name(creds_path.name + ".bak")
    assert backup.read_bytes() == original
    assert stat.S_IMODE(creds_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(backup.stat().st_mode) == 0o600
    assert any("migrated" in w and str(backup) in w for w in result.warnings)
    assert sorted(p.name for p in creds_path.parent.iterdir()) == sorted([backup.name, creds_path.name])


def test_a_migrated_file_is_not_migrated_again(environ, creds_path):
    """Once nested, later resolutions read the file as-is and report no migration."""
    write_json(creds_path, OLD_FORMAT)
    resolver(environ).resolve()
    again = resolver(environ).resolve()
    assert again.token == FILE_TOKEN
    assert not any("migrated" in w for w in again.warnings)


def test_a_different_earlier_backup_is_never_overwritten(environ, creds_path):
    """An existing `.bak` with other content is kept and the new backup goes to `.bak.1`."""
    write_json(creds_path, OLD_FORMAT)
    earlier = creds_path.with_name(creds_path.name + ".bak")
    earlier.write_text('{"something": "older"}')
    original = creds_path.read_bytes()
    resolver(environ).resolve()
    assert earlier.read_text() == '{"something": "older"}'
    assert creds_path.with_name(creds_path.name + ".bak.1").read_bytes() == original


def _chmod_is_enforced(directory: Path) -> bool:
    """False when running as root (or similar), where a read-only directory is still writable."""
    probe = directory / ".write-probe"
    directory.chmod(0o500)
    try:
        probe.write_text("x")
    except PermissionError:
        return True
    finally:
        directory.chmod(0o700)
    probe.unlink()
    return False


@pytest.fixture
def unwritable_home(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Make the home directory read-only; where chmod has no effect, make os.replace fail instead."""
    if _chmod_is_enforced(home):
        home.chmod(0o500)
        yield home
        home.chmod(0o700)
    else:

        def refuse(src: object, dst: object) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(migration.os, "replace", refuse)
        yield home


def test_an_unwritable_old_format_file_is_migrated_in_memory_with_a_warning(environ, creds_path, unwritable_home):
    """When the directory is read-only the file stays untouched and the result carries a warning."""
    write_json(creds_path, OLD_FORMAT)
    before = sorted(p.name for p in unwritable_home.iterdir())
    original = creds_path.read_bytes()
    result = resolver(environ).resolve()
    assert (result.name, result.token) == ("default", FILE_TOKEN)
    assert creds_path.read_bytes() == original
    assert sorted(p.name for p in unwritable_home.iterdir()) == before  # no .bak, no temp file left
    assert any(str(creds_path) in w and "in memory" in w for w in result.warnings)
    assert_no_secret(*result.warnings)


def test_a_read_only_old_format_file_is_left_alone(environ, creds_path, monkeypatch):
    """A file its owner made read-only is not replaced (simulated: root ignores the mode bit)."""
    write_json(creds_path, OLD_FORMAT)
    original = creds_path.read_bytes()
    monkeypatch.setattr(migration.os, "access", lambda path, mode: False)
    result = resolver(environ).resolve()
    assert result.token == FILE_TOKEN
    assert creds_path.read_bytes() == original
    assert any("read-only" in w and str(creds_path) in w for w in result.warnings)


# --- re-reading -----------------------------------------------------------------------------------


def _rewrite_token(path: Path, old: str, new: str) -> None:
    path.write_text(path.read_text().replace(old, new))


def test_the_file_is_read_again_when_its_mtime_changes(environ, creds_path):
    """A new token written by `carto auth login` (same size, newer mtime) is picked up by resolve()."""
    write_json(creds_path, nested_file())
    res = resolver(environ)
    assert res.resolve().token == FILE_TOKEN
    st = creds_path.stat()
    _rewrite_token(creds_path, FILE_TOKEN, FILE_TOKEN_2)
    os.utime(creds_path, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert creds_path.stat().st_size == st.st_size
    assert res.resolve().token == FILE_TOKEN_2


def test_resolve_is_cached_while_nothing_changes(environ, creds_path):
    """Two resolve() calls with unchanged files and env return the same object."""
    write_json(creds_path, nested_file())
    res = resolver(environ)
    assert res.resolve() is res.resolve()


def test_refresh_forces_a_re_read(environ, creds_path):
    """refresh() reads the file again even when its (mtime, size) signature looks unchanged."""
    write_json(creds_path, nested_file())
    res = resolver(environ)
    assert res.resolve().token == FILE_TOKEN
    st = creds_path.stat()
    _rewrite_token(creds_path, FILE_TOKEN, FILE_TOKEN_2)
    os.utime(creds_path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert res.resolve().token == FILE_TOKEN  # signature unchanged: cached
    assert res.refresh().token == FILE_TOKEN_2


def test_a_changed_env_variable_is_seen_without_refresh(environ, creds_path):
    """The cache key includes the CARTO_* variables, so a live os.environ change is honoured."""
    write_json(creds_path, nested_file())
    res = resolver(environ)
    assert res.resolve().name == "production"
    environ["CARTO_PROFILE"] = "staging"
    assert res.resolve().name == "staging"


# --- bad input ------------------------------------------------------------------------------------


def test_no_credentials_anywhere_names_the_fix_and_the_paths(environ, creds_path, legacy_path):
    """With no source at all the error says to log in or set a token, and lists both paths."""
    message = resolve_error(environ)
    assert message.startswith("no CARTO credentials found (looked at ")
    assert "; run `carto auth login`, or set CARTO_API_TOKEN, or pass --token" in message
    assert str(creds_path) in message and str(legacy_path) in message


def test_invalid_json_names_the_file_line_and_column(environ, creds_path):
    """A credentials file that is not JSON reports the path, line and column, and how to fix it."""
    creds_path.write_text('{\n  "current_profile": "production",\n  "profiles": {,\n}\n')
    message = resolve_error(environ)
    assert str(creds_path) in message
    assert "line 3, column 16" in message
    assert "carto auth login" in message


def test_a_top_level_that_is_not_an_object_is_refused(environ, creds_path):
    """A JSON array (or any non-object) at the top level is a ProfileError naming the file."""
    write_json(creds_path, [FILE_TOKEN])
    message = resolve_error(environ)
    assert str(creds_path) in message and "JSON object" in message and "an array" in message
    assert_no_secret(message)


def test_an_unknown_profile_lists_the_existing_ones(environ, creds_path):
    """--profile naming a missing profile lists the names and says how to create it."""
    write_json(creds_path, nested_file())
    message = resolve_error(environ, profile="qa")
    assert str(creds_path) in message
    assert "'qa'" in message and "production, staging" in message
    assert "carto auth login --profile qa" in message


@pytest.mark.parametrize(
    ("entry", "missing"),
    [
        ({"tenant_id": "gcp-us-east1"}, "no token"),
        ({"token": FILE_TOKEN}, "no tenant_id"),
        ({"user_email": "dev@example.test"}, "no token and no tenant_id"),
    ],
)
def test_a_profile_missing_token_or_tenant_says_which_and_how_to_log_in(environ, creds_path, entry, missing):
    """A profile without token or tenant_id is refused, naming the missing field and the login command."""
    write_json(creds_path, {"current_profile": "qa", "profiles": {"qa": entry}})
    message = resolve_error(environ)
    assert missing in message and str(creds_path) in message
    assert "carto auth login --profile qa" in message
    assert_no_secret(message)


def test_the_fix_is_carried_apart_from_the_message(environ, creds_path):
    """A missing token and an unknown profile put what to do in `fix`; str() still reads as one sentence."""
    write_json(creds_path, {"current_profile": "qa", "profiles": {"qa": {"tenant_id": "gcp-us-east1"}}})
    with pytest.raises(ProfileError) as missing:
        resolver(environ).resolve()
    assert missing.value.message == f"profile 'qa' in {creds_path} has no token"
    assert missing.value.fix == "run `carto auth login --profile qa`"
    assert str(missing.value) == f"{missing.value.message}; {missing.value.fix}"

    with pytest.raises(ProfileError) as unknown:
        resolver(environ, profile="prod").resolve()
    expected = f"profile 'prod' (chosen by --profile) is not in {creds_path}; existing profiles: qa."
    assert unknown.value.message == expected
    assert unknown.value.fix == "Pick one of those with --profile, or run `carto auth login --profile prod`"
    assert str(unknown.value) == f"{unknown.value.message} {unknown.value.fix}"


def test_a_credentials_file_over_1_mib_is_refused_without_reading_it_whole(environ, creds_path, monkeypatch):
    """A file far too big to be a credentials file is refused by its size, naming it, and is never read whole."""
    with creds_path.open("wb") as handle:
        handle.truncate(16 * 1024 * 1024)  # 16 MiB of nothing: sparse where the file system allows
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"{self} was read whole"))
    with pytest.raises(ProfileError) as info:
        resolver(environ).resolve()
    assert str(creds_path) in info.value.message and "too big" in info.value.message
    assert info.value.fix == "fix the file, or move it aside and run `carto auth login`"


@pytest.mark.parametrize(
    ("content", "complaint"),
    [
        ('{"profiles": ' + "[" * 100_000 + "]" * 100_000 + "}", "nested too deeply"),
        pytest.param(
            '{"token": ' + "7" * 5_000 + "}",
            "number too long",
            marks=pytest.mark.skipif(not hasattr(sys, "set_int_max_str_digits"), reason="no digit limit before 3.11"),
        ),
    ],
)
def test_json_the_parser_cannot_take_is_a_profile_error_naming_the_file(environ, creds_path, content, complaint):
    """Nesting too deep or a number too long is refused like any other broken file, for resolve and doctor."""
    creds_path.write_text(content)
    message = resolve_error(environ)
    assert str(creds_path) in message and complaint in message
    report = by_source(resolver(environ).inspect())["credentials_file"]
    assert report.present and complaint in report.detail


def test_a_badly_typed_profile_field_names_the_full_key(environ, creds_path):
    """A non-string field is refused with its dotted key and the expected type."""
    write_json(creds_path, {"current_profile": "qa", "profiles": {"qa": {"token": 42, "tenant_id": "t"}}})
    message = resolve_error(environ)
    assert "`profiles.qa.token`" in message and "must be a string" in message and str(creds_path) in message


def test_a_legacy_file_without_a_known_token_key_names_the_keys(environ, legacy_path):
    """A legacy config with no token key names the file and every key that was looked for."""
    write_json(legacy_path, {"secret": FILE_TOKEN, "tenant_id": "gcp-us-east1"})
    message = resolve_error(environ)
    assert str(legacy_path) in message
    assert "token, access_token, api_token, api_key" in message
    assert "carto auth login" in message
    assert_no_secret(message)


def test_a_legacy_file_without_a_base_url_or_tenant_is_refused(environ, legacy_path):
    """A legacy config with a token but no base URL keys gives the no-base-URL error naming the keys."""
    write_json(legacy_path, {"token": LEGACY_TOKEN})
    message = resolve_error(environ)
    assert message.startswith("no API base URL")
    assert str(legacy_path) in message and "base_url, api_base_url, tenant_id" in message


def test_an_invalid_legacy_file_is_refused_with_its_path(environ, legacy_path):
    """A legacy config that is not JSON names the file."""
    legacy_path.parent.mkdir()
    legacy_path.write_text("token=abc")
    message = resolve_error(environ)
    assert str(legacy_path) in message and "not valid JSON" in message


# --- permissions ------------------------------------------------------------------------------------


def test_a_group_or_world_readable_credentials_file_gives_a_chmod_warning(environ, creds_path):
    """Mode bits in 0o077 produce a warning suggesting `chmod 600 <path>`, not an error."""
    write_json(creds_path, nested_file(), mode=0o644)
    result = resolver(environ).resolve()
    assert result.token == FILE_TOKEN
    assert any(f"chmod 600 {creds_path}" in w for w in result.warnings)


def test_a_private_credentials_file_gives_no_warning(environ, creds_path):
    """A 0600 credentials file resolves with no warnings at all."""
    write_json(creds_path, nested_file(), mode=0o600)
    assert resolver(environ).resolve().warnings == ()


# --- doctor -------------------------------------------------------------------------------------------


def by_source(reports: list[SourceReport]) -> dict[str, SourceReport]:
    return {r.source: r for r in reports}


def test_inspect_lists_every_source_in_priority_order(environ):
    """inspect() always reports flag, env, client_credentials, credentials_file, legacy_file in order."""
    reports = resolver(environ).inspect()
    assert [r.source for r in reports] == ["flag", "env", "client_credentials", "credentials_file", "legacy_file"]
    assert not any(r.present or r.used for r in reports)


def test_inspect_marks_the_winner_and_every_present_source(environ, creds_path, legacy_path):
    """With everything configured, all sources are present and only the flag is used; details are masked."""
    write_json(creds_path, nested_file())
    write_json(legacy_path, {"token": LEGACY_TOKEN, "tenant_id": "gcp-us-east1"})
    environ.update({"CARTO_API_TOKEN": ENV_TOKEN, "CARTO_CLIENT_ID": "cid", "CARTO_CLIENT_SECRET": CLIENT_SECRET})
    reports = resolver(environ, token=FLAG_TOKEN).inspect()
    assert all(r.present for r in reports)
    assert [r.source for r in reports if r.used] == ["flag"]
    assert "…" in by_source(reports)["env"].detail
    assert_no_secret(*(r.detail for r in reports))


@pytest.mark.parametrize(
    ("setup", "winner"),
    [
        ("env", "env"),
        ("client_credentials", "client_credentials"),
        ("file", "credentials_file"),
        ("legacy", "legacy_file"),
    ],
)
def test_inspect_reports_the_source_that_resolve_would_use(environ, creds_path, legacy_path, setup, winner):
    """Each source, when it is the highest present one, is the one marked used."""
    if setup == "env":
        environ.update({"CARTO_API_TOKEN": ENV_TOKEN, "CARTO_MCP_BASE_URL": "https://api.example.test"})
    elif setup == "client_credentials":
        environ.update({"CARTO_CLIENT_ID": "cid", "CARTO_CLIENT_SECRET": CLIENT_SECRET})
        environ["CARTO_MCP_BASE_URL"] = "https://api.example.test"
    elif setup == "file":
        write_json(creds_path, nested_file())
    else:
        write_json(legacy_path, {"token": LEGACY_TOKEN, "tenant_id": "gcp-us-east1"})
    reports = by_source(resolver(environ).inspect())
    assert [s for s, r in reports.items() if r.used] == [winner]
    assert reports[winner].present
    assert_no_secret(*(r.detail for r in reports.values()))


def test_inspect_says_why_a_present_source_cannot_be_used(environ, creds_path):
    """A broken credentials file is present, not used, and its detail carries the error."""
    creds_path.write_text("{")
    report = by_source(resolver(environ).inspect())["credentials_file"]
    assert report.present and not report.used
    assert "cannot be used" in report.detail and "not valid JSON" in report.detail


def test_inspect_reports_an_incomplete_client_pair(environ):
    """Half a client-credentials pair is present and its detail names the missing half."""
    environ["CARTO_CLIENT_SECRET"] = CLIENT_SECRET
    report = by_source(resolver(environ).inspect())["client_credentials"]
    assert report.present and not report.used
    assert "CARTO_CLIENT_ID" in report.detail
    assert_no_secret(report.detail)


def test_inspect_never_migrates_the_file(environ, creds_path):
    """Doctor is read-only: an old-format file is reported, not rewritten."""
    write_json(creds_path, OLD_FORMAT)
    original = creds_path.read_bytes()
    report = by_source(resolver(environ).inspect())["credentials_file"]
    assert report.used and "old single-profile format" in report.detail
    assert creds_path.read_bytes() == original
    assert not creds_path.with_name(creds_path.name + ".bak").exists()


# --- secrecy and display ------------------------------------------------------------------------------


def test_public_and_repr_show_only_masks(environ, creds_path):
    """public() and repr() hold the masked token and never the token or client secret."""
    write_json(creds_path, nested_file(), mode=0o644)
    environ.update({"CARTO_CLIENT_ID": "fake-client-id", "CARTO_CLIENT_SECRET": CLIENT_SECRET})
    m2m = resolver(environ).resolve()
    del environ["CARTO_CLIENT_ID"], environ["CARTO_CLIENT_SECRET"]
    file_profile = resolver(environ).resolve()
    for result in (m2m, file_profile):
        shown = json.dumps(result.public())
        assert_no_secret(shown, repr(result), str(result), result.reason, *result.warnings)
    assert file_profile.masked_token == "eyJf…ZZ91"
    assert file_profile.public()["masked_token"] == "eyJf…ZZ91"
    assert m2m.public()["client_id"] == "fake-client-id" and m2m.public()["has_client_secret"] is True
    assert set(file_profile.public()) >= {
        "name",
        "source",
        "reason",
        "base_url",
        "tenant_id",
        "tenant_domain",
        "organization_id",
        "organization_name",
        "user_email",
        "masked_token",
        "client_id",
        "path",
        "warnings",
    }


def test_profile_inputs_repr_masks_the_token_and_secret():
    """ProfileInputs carries raw flag values but its repr shows masks only."""
    inputs = ProfileInputs(token=FLAG_TOKEN, client_id="cid", client_secret=CLIENT_SECRET)
    assert_no_secret(repr(inputs))
    assert "cid" in repr(inputs)


def test_no_error_message_ever_contains_a_token(environ, creds_path, legacy_path):
    """Every ProfileError raised with tokens in play is free of them."""
    cases: list[tuple[dict[str, Any] | str | None, dict[str, str]]] = [
        ({"current_profile": "qa", "profiles": {"qa": {"token": FILE_TOKEN}}}, {}),
        ({"current_profile": "nope", "profiles": {"qa": {"token": FILE_TOKEN, "tenant_id": "t"}}}, {}),
        ('{"token": "' + FILE_TOKEN + '", oops}', {}),
        (None, {"token": f"{FLAG_TOKEN} x"}),
        (None, {"token": FLAG_TOKEN}),
    ]
    for content, inputs in cases:
        creds_path.unlink(missing_ok=True)
        if isinstance(content, str):
            creds_path.write_text(content)
        elif content is not None:
            write_json(creds_path, content)
        message = resolve_error(environ, **inputs)
        assert_no_secret(message)
        assert_no_secret(*(r.detail for r in resolver(environ, **inputs).inspect()))


def test_token_expiry_is_read_from_the_jwt_exp_claim(environ):
    """token_expiry() returns the `exp` claim as an aware datetime, or None when unreadable."""
    token = fake_jwt({"exp": 1_900_000_000, "jti": "fakejti1"})
    result = resolver(environ, token=token, base_url="https://api.example.test").resolve()
    assert result.token_expiry() == datetime.fromtimestamp(1_900_000_000, tz=timezone.utc)
    assert result.public()["token_expires_at"] == "2030-03-17T17:46:40+00:00"
    opaque = resolver(environ, token=FLAG_TOKEN, base_url="https://api.example.test").resolve()
    assert opaque.token_expiry() is None


# --- helpers and named profiles ----------------------------------------------------------------------


def test_profile_names_lists_the_file_profiles(environ, creds_path):
    """profile_names() is [] without a file and the file's names, in order, with one."""
    res = resolver(environ)
    assert res.profile_names() == []
    write_json(creds_path, nested_file())
    assert res.profile_names() == ["production", "staging"]


def test_resolve_named_returns_that_profile_with_its_own_token(environ, creds_path):
    """resolve_named() ignores current_profile and CARTO_PROFILE and applies the base-URL rules."""
    write_json(creds_path, nested_file())
    environ["CARTO_PROFILE"] = "production"
    res = resolver(environ, base_url="https://api.example.test/")
    staging = res.resolve_named("staging")
    assert (staging.name, staging.token, staging.source) == ("staging", STAGING_TOKEN, "credentials_file")
    assert staging.base_url == "https://api.example.test"
    with pytest.raises(ProfileError, match="carto auth login --profile qa"):
        res.resolve_named("qa")


def test_resolve_named_without_a_file_says_how_to_create_the_profile(environ):
    """resolve_named() with no credentials file names the path and the login command."""
    with pytest.raises(ProfileError, match=r"carto auth login --profile staging"):
        resolver(environ).resolve_named("staging")


def test_the_sandbox_profile_is_fixed(environ):
    """sandbox_profile() needs no account and carries the sandbox token and reason."""
    result = sandbox_profile("http://127.0.0.1:8765/")
    assert isinstance(result, ResolvedProfile)
    assert (result.name, result.source, result.token, result.base_url) == (
        "sandbox",
        "sandbox",
        "sandbox-token",
        "http://127.0.0.1:8765",
    )
    assert result.reason == "--sandbox: the embedded sandbox API (no CARTO account)"


def test_default_paths_follow_home_from_the_given_environ(tmp_path):
    """The default file paths are built from HOME in the mapping passed in."""
    env = {"HOME": str(tmp_path / "elsewhere")}
    assert default_credentials_path(env) == tmp_path / "elsewhere" / ".carto_credentials.json"
    assert default_legacy_path(env) == tmp_path / "elsewhere" / ".carto" / "config.json"


def test_resolve_profile_reads_os_environ_only_when_no_mapping_is_given(monkeypatch, creds_path):
    """resolve_profile() with environ=None falls back to os.environ (here patched and clean)."""
    monkeypatch.setenv("CARTO_API_TOKEN", ENV_TOKEN)
    monkeypatch.setenv("CARTO_MCP_BASE_URL", "https://api.example.test")
    result = resolve_profile(credentials_path=creds_path, legacy_path=creds_path.with_name("nope.json"))
    assert (result.source, result.token) == ("env", ENV_TOKEN)
    with pytest.raises(ProfileError, match="no CARTO credentials found"):
        resolve_profile(environ={}, credentials_path=creds_path, legacy_path=creds_path.with_name("nope.json"))


def test_public_names_are_exported_sorted():
    """The module's __all__ is explicit and sorted."""
    assert profiles.__all__ == sorted(profiles.__all__)
    for name in profiles.__all__:
        assert hasattr(profiles, name)


def test_migrating_a_symlinked_file_rewrites_its_target_and_keeps_the_link(environ, tmp_path):
    """Dotfiles: ~/.carto_credentials.json links elsewhere; the target is migrated, the link stays, .bak beside it."""
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "carto_credentials.json"
    old = {"token": FILE_TOKEN, "tenant_id": "gcp-us-east1"}
    real.write_text(json.dumps(old))
    link = Path(environ["HOME"]) / ".carto_credentials.json"
    link.symlink_to(real)
    result = resolver(environ).resolve()
    assert result.token == FILE_TOKEN
    assert link.is_symlink() and link.resolve() == real.resolve()
    data = json.loads(real.read_text())
    assert data["current_profile"] == "default" and data["profiles"]["default"]["token"] == FILE_TOKEN
    assert json.loads((dotfiles / "carto_credentials.json.bak").read_text()) == old
    assert not (link.parent / ".carto_credentials.json.bak").exists()


def test_a_hard_linked_old_file_is_not_rewritten_and_still_works(environ, tmp_path):
    """Replacing a hard-linked file would cut the link: it is used in memory, with a warning, and left alone."""
    creds = Path(environ["HOME"]) / ".carto_credentials.json"
    raw = json.dumps({"token": FILE_TOKEN, "tenant_id": "gcp-us-east1"})
    creds.write_text(raw)
    other = tmp_path / "other-name.json"
    os.link(creds, other)
    result = resolver(environ).resolve()
    assert result.token == FILE_TOKEN
    assert creds.read_text() == raw and os.stat(creds).st_ino == os.stat(other).st_ino
    assert any("hard links" in w for w in result.warnings)
