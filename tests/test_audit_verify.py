"""`verify` on the cases a server rarely makes: changed keys, joined or cut files, junk, an empty file.

Logs come from `AuditLog` (the writer the server uses) and are then damaged by hand; the
end-to-end cases, on logs a real server wrote, are in `tests/server/test_audit_verify.py`.
"""

from __future__ import annotations

from pathlib import Path

from carto_mcp.audit_verify import Report, verify
from carto_mcp.auditchain import key_id
from carto_mcp.server.audit import AuditLog

OLD_KEY = b"the-old-audit-key-0123456789"
NEW_KEY = b"the-new-audit-key-0123456789"


def write(path: Path, count: int, key: bytes | None = None, start: int = 0) -> None:
    log = AuditLog(path, key=key)
    for n in range(start, start + count):
        log.record(profile="p", tool="create_spa", kind="spa", ident=f"spa-{n}", outcome="ok")


def problems(report: Report) -> list[str]:
    return [finding.text() for finding in report.problems]


def test_plain_lines_before_the_key_was_set_are_pinned_by_the_first_keyed_line(tmp_path: Path) -> None:
    """A server that ran without a key, then with one: the keyed line after the plain ones vouches for them."""
    path = tmp_path / "audit.jsonl"
    write(path, 3)
    write(path, 2, key=NEW_KEY, start=3)
    report = verify(path, [NEW_KEY])
    assert report.intact and report.seals == {"": 3, key_id(NEW_KEY): 2}


def test_a_changed_key_needs_both_keys_and_names_the_one_missing(tmp_path: Path) -> None:
    """Key rotation: both keys pass; only the new one names the old key's id and where its lines start."""
    path = tmp_path / "audit.jsonl"
    write(path, 2, key=OLD_KEY)
    write(path, 2, key=NEW_KEY, start=2)
    assert verify(path, [OLD_KEY, NEW_KEY]).intact
    assert problems(verify(path, [NEW_KEY])) == [
        f"line 1: sealed with key id {key_id(OLD_KEY)}, but the key given has id {key_id(NEW_KEY)}: the wrong key, "
        "or the log was also written with another key (give each with --key-file); 2 lines not checked"
    ]


def test_two_logs_joined_end_to_end_are_reported_where_the_second_starts(tmp_path: Path) -> None:
    """A second file's first line (prev = genesis) in the middle of a chain is a problem at that line."""
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write(first, 2)
    write(second, 2)
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(first.read_bytes() + second.read_bytes())
    assert problems(verify(joined)) == [
        "line 3: prev is the genesis value of a first line, but line 2 is a sealed line before it (two logs joined, "
        "or the lines before it were replaced)"
    ]


def test_lines_cut_from_the_start_are_reported_at_the_new_first_line(tmp_path: Path) -> None:
    """The first line removed: the new first line's prev names a line that is not there."""
    path = tmp_path / "audit.jsonl"
    write(path, 3)
    path.write_bytes(b"".join(path.read_bytes().splitlines(keepends=True)[1:]))
    assert problems(verify(path)) == [
        "line 1: prev names a line that is not in the file, on the first sealed line (lines were cut from the start?)"
    ]


def test_junk_no_writer_accounted_for_is_a_problem_naming_each_line(tmp_path: Path) -> None:
    """A line too long to be an audit line and one with a duplicated key, put between two lines by hand."""
    path = tmp_path / "audit.jsonl"
    write(path, 2)
    first, second = path.read_bytes().splitlines(keepends=True)
    junk = [b"z" * 70_000 + b"\n", b'{"time":"t","tool":"x","outcome":"ok","outcome":"error"}\n']
    path.write_bytes(b"".join([first, *junk, second]))
    assert problems(verify(path)) == [
        "line 2: is longer than 64 KiB: not an audit line, and no line after it records a chain break",
        "line 3: names the key 'outcome' twice (overwritten or damaged?), and no line after it records a chain break",
    ]


def test_a_chain_break_that_counts_other_lines_than_stand_there_is_a_problem(tmp_path: Path) -> None:
    """A junk line slipped in next to a recovered torn line: the count the writer recorded no longer matches."""
    path = tmp_path / "audit.jsonl"
    write(path, 1)
    with path.open("ab") as handle:
        handle.write(b'{"time":"tor')
    write(path, 1, start=1)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join([lines[0], b"inserted\n", *lines[1:]]))
    assert problems(verify(path)) == [
        "line 4: records 1 unreadable line before it, but 2 stand there (lines were added or removed)"
    ]


def test_an_empty_log_is_intact_with_nothing_in_it(tmp_path: Path) -> None:
    """A log the server created but never wrote to (no mutating call yet)."""
    path = tmp_path / "audit.jsonl"
    path.write_bytes(b"")
    report = verify(path)
    assert report.intact and report.lines == 0 and report.last_hash is None
