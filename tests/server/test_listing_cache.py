"""The listing cache, through an MCP client: reused while fresh, cleared by this server's changes.

The sandbox's request counter is the witness: a listing served from the cache sends nothing,
one after a change (or with `fresh: true`) reads CARTO again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client

from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox

from .conftest import connect, grant, ok, settings_for

pytestmark = pytest.mark.anyio

LIST = "GET /v3/tokens"


@pytest.fixture
def counted(tmp_path: Path) -> Iterator[RunningSandbox]:
    """A sandbox with its request counter on, seeded with 250 tokens (3 pages of 100)."""
    with running_sandbox(tmp_path / "cached.sqlite3", faults=True) as running:
        running.store.seed_tokens(250)
        yield running


def requests(sandbox: RunningSandbox) -> dict[str, int]:
    counts: dict[str, int] = httpx2.get(f"{sandbox.url}/_sandbox/requests").json()
    return counts


def forget(sandbox: RunningSandbox) -> None:
    httpx2.delete(f"{sandbox.url}/_sandbox/requests").raise_for_status()


async def names(client: Client, **arguments: Any) -> list[str]:
    listed = ok(await client.call_tool("list_credentials", {"kind": "token", "limit": 500, **arguments}))
    return [row.get("name", "") for row in listed["rows"]]


async def test_a_whole_listing_is_reused_while_it_is_fresh(counted: RunningSandbox) -> None:
    """A filtered list reads every page once; the same or another filter right after sends nothing."""
    async with connect(settings_for(counted)) as client:
        forget(counted)
        first = await names(client, text="seed-00249")
        walked = requests(counted).get(LIST, 0)
        again = await names(client, text="seed-00249")
        other = await names(client, text="seed-001")
        after = requests(counted).get(LIST, 0)

    assert first == again == ["seed-00249"]
    assert other == [f"seed-{i:05d}" for i in range(100, 200)]
    assert walked == 3
    assert after == walked


async def test_a_change_this_server_makes_shows_in_the_next_list_without_fresh(counted: RunningSandbox) -> None:
    """Creating, updating and revoking each clear the cache: the next list reads CARTO and shows the change."""
    async with connect(settings_for(counted, yes=True)) as client:
        assert await names(client, text="cache-demo") == []
        created = ok(
            await client.call_tool("create_token", {"name": "cache-demo", "apis": ["maps"], "grants": [grant()]})
        )
        assert await names(client, text="cache-demo") == ["cache-demo"]

        update = {"kind": "token", "id": created["id"], "name": "cache-demo-renamed"}
        ok(await client.call_tool("update_credential", update))
        assert await names(client, text="cache-demo") == ["cache-demo-renamed"]

        ok(await client.call_tool("revoke_credential", {"kind": "token", "id": created["id"]}))
        assert await names(client, text="cache-demo") == []


async def test_a_change_made_elsewhere_shows_with_fresh(counted: RunningSandbox) -> None:
    """A token created behind the server's back is not in the cached listing until fresh: true reads CARTO."""
    async with connect(settings_for(counted)) as client:
        assert await names(client, text="made-elsewhere") == []
        counted.store.seed_tokens(1, name_prefix="made-elsewhere")
        forget(counted)

        cached = await names(client, text="made-elsewhere")
        assert requests(counted).get(LIST, 0) == 0
        fresh = await names(client, text="made-elsewhere", fresh=True)
        assert requests(counted).get(LIST, 0) == 3

    assert cached == []
    assert fresh == ["made-elsewhere-00000"]


async def test_with_cache_ttl_0_every_list_reads_carto(counted: RunningSandbox) -> None:
    """--cache-ttl 0 turns the cache off: the same filtered list twice reads every page twice."""
    async with connect(settings_for(counted, cache_ttl=0)) as client:
        forget(counted)
        await names(client, text="seed-00249")
        await names(client, text="seed-00249")
        assert requests(counted).get(LIST, 0) == 6


async def test_a_cursor_continues_the_same_way_from_the_cache(counted: RunningSandbox) -> None:
    """Paging with a cursor gives the same rows whether the pages come from CARTO or the cache."""
    async with connect(settings_for(counted)) as client:
        await names(client, text="seed")  # fills the cache
        forget(counted)
        pages: list[list[str]] = []
        cursor: str | None = None
        while True:
            listed = ok(
                await client.call_tool(
                    "list_credentials",
                    {"kind": "token", "text": "seed", "limit": 60, **({"cursor": cursor} if cursor else {})},
                )
            )
            pages.append([row["name"] for row in listed["rows"]])
            cursor = listed.get("next_cursor")
            if cursor is None:
                break
        assert requests(counted).get(LIST, 0) == 0

    assert [len(p) for p in pages] == [60, 60, 60, 60, 10]
    assert [name for page in pages for name in page] == [f"seed-{i:05d}" for i in range(250)]
