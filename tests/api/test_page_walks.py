"""Concurrent page walks against a sandbox that answers slowly, as a CARTO API far away does.

The sandbox counts what it served: the peak number of requests in flight, and how many times
each list page was answered. These tests check the walk's promises with those counters —
bounded concurrency, pages in order and each fetched once (429 bursts included), early stop —
not its speed, which `benchmarks/` measures.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx2
import pytest

from carto_mcp.api import CartoClient, RetryPolicy, ValidationFailed
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox

from ._support import BASE_URL, LOGIN, Admin, token_object

pytestmark = pytest.mark.anyio

#: 40 tokens, 2 per page: 20 pages.
TOKENS = 40
PER_PAGE = 2
PAGES = TOKENS // PER_PAGE
FAST_RETRY = RetryPolicy(backoff=0.01)


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[RunningSandbox]:
    """A sandbox that answers every request 30 ms late, seeded with 40 tokens."""
    with running_sandbox(tmp_path / "slow.sqlite3", faults=True, latency_ms=30) as running:
        running.store.seed_tokens(TOKENS)
        yield running


@pytest.fixture
def slow_admin(slow: RunningSandbox) -> Iterator[Admin]:
    helper = Admin(slow.url)
    try:
        yield helper
    finally:
        helper.close()


def walk_client(sandbox: RunningSandbox, concurrency: int) -> CartoClient:
    return CartoClient(
        base_url=sandbox.url, auth=LOGIN, per_page=PER_PAGE, max_concurrency=concurrency, retry=FAST_RETRY
    )


def in_store_order(sandbox: RunningSandbox) -> list[str]:
    rows, _ = sandbox.store.list_tokens(limit=TOKENS)
    return [row["token"] for row in rows]


def every_page_once() -> dict[str, int]:
    return {f"/v3/tokens?page={page}": 1 for page in range(1, PAGES + 1)}


@pytest.mark.parametrize("concurrency", [1, 3, 8])
async def test_a_walk_never_has_more_requests_in_flight_than_its_setting(
    slow: RunningSandbox, slow_admin: Admin, concurrency: int
) -> None:
    """Every token comes back in order, every page is asked once, and at most `concurrency` at a time."""
    async with walk_client(slow, concurrency) as api:
        tokens = await api.list_tokens()

    stats = slow_admin.stats()
    assert [t.token for t in tokens] == in_store_order(slow)
    assert stats["pages_served"] == every_page_once()
    assert stats["requests"] == {"GET /v3/tokens": PAGES}
    assert stats["peak_in_flight"] <= concurrency
    if concurrency > 1:
        assert stats["peak_in_flight"] > 1  # the pages after the first really were fetched together


async def test_a_429_burst_mid_walk_ends_with_every_page_served_exactly_once(
    slow: RunningSandbox, slow_admin: Admin
) -> None:
    """Pages refused with 429 are asked again (after Retry-After) and no page is served twice."""
    slow_admin.fault(mode="status", status=429, times=4, skip=3, retry_after=0, method="GET", path_prefix="/v3/tokens")

    async with walk_client(slow, 4) as api:
        tokens = await api.list_tokens()
        throttled = api.rate_limited

    stats = slow_admin.stats()
    assert [t.token for t in tokens] == in_store_order(slow)
    assert stats["pages_served"] == every_page_once()
    assert stats["requests"] == {"GET /v3/tokens": PAGES + 4}  # the four refused asks, and nothing more
    assert throttled == 4


async def test_an_id_is_found_with_early_stop(slow: RunningSandbox, slow_admin: Admin) -> None:
    """The id of a token on page 3 of 20 is found reading 3 pages; at most two windows (of 2) were asked ahead."""
    async with walk_client(slow, 8) as reader:
        jti = (await reader.list_tokens())[5].id  # token 6: page 3
    slow_admin.reset()

    async with walk_client(slow, 2) as api:
        found = await api.find_token(jti)
        await anyio.sleep(0.1)  # a page asked ahead is answered (30 ms) by now: the counts below are final

    stats = slow_admin.stats()
    assert found.token == in_store_order(slow)[5]
    served = stats["pages_served"]
    assert (
        {f"/v3/tokens?page={page}" for page in (1, 2, 3)}
        <= set(served)
        <= {f"/v3/tokens?page={page}" for page in range(1, 6)}
    )
    assert set(served.values()) == {1}
    # The walk read the token, so no lookup follows it; pages 4 and 5 at most were asked ahead, not 20.
    assert set(stats["requests"]) == {"GET /v3/tokens"} and stats["requests"]["GET /v3/tokens"] <= 5


async def test_a_page_refused_mid_batch_is_one_clear_error_not_a_group(slow: RunningSandbox, slow_admin: Admin) -> None:
    """A 400 on one page of a concurrent batch ends the walk with that page's error, as a sequential walk would."""
    slow_admin.fault(mode="status", status=400, times=1, skip=2, method="GET", path_prefix="/v3/tokens")

    async with walk_client(slow, 4) as api:
        with pytest.raises(ValidationFailed) as caught:
            await api.list_tokens()

    assert str(caught.value).startswith("CARTO refused the token list (400 Bad Request")
    assert caught.value.method == "GET"


async def test_without_a_total_the_pages_follow_one_another() -> None:
    """A service that reports no total is walked one page at a time until a short page."""
    in_flight = peak = 0
    asked: list[str] = []

    async def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal in_flight, peak
        page = int(request.url.params["page"])
        asked.append(str(page))
        in_flight += 1
        peak = max(peak, in_flight)
        await anyio.sleep(0.01)
        in_flight -= 1
        rows = [token_object(name=f"p{page}-{i}") for i in range(2 if page < 4 else 1)]
        return httpx2.Response(200, content=json.dumps({"data": rows}), headers={"content-type": "application/json"})

    transport = httpx2.MockTransport(handler)
    async with CartoClient(base_url=BASE_URL, auth=LOGIN, transport=transport, per_page=2, max_concurrency=8) as api:
        tokens = await api.list_tokens()

    assert [t.name for t in tokens] == ["p1-0", "p1-1", "p2-0", "p2-1", "p3-0", "p3-1", "p4-0"]
    assert asked == ["1", "2", "3", "4"]
    assert peak == 1
