"""Server-side validation of request bodies, with the same rule functions the client uses.

The real service refuses what breaks its option table no matter what a client checked first;
the sandbox does the same so client-side bugs surface as 400s. Each function takes a decoded
JSON body and returns the normalized fields to store, or raises `RuleError` whose text
becomes the 400's `description`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from carto_mcp import contract
from carto_mcp.errors import RuleError
from carto_mcp.models.rules import GrantKind, check_apis, check_grant, check_url, format_expiry, parse_expiry
from carto_mcp.sandbox.store import ALLOWED_APIS, CREATED_AT, EXPIRATION_DATE, GRANTS, NAME, REFERERS

__all__ = ["client_create", "client_patch", "token_create", "token_patch"]

#: (A) OAuth client wire names, from the contract's CLI -> wire map.
CLIENT_NAME = contract.OAUTH_FIELD_MAP["title"]
LOGIN_URI = contract.OAUTH_FIELD_MAP["login_uri"]
URL_LISTS = tuple(wire for cli, wire in contract.OAUTH_FIELD_MAP.items() if cli not in ("title", "login_uri"))
SPA_FIELDS = (CLIENT_NAME, LOGIN_URI, *URL_LISTS)
APP_TYPES = ("spa", "m2m")
_MAX_NAME = 256


def _name(value: Any, what: str = "name") -> str:
    if not isinstance(value, str) or not value.strip():
        raise RuleError(f"{what} must be a non-empty string")
    if len(value) > _MAX_NAME:
        raise RuleError(f"{what} is longer than {_MAX_NAME} characters")
    return value.strip()


def _string_list(value: Any, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RuleError(f"{what} must be a list of strings")
    return value


def _urls(value: Any, what: str) -> list[str]:
    return list(dict.fromkeys(check_url(v, what=what) for v in _string_list(value, what)))


def _grants(value: Any) -> tuple[list[dict[str, str]], list[GrantKind]]:
    """Each grant is {connection_name, source}: both non-empty, the source a valid grant of its kind."""
    if not isinstance(value, list):
        raise RuleError(f"{GRANTS} must be a list of {{{contract.GRANT_CONNECTION}, {contract.GRANT_SOURCE}}} objects")
    grants: list[dict[str, str]] = []
    kinds: list[GrantKind] = []
    for index, grant in enumerate(value):
        where = f"{GRANTS}[{index}]"
        if not isinstance(grant, dict):
            raise RuleError(f"{where} must be an object with {contract.GRANT_CONNECTION} and {contract.GRANT_SOURCE}")
        extra = sorted(set(grant) - {contract.GRANT_CONNECTION, contract.GRANT_SOURCE})
        if extra:
            raise RuleError(f"{where}: unknown field {extra[0]!r}")
        connection, source = grant.get(contract.GRANT_CONNECTION), grant.get(contract.GRANT_SOURCE)
        if not isinstance(connection, str) or not connection.strip():
            raise RuleError(f"{where}: {contract.GRANT_CONNECTION} must be a non-empty string")
        if not isinstance(source, str):
            raise RuleError(f"{where}: {contract.GRANT_SOURCE} must be a string")
        kind, _warnings = check_grant(source, None)
        grants.append({contract.GRANT_CONNECTION: connection.strip(), contract.GRANT_SOURCE: source.strip()})
        kinds.append(kind)
    return grants, kinds


def _apis(value: Any) -> list[str]:
    return list(dict.fromkeys(_string_list(value, ALLOWED_APIS)))


def _refuse_unknown(body: Mapping[str, Any], allowed: tuple[str, ...], what: str) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise RuleError(f"unknown field {unknown[0]!r}: {what} accepts {', '.join(allowed)}")


def token_create(body: Mapping[str, Any]) -> dict[str, Any]:
    """A `POST /v3/tokens` body -> the fields to store (expiry normalized to the wire form)."""
    _refuse_unknown(body, contract.TOKEN_FIELDS, "a token")
    grants, kinds = _grants(body.get(GRANTS, []))
    apis = _apis(body.get(ALLOWED_APIS, []))
    check_apis(apis, kinds)
    fields: dict[str, Any] = {
        NAME: None if body.get(NAME) is None else _name(body[NAME]),
        GRANTS: grants,
        ALLOWED_APIS: apis,
        REFERERS: _urls(body.get(REFERERS, []), "referer"),
        EXPIRATION_DATE: None,
    }
    expiry = body.get(EXPIRATION_DATE)
    if expiry is not None:
        if not isinstance(expiry, str):
            raise RuleError(f"{EXPIRATION_DATE} must be an ISO 8601 string like '2027-01-01T00:00:00Z'")
        fields[EXPIRATION_DATE] = format_expiry(parse_expiry(expiry))
    return fields


def token_patch(current: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """A `PATCH /v3/tokens/{token}` body applied to the stored token; the merged token is re-checked."""
    if EXPIRATION_DATE in body:
        raise RuleError(f"{EXPIRATION_DATE} cannot be changed after the token is created")
    _refuse_unknown(body, contract.TOKEN_PATCH_FIELDS, "a token PATCH")
    merged = dict(current)
    if NAME in body:
        merged[NAME] = _name(body[NAME])
    if ALLOWED_APIS in body:
        merged[ALLOWED_APIS] = _apis(body[ALLOWED_APIS])
    if REFERERS in body:
        merged[REFERERS] = _urls(body[REFERERS], "referer")
    grants, kinds = _grants(body[GRANTS] if GRANTS in body else current.get(GRANTS, []))
    merged[GRANTS] = grants
    check_apis(merged.get(ALLOWED_APIS) or [], kinds)
    return merged


def _client_fields(body: Mapping[str, Any], app_type: str, *, partial: bool) -> dict[str, Any]:
    allowed = (CLIENT_NAME,) if app_type == "m2m" else SPA_FIELDS
    fields: dict[str, Any] = {}
    for key, value in body.items():
        if key == contract.OAUTH_APP_TYPE:
            continue
        if key not in allowed:
            what = "an M2M client" if app_type == "m2m" else "an SPA client"
            raise RuleError(f"unknown field {key!r}: {what} accepts {', '.join(allowed)}")
        if key == CLIENT_NAME:
            fields[key] = _name(value, CLIENT_NAME)
        elif key == LOGIN_URI:
            fields[key] = None if value is None else check_url(_text(value, LOGIN_URI), what=LOGIN_URI)
        else:
            fields[key] = _urls([] if value is None else value, key)
    if not partial and CLIENT_NAME not in fields:
        raise RuleError(f"{CLIENT_NAME} is required")
    return fields


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RuleError(f"{what} must be a string")
    return value


def client_create(body: Mapping[str, Any]) -> dict[str, Any]:
    """A `POST /v3/oauth-clients` body -> the client object to store (SPA lists default to empty)."""
    app_type = body.get(contract.OAUTH_APP_TYPE)
    if app_type not in APP_TYPES:
        raise RuleError(f"{contract.OAUTH_APP_TYPE} must be one of {', '.join(APP_TYPES)}")
    fields = _client_fields(body, app_type, partial=False)
    obj: dict[str, Any] = {CLIENT_NAME: fields[CLIENT_NAME], contract.OAUTH_APP_TYPE: app_type}
    if app_type == "spa":
        obj[LOGIN_URI] = fields.get(LOGIN_URI)
        obj.update({key: fields.get(key, []) for key in URL_LISTS})
    return obj


def client_patch(current: Mapping[str, Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """A `PATCH /v3/oauth-clients/{client_id}` body applied to the stored client."""
    app_type = current[contract.OAUTH_APP_TYPE]
    for fixed in (contract.OAUTH_CLIENT_ID, contract.OAUTH_CLIENT_SECRET, CREATED_AT):
        if fixed in body:
            raise RuleError(f"{fixed} cannot be changed")
    if body.get(contract.OAUTH_APP_TYPE, app_type) != app_type:
        raise RuleError(f"{contract.OAUTH_APP_TYPE} cannot be changed: create a new client of the other kind")
    return {**current, **_client_fields(body, app_type, partial=True)}
