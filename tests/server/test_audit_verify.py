"""`verify` on audit logs written by a real server through an MCP client against the sandbox.

Each damage a person could do to the file — edit a line, delete one, swap two, cut the end,
recompute a hash without the key — is its own test, reported with its line number; the
intact log, and every refusal of a mutating call, keep the chain whole.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest

from carto_mcp.audit_verify import Report, verify
from carto_mcp.auditchain import digest
from carto_mcp.sandbox.server import RunningSandbox

from .conftest import connect, error_text, grant, ok, settings_for

pytestmark = pytest.mark.anyio

KEY = b"audit-key-for-the-tests-0001"
MAPS = {"grants": [grant()], "apis": ["maps"]}


async def write_log(sandbox: RunningSandbox, path: Path, **settings: Any) -> None:
    """Six mutating calls, successes and refusals, as an agent would make them: six audit lines."""
    async with connect(settings_for(sandbox, audit_log=path, yes=True, **settings)) as client:
        token = ok(await client.call_tool("create_token", {**MAPS, "name": "first"}))
        ok(await client.call_tool("create_spa", {"title": "web"}))
        error_text(await client.call_tool("create_token", {"grants": [grant()], "apis": ["imports", "sql"]}))
        ok(await client.call_tool("update_credential", {"kind": "token", "id": token["id"], "name": "renamed"}))
        ok(await client.call_tool("revoke_credential", {"kind": "token", "id": token["id"]}))
        ok(await client.call_tool("create_m2m", {"title": "svc"}))


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def problems(report: Report) -> list[str]:
    return [finding.text() for finding in report.problems]


def problems_after(log: Path, lines: list[bytes]) -> list[str]:
    """Write `lines` over the log and verify it: it must fail (exit 1); its problems, in order."""
    log.write_bytes(b"".join(lines))
    report = verify(log)
    assert report.exit_code == 1 and not report.intact
    return problems(report)


@pytest.fixture
async def log(sandbox: RunningSandbox, tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    await write_log(sandbox, path)
    assert len(lines_of(path)) == 6
    return path


async def test_an_intact_log_verifies_with_its_summary(log: Path) -> None:
    """Six lines from a real server: intact, exit 0, times of the first and last line, the last hash."""
    entries = [json.loads(line) for line in lines_of(log)]
    report = verify(log)
    assert report.intact and report.exit_code == 0 and problems(report) == [] and report.warnings == []
    assert (report.lines, report.sealed) == (6, 6)
    assert (report.first_time, report.last_time) == (entries[0]["time"], entries[-1]["time"])
    assert report.last_hash == entries[-1]["hash"] and report.key_ids == []
    assert [e["prev"] for e in entries[1:]] == [e["hash"] for e in entries[:-1]]


async def test_an_edited_line_is_reported_by_its_number(log: Path) -> None:
    """Line 3's outcome changed from error to ok: its hash no longer matches; nothing else is blamed."""
    lines = lines_of(log)
    assert b'"outcome":"error"' in lines[2]
    lines[2] = lines[2].replace(b'"outcome":"error"', b'"outcome":"ok"')
    assert problems_after(log, lines) == ["line 3: hash does not match its content (edited?)"]


async def test_a_deleted_line_is_reported_at_the_line_after_the_gap(log: Path) -> None:
    """Line 4 removed: what is now line 4 names a prev that is not line 3's hash."""
    lines = lines_of(log)
    del lines[3]
    assert problems_after(log, lines) == ["line 4: prev does not match line 3's hash (a line was deleted or reordered)"]


async def test_two_swapped_lines_are_reported_as_moved(log: Path) -> None:
    """Lines 2 and 3 swapped: every broken link is named, and one points at where the line belongs."""
    lines = lines_of(log)
    lines[1], lines[2] = lines[2], lines[1]
    assert problems_after(log, lines) == [
        "line 2: prev does not match line 1's hash (a line was deleted or reordered)",
        "line 3: prev does not match line 2's hash (a line was deleted or reordered); it is the hash of line 1, "
        "so lines were moved",
        "line 4: prev does not match line 3's hash (a line was deleted or reordered); it is the hash of line 2, "
        "so lines were moved",
    ]


async def test_an_edit_with_its_hash_recomputed_breaks_the_next_link(log: Path) -> None:
    """Without a key anyone may recompute an edited line's hash, but the next line's prev still names the old one."""
    lines = lines_of(log)
    entry = json.loads(lines[1])
    entry["tool"] = "create_m2m"
    entry["hash"] = digest(entry, None)
    lines[1] = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    assert problems_after(log, lines) == ["line 3: prev does not match line 2's hash (a line was deleted or reordered)"]


async def test_a_cut_end_is_caught_only_with_the_recorded_last_hash(log: Path) -> None:
    """The last two lines cut: the rest is still a valid chain, but the hash recorded before is on no line."""
    recorded = verify(log).last_hash
    assert recorded is not None
    log.write_bytes(b"".join(lines_of(log)[:-2]))
    assert verify(log).intact
    report = verify(log, last_hash=recorded)
    assert report.exit_code == 1 and "is on no line: lines were cut from the end" in problems(report)[0]
    assert verify(log, last_hash=verify(log).last_hash).recorded_line == 4


async def test_an_hmac_log_passes_with_its_key_and_fails_clearly_without_it(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """Sealed with a key: that key passes; no key cannot check (exit 2); a wrong key names both key ids."""
    path = tmp_path / "audit.jsonl"
    await write_log(sandbox, path, audit_key=KEY)
    raw = path.read_text(encoding="utf-8")
    assert KEY.decode() not in raw
    key_ids = {json.loads(line)["key_id"] for line in raw.splitlines()}
    assert len(key_ids) == 1
    (kid,) = key_ids

    right = verify(path, [KEY])
    assert right.intact and right.key_ids == [kid]
    keyless = verify(path)
    assert keyless.exit_code == 2 and keyless.cannot_check is not None
    assert kid in keyless.cannot_check and "--key-file" in keyless.cannot_check
    wrong = verify(path, [b"another-key-of-sixteen-plus"])
    assert wrong.exit_code == 1 and len(problems(wrong)) == 1
    assert problems(wrong)[0].startswith(f"line 1: sealed with key id {kid}, but the key given has id ")
    assert "6 lines not checked" in problems(wrong)[0]


async def test_an_hmac_line_edited_and_rehashed_without_the_key_fails(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A forger without the key recomputes a plain SHA-256: the line no longer matches its HMAC."""
    path = tmp_path / "audit.jsonl"
    await write_log(sandbox, path, audit_key=KEY)
    lines = lines_of(path)
    entry = json.loads(lines[4])
    entry["outcome"], entry["hash"] = "declined", digest({**entry, "outcome": "declined"}, None)
    lines[4] = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
    path.write_bytes(b"".join(lines))
    assert problems(verify(path, [KEY]))[0] == "line 5: hash does not match its content (edited?)"


async def test_lines_appended_without_a_key_after_keyed_ones_are_problems(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A server that lost its key keeps the chain, but its plain lines after the keyed ones prove nothing."""
    path = tmp_path / "audit.jsonl"
    await write_log(sandbox, path, audit_key=KEY)
    async with connect(settings_for(sandbox, audit_log=path)) as client:
        ok(await client.call_tool("create_spa", {"title": "keyless"}))
    report = verify(path, [KEY])
    assert problems(report) == [
        "line 7: sealed without a key (plain SHA-256) after line 6, the last keyed line: anyone who can write the "
        "file could have written them (or a server ran without CARTO_MCP_AUDIT_KEY)"
    ]


async def test_refusals_of_mutating_calls_are_audited_and_the_chain_stays_whole(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """An InputError from our own rules (imports with sql, an expiry in the past) writes one error line naming the
    class, between successes, and the log verifies."""
    path = tmp_path / "audit.jsonl"
    async with connect(settings_for(sandbox, audit_log=path)) as client:
        ok(await client.call_tool("create_token", MAPS))
        error_text(await client.call_tool("create_token", {"grants": [grant()], "apis": ["imports", "sql"]}))
        error_text(await client.call_tool("create_token", {**MAPS, "expiration_date": "2001-01-01"}))
        error_text(await client.call_tool("create_token", {**MAPS, "nmae": "typo"}))
        ok(await client.call_tool("create_spa", {"title": "web"}))
    entries = [json.loads(line) for line in lines_of(path)]
    assert [(e["tool"], e["outcome"], e["error"]) for e in entries] == [
        ("create_token", "ok", None),
        ("create_token", "error", "InputError"),
        ("create_token", "error", "InputError"),
        ("create_token", "error", "InputError"),
        ("create_spa", "ok", None),
    ]
    assert verify(path).intact


async def test_the_chain_goes_on_across_a_restart(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """A second server on the same file chains onto the first one's last line: one chain, not two."""
    path = tmp_path / "audit.jsonl"
    await write_log(sandbox, path)
    await write_log(sandbox, path)
    entries = [json.loads(line) for line in lines_of(path)]
    assert len(entries) == 12 and entries[6]["prev"] == entries[5]["hash"]
    assert verify(path).intact


async def test_concurrent_calls_in_one_server_never_fork_the_chain(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Twenty creates at once through one session: twenty whole lines in one chain."""
    path = tmp_path / "audit.jsonl"
    async with connect(settings_for(sandbox, audit_log=path)) as client, anyio.create_task_group() as group:
        for n in range(20):
            group.start_soon(client.call_tool, "create_spa", {"title": f"spa {n}"})
    entries = [json.loads(line) for line in lines_of(path)]
    assert len(entries) == 20 and {e["outcome"] for e in entries} == {"ok"}
    report = verify(path)
    assert report.intact and report.sealed == 20


async def test_a_torn_last_line_is_reported_and_the_next_call_records_the_break(
    sandbox: RunningSandbox, tmp_path: Path
) -> None:
    """A crash cut line 7 short: verify fails naming it; the next call starts line 8 with a chain_break that
    chains onto line 6, and verify then passes with a warning naming line 7."""
    path = tmp_path / "audit.jsonl"
    await write_log(sandbox, path)
    whole = lines_of(path)[-1]
    with path.open("ab") as handle:
        handle.write(whole[: len(whole) // 2])
    torn = verify(path)
    assert torn.exit_code == 1
    assert problems(torn) == [
        "line 7: is torn: cut off before its end (a crash mid-write, or a line being written right now); the next "
        "line carto-mcp writes records the break"
    ]
    async with connect(settings_for(sandbox, audit_log=path)) as client:
        ok(await client.call_tool("create_spa", {"title": "after the crash"}))
    lines = lines_of(path)
    assert len(lines) == 8 and lines[6] == whole[: len(whole) // 2] + b"\n"
    after = json.loads(lines[7])
    assert after["tool"] == "create_spa" and after["chain_break"] == {"skipped": 1, "torn": True}
    assert after["prev"] == json.loads(lines[5])["hash"]
    report = verify(path)
    assert report.intact and report.exit_code == 0
    assert [w.text() for w in report.warnings] == [
        "line 7: is torn: cut off before its end (a crash mid-write?); line 8 records the break and chains on to line 6"
    ]


async def test_removing_a_torn_line_the_writer_stepped_over_is_caught(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """The chain_break says how many lines it stepped over; deleting the torn line makes the count disagree."""
    path = tmp_path / "audit.jsonl"
    await write_log(sandbox, path)
    with path.open("ab") as handle:
        handle.write(b'{"time":"2025-')
    async with connect(settings_for(sandbox, audit_log=path)) as client:
        ok(await client.call_tool("create_spa", {"title": "after"}))
    lines = lines_of(path)
    del lines[6]
    path.write_bytes(b"".join(lines))
    assert problems(verify(path)) == [
        "line 7: records a chain break, but a sealed line stands right before it (lines removed?)"
    ]


async def test_a_log_from_before_the_chain_is_upgraded_in_place(sandbox: RunningSandbox, tmp_path: Path) -> None:
    """Lines an older carto-mcp wrote (no hash) stay; the first new line starts the chain; verify warns about them,
    and a log of old lines only is reported as unverifiable."""
    path = tmp_path / "audit.jsonl"
    old = {"time": "2024-01-01T00:00:00.000000Z", "profile": "p", "tool": "create_token", "kind": "token",
           "id": "abc", "outcome": "ok", "error": None}  # fmt: skip
    path.write_text(json.dumps(old) + "\n" + json.dumps(old) + "\n", encoding="utf-8")
    legacy = verify(path)
    assert legacy.exit_code == 1 and "no line has a hash" in problems(legacy)[0]
    async with connect(settings_for(sandbox, audit_log=path)) as client:
        ok(await client.call_tool("create_spa", {"title": "new"}))
    new = json.loads(lines_of(path)[2])
    assert new["prev"] == "0" * 64 and "chain_break" not in new
    report = verify(path)
    assert report.intact and report.unsealed == 2 and report.first_time == old["time"]
    assert [w.text() for w in report.warnings] == [
        "lines 1–2: 2 lines have no hash: written by a carto-mcp from before the chain, so not checked; line 3 "
        "starts the chain"
    ]
