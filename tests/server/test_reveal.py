"""Secrets out of band: one-time reveal pages through URL elicitation, and the file and inline fallbacks.

Every test drives the real server through an MCP client against the loopback sandbox, and
fetches the reveal page over real HTTP. The secret is read from the page (or the sandbox's
own store) and then looked for, raw and encoded, in everything else the call produced: the
tool result, every notification, every log record and the audit log.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import stat
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx2
import mcp_types
import pytest

from carto_mcp.config import Settings
from carto_mcp.sandbox import running_sandbox
from carto_mcp.sandbox.server import RunningSandbox

from .conftest import connect, dump, error_text, grant, ok, token_count
from .test_lost_and_leaked import settings as lost_and_leaked_settings

pytestmark = pytest.mark.anyio

MAPS = {"grants": [grant()], "apis": ["maps"], "name": "reveal-me"}


class Browser:
    """A URL-capable client's elicitation callback: answers each URL question, remembers every question."""

    def __init__(self, action: str = "accept") -> None:
        self.action = action
        self.questions: list[Any] = []

    async def __call__(self, context: Any, params: Any) -> mcp_types.ElicitResult:
        self.questions.append(params)
        if getattr(params, "mode", None) == "url":
            return mcp_types.ElicitResult(action=self.action)  # type: ignore[arg-type]
        return mcp_types.ElicitResult(action="accept", content={"confirm": True})

    @property
    def urls(self) -> list[str]:
        return [q.url for q in self.questions if getattr(q, "mode", None) == "url"]


class Seen:
    """Everything a session sends the client besides results: notifications and log messages."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.completed: list[str] = []

    async def message(self, message: Any) -> None:
        self.items.append(repr(message))
        notice = getattr(message, "root", message)
        if isinstance(notice, mcp_types.ElicitCompleteNotification):
            self.completed.append(notice.params.elicitation_id)

    async def log(self, params: Any) -> None:
        self.items.append(repr(params))


@pytest.fixture
def faulty(tmp_path: Path) -> Iterator[RunningSandbox]:
    """A sandbox with its request counter on."""
    with running_sandbox(tmp_path / "sb.db", faults=True) as sandbox:
        yield sandbox


def settings(sandbox: RunningSandbox, tmp_path: Path, **extra: Any) -> Settings:
    """The abuse run's settings (a throwaway home), with an audit log."""
    return lost_and_leaked_settings(sandbox, tmp_path, audit_log=tmp_path / "audit.jsonl", **extra)


def forms(value: str) -> list[str]:
    """A secret as it could leak: raw, JSON-escaped, URL-encoded, base64."""
    return [value, json.dumps(value)[1:-1], quote(value, safe=""), base64.b64encode(value.encode()).decode()]


def assert_nowhere(secret: str, *texts: str) -> None:
    for text in texts:
        for form in forms(secret):
            assert form not in text


def posts(sandbox: RunningSandbox) -> int:
    counts: dict[str, int] = httpx2.get(f"{sandbox.url}/_sandbox/requests", timeout=5).json()
    return sum(n for key, n in counts.items() if key.startswith("POST "))


def open_page(url: str) -> httpx2.Response:
    return httpx2.get(url, timeout=5)


def page_secret(page: httpx2.Response, name: str) -> str:
    """The value shown beside `name` on a reveal page."""
    text = page.text
    start = text.index(f">{name}</div>")
    code = text.index("<code", start)
    return text[text.index(">", code) + 1 : text.index("</code>", code)]


def audit_text(tmp_path: Path) -> str:
    return (tmp_path / "audit.jsonl").read_text(encoding="utf-8")


def audit_lines(tmp_path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in audit_text(tmp_path).splitlines()]


@asynccontextmanager
async def watched(
    sandbox: RunningSandbox, tmp_path: Path, browser: Browser, caplog: pytest.LogCaptureFixture, **extra: Any
) -> AsyncIterator[tuple[Any, Seen]]:
    """A legacy-protocol session of a URL-capable client that records every notification and log record."""
    seen = Seen()
    caplog.set_level(logging.DEBUG)
    async with connect(
        settings(sandbox, tmp_path, **extra),
        mode="legacy",
        elicitation_callback=browser,
        message_handler=seen.message,
        logging_callback=seen.log,
    ) as client:
        yield client, seen


def records(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() + repr(r.args) for r in caplog.records)


# --- reveal: a client that declares URL elicitation ------------------------------------------------


async def test_create_token_shows_its_value_only_on_the_one_time_page(
    sandbox: RunningSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The result names the page, never the value; one GET shows it (no-store, CSP); the next says 410."""
    browser = Browser()
    async with watched(sandbox, tmp_path, browser, caplog) as (client, seen):
        result = await client.call_tool("create_token", MAPS)
        created = ok(result)
        assert created["delivery"] == "reveal" and created.get("token") is None and created.get("reveal_url") is None
        assert "shown to the person on a one-time page" in dump(result)
        [url] = browser.urls
        assert url.startswith("http://127.0.0.1:") and "/reveal/" in url
        page = open_page(url)  # while the session (and so the listener) is up
        again = open_page(url)
        other = open_page(url.rsplit("/", 1)[0] + "/" + "A" * 43)
    assert page.status_code == 200
    assert page.headers["cache-control"].startswith("no-store")
    assert page.headers["referrer-policy"] == "no-referrer"
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
    secret = page_secret(page, "CARTO_API_ACCESS_TOKEN")
    [stored] = sandbox.store.list_tokens(limit=10)[0]
    assert secret == stored["token"]
    assert created["id"] in page.text and "maps" in page.text and "carto_dw" in page.text
    assert again.status_code == 410 and other.status_code == 404
    assert again.headers["cache-control"].startswith("no-store")
    streams = ("\n".join(seen.items), records(caplog), audit_text(tmp_path))
    assert_nowhere(secret, dump(result), again.text, other.text, *streams)
    assert_nowhere(secret, *(repr(q) for q in browser.questions))
    [line] = audit_lines(tmp_path)
    assert line["tool"] == "create_token" and line["delivery"] == "reveal" and line["id"] == created["id"]


async def test_create_m2m_shows_id_and_secret_only_on_the_page(
    sandbox: RunningSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser()
    async with watched(sandbox, tmp_path, browser, caplog) as (client, _):
        created = ok(await client.call_tool("create_m2m", {"title": "svc"}))
    assert created["delivery"] == "reveal" and created.get("client_secret") is None
    [url] = browser.urls
    # The session is over: the stdio-style listener is gone with it, and so is the secret.
    with pytest.raises(httpx2.TransportError):
        open_page(url)
    [line] = audit_lines(tmp_path)
    assert line["delivery"] == "reveal" and line["id"] == created["id"]


async def test_m2m_page_holds_the_secret_the_client_was_made_with(
    sandbox: RunningSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser()
    async with watched(sandbox, tmp_path, browser, caplog) as (client, seen):
        result = await client.call_tool("create_m2m", {"title": "svc"})
        page = open_page(browser.urls[0])
    created = ok(result)
    assert page.status_code == 200
    assert page_secret(page, "CARTO_M2M_CLIENT_ID") == created["id"]
    secret = page_secret(page, "CARTO_M2M_CLIENT_SECRET")
    assert len(secret) >= 32
    assert_nowhere(secret, dump(result), "\n".join(seen.items), records(caplog), audit_text(tmp_path))


async def test_rotate_token_delivers_the_replacement_on_a_page(
    sandbox: RunningSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser()
    async with watched(sandbox, tmp_path, browser, caplog, yes=True) as (client, seen):
        old = ok(await client.call_tool("create_token", MAPS))
        old_page = open_page(browser.urls[0])
        result = await client.call_tool("rotate_token", {"id": old["id"]})
        page = open_page(browser.urls[1])
    rotated = ok(result)
    assert rotated["status"] == "rotated" and rotated["new"]["delivery"] == "reveal"
    assert rotated["new"].get("token") is None
    new_secret = page_secret(page, "CARTO_API_ACCESS_TOKEN")
    old_secret = page_secret(old_page, "CARTO_API_ACCESS_TOKEN")
    [stored] = sandbox.store.list_tokens(limit=10)[0]
    assert stored["token"] == new_secret != old_secret
    for secret in (new_secret, old_secret):
        assert_nowhere(secret, dump(result), "\n".join(seen.items), records(caplog), audit_text(tmp_path))
    lines = audit_lines(tmp_path)
    assert [(line["tool"], line.get("delivery")) for line in lines] == [
        ("create_token", "reveal"),
        ("rotate_token", "reveal"),
    ]


async def test_a_declined_page_is_named_in_the_result_and_still_answers_once(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    browser = Browser("decline")
    async with connect(settings(sandbox, tmp_path), mode="legacy", elicitation_callback=browser) as client:
        result = await client.call_tool("create_token", MAPS)
        created = ok(result)
        url = created["reveal_url"]
        assert url == browser.urls[0] and created.get("token") is None and created["reveal_expires_at"]
        assert "did not open the one-time page" in dump(result)
        first, second = open_page(url), open_page(url)
    assert first.status_code == 200 and second.status_code == 410
    [stored] = sandbox.store.list_tokens(limit=10)[0]
    assert page_secret(first, "CARTO_API_ACCESS_TOKEN") == stored["token"]
    assert_nowhere(stored["token"], dump(result), second.text)


async def test_the_client_is_told_when_the_page_it_was_asked_to_open_has_been_read(
    sandbox: RunningSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """notifications/elicitation/complete names the page's elicitation once it is read, and not before."""
    browser = Browser()
    async with watched(sandbox, tmp_path, browser, caplog) as (client, seen):
        ok(await client.call_tool("create_token", MAPS))
        [question] = [q for q in browser.questions if getattr(q, "mode", None) == "url"]
        await anyio.sleep(0.2)
        assert seen.completed == []  # asked, not yet read
        page = await anyio.to_thread.run_sync(open_page, question.url)
        with anyio.fail_after(5):
            while not seen.completed:
                await anyio.sleep(0.01)
        again = await anyio.to_thread.run_sync(open_page, question.url)
        await anyio.sleep(0.2)
    assert page.status_code == 200 and again.status_code == 410
    assert seen.completed == [question.elicitation_id]  # once: a second GET completes nothing


async def test_a_declined_page_read_later_completes_no_elicitation(
    sandbox: RunningSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    browser = Browser("decline")
    async with watched(sandbox, tmp_path, browser, caplog) as (client, seen):
        url = ok(await client.call_tool("create_token", MAPS))["reveal_url"]
        page = await anyio.to_thread.run_sync(open_page, url)
        await anyio.sleep(0.3)
    assert page.status_code == 200 and seen.completed == []


async def test_a_page_not_opened_within_its_ttl_is_gone(sandbox: RunningSandbox, tmp_path: Path) -> None:
    browser = Browser()
    async with connect(
        settings(sandbox, tmp_path, reveal_ttl=0.5), mode="legacy", elicitation_callback=browser
    ) as client:
        ok(await client.call_tool("create_token", MAPS))
        await anyio.sleep(0.8)
        late = open_page(browser.urls[0])
    assert late.status_code == 410
    [stored] = sandbox.store.list_tokens(limit=10)[0]
    assert_nowhere(stored["token"], late.text)


async def test_a_head_request_does_not_use_up_the_page(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A link preview (HEAD) is refused without taking the one view."""
    browser = Browser()
    async with connect(settings(sandbox, tmp_path), mode="legacy", elicitation_callback=browser) as client:
        ok(await client.call_tool("create_token", MAPS))
        head = httpx2.head(browser.urls[0], timeout=5)
        page = open_page(browser.urls[0])
    assert head.status_code == 405 and page.status_code == 200


async def test_the_loopback_page_refuses_a_foreign_host_header(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """DNS rebinding: a page on another site that resolves its name to 127.0.0.1 is refused, and takes nothing."""
    browser = Browser()
    async with connect(settings(sandbox, tmp_path), mode="legacy", elicitation_callback=browser) as client:
        ok(await client.call_tool("create_token", MAPS))
        foreign = httpx2.get(browser.urls[0], headers={"Host": "evil.example:80"}, timeout=5)
        origin = httpx2.get(browser.urls[0], headers={"Origin": "https://evil.example"}, timeout=5)
        page = open_page(browser.urls[0])
    assert foreign.status_code == 421 and origin.status_code == 403 and page.status_code == 200


# --- a client that cannot open URLs --------------------------------------------------------------


async def test_reveal_without_a_url_client_or_a_dir_refuses_before_anything_is_sent(
    faulty: RunningSandbox, tmp_path: Path
) -> None:
    async with connect(settings(faulty, tmp_path, secrets="reveal")) as client:
        text = error_text(await client.call_tool("create_token", MAPS))
        m2m = error_text(await client.call_tool("create_m2m", {"title": "svc"}))
    assert posts(faulty) == 0 and token_count(faulty) == 0
    for message in (text, m2m):
        assert "--secrets reveal" in message and "URL-mode elicitation" in message
        assert "--secrets-dir" in message and "Nothing was created. Start the server" in message
        assert not message.startswith("Invalid arguments")  # a server setting, not the call's arguments


async def test_reveal_refuses_on_a_session_that_cannot_ask_mid_call(faulty: RunningSandbox, tmp_path: Path) -> None:
    """On MCP 2026-07-28 a tool cannot send a question while it runs: reveal falls back or refuses, first."""
    async with connect(settings(faulty, tmp_path, secrets="reveal"), elicitation_callback=Browser()) as client:
        text = error_text(await client.call_tool("create_token", MAPS))
    assert "2026-07-28" in text and posts(faulty) == 0


async def test_reveal_falls_back_to_the_secrets_dir_as_a_0600_file(
    sandbox: RunningSandbox, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir(mode=0o700)
    caplog.set_level(logging.DEBUG)
    async with connect(settings(sandbox, tmp_path, secrets="reveal", secrets_dir=secrets_dir)) as client:
        result = await client.call_tool("create_token", MAPS)
        m2m_result = await client.call_tool("create_m2m", {"title": "svc"})
    created, m2m = ok(result), ok(m2m_result)
    assert created["delivery"] == "file" and created.get("token") is None
    path = Path(created["secret_file"])
    assert path.parent == secrets_dir and path.name == f"token-{created['id']}.env"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    [stored] = sandbox.store.list_tokens(limit=10)[0]
    assert path.read_text() == f"CARTO_API_ACCESS_TOKEN={stored['token']}\n"
    m2m_file = Path(m2m["secret_file"]).read_text()
    assert m2m.get("client_secret") is None and f"CARTO_M2M_CLIENT_ID={m2m['id']}\n" in m2m_file
    secret = m2m_file.split("CARTO_M2M_CLIENT_SECRET=", 1)[1].strip()
    for value in (stored["token"], secret):
        assert_nowhere(value, dump(result), dump(m2m_result), records(caplog), audit_text(tmp_path))
    assert [line["delivery"] for line in audit_lines(tmp_path)] == ["file", "file"]


async def test_by_default_a_client_without_urls_gets_the_value_inline_with_a_warning(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    async with connect(settings(sandbox, tmp_path)) as client:
        created = ok(await client.call_tool("create_token", MAPS))
    assert created["delivery"] == "inline" and created["token"]
    assert any("now in the conversation" in w for w in created["warnings"])
    assert audit_lines(tmp_path)[0]["delivery"] == "inline"


async def test_a_named_secret_file_wins_over_the_page(sandbox: RunningSandbox, tmp_path: Path) -> None:
    browser = Browser()
    target = tmp_path / "app.env"
    async with connect(settings(sandbox, tmp_path), mode="legacy", elicitation_callback=browser) as client:
        created = ok(await client.call_tool("create_token", {**MAPS, "secret_output_file": str(target)}))
    assert created["delivery"] == "file" and browser.urls == []
    assert target.read_text().startswith("CARTO_API_ACCESS_TOKEN=eyJ")


async def test_inline_setting_puts_the_value_in_the_result_even_for_a_url_client(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    browser = Browser()
    async with connect(
        settings(sandbox, tmp_path, secrets="inline"), mode="legacy", elicitation_callback=browser
    ) as client:
        created = ok(await client.call_tool("create_token", MAPS))
    assert created["delivery"] == "inline" and created["token"] and browser.urls == []
