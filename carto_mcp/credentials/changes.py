"""Changes worked out before they are sent: what an update or a revoke will do, and what it removes.

A plan is made once per call, from one GET of the credential as it is now: it holds the
PATCH body (only what differs), the access the change takes away (which decides whether a
person must confirm it), and the warnings about the token as it will be. The same plan is
what a confirmation code is bound to, so a code can only ever approve this exact change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from carto_mcp.errors import RuleError
from carto_mcp.models.kinds import CredentialKind
from carto_mcp.models.oauth_clients import NOTHING_TO_CHANGE as CLIENT_NOTHING
from carto_mcp.models.oauth_clients import OAuthClientUpdate
from carto_mcp.models.tokens import NOTHING_TO_CHANGE as TOKEN_NOTHING
from carto_mcp.models.tokens import Grant, TokenState, TokenUpdate
from carto_mcp.models.validation import build
from carto_mcp.models.wire import OAuthClient, Token

__all__ = [
    "Plan",
    "client_change",
    "client_plan",
    "client_urls",
    "revoke_plan",
    "the_change",
    "token_change",
    "token_plan",
]


@dataclass(frozen=True)
class Plan:
    """A change to one credential: which, what to send, what it removes, what to warn about."""

    kind: CredentialKind
    id: str
    name: str | None
    #: The API's own identifier: the token value for a token, the client id for a client.
    target: str
    body: Mapping[str, Any] = field(default_factory=dict)
    losses: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: A token as the change would leave it (what the policy checks; not part of the binding).
    state: TokenState | None = None
    #: A client's URLs as the change would leave them, as (field, URL) pairs.
    urls: tuple[tuple[str, str], ...] = ()

    def binding(self) -> str:
        """The change a confirmation code is bound to ("" for a revoke, which has no body)."""
        return json.dumps(dict(self.body), sort_keys=True) if self.body else ""

    def __repr__(self) -> str:  # the target may be a token value
        return f"Plan(kind={self.kind!r}, id={self.id!r}, body_fields={sorted(self.body)}, losses={len(self.losses)})"


def _given(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value is not None}


def token_change(
    kind: CredentialKind,
    name: str | None = None,
    grants: list[Grant] | None = None,
    add_grants: list[Grant] | None = None,
    remove_grants: list[Grant] | None = None,
    apis: list[str] | None = None,
    referers: list[str] | None = None,
    expiration_date: str | None = None,
) -> TokenUpdate | None:
    """The token fields of an update (None when none were given); token fields on a client are refused.

    Its parameters are `update_credential`'s token arguments by name: the tool resolves it.
    """
    given = _given(
        {
            "name": name,
            "grants": grants,
            "add_grants": add_grants,
            "remove_grants": remove_grants,
            "apis": apis,
            "referers": referers,
            "expiration_date": expiration_date,
        }
    )
    if given and kind != "token":
        raise RuleError(f"{', '.join(sorted(given))} apply to tokens, not {kind} clients")
    return build(TokenUpdate, **given) if given else None


def client_change(
    kind: CredentialKind,
    title: str | None = None,
    login_uri: str | None = None,
    callbacks: list[str] | None = None,
    logout_urls: list[str] | None = None,
    web_origins: list[str] | None = None,
    allowed_origins: list[str] | None = None,
) -> OAuthClientUpdate | None:
    """The OAuth-client fields of an update (None when none were given); client fields on a token are refused.

    Its parameters are `update_credential`'s client arguments by name: the tool resolves it.
    """
    given = _given(
        {
            "title": title,
            "login_uri": login_uri,
            "callbacks": callbacks,
            "logout_urls": logout_urls,
            "web_origins": web_origins,
            "allowed_origins": allowed_origins,
        }
    )
    if not given:
        return None
    if kind == "token":
        raise RuleError(f"{', '.join(sorted(given))} apply to OAuth clients, not tokens")
    change = build(OAuthClientUpdate, **given)
    change.check_kind(kind)
    return change


def the_change(
    kind: CredentialKind, token: TokenUpdate | None, client: OAuthClientUpdate | None
) -> TokenUpdate | OAuthClientUpdate:
    """The change for this kind of credential; an update that changes nothing is refused."""
    change = token if kind == "token" else client
    if change is None:
        raise RuleError(TOKEN_NOTHING if kind == "token" else CLIENT_NOTHING)
    return change


def revoke_plan(kind: CredentialKind, current: Token | OAuthClient) -> Plan:
    if isinstance(current, Token):
        return Plan(kind, current.id, current.name, current.token)
    return Plan(kind, current.client_id, current.title, current.client_id)


def token_plan(change: TokenUpdate, token: Token) -> Plan:
    """GET -> merge -> PATCH, as the CLI does: the token as it will be, checked before it is sent."""
    before = TokenState.of(
        name=token.name,
        grants=[
            Grant.model_construct(connection=g.connection_name, source=g.source, kind=g.kind) for g in token.grants
        ],
        apis=token.allowed_apis,
        referers=token.referers,
    )
    after = change.apply(before)
    return Plan(
        "token",
        token.id,
        token.name,
        token.token,
        after.patch_body(before),
        tuple(before.losses(after)),
        tuple(after.warnings()),
        state=after,
    )


def client_plan(kind: CredentialKind, change: OAuthClientUpdate, client: OAuthClient) -> Plan:
    current = client.model_dump()
    wanted = change.model_dump(exclude_none=True)
    after = {name: wanted.get(name, current.get(name)) for name in URL_FIELDS}
    return Plan(
        kind,
        client.client_id,
        client.title,
        client.client_id,
        change.changes(current),
        tuple(change.losses(current)),
        urls=tuple(client_urls(after)),
    )


#: An OAuth client's URL fields (the ones the policy's URL rules look at).
URL_FIELDS = ("login_uri", "callbacks", "logout_urls", "web_origins", "allowed_origins")


def client_urls(fields: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, URL) for every URL in a client's fields, whether a field holds one URL or a list."""
    out: list[tuple[str, str]] = []
    for field_name in URL_FIELDS:
        value = fields.get(field_name)
        for url in [value] if isinstance(value, str) else value or []:
            out.append((field_name, url))
    return out
