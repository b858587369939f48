"""Hash-chained, append-only audit ledger: one JSONL file per manifest.

Each line is one entry ``{"seq", "prev_hash", "payload", "entry_hash"}``. ``entry_hash`` is the
SHA-256 of the canonical JSON of the entry without ``entry_hash``; ``prev_hash`` is the previous
entry's ``entry_hash`` ("0" * 64 for the first). Editing, deleting, inserting or reordering lines
breaks the chain and ``verify`` names the first bad entry. Appends take an exclusive ``flock`` on a
sidecar ``.lock`` file and read the head under it, so appenders in several processes serialize.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tvquant_assets.errors import LedgerError
from tvquant_assets.hashing import canonical_json, obj_hash

GENESIS = "0" * 64


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of ``Ledger.verify``: ``first_bad`` is the 0-based line/entry index of the first fault."""

    ok: bool
    n_entries: int
    first_bad: int | None
    reason: str


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``entry`` without its ``entry_hash`` field."""
    return obj_hash({k: v for k, v in entry.items() if k != "entry_hash"})


class Ledger:
    """Append-only JSONL ledger at ``path`` (created on first append).

    Parameters
    ----------
    path : str or Path
        The ledger file; ``<path>.lock`` is the lock sidecar.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")

    @contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        # A sidecar lock keeps locking independent of how the data file is opened; readers take it
        # shared so they never see an append half-written.
        fd = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            if exclusive:
                raise LedgerError(f"{self.lock_path}: cannot open the lock file to append: {exc}") from exc
        if fd is None:  # a read-only copy can still be read and verified
            yield
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def append(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Append one entry for ``payload`` and return it (with seq, prev_hash, entry_hash).

        Raises
        ------
        LedgerError
            If the head entry is unreadable or fails its hash (never extend a broken chain), or the
            payload is not canonical-JSON serializable (NaN, unknown types).
        """
        with self._locked(exclusive=True):
            tail = self._last_line()
            head = None
            if tail:
                try:
                    head = json.loads(tail)
                except json.JSONDecodeError as exc:
                    raise LedgerError(f"{self.path}: last line is not valid JSON (truncated?); "
                                      "run verify and repair before appending") from exc
                if not isinstance(head, dict) or entry_hash(head) != head.get("entry_hash"):
                    raise LedgerError(f"{self.path}: last entry fails its hash; run verify before appending")
            entry: dict[str, Any] = {
                "seq": 0 if head is None else head["seq"] + 1,
                "prev_hash": GENESIS if head is None else head["entry_hash"],
                "payload": payload,
            }
            try:
                entry["entry_hash"] = entry_hash(entry)
                line = canonical_json(entry) + "\n"
            except (TypeError, ValueError) as exc:
                raise LedgerError(f"{self.path}: payload is not canonical-JSON serializable: {exc}") from exc
            # A complete last line that only lost its newline is still a valid head: finish it first.
            data = (b"\n" if tail and not tail.endswith(b"\n") else b"") + line.encode("utf-8")
            # One write() on an O_APPEND descriptor, then fsync: the line lands whole at the end, or
            # (on a crash) as a truncated tail that verify reports; existing bytes are never touched.
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise LedgerError(f"{self.path}: short write ({written} of {len(data)} bytes)")
                os.fsync(fd)
            finally:
                os.close(fd)
            return json.loads(line)

    def _last_line(self) -> bytes:
        # Read backwards in blocks: appending stays O(1) in the ledger's length.
        if not self.path.exists():
            return b""
        with open(self.path, "rb") as f:
            pos = f.seek(0, os.SEEK_END)
            buf = b""
            while pos > 0:
                step = min(8192, pos)
                pos -= step
                f.seek(pos)
                buf = f.read(step) + buf
                cut = buf.rfind(b"\n", 0, len(buf) - 1)
                if cut >= 0:
                    return buf[cut + 1 :]
            return buf

    def _read_lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with self._locked(exclusive=False), open(self.path, encoding="utf-8", newline="") as f:
            text = f.read()
        # Split on "\n" only: JSON escapes newlines, while str.splitlines would also split on
        # U+2028 and friends, which canonical JSON (ensure_ascii=False) writes raw.
        lines = text.split("\n")
        return lines[:-1] if lines and lines[-1] == "" else lines

    def entries(self) -> list[dict[str, Any]]:
        """All entries in file order.

        Raises
        ------
        LedgerError
            If a line is not valid JSON.
        """
        out = []
        for i, line in enumerate(self._read_lines()):
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LedgerError(f"{self.path}: line {i} is not valid JSON (truncated?)") from exc
        return out

    def head(self) -> dict[str, Any] | None:
        """The last entry, or None for an empty ledger."""
        entries = self.entries()
        return entries[-1] if entries else None

    def latest_for(self, key: str, value: Any) -> dict[str, Any] | None:
        """The last entry whose ``payload[key] == value``, or None.

        ``value`` is compared in its stored (canonical JSON) form, so a Timestamp matches the ISO
        string it was written as.
        """
        value = json.loads(canonical_json(value))
        for entry in reversed(self.entries()):
            payload = entry.get("payload")
            if isinstance(payload, dict) and key in payload and payload[key] == value:
                return entry
        return None

    def verify(self) -> VerifyReport:
        """Check JSON, hashes, links and sequence numbers; report the first fault."""
        lines = self._read_lines()
        n = len(lines)
        prev = GENESIS
        for i, line in enumerate(lines):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                return VerifyReport(False, n, i, f"line {i} is not valid JSON (truncated?)")
            if not isinstance(entry, dict) or entry_hash(entry) != entry.get("entry_hash"):
                return VerifyReport(False, n, i, f"entry {i}: hash mismatch (edited)")
            if entry.get("prev_hash") != prev:
                target = f"entry {i - 1}" if i else "the chain start"
                return VerifyReport(False, n, i, f"entry {i}: broken link to {target} (deleted, inserted or reordered)")
            if entry.get("seq") != i:
                return VerifyReport(False, n, i, f"entry {i}: seq {entry.get('seq')}, expected {i} (deleted or reordered)")
            prev = entry["entry_hash"]
        return VerifyReport(True, n, None, "ok")
