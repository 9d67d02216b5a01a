"""Secret delivery's pure parts: which mode a create gets, and the one-time store's answers."""

from __future__ import annotations

from pathlib import Path

import pytest

from carto_mcp.credentials.delivery import choose
from carto_mcp.credentials.reveal import RevealStore, SecretPage
from carto_mcp.errors import InputError

PAGE = SecretPage("API Access Token t", (("CARTO_API_ACCESS_TOKEN", "eyJ-value"),), (("Token id", "t"),))
DIR = Path("/tmp/secrets")


@pytest.mark.parametrize(
    ("setting", "obstacle", "directory", "expected"),
    [
        (None, None, None, "reveal"),
        (None, "no url", DIR, "file"),
        (None, "no url", None, "inline"),
        ("reveal", None, None, "reveal"),
        ("reveal", "no url", DIR, "file"),
        ("file", None, DIR, "file"),
        ("inline", None, DIR, "inline"),
    ],
)
def test_the_mode_of_a_create(setting: str | None, obstacle: str | None, directory: Path | None, expected: str) -> None:
    assert choose(setting, reveal_possible=obstacle, secrets_dir=directory) == expected  # type: ignore[arg-type]


def test_reveal_never_silently_becomes_inline() -> None:
    with pytest.raises(InputError) as raised:
        choose("reveal", reveal_possible="this client did not declare URL-mode elicitation", secrets_dir=None)
    assert "Nothing was created" in raised.value.message and "--secrets-dir" in (raised.value.fix or "")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_page_is_taken_once_then_gone_and_unknown_ids_are_unknown() -> None:
    store = RevealStore(ttl=60)
    reveal = store.put(PAGE)
    assert len(reveal.ident) >= 43  # 256 random bits, URL-safe
    assert store.pending() == 1
    assert store.take(reveal.ident) == PAGE
    assert store.take(reveal.ident) == "gone"
    assert store.take("x" * 43) == "unknown"
    assert store.pending() == 0


def test_a_page_expires_after_its_ttl_and_its_bytes_are_zeroed() -> None:
    clock = Clock()
    store = RevealStore(ttl=10, clock=clock)
    reveal = store.put(PAGE)
    held = store._entries[reveal.ident].secrets[0]
    clock.now += 10.5
    assert store.pending() == 0
    assert store.take(reveal.ident) == "gone"
    assert bytes(held) == b"\0" * len("eyJ-value")


def test_take_all_hands_over_what_waits_and_leaves_nothing() -> None:
    store = RevealStore(ttl=60)
    first, second = store.put(PAGE), store.put(PAGE)
    assert store.take_all() == [PAGE, PAGE]
    assert store.take(first.ident) == store.take(second.ident) == "gone"
