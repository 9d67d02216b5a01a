"""`AuditLog` as a writer: many writers on one file, torn tails, a stuck lock, a rotated file.

The chain is only worth something if it holds when two servers share a file and when a
crash leaves half a line; these tests make both happen for real (processes, threads, bytes
written by hand) and check the result with `verify`.
"""

from __future__ import annotations

import fcntl
import itertools
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from carto_mcp.audit_verify import verify
from carto_mcp.auditchain import GENESIS
from carto_mcp.server.audit import AuditLog

#: Upper bound on the two-process test; each writer needs well under a second on a laptop.
PROCESS_TIMEOUT = 60.0

#: A writer process: says it is ready, waits for the go, then meets the other writer at a barrier
#: (a marker file each) so neither can finish before the other starts, and writes with a pause
#: between lines so the scheduler has every chance to interleave them.
WRITER = """
import sys, time
from pathlib import Path
from carto_mcp.server.audit import AuditLog
path, name, count = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
log = AuditLog(path)
print("ready", flush=True)
sys.stdin.readline()
(path.parent / f"started-{name}").touch()
deadline = time.monotonic() + 30
while len(list(path.parent.glob("started-*"))) < 2:
    if time.monotonic() > deadline:
        sys.exit("the other writer never started")
    time.sleep(0.001)
for n in range(count):
    log.record(profile="p", tool="create_token", kind="token", ident=f"{name}-{n}", outcome="ok")
    time.sleep(0.0005)
"""


def record(log: AuditLog, ident: str) -> None:
    log.record(profile="p", tool="create_spa", kind="spa", ident=ident, outcome="ok")


def entries(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().splitlines()]


def last_entry(path: Path) -> dict[str, object]:
    entry: dict[str, object] = json.loads(path.read_bytes().splitlines()[-1])
    return entry


def switches(idents: list[str]) -> int:
    """How often consecutive lines come from different writers: more than one means they really interleaved."""
    writers = [ident.split("-")[0] for ident in idents]
    return sum(a != b for a, b in itertools.pairwise(writers))


def test_two_processes_appending_a_thousand_lines_each_make_one_chain_of_whole_lines(tmp_path: Path) -> None:
    """Two processes released together each record 1,000 lines: 2,000 lines, every one JSON, one verified chain."""
    path = tmp_path / "audit.jsonl"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), name, "1000"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    try:
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.close()
        for proc in procs:
            assert proc.wait(PROCESS_TIMEOUT) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = entries(path)
    assert len(lines) == 2000
    idents = [str(line["id"]) for line in lines]
    assert sorted(idents) == sorted([f"a-{n}" for n in range(1000)] + [f"b-{n}" for n in range(1000)])
    assert switches(idents) > 1  # the writers were really concurrent
    report = verify(path)
    assert report.intact, [f.text() for f in report.problems[:5]]
    assert report.sealed == 2000


def test_threads_on_two_logs_of_one_file_make_one_chain(tmp_path: Path) -> None:
    """Eight threads over two AuditLog objects on the same path (as two servers in one process): one chain."""
    path = tmp_path / "audit.jsonl"
    logs = [AuditLog(path), AuditLog(path)]
    start = threading.Barrier(8)

    def work(n: int) -> None:
        start.wait()
        for i in range(250):
            record(logs[n % 2], f"t{n}-{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(PROCESS_TIMEOUT)
        assert not thread.is_alive()
    lines = entries(path)
    assert len(lines) == 2000 and len({line["id"] for line in lines}) == 2000
    assert verify(path).intact


def test_a_torn_tail_is_stepped_over_and_recorded(tmp_path: Path) -> None:
    """Half a line at the end: the next line starts a line of its own, chains onto the last whole one, says so."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    record(log, "one")
    record(log, "two")
    with path.open("ab") as handle:
        handle.write(b'{"time":"2025-01-01T00:00:00.000000Z","profile":"p","to')
    record(log, "three")
    raw = path.read_bytes().splitlines()
    assert len(raw) == 4 and raw[2].endswith(b'"to')
    third = json.loads(raw[3])
    assert third["id"] == "three" and third["chain_break"] == {"skipped": 1, "torn": True}
    assert third["prev"] == json.loads(raw[1])["hash"]
    record(log, "four")
    assert "chain_break" not in json.loads(path.read_bytes().splitlines()[4])
    report = verify(path)
    assert report.intact and len(report.warnings) == 1 and report.warnings[0].line == 3


def test_whole_lines_that_are_not_audit_lines_are_counted_in_the_break(tmp_path: Path) -> None:
    """Two lines of junk (whole, with newlines) after the last sealed line: chain_break skipped 2, not torn."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path)
    record(log, "one")
    first = last_entry(path)
    with path.open("ab") as handle:
        handle.write(b"not json\n{}\n")
    record(log, "two")
    last = last_entry(path)
    assert last["chain_break"] == {"skipped": 2, "torn": False} and last["prev"] == first["hash"]
    report = verify(path)
    assert report.intact and report.warnings[0].text().startswith("lines 2–3: line 2 is not a whole JSON object")


def test_past_the_look_back_limit_the_chain_restarts_and_says_so(tmp_path: Path) -> None:
    """More junk than the writer walks back over: the new line starts from the genesis value with skipped null."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, scan_limit=256)
    record(log, "one")
    with path.open("ab") as handle:
        handle.write(b"x" * 100 + b"\n" + b"y" * 400)
    record(log, "two")
    last = last_entry(path)
    assert last["prev"] == GENESIS and last["chain_break"] == {"skipped": None, "torn": True}
    report = verify(path)
    assert report.intact and "starts the chain again" in report.warnings[0].text()


def test_a_lock_held_elsewhere_makes_the_write_fail_instead_of_hang(tmp_path: Path) -> None:
    """Another holder of the flock past lock_timeout: record raises OSError and writes nothing; once free, it writes."""
    path = tmp_path / "audit.jsonl"
    log = AuditLog(path, lock_timeout=0.2)
    record(log, "one")
    holder = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(holder, fcntl.LOCK_EX)
        with pytest.raises(OSError, match="lock"):
            record(log, "blocked")
        assert len(entries(path)) == 1
    finally:
        os.close(holder)
    record(log, "two")
    assert [line["id"] for line in entries(path)] == ["one", "two"] and verify(path).intact


def test_a_rotated_log_is_left_whole_and_a_new_file_starts_its_own_chain(tmp_path: Path) -> None:
    """The file moved away (log rotation): the next line goes to a new file at the path, from the genesis value."""
    path, rotated = tmp_path / "audit.jsonl", tmp_path / "audit.jsonl.1"
    log = AuditLog(path)
    record(log, "one")
    path.rename(rotated)
    record(log, "two")
    assert [line["id"] for line in entries(rotated)] == ["one"]
    assert entries(path)[0]["prev"] == GENESIS and entries(path)[0]["id"] == "two"
    assert verify(path).intact and verify(rotated).intact


def test_the_key_never_reaches_the_log_or_the_repr(tmp_path: Path) -> None:
    """A keyed log writes only the key id; printing the AuditLog shows no key."""
    key = b"a-secret-audit-key-value-77"
    log = AuditLog(tmp_path / "audit.jsonl", key=key)
    record(log, "one")
    assert key.decode() not in (tmp_path / "audit.jsonl").read_text(encoding="utf-8")
    assert key.decode() not in repr(log) and "key=" not in repr(log)
