"""The sealed line format: what a hash covers, what a key id reveals, which lines count as sealed."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from carto_mcp.auditchain import GENESIS, canonical, digest, key_id, parse_entry, seal, sealed_hash

KEY = b"a-test-audit-key-0123456789"
ENTRY = {"time": "2025-01-01T00:00:00.000000Z", "profile": "p", "tool": "create_token", "outcome": "ok"}


def test_a_plain_line_hashes_every_other_key_sorted_and_compact_with_its_prev() -> None:
    """hash = SHA-256 of the line's JSON without `hash`, keys sorted, compact separators, prev included."""
    line = json.loads(seal(ENTRY, prev=GENESIS, key=None))
    body = {k: v for k, v in line.items() if k != "hash"}
    expected = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert line["hash"] == expected and line["prev"] == GENESIS and "key_id" not in line


def test_a_keyed_line_is_an_hmac_and_names_its_key_by_an_id_that_is_not_the_key() -> None:
    """With a key: HMAC-SHA256 over the same bytes, and a key_id of 8 hex digits that differs per key."""
    raw = seal(ENTRY, prev=GENESIS, key=KEY)
    line = json.loads(raw)
    assert line["key_id"] == key_id(KEY) and len(line["key_id"]) == 8
    assert line["hash"] == hmac.new(KEY, canonical(line), hashlib.sha256).hexdigest()
    assert key_id(KEY) != key_id(KEY + b"x")
    assert KEY.decode() not in raw.decode() and KEY.hex() not in raw.decode()


def test_a_key_added_to_an_entry_later_is_covered_by_the_hash() -> None:
    """An extra field (such as `delivery`) changes the hash, and changing its value breaks it."""
    with_delivery = json.loads(seal({**ENTRY, "delivery": "file"}, prev=GENESIS, key=KEY))
    without = json.loads(seal(ENTRY, prev=GENESIS, key=KEY))
    assert with_delivery["hash"] != without["hash"]
    assert digest({**with_delivery, "delivery": "inline"}, KEY) != with_delivery["hash"]
    assert digest(with_delivery, KEY) == with_delivery["hash"]


def test_an_entry_cannot_bring_its_own_seal_keys() -> None:
    """prev, hash and key_id are the sealer's: an entry that sets one is a bug, refused."""
    for name in ("prev", "hash", "key_id"):
        with pytest.raises(ValueError, match=name):
            seal({**ENTRY, name: "x"}, prev=GENESIS, key=None)


def test_only_a_whole_audit_object_with_a_hash_and_prev_is_a_sealed_line() -> None:
    """Torn JSON, other JSON, an old unsealed line, or a duplicated key are not sealed lines."""
    good = seal(ENTRY, prev=GENESIS, key=None).rstrip(b"\n")
    assert sealed_hash(good) == json.loads(good)["hash"]
    assert sealed_hash(good[:-5]) is None
    assert sealed_hash(b'{"a": 1}') is None
    assert sealed_hash(json.dumps(ENTRY).encode()) is None
    assert parse_entry(b'{"time": 1, "time": 2}') == "names the key 'time' twice"
    assert parse_entry(b"\xff\xfe") == "is not UTF-8 text"
    assert parse_entry(b"[1]") == "is JSON but not an object"
