"""`carto-mcp audit-log verify`: is an audit log whole, line by line, and if not, where did it break?

The file is read forward once, a line at a time (a line longer than any audit line is skipped,
not held in memory), and each line is checked against the format in `carto_mcp.auditchain`:

- its `hash` must match its content (plain SHA-256, or HMAC-SHA256 with the key its `key_id`
  names): an edited line fails here;
- its `prev` must be the stored hash of the sealed line before it (`GENESIS` for the first): a
  deleted, inserted or moved line fails here, at the line after the gap;
- lines that are not sealed lines (a torn write, junk) are problems unless the next sealed line
  records them in its `chain_break` — the writer's note that it found them and stepped over
  them — and the count it recorded matches; then they are warnings. Lines from a carto-mcp that
  wrote no hash are accepted (as a warning) only before the first sealed line: that is a log
  started before the chain existed.
- with a key given, lines sealed without a key after the last keyed line are problems: anyone
  could have appended them. Plain lines before a keyed line are pinned by its `prev`.

What it cannot tell: lines cut from the end (the shorter log is still a valid chain), or a
whole file replaced by another valid one. The last hash it reports, kept elsewhere and passed
back as `last_hash`, closes the first gap. The report never holds a key, only key ids.
"""

from __future__ import annotations

import hmac
import stat
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeGuard

from carto_mcp.auditchain import (
    CHAIN_BREAK,
    GENESIS,
    KEY_ID_LENGTH,
    digest,
    is_audit_entry,
    is_digest,
    is_unsealed,
    key_id,
    parse_entry,
)
from carto_mcp.errors import InputError

__all__ = ["Finding", "Report", "verify"]

#: No audit line comes near this; a longer one is junk and is skipped without being held whole.
MAX_LINE_BYTES = 64 * 1024
#: Problems kept in a report (all are counted): after a few, more of them add nothing to act on.
MAX_FINDINGS = 100
#: Recent sealed lines remembered to name where a misplaced `prev` points.
_RECENT = 64
#: Lines listed one by one in a message about a run of unreadable lines.
_LISTED = 3
_TORN = "is torn: cut off before its end (a crash mid-write?)"


@dataclass(frozen=True)
class Finding:
    """A problem or a warning about one line (or a run of lines from `line` to `last`), or the whole file."""

    message: str
    line: int | None = None
    last: int | None = None

    def text(self) -> str:
        if self.line is None:
            return self.message
        where = f"line {self.line}" if self.last in (None, self.line) else f"lines {self.line}–{self.last}"
        return f"{where}: {self.message}"

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "last": self.last, "message": self.text()}


@dataclass
class Report:
    """What verify found: counts and times for the summary, problems (not intact) and warnings (intact)."""

    path: Path
    lines: int = 0
    sealed: int = 0
    #: Audit lines with no hash: written by a carto-mcp from before the chain.
    unsealed: int = 0
    #: Sealed lines per key id; "" counts the lines sealed without a key (plain SHA-256).
    seals: dict[str, int] = field(default_factory=dict)
    first_time: str | None = None
    last_time: str | None = None
    last_hash: str | None = None
    problems: list[Finding] = field(default_factory=list)
    problem_count: int = 0
    warnings: list[Finding] = field(default_factory=list)
    #: Why the log could not be checked at all (not an audit log, a key that was not given): exit 2.
    cannot_check: str | None = None
    #: The line whose hash is the `last_hash` the caller recorded earlier, when one was given.
    recorded_line: int | None = None

    def problem(self, message: str, line: int | None = None, last: int | None = None) -> None:
        self.problem_count += 1
        if len(self.problems) < MAX_FINDINGS:
            self.problems.append(Finding(message, line, last))

    def warn(self, message: str, line: int | None = None, last: int | None = None) -> None:
        if len(self.warnings) < MAX_FINDINGS:
            self.warnings.append(Finding(message, line, last))

    @property
    def intact(self) -> bool:
        return self.problem_count == 0 and self.cannot_check is None

    @property
    def exit_code(self) -> int:
        """0 intact, 1 something is wrong with the log, 2 the log could not be checked (and nothing wrong was seen)."""
        if self.problem_count:
            return 1
        return 2 if self.cannot_check is not None else 0

    @property
    def key_ids(self) -> list[str]:
        return [kid for kid in self.seals if kid]

    def sealing(self) -> str:
        """How the lines are sealed, in words: 'HMAC-SHA256 with key id 3f9a1c2e', 'plain SHA-256 (no key)'."""
        parts = [f"{n:,} HMAC-SHA256 with key id {kid}" for kid, n in self.seals.items() if kid]
        if self.seals.get(""):
            parts.append(f"{self.seals['']:,} plain SHA-256 (no key)")
        return ", ".join(parts) or "none"

    def text(self) -> str:
        """The report a person reads: verdict, findings, summary, and what to keep."""
        if self.problem_count:
            verdict = f"NOT intact — {self.problem_count:,} problem{'s' if self.problem_count > 1 else ''}"
        elif self.cannot_check is not None:
            verdict = "NOT CHECKED"
        else:
            verdict = "intact"
        out = [f"{self.path}: {verdict}"]
        out += [f"  {finding.text()}" for finding in self.problems[:20]]
        if self.problem_count > 20:
            out.append(f"  … and {self.problem_count - 20:,} more (--json lists up to {MAX_FINDINGS})")
        if self.cannot_check is not None:
            out.append(f"  {self.cannot_check}")
        out += [f"  warning: {finding.text()}" for finding in self.warnings[:20]]
        span = f", {self.first_time} to {self.last_time}" if self.first_time else ""
        out.append(f"  lines: {self.lines:,} ({self.sealed:,} sealed{self._unsealed_text()}){span}")
        if self.sealed:
            out.append(f"  sealed with: {self.sealing()}")
        if self.recorded_line is not None:
            out.append(f"  the recorded last hash is line {self.recorded_line}'s")
        if self.last_hash is not None:
            out.append(f"  last hash: {self.last_hash}")
        if self.intact and self.last_hash is not None:
            out.append("  Keep the last hash somewhere else: lines cut from the end leave a shorter log that still")
            out.append("  verifies, and `--last-hash HASH` checks later that the log still holds that line.")
        if self.intact and self.seals.get("") and not self.key_ids:
            out.append("  Without a key the hashes show damage and careless edits, but anyone who can write the")
            out.append("  file can recompute them: set CARTO_MCP_AUDIT_KEY on the server to seal lines with an HMAC.")
        return "\n".join(out)

    def _unsealed_text(self) -> str:
        return f", {self.unsealed:,} from before the chain" if self.unsealed else ""

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "intact": self.intact,
            "lines": self.lines,
            "sealed": self.sealed,
            "unsealed": self.unsealed,
            "key_ids": self.key_ids,
            "plain": self.seals.get("", 0),
            "first_time": self.first_time,
            "last_time": self.last_time,
            "last_hash": self.last_hash,
            "recorded_line": self.recorded_line,
            "problem_count": self.problem_count,
            "problems": [finding.to_json() for finding in self.problems],
            "warnings": [finding.to_json() for finding in self.warnings],
            "cannot_check": self.cannot_check,
        }


@dataclass(frozen=True)
class _Skipped:
    """A line that is not a sealed line, waiting for the next sealed line to say whether it was expected."""

    line: int
    why: str
    #: An audit line from before the chain (no hash), as opposed to junk or a torn write.
    unsealed: bool = False


class _Checker:
    """The state carried from line to line: the previous sealed line, and what stands between it and this one."""

    def __init__(self, report: Report, keys: Mapping[str, bytes], recorded: str | None) -> None:
        self.report = report
        self.keys = keys
        self.recorded = recorded
        self.prev_hash: str | None = None
        self.prev_line = 0
        self.skipped: list[_Skipped] = []
        self.recent: deque[tuple[str, int]] = deque(maxlen=_RECENT)
        self.last_keyed: int | None = None
        self.plain_run: tuple[int, int] | None = None
        self.missing: dict[str, list[int]] = {}
        self.audit_lines = 0

    def line(self, number: int, raw: bytes | None, terminated: bool) -> None:
        self.report.lines = number
        if raw is None:
            self.skipped.append(_Skipped(number, f"is longer than {MAX_LINE_BYTES // 1024} KiB: not an audit line"))
            return
        entry = parse_entry(raw)
        if isinstance(entry, str):
            why = _TORN if not terminated and raw else f"{entry} (overwritten or damaged?)"
            self.skipped.append(_Skipped(number, why))
            return
        if not is_audit_entry(entry):
            self.skipped.append(_Skipped(number, "is JSON but not an audit line (no time, tool and outcome)"))
            return
        self.audit_lines += 1
        time = entry.get("time")
        if isinstance(time, str):
            self.report.first_time = self.report.first_time or time
            self.report.last_time = time
        if is_unsealed(entry):
            self.report.unsealed += 1
            self.skipped.append(_Skipped(number, "has no hash", unsealed=True))
            return
        kid = entry.get("key_id")
        if not (is_digest(entry.get("hash")) and is_digest(entry.get("prev"))):
            self.skipped.append(_Skipped(number, "has a hash or prev that is not 64 hex digits (edited?)"))
            return
        if kid is not None and not _is_key_id(kid):
            self.skipped.append(_Skipped(number, f"has a key_id that is not {KEY_ID_LENGTH} hex digits (edited?)"))
            return
        self.sealed(number, entry, kid)

    def sealed(self, number: int, entry: dict[str, Any], kid: str | None) -> None:
        report = self.report
        report.sealed += 1
        report.seals[kid or ""] = report.seals.get(kid or "", 0) + 1
        self.link(number, entry)  # first: it reports the unreadable lines before this one
        self.content(number, entry, kid)
        stored = str(entry["hash"])
        if self.recorded is not None and stored == self.recorded:
            report.recorded_line = number
        self.prev_hash, self.prev_line = stored, number
        self.recent.append((stored, number))
        report.last_hash = stored
        self.skipped = []

    def content(self, number: int, entry: dict[str, Any], kid: str | None) -> None:
        """The line's own hash: does it match what the line says?"""
        if kid is None:
            key = None
            if self.plain_run is None:
                self.plain_run = (number, number)
            else:
                self.plain_run = (self.plain_run[0], number)
        else:
            self.last_keyed, self.plain_run = number, None
            found = self.keys.get(kid)
            if found is None:
                self.missing.setdefault(kid, []).append(number)
                return
            key = found
        if not hmac.compare_digest(digest(entry, key), str(entry["hash"])):
            self.report.problem("hash does not match its content (edited?)", number)

    def link(self, number: int, entry: dict[str, Any]) -> None:
        """The line's `prev`: does it follow the sealed line before it, over any lines the writer stepped over?"""
        report, prev = self.report, entry["prev"]
        expected = self.prev_hash or GENESIS
        before = f"line {self.prev_line}" if self.prev_line else "the start of the file"
        marker = entry.get(CHAIN_BREAK)
        if marker is not None:
            restarted = self.chain_break(number, marker, before)
            if restarted and prev == GENESIS:
                return
        elif self.skipped:
            self.unexpected_skips(number)
        if prev == expected:
            return
        if prev == GENESIS:
            report.problem(
                f"prev is the genesis value of a first line, but {before} is a sealed line before it (two logs "
                "joined, or the lines before it were replaced)",
                number,
            )
        elif self.prev_hash is None:
            report.problem(
                "prev names a line that is not in the file, on the first sealed line (lines were cut from the start?)",
                number,
            )
        else:
            match = next((line for stored, line in self.recent if stored == prev), None)
            hint = f"; it is the hash of line {match}, so lines were moved" if match else ""
            report.problem(f"prev does not match {before}'s hash (a line was deleted or reordered){hint}", number)

    def chain_break(self, number: int, marker: object, before: str) -> bool:
        """A `chain_break` the writer recorded: do the lines it stepped over match it? True when it restarted."""
        report, skipped = self.report, self.skipped
        if not _is_marker(marker):
            report.problem("its chain_break is not what carto-mcp writes (edited?)", number)
            return False
        count = marker["skipped"]
        if marker["torn"] is True and skipped and not skipped[-1].unsealed:
            # The writer ended the torn line with a newline of its own: only its record says it was torn.
            skipped = [*skipped[:-1], _Skipped(skipped[-1].line, _TORN)]
        if not skipped:
            report.problem("records a chain break, but a sealed line stands right before it (lines removed?)", number)
            return False
        if count is None:
            report.warn(
                f"{_describe(skipped)}; the writer found no sealed line near the end of the file and line {number} "
                "starts the chain again",
                skipped[0].line,
                skipped[-1].line,
            )
            return True
        if count != len(skipped):
            report.problem(
                f"records {count} unreadable line{'s' if count != 1 else ''} before it, but {len(skipped)} stand "
                "there (lines were added or removed)",
                number,
            )
            return False
        onto = f"chains on to {before}" if self.prev_line else "starts the chain"
        report.warn(
            f"{_describe(skipped)}; line {number} records the break and {onto}",
            skipped[0].line,
            skipped[-1].line,
        )
        return False

    def unexpected_skips(self, number: int) -> None:
        """Lines no writer accounted for: a log from before the chain, or damage."""
        if self.prev_hash is None and all(s.unsealed for s in self.skipped):
            self.report.warn(
                f"{_plural(len(self.skipped), 'line has', 'lines have')} no hash: written by a carto-mcp from before "
                f"the chain, so not checked; line {number} starts the chain",
                self.skipped[0].line,
                self.skipped[-1].line,
            )
            return
        for skipped in self.skipped:
            self.report.problem(_unexpected(skipped), skipped.line)

    def finish(self) -> None:
        """What only the end of the file can tell: a torn last line, lines after the last keyed one, missing keys."""
        report = self.report
        if report.lines and not self.audit_lines:
            report.cannot_check = (
                f"{report.path} is not a carto-mcp audit log: none of its {_plural(report.lines, 'line')} is an "
                "audit line (a JSON object with time, tool and outcome)"
            )
            return
        if report.sealed == 0 and report.unsealed:
            report.problem(
                f"no line has a hash: this log was written by a carto-mcp from before the chain "
                f"({_plural(report.unsealed, 'line')}), so nothing in it can be verified; lines a newer carto-mcp "
                "appends start the chain after them"
            )
            self.skipped = [s for s in self.skipped if not s.unsealed]
        for skipped in self.skipped:
            if skipped.why == _TORN:
                report.problem(
                    "is torn: cut off before its end (a crash mid-write, or a line being written right now); the "
                    "next line carto-mcp writes records the break",
                    skipped.line,
                )
            else:
                report.problem(_unexpected(skipped), skipped.line)
        if self.keys and self.plain_run is not None:
            first, last = self.plain_run
            after = (
                f"after line {self.last_keyed}, the last keyed line" if self.last_keyed else "though a key was given"
            )
            report.problem(
                f"sealed without a key (plain SHA-256) {after}: anyone who can write the file could have written "
                "them (or a server ran without CARTO_MCP_AUDIT_KEY)",
                first,
                last,
            )
        self.missing_keys()
        if self.recorded is not None and report.recorded_line is None:
            report.problem(
                f"the recorded last hash {self.recorded[:12]}… is on no line: lines were cut from the end of the "
                "log, or it was rewritten"
            )

    def missing_keys(self) -> None:
        if not self.missing:
            return
        named = ", ".join(
            f"{kid} ({_plural(len(lines), 'line')}, from line {lines[0]})" for kid, lines in self.missing.items()
        )
        if not self.keys:
            self.report.cannot_check = (
                f"lines are sealed with an HMAC key, key id {named}: give the key with --key-file FILE or "
                "CARTO_MCP_AUDIT_KEY to check them"
            )
            return
        given = ("the key given has id " if len(self.keys) == 1 else "the keys given have ids ") + ", ".join(
            sorted(self.keys)
        )
        for kid, lines in self.missing.items():
            self.report.problem(
                f"sealed with key id {kid}, but {given}: the wrong key, or the log was also "
                f"written with another key (give each with --key-file); {_plural(len(lines), 'line')} not checked",
                lines[0],
            )


def _is_key_id(value: object) -> bool:
    return isinstance(value, str) and len(value) == KEY_ID_LENGTH and all(c in "0123456789abcdef" for c in value)


def _is_marker(marker: object) -> TypeGuard[dict[str, Any]]:
    """A `chain_break` as the writer makes it: {"skipped": a count or null, "torn": true or false}."""
    if not (isinstance(marker, dict) and set(marker) == {"skipped", "torn"}):
        return False
    count = marker["skipped"]
    counted = count is None or (isinstance(count, int) and not isinstance(count, bool) and count > 0)
    return counted and isinstance(marker["torn"], bool)


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _unexpected(skipped: _Skipped) -> str:
    if skipped.unsealed:
        return "has no hash, yet sealed lines come before it (an older carto-mcp writing to the same file, or added)"
    return f"{skipped.why}, and no line after it records a chain break"


def _describe(skipped: Sequence[_Skipped]) -> str:
    """The lines a chain break stepped over, for a message that already names their line numbers."""
    if len(skipped) == 1:
        return skipped[0].why
    if len(skipped) <= _LISTED:
        return "; ".join(f"line {s.line} {s.why}" for s in skipped)
    return f"{len(skipped):,} lines are not sealed audit lines (the last: {skipped[-1].why})"


def _lines(handle: IO[bytes]) -> Iterator[tuple[bytes | None, bool]]:
    """Each line without its newline, and whether it had one; None for a line too long to be an audit line."""
    while True:
        raw = handle.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = handle.readline(MAX_LINE_BYTES)
            yield None, True
            continue
        terminated = raw.endswith(b"\n")
        yield (raw[:-1] if terminated else raw), terminated


def verify(path: Path, keys: Sequence[bytes] = (), *, last_hash: str | None = None) -> Report:
    """Check the audit log at `path` with `keys` (any number: one per key the log was written with).

    `last_hash` is a hash recorded from an earlier verify: the log must still hold that line.
    Raises `InputError` when the file cannot be read at all; everything else is in the report.
    """
    recorded = last_hash.strip().lower() if last_hash else None
    if recorded is not None and not is_digest(recorded):
        raise InputError(
            "--last-hash must be 64 hex digits, as verify prints it", field="last_hash", fix="copy the whole hash"
        )
    where = f"cannot read {path}"
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise InputError(f"{path} is not a regular file", field="path", fix="give the audit log file itself")
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{where}: {exc.strerror or type(exc).__name__}", field="path") from None
    report = Report(path=path)
    checker = _Checker(report, {key_id(key): key for key in keys}, recorded)
    with handle:
        try:
            for number, (raw, terminated) in enumerate(_lines(handle), start=1):
                checker.line(number, raw, terminated)
        except OSError as exc:
            raise InputError(f"{where}: {exc.strerror or type(exc).__name__}", field="path") from None
    checker.finish()
    return report
