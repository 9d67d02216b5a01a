"""Read tools: list_credentials and get_credential (read-only, idempotent)."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, Field

from carto_mcp.api import CartoClient, NotFound
from carto_mcp.masking import looks_like_token, mask
from carto_mcp.models import ClientDetail, CredentialList, Row, TokenDetail, parse_expiry
from carto_mcp.models.results import utcnow
from carto_mcp.models.rules import EXPIRY_PATTERN
from carto_mcp.server.app import CartoMCP, state_of
from carto_mcp.server.errors import tool_errors
from carto_mcp.server.reply import summarized
from carto_mcp.server.tools._args import CredentialId, Kind, ListKind, ProfileArg

Phase = Literal["token", "spa", "m2m"]
PHASES: tuple[Phase, ...] = ("token", "spa", "m2m")
KIND_PHASES: dict[str, tuple[Phase, ...]] = {
    "all": PHASES,
    "token": ("token",),
    "tokens": ("token",),
    "spa": ("spa",),
    "m2m": ("m2m",),
    "oauth": ("spa", "m2m"),
}


class CredentialDetail(BaseModel):
    """One credential in full; exactly one of token/client is set."""

    kind: Literal["token", "spa", "m2m"]
    id: str
    token: TokenDetail | None = None
    client: ClientDetail | None = None

    def summary(self) -> str:
        if self.token is not None:
            t = self.token
            name = f" ({t.name})" if t.name else ""
            expiry = (
                "expired" if t.expired else (f"expires {t.expiration_date}" if t.expiration_date else "never expires")
            )
            return f"Token {t.id}{name}: APIs {', '.join(t.apis) or 'none'}, {len(t.grants)} grant(s), {expiry}."
        c = self.client
        assert c is not None
        return f"{c.kind.upper()} client {c.id}" + (f" ({c.title})." if c.title else ".")


@dataclass(frozen=True)
class Filters:
    text: str | None
    expiring_before: datetime | None
    expired: bool | None
    now: datetime

    def fingerprint(self, kind: str) -> str:
        raw = json.dumps([kind, self.text, self.expiring_before is not None, self.expired])
        return hashlib.sha256(raw.encode()).hexdigest()[:8]

    def match(self, item: Any, kind: str) -> bool:
        """Test a token or client as the API returned it, so rows are built only for matches."""
        if self.text:
            name = item.name if kind == "token" else item.title
            ident = item.id if kind == "token" else item.client_id
            if self.text.lower() not in (name or "").lower() and self.text != ident:
                return False
        if self.expiring_before is None and self.expired is None:
            return True
        if kind != "token":
            return False
        expired = item.expired(self.now)
        if self.expired is not None and expired != self.expired:
            return False
        if self.expiring_before is not None:
            when = item.expires_at
            return when is not None and not expired and when <= self.expiring_before
        return True


@dataclass(frozen=True)
class Position:
    """Where the next page starts: phase (kind), upstream page, index in that page."""

    phase: int = 0
    page: int = 1
    index: int = 0

    def encode(self, fingerprint: str) -> str:
        raw = json.dumps({"v": 1, "k": self.phase, "p": self.page, "i": self.index, "f": fingerprint})
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str, fingerprint: str) -> Position:
        try:
            data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            pos = cls(int(data["k"]), int(data["p"]), int(data["i"]))
            ok = data.get("v") == 1 and data.get("f") == fingerprint and pos.page >= 1 and pos.index >= 0
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            raise ToolError(
                "cursor: not a cursor from this listing (it must come from a previous list_credentials call "
                "with the same kind and filters). Omit cursor to start from the beginning."
            )
        return pos


async def walk(
    api: CartoClient, phases: tuple[Phase, ...], start: Position, ctx: Context[Any, Any]
) -> AsyncIterator[tuple[Position, Phase, Any]]:
    """Every credential from `start` on, as the API returned it, in a stable order (token, spa, m2m)."""

    async def progress(seen: int, total: int | None) -> None:
        await ctx.report_progress(seen, total, f"read {seen} credentials" + (f" of {total}" if total else ""))

    for phase in range(start.phase, len(phases)):
        kind = phases[phase]
        first_page = start.page if phase == start.phase else 1
        skip = start.index if phase == start.phase else 0
        page_no = first_page
        if kind == "token":
            pages: AsyncIterator[list[Any]] = api.token_pages(start_page=first_page, on_page=progress)
        else:
            pages = api.client_pages(kind, start_page=first_page, on_page=progress)
        async for page in pages:
            for i, item in enumerate(page):
                if page_no == first_page and i < skip:
                    continue
                yield Position(phase, page_no, i), kind, item
            page_no += 1


def register(server: CartoMCP, allowed: set[str]) -> None:
    if "list_credentials" in allowed:
        server.add_tool(
            summarized(list_credentials, drop_none_in="rows"),
            title="List credentials",
            description=(
                "List CARTO API Access Tokens and SPA/M2M OAuth clients as compact rows (secrets never shown). "
                "Use it to find a credential's id, or to audit what exists and what expires soon. Filter by kind, "
                "text (in the name/title), expiring_within (e.g. '7d') or expired; page with limit and cursor. "
                'Example: {"kind": "token", "expiring_within": "7d"}'
            ),
            annotations=ToolAnnotations(
                title="List credentials", read_only_hint=True, idempotent_hint=True, open_world_hint=True
            ),
        )
    if "get_credential" in allowed:
        server.add_tool(
            summarized(get_credential),
            title="Get a credential",
            description=(
                "Full detail of one credential: a token's grants, APIs, referers and expiry, or an OAuth "
                'client\'s URLs. Secrets are masked. Example: {"kind": "token", "id": "3f9a1c2e"}'
            ),
            annotations=ToolAnnotations(
                title="Get a credential", read_only_hint=True, idempotent_hint=True, open_world_hint=True
            ),
        )


async def list_credentials(
    ctx: Context[Any, Any],
    kind: ListKind = "all",
    text: Annotated[
        str | None, Field(default=None, max_length=256, description="Case-insensitive text in the name or title.")
    ] = None,
    expiring_within: Annotated[
        str | None,
        Field(
            default=None,
            pattern=EXPIRY_PATTERN,
            description="Only tokens that have not expired and expire within this span ('7d', '2w', '1m') or "
            "before this date.",
        ),
    ] = None,
    expired: Annotated[
        bool | None, Field(default=None, description="true: only expired tokens; false: only unexpired ones.")
    ] = None,
    limit: Annotated[int, Field(ge=1, le=500, description="Rows per page (default 50, max 500).")] = 50,
    cursor: Annotated[
        str | None, Field(default=None, max_length=512, description="next_cursor from the previous page.")
    ] = None,
    profile: ProfileArg = None,
) -> CredentialList:
    state = state_of(ctx)
    with tool_errors(state, "list_credentials", profile=profile):
        api = state.api_for(profile)
        now = utcnow()
        before = parse_expiry(expiring_within, now=now) if expiring_within else None
        filters = Filters(text=text, expiring_before=before, expired=expired, now=now)
        phases = KIND_PHASES[kind]
        if before is not None or expired is not None:
            phases = tuple(p for p in phases if p == "token")
        fingerprint = filters.fingerprint(kind)
        start = Position.decode(cursor, fingerprint) if cursor else Position()
        rows: list[Row] = []
        next_cursor: str | None = None
        async for pos, kind_of, item in walk(api, phases, start, ctx):
            if not filters.match(item, kind_of):
                continue
            if len(rows) == limit:
                next_cursor = pos.encode(fingerprint)
                break
            rows.append(Row.of_token(item, now) if kind_of == "token" else Row.of_client(item, kind_of))
        return CredentialList(rows=rows, count=len(rows), next_cursor=next_cursor)


async def get_credential(
    ctx: Context[Any, Any], kind: Kind, id: CredentialId, profile: ProfileArg = None
) -> CredentialDetail:
    state = state_of(ctx)
    with tool_errors(state, "get_credential", kind=kind, ident=id, profile=profile):
        api = state.api_for(profile)
        if kind == "token":
            token = await api.get_token(await api.resolve_token(id))
            return CredentialDetail(kind="token", id=token.id, token=TokenDetail.of(token))
        client = await fetch_client(api, kind, id)
        return CredentialDetail(kind=kind, id=client.client_id, client=ClientDetail.of(client, kind))


async def fetch_client(api: CartoClient, kind: Literal["spa", "m2m"], client_id: str) -> Any:
    """Get a client and check it is of the kind asked for (an M2M id passed as spa is a mistake)."""
    if looks_like_token(client_id):
        # A token value passed as a client id must reach neither the API's URL (and its logs) nor an error.
        raise ToolError(f"kind: '{mask(client_id)}' is a token value, not an OAuth client id; pass kind 'token'.")
    try:
        client = await api.get_client(client_id)
    except NotFound as exc:
        raise NotFound(
            f"No {kind} client with id '{client_id}' for profile '{api.profile_name}'. Call list_credentials "
            f"(kind '{kind}') to see the ids.",
            status_code=404,
        ) from exc
    if client.app_type and client.app_type != kind:
        raise ToolError(
            f"kind: client '{client_id}' is an {client.app_type} client, not {kind}; pass kind '{client.app_type}'."
        )
    return client
