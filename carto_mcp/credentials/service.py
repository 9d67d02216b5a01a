"""`Credentials`: what each tool means, over one profile's CARTO client, with no MCP in sight.

The tools parse their arguments, call one method here and shape the result; everything in
between — walking pages, resolving short ids, planning a change, delivering a secret —
happens here, so it can be used and tested without a server.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import TypeVar

from carto_mcp.api import CartoClient
from carto_mcp.config import DEFAULT_CACHE_TTL
from carto_mcp.credentials.cache import ListingCache
from carto_mcp.credentials.changes import Plan, client_plan, client_urls, revoke_plan, token_plan
from carto_mcp.credentials.delivery import Delivered, InlineSink, SecretSink
from carto_mcp.credentials.events import announce_created
from carto_mcp.credentials.guard import Guard
from carto_mcp.credentials.hygiene import audit
from carto_mcp.credentials.listing import Cursor, ListQuery, Progress, list_page, walk
from carto_mcp.credentials.recovery import matching_clients, matching_tokens
from carto_mcp.credentials.reveal import SecretPage
from carto_mcp.errors import (
    CartoError,
    InputError,
    NotFound,
    OutcomeUnknown,
    PermissionDenied,
    ServiceError,
    TransportError,
)
from carto_mcp.masking import looks_like_client_secret, looks_like_token, mask
from carto_mcp.models.kinds import KINDS, ClientKind, CredentialKind
from carto_mcp.models.oauth_clients import M2MCreate, OAuthClientUpdate, SpaCreate
from carto_mcp.models.policy import TokenFacts
from carto_mcp.models.results import (
    AuditReport,
    ClientCreated,
    ClientDetail,
    CredentialDetail,
    CredentialList,
    TokenCreated,
    TokenDetail,
    utcnow,
)
from carto_mcp.models.rules import parse_expiry
from carto_mcp.models.tokens import TokenCreate, TokenUpdate
from carto_mcp.models.wire import OAuthClient, Token

__all__ = ["Credentials", "Rotation"]

#: The variables a new M2M client's id and secret are written as: the CARTO CLI's names, which carto-mcp reads too.
M2M_VARIABLES = ("CARTO_M2M_CLIENT_ID", "CARTO_M2M_CLIENT_SECRET")


@dataclass(frozen=True)
class Rotation:
    """What a rotation did: the replacement (delivered), and whether the old token is gone."""

    new: TokenCreated
    old_revoked: bool
    #: Why revoking the old token failed, when it was asked and did.
    revoke_error: CartoError | None = None


class Credentials:
    """The credential operations of one profile."""

    def __init__(self, api: CartoClient, *, cache_ttl: float = DEFAULT_CACHE_TTL, guard: Guard | None = None) -> None:
        self.api = api
        #: Whole listings read in the last `cache_ttl` seconds; every change below clears it.
        self.cache = ListingCache(cache_ttl)
        #: The active policy for this profile: every change below asks it first.
        self.guard = guard or Guard(None)

    @property
    def profile_name(self) -> str:
        return self.api.profile_name

    # --- reading --------------------------------------------------------------------------

    async def list_page(self, query: ListQuery, progress: Progress | None = None) -> CredentialList:
        return await list_page(self.api, query, progress, self.cache)

    async def audit(
        self, expiring_within: str, limit: int, progress: Progress | None = None, *, fresh: bool = False
    ) -> AuditReport:
        """Read every credential once (through the listing cache) and report what is risky, most risky first."""
        now = utcnow()
        soon = parse_expiry(expiring_within, now=now)
        if fresh:
            self.cache.clear()
        tokens: list[Token] = []
        clients: list[tuple[ClientKind, OAuthClient]] = []
        notes: list[str] = []
        for kind in KINDS:
            try:
                async with self.api.walking() as ahead:
                    async for _, _, item in walk(self.api, ahead, (kind,), Cursor(), progress, self.cache):
                        if kind == "token":
                            tokens.append(item)
                        else:
                            clients.append((kind, item))
            except NotFound as exc:
                if kind == "token":
                    raise
                notes.append(f"{kind} clients were not audited: {exc.message}")
        result = audit(tokens, clients, now=now, soon=soon, policy=self.guard.section)
        return result.report(limit, policy=self.guard.where or None, notes=notes)

    async def get(self, kind: CredentialKind, ident: str) -> CredentialDetail:
        if kind == "token":
            token = await self.token(ident)
            return CredentialDetail(kind="token", id=token.id, token=TokenDetail.of(token))
        client = await self.client(kind, ident)
        return CredentialDetail(kind=kind, id=client.client_id, client=ClientDetail.of(client, kind))

    async def token(self, ident: str) -> Token:
        """A token by short id or full value."""
        return await self.api.find_token(ident)

    async def client(self, kind: ClientKind, client_id: str) -> OAuthClient:
        """A client, checked to be of the kind asked for (an M2M id passed as spa is a mistake)."""
        if looks_like_token(client_id):
            # A token value passed as a client id must reach neither the API's URL (and its logs) nor an error.
            raise InputError(
                f"kind: '{mask(client_id)}' is a token value, not an OAuth client id; pass kind 'token'.", field="kind"
            )
        if looks_like_client_secret(client_id):
            # Nor a client secret: it would travel in the URL path (and --debug would print that URL).
            raise InputError(
                f"id: '{mask(client_id)}' looks like a client secret, not a client id (ids are 32 characters); "
                f"pass the client's id from list_credentials (kind '{kind}').",
                field="id",
            )
        try:
            client = await self.api.get_client(client_id)
        except NotFound as exc:
            raise NotFound(
                f"No {kind} client with id '{client_id}' for profile '{self.profile_name}'. Call list_credentials "
                f"(kind '{kind}') to see the ids.",
                status_code=404,
            ) from exc
        if client.app_type and client.app_type != kind:
            raise InputError(
                f"kind: client '{client_id}' is an {client.app_type} client, not {kind}; "
                f"pass kind '{client.app_type}'.",
                field="kind",
                shown=(client.client_id,),
            )
        return client

    # --- creating -------------------------------------------------------------------------

    async def create_token(self, request: TokenCreate, sink: SecretSink | None = None) -> TokenCreated:
        warnings = list(request.warnings)
        warnings += self.guard.enforce(self.guard.token_violations(TokenFacts.of_request(request)), "token")
        warnings += self.guard.count_creation()
        since = utcnow()
        with self.cache.changing():
            try:
                token = await self.api.create_token(request.to_wire())
            except OutcomeUnknown as lost:
                token = await self._recover_token(request, since, lost)
                warnings.append(RECOVERED)
        announce_created("token", token.id)
        result = TokenCreated(id=token.id, detail=TokenDetail.of(token), warnings=warnings)
        return await _deliver(
            result, sink, _token_page(token, self.profile_name), f"token-{token.id}", token=token.token
        )

    async def create_spa(self, request: SpaCreate) -> ClientCreated:
        urls = client_urls(request.model_dump(exclude_none=True))
        allowed = self.guard.enforce(self.guard.client_violations("spa", urls, creating=True), "SPA client")
        client, warnings = await self._create_client("spa", request.title, request.to_wire())
        return ClientCreated(id=client.client_id, detail=ClientDetail.of(client, "spa"), warnings=allowed + warnings)

    async def create_m2m(self, request: M2MCreate, sink: SecretSink | None = None) -> ClientCreated:
        allowed = self.guard.enforce(self.guard.client_violations("m2m", [], creating=True), "M2M client")
        try:
            client, _ = await self._create_client("m2m", request.title, request.to_wire())
        except PermissionDenied as exc:
            raise PermissionDenied(
                f"{exc} M2M OAuth clients need an Enterprise Large plan or above.", status_code=exc.status_code
            ) from exc
        result = ClientCreated(id=client.client_id, detail=ClientDetail.of(client, "m2m"), warnings=allowed)
        if client.client_secret is None:
            return result.model_copy(update={"warnings": ["CARTO returned no client secret for this M2M client."]})
        page = SecretPage(
            f"M2M OAuth client {client.title or client.client_id}",
            tuple(zip(M2M_VARIABLES, (client.client_id, client.client_secret), strict=True)),
            (
                ("Kind", "Machine-to-Machine OAuth client"),
                ("Client id", client.client_id),
                ("Profile", self.profile_name),
            ),
        )
        return await _deliver(result, sink, page, f"m2m-{client.client_id}", client_secret=client.client_secret)

    async def _create_client(
        self, kind: ClientKind, title: str, body: dict[str, object]
    ) -> tuple[OAuthClient, list[str]]:
        counted = self.guard.count_creation()
        since = utcnow()
        try:
            with self.cache.changing():
                client = await self.api.create_client(body)
        except OutcomeUnknown as lost:
            client = await self._recover_client(kind, title, since, lost)
            announce_created(kind, client.client_id)
            if kind == "m2m":  # its secret was only ever in the answer that was lost
                raise OutcomeUnknown(
                    f"The M2M client {title!r} was created (id {client.client_id}), but CARTO's answer, the only "
                    "place its secret is ever shown, was lost",
                    fix=f"revoke it with revoke_credential(kind='m2m', id='{client.client_id}') and create a new one.",
                    shown=(client.client_id,),
                ) from lost
            return client, [*counted, RECOVERED]
        announce_created(kind, client.client_id)
        return client, counted

    async def _recover_token(self, request: TokenCreate, since: datetime, lost: OutcomeUnknown) -> Token:
        try:
            found, seen = await matching_tokens(self.api, request, since)
        except CartoError as failed:
            raise _unchecked(lost, failed) from lost
        return _the_one("token", [(t.id, t) for t in found], seen, since, lost)

    async def _recover_client(self, kind: ClientKind, title: str, since: datetime, lost: OutcomeUnknown) -> OAuthClient:
        try:
            found, seen = await matching_clients(self.api, kind, title, since)
        except CartoError as failed:
            raise _unchecked(lost, failed) from lost
        return _the_one(f"{kind} client", [(c.client_id, c) for c in found], seen, since, lost)

    # --- changing -------------------------------------------------------------------------

    async def plan_update(self, kind: CredentialKind, ident: str, change: TokenUpdate | OAuthClientUpdate) -> Plan:
        """The change worked out from the credential as it is now, and checked against the policy as it would be.

        For a token the whole resulting token is checked, not just the patch (its expiry
        excepted: CARTO fixes it at creation, so expiry rules are checked at create and rotate).
        """
        if kind == "token":
            assert isinstance(change, TokenUpdate)
            current = await self.token(ident)
            plan = token_plan(change, current)
            assert plan.state is not None
            facts = TokenFacts.of_state(plan.state, current.expires_at)
            found = self.guard.token_violations(facts, expiry=False)
        else:
            assert isinstance(change, OAuthClientUpdate)
            plan = client_plan(kind, change, await self.client(kind, ident))
            found = self.guard.client_violations(kind, plan.urls, creating=False)
        warned = self.guard.enforce(found, f"change to {kind} {plan.id}")
        return replace(plan, warnings=(*plan.warnings, *warned)) if warned else plan

    async def plan_revoke(self, kind: CredentialKind, ident: str) -> Plan:
        current: Token | OAuthClient = await self.token(ident) if kind == "token" else await self.client(kind, ident)
        return revoke_plan(kind, current)

    async def update(self, plan: Plan) -> TokenDetail | ClientDetail:
        """Send the plan's PATCH (or only re-read, when nothing differs) and return the credential as it is now."""
        body = dict(plan.body)
        with self.cache.changing():
            if plan.kind == "token":
                token = await (self.api.update_token(plan.target, body) if body else self.api.get_token(plan.target))
                return TokenDetail.of(token)
            client = await (self.api.update_client(plan.target, body) if body else self.api.get_client(plan.target))
            return ClientDetail.of(client, plan.kind)

    async def revoke(self, plan: Plan) -> None:
        self.guard.count_revocation()
        await self._delete(plan.kind, plan.target)

    async def _delete(self, kind: CredentialKind, target: str) -> None:
        """Delete; when that fails as a lost answer would (5xx, transport), look before reporting a failure.

        Every attempt may have been carried out with only its answer lost: a credential that is
        gone now was deleted, which is what was asked (as a retried DELETE's 404 already counts).
        """
        try:
            with self.cache.changing():
                if kind == "token":
                    await self.api.delete_token(target)
                else:
                    await self.api.delete_client(target)
        except (ServiceError, TransportError):
            if not await self._gone(kind, target):
                raise

    async def _gone(self, kind: CredentialKind, target: str) -> bool:
        """True only when CARTO says the credential does not exist; any other answer (or none) is not proof."""
        try:
            await (self.api.get_token(target) if kind == "token" else self.api.get_client(target))
        except NotFound:
            return True
        except CartoError:
            return False
        return False

    async def rotate(self, old: Token, request: TokenCreate, sink: SecretSink | None, *, revoke_old: bool) -> Rotation:
        """Create the replacement and deliver it; then, if asked, revoke the old token.

        The replacement is delivered before the revoke is tried, so a failing revoke costs
        nothing: the result still holds the new token, and says the old one still works.
        """
        new = await self.create_token(request, sink)
        if not revoke_old:
            return Rotation(new, old_revoked=False)
        try:
            self.guard.count_revocation()
            await self._delete("token", old.token)
        except CartoError as exc:
            return Rotation(new, old_revoked=False, revoke_error=exc)
        return Rotation(new, old_revoked=True)


def _token_page(token: Token, profile: str) -> SecretPage:
    """What a token's reveal page shows beside the value: what it can reach, and until when."""
    connections = sorted({g.connection_name for g in token.grants})
    facts = [
        ("Token id", token.id),
        ("Name", token.name or "(none)"),
        ("Profile", profile),
        ("APIs", ", ".join(token.allowed_apis) or "(none)"),
        ("Connections", ", ".join(connections) or "(none)"),
        ("Sources", f"{len(token.grants)} granted" if token.grants else "(none)"),
        ("Referers", ", ".join(token.referers) or "any (no referer restriction)"),
        ("Expires", token.expiration_date or "never"),
    ]
    return SecretPage(
        f"API Access Token {token.name or token.id}", (("CARTO_API_ACCESS_TOKEN", token.token),), tuple(facts)
    )


_Created = TypeVar("_Created", TokenCreated, ClientCreated)


async def _deliver(result: _Created, sink: SecretSink | None, page: SecretPage, name: str, **value: str) -> _Created:
    """The create result once the secret went where `sink` sends it (inline without one).

    The result names where it went; only an inline delivery (chosen, or a failed file write
    falling back) adds the value itself, as the `value` field given.
    """
    chosen: SecretSink = sink or InlineSink()
    done: Delivered = await chosen.deliver(page, name)
    update: dict[str, object] = {
        "delivery": done.mode,
        "secret_file": str(done.file) if done.file is not None else None,
        "secret_variables": list(done.variables),
        "reveal_url": done.reveal_url,
        "reveal_expires_at": done.reveal_expires_at,
        "warnings": [*result.warnings, *done.warnings],
    }
    if done.value_in_result:
        update.update(value)
    return result.model_copy(update=update)


#: The warning on a create whose answer was lost but whose credential was found.
RECOVERED = (
    "CARTO's answer to this create was lost on the way back; this is the credential the request made, "
    "found afterwards by its settings and creation time."
)

_Found = TypeVar("_Found")


def _the_one(what: str, found: list[tuple[str, _Found]], seen: int, since: datetime, lost: OutcomeUnknown) -> _Found:
    """The one credential the lost create made, or an error that says plainly what exists."""
    when = since.strftime("%H:%M:%S UTC")
    head = f"CARTO's answer to the {what} creation was lost ({lost.reason}, at {lost.method} {lost.url})"
    if not found:
        raise TransportError(
            f"{head}, and it was not created: no {what} like it exists that was made since {when} (looked twice, "
            f"a second apart, at {seen} in all)",
            fix="nothing was made: create it again.",
            method=lost.method,
            url=lost.url,
        ) from lost
    if len(found) > 1:
        ids = ", ".join(ident for ident, _ in found[:10])
        raise OutcomeUnknown(
            f"{head}; {len(found)} {what}s like it were made since {when}: {ids}. One of them may be this request's",
            reason=lost.reason,
            fix="keep the one you need and revoke the others with revoke_credential; do not create it again.",
            method=lost.method,
            url=lost.url,
            shown=tuple(ident for ident, _ in found),
        ) from lost
    return found[0][1]


def _unchecked(lost: OutcomeUnknown, failed: CartoError) -> OutcomeUnknown:
    return OutcomeUnknown(
        f"{lost.message}; checking whether it exists failed too ({failed.message})",
        reason=lost.reason,
        fix=lost.fix,
        method=lost.method,
        url=lost.url,
    )
