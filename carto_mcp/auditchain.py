"""The sealed line format of the audit log: what a line's `prev` and `hash` are, and how they are made.

Each line is one JSON object. Besides its own fields (time, profile, tool, ...) a sealed line
carries `prev`, the hash of the sealed line before it in the file (`GENESIS` for the first),
and `hash`, a digest of every other key of the line, `prev` included:

    hash = SHA-256(canonical(line without "hash"))                      no key
    hash = HMAC-SHA256(key, canonical(line without "hash"))             CARTO_MCP_AUDIT_KEY set

`canonical` is the JSON text with sorted keys and compact separators, so any key a line holds,
today's or one added later (`delivery`, `chain_break`, ...), is covered without this module
knowing its name. A keyed line also carries `key_id`, a short fingerprint of the key that says
which key checks it and reveals nothing usable about it. Editing a line breaks its own hash;
removing, inserting or moving one breaks the next line's `prev`.

This module is pure (no files): the writer (`carto_mcp.server.audit`) and the checker
(`carto_mcp.audit_verify`) both build on it, so they cannot disagree on the format.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "AUDIT_FIELDS",
    "CHAIN_BREAK",
    "GENESIS",
    "KEY_ID_LENGTH",
    "SEAL_KEYS",
    "canonical",
    "digest",
    "is_audit_entry",
    "is_digest",
    "is_unsealed",
    "key_id",
    "parse_entry",
    "seal",
    "sealed_hash",
]

#: The `prev` of the first sealed line of a file: there is no line before it.
GENESIS = "0" * 64
#: Hex digits of a key id: enough to tell keys apart, far too few to learn anything about one.
KEY_ID_LENGTH = 8
#: The key a line sets when the lines just before it were not sealed lines (a torn write, say).
CHAIN_BREAK = "chain_break"
#: The keys `seal` adds; an entry must not bring its own.
SEAL_KEYS = ("key_id", "prev", "hash")
#: Fields every audit line has had, sealed or not: how an audit line is told from other JSON.
AUDIT_FIELDS = ("time", "tool", "outcome")

_KEY_ID_CONTEXT = b"carto-mcp audit key id"
_DIGEST = re.compile(r"[0-9a-f]{64}")


def key_id(key: bytes) -> str:
    """A non-secret fingerprint of `key`, written in each keyed line so verify knows which key it needs."""
    return hashlib.sha256(_KEY_ID_CONTEXT + key).hexdigest()[:KEY_ID_LENGTH]


def canonical(entry: Mapping[str, Any]) -> bytes:
    """The bytes a hash covers: every key but `hash`, sorted, compact, UTF-8."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def digest(entry: Mapping[str, Any], key: bytes | None) -> str:
    """The hash a line with this content must carry: HMAC-SHA256 with `key`, or SHA-256 without one."""
    data = canonical(entry)
    if key is None:
        return hashlib.sha256(data).hexdigest()
    return hmac.new(key, data, hashlib.sha256).hexdigest()


def seal(entry: Mapping[str, Any], *, prev: str, key: bytes | None) -> bytes:
    """The whole line for `entry` chained onto `prev`: its JSON (in the entry's own key order) and a newline."""
    clash = [k for k in SEAL_KEYS if k in entry]
    if clash:
        raise ValueError(f"an audit entry may not set {', '.join(clash)}: seal adds them")
    line: dict[str, Any] = dict(entry)
    if key is not None:
        line["key_id"] = key_id(key)
    line["prev"] = prev
    line["hash"] = digest(line, key)
    return (json.dumps(line, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")


class _DuplicateKey(ValueError):
    """A JSON object names a key twice: readers disagree on which one counts, so the line is refused."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in pairs:
        if name in out:
            raise _DuplicateKey(name)
        out[name] = value
    return out


def parse_entry(raw: bytes) -> dict[str, Any] | str:
    """The JSON object on one line (without its newline), or why it is not one (a phrase for a message)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "is not UTF-8 text"
    if not text.strip():
        return "is empty"
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates)
    except _DuplicateKey as exc:
        return f"names the key {str(exc)[:40]!r} twice"
    except (ValueError, RecursionError):  # JSONDecodeError is a ValueError, and so is a 5,000-digit number
        return "is not a whole JSON object"
    if not isinstance(value, dict):
        return "is JSON but not an object"
    return value


def is_digest(value: object) -> bool:
    """A hash or prev as this module writes them: 64 lowercase hex digits."""
    return isinstance(value, str) and _DIGEST.fullmatch(value) is not None


def is_audit_entry(entry: Mapping[str, Any]) -> bool:
    """An audit line of any carto-mcp version: the fields every one of them wrote."""
    return all(name in entry for name in AUDIT_FIELDS)


def is_unsealed(entry: Mapping[str, Any]) -> bool:
    """An audit line from a carto-mcp before the chain: the audit fields, and neither `hash` nor `prev`."""
    return is_audit_entry(entry) and "hash" not in entry and "prev" not in entry


def sealed_hash(raw: bytes) -> str | None:
    """The hash of a sealed audit line, as stored (not re-checked: that is verify's job); None for anything else."""
    entry = parse_entry(raw)
    if isinstance(entry, str) or not is_audit_entry(entry):
        return None
    value = entry.get("hash")
    return value if is_digest(value) and is_digest(entry.get("prev")) else None
