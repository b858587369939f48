"""Hash-chained, append-only audit ledger: one JSONL file per manifest.

Each line is one entry ``{"seq", "prev_hash", "payload", "entry_hash"[, "hmac"]}``. ``entry_hash`` is
the SHA-256 of the canonical JSON of the entry without ``entry_hash`` and ``hmac``; ``prev_hash`` is
the previous entry's ``entry_hash`` ("0" * 64 for the first). With a key in ``TVQUANT_LEDGER_HMAC_KEY``
every entry also carries ``hmac = HMAC-SHA256(key, entry_hash)``, so an entry forged with a recomputed
chain fails. Editing, deleting, inserting or reordering lines breaks the chain and ``verify`` names the
first bad entry and why; a consistent rewrite of the whole file is caught against chain heads recorded
elsewhere (the ``audit`` asset's Dagster metadata), passed to ``verify`` as ``heads``.

Appends take an exclusive ``flock`` on a sidecar ``.lock`` file, read the chain under it, write every
new line with one ``write`` on an ``O_APPEND`` descriptor and ``fsync`` before releasing the lock, so
appenders in several processes serialize and nothing is lost or interleaved.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tvquant_assets.errors import LedgerError
from tvquant_assets.hashing import canonical_json, obj_hash

GENESIS = "0" * 64
HMAC_ENV = "TVQUANT_LEDGER_HMAC_KEY"
_UNHASHED = ("entry_hash", "hmac")


@dataclass(frozen=True)
class Head:
    """A chain head recorded outside the file: entry ``seq`` had ``entry_hash`` (``source`` says where)."""

    seq: int
    entry_hash: str
    source: str


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of ``Ledger.verify``: ``first_bad`` is the 0-based line/entry index of the first fault."""

    ok: bool
    n_entries: int
    first_bad: int | None
    reason: str
    notes: tuple[str, ...] = ()


def entry_hash(entry: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of ``entry`` without its ``entry_hash`` and ``hmac`` fields."""
    return obj_hash({k: v for k, v in entry.items() if k not in _UNHASHED})


def entry_hmac(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode("ascii"), hashlib.sha256).hexdigest()


def key_from_env() -> bytes | None:
    """The HMAC key from ``TVQUANT_LEDGER_HMAC_KEY`` (None when unset or empty). Never logged or stored."""
    value = os.environ.get(HMAC_ENV)
    return value.encode("utf-8") if value else None


class Ledger:
    """Append-only JSONL ledger at ``path`` (created on first append).

    Parameters
    ----------
    path : str or Path
        The ledger file; ``<path>.lock`` is the lock sidecar.
    hmac_key : bytes, optional
        Key to sign new entries and check existing ones; default: ``TVQUANT_LEDGER_HMAC_KEY``.
    """

    def __init__(self, path: str | Path, hmac_key: bytes | None = None) -> None:
        self.path = Path(path)
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._key = hmac_key if hmac_key is not None else key_from_env()

    def __repr__(self) -> str:  # never shows the key
        return f"Ledger({str(self.path)!r}, hmac={'on' if self._key else 'off'})"

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

    # appending -------------------------------------------------------------------------------------
    def append(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Append one entry for ``payload`` and return it (with seq, prev_hash, entry_hash)."""
        return self.append_many([payload])[0]

    def append_many(self, payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """Append one entry per payload, in order, under one lock with one write and one fsync.

        Raises
        ------
        LedgerError
            If the head entry is unreadable or fails its hash (never extend a broken chain), or a
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
                                      "run 'tvquant audit verify' and repair before appending") from exc
                if not isinstance(head, dict) or entry_hash(head) != head.get("entry_hash"):
                    raise LedgerError(f"{self.path}: last entry fails its hash; run 'tvquant audit verify' "
                                      "before appending")
            return self._write(head, bool(tail) and not tail.endswith(b"\n"), list(payloads))

    def append_planned(self, plan: Callable[[list[dict[str, Any]]], Sequence[dict[str, Any]]]
                       ) -> list[dict[str, Any]]:
        """Read every entry under the exclusive lock, let ``plan(entries)`` decide the payloads to
        append, and append them before anyone else can: read-decide-append is atomic across processes.

        Raises
        ------
        LedgerError
            If the chain is broken anywhere (hashes, links, sequence), or a payload is not serializable.
        """
        with self._locked(exclusive=True):
            lines = self._read_lines_unlocked()
            report = self._check(lines, heads=(), check_hmac=False)
            if not report.ok:
                raise LedgerError(f"{self.path}: ledger broken at entry {report.first_bad}: {report.reason}; "
                                  "run 'tvquant audit verify' and repair before appending")
            entries = [json.loads(line) for line in lines]
            payloads = list(plan(entries))
            return self._write(entries[-1] if entries else None, bool(lines) and self._ends_without_newline(),
                               payloads)

    def _ends_without_newline(self) -> bool:
        with open(self.path, "rb") as f:
            if f.seek(0, os.SEEK_END) == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"

    def _write(self, head: dict | None, finish_line: bool, payloads: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if not payloads:
            return []
        seq = 0 if head is None else head["seq"] + 1
        prev = GENESIS if head is None else head["entry_hash"]
        lines, out = [], []
        for payload in payloads:
            entry: dict[str, Any] = {"seq": seq, "prev_hash": prev, "payload": payload}
            try:
                entry["entry_hash"] = entry_hash(entry)
                if self._key:
                    entry["hmac"] = entry_hmac(self._key, entry["entry_hash"])
                line = canonical_json(entry)
            except (TypeError, ValueError) as exc:
                raise LedgerError(f"{self.path}: payload is not canonical-JSON serializable: {exc}") from exc
            lines.append(line)
            out.append(json.loads(line))
            seq, prev = seq + 1, entry["entry_hash"]
        # A complete last line that only lost its newline is still a valid head: finish it first.
        data = (b"\n" if finish_line else b"") + ("\n".join(lines) + "\n").encode("utf-8")
        created = not self.path.exists()
        # Writes on an O_APPEND descriptor, then fsync, all under the lock: the lines land whole at the
        # end, or (on a crash) as a truncated tail that verify reports; existing bytes are never touched.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                if written <= 0:
                    raise LedgerError(f"{self.path}: write failed after {len(data) - len(view)} of {len(data)} bytes")
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        if created:  # make the new directory entry durable too
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return out

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

    # reading ---------------------------------------------------------------------------------------
    def _read_lines_unlocked(self) -> list[str]:
        if not self.path.exists():
            return []
        with open(self.path, encoding="utf-8", newline="") as f:
            text = f.read()
        # Split on "\n" only: JSON escapes newlines, while str.splitlines would also split on
        # U+2028 and friends, which canonical JSON (ensure_ascii=False) writes raw.
        lines = text.split("\n")
        return lines[:-1] if lines and lines[-1] == "" else lines

    def _read_lines(self) -> list[str]:
        if not self.path.exists():
            return []
        with self._locked(exclusive=False):
            return self._read_lines_unlocked()

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

    # verifying -------------------------------------------------------------------------------------
    def verify(self, heads: Sequence[Head] = ()) -> VerifyReport:
        """Check JSON, hashes, links, sequence numbers, HMACs (when a key is set) and that every
        recorded chain head in ``heads`` is still in the file; report the first fault and why."""
        return self._check(self._read_lines(), heads, check_hmac=True)

    def _check(self, lines: list[str], heads: Sequence[Head], check_hmac: bool) -> VerifyReport:
        n = len(lines)
        entries: list[Any] = []
        for i, line in enumerate(lines):
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError:
                why = "the file ends mid-entry (truncated)" if i == n - 1 else "corrupted or edited"
                return VerifyReport(False, n, i, f"line {i} is not valid JSON: {why}")
        position = {e.get("entry_hash"): i for i, e in enumerate(entries) if isinstance(e, dict)}
        notes: list[str] = []
        prev = GENESIS
        signed = 0
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict) or entry_hash(entry) != entry.get("entry_hash"):
                return VerifyReport(False, n, i, f"entry {i}: hash mismatch (edited)")
            if entry.get("prev_hash") != prev:
                return VerifyReport(False, n, i, _link_fault(i, entry, position))
            if entry.get("seq") != i:
                return VerifyReport(False, n, i, f"entry {i}: seq {entry.get('seq')}, expected {i} (edited)")
            if "hmac" in entry:
                signed += 1
            if check_hmac and self._key:
                if "hmac" not in entry:
                    return VerifyReport(False, n, i, f"entry {i}: no HMAC although {HMAC_ENV} is set "
                                                     "(forged, or written without the key)")
                if not hmac.compare_digest(str(entry["hmac"]), entry_hmac(self._key, entry["entry_hash"])):
                    return VerifyReport(False, n, i, f"entry {i}: HMAC mismatch (forged, or written with "
                                                     "another key)")
            prev = entry["entry_hash"]
        if check_hmac:
            if self._key:
                notes.append(f"HMAC checked on all {n} entries")
            elif signed:
                notes.append(f"{signed} entries carry an HMAC; set {HMAC_ENV} to check them")
        for head in sorted(heads, key=lambda h: -h.seq):
            if head.seq >= n:
                return VerifyReport(
                    False, n, n, f"truncated: {head.source} recorded the chain head at entry {head.seq}, but the "
                                 f"file ends at entry {n - 1} ({head.seq - n + 1} entries missing)", tuple(notes))
            if entries[head.seq]["entry_hash"] != head.entry_hash:
                return VerifyReport(
                    False, n, head.seq,
                    f"head mismatch vs Dagster: {head.source} recorded entry {head.seq} as "
                    f"{head.entry_hash[:16]}, the file has {entries[head.seq]['entry_hash'][:16]} "
                    f"(rewritten at or before entry {head.seq})", tuple(notes))
        if heads:
            top = max(heads, key=lambda h: h.seq)
            notes.append(f"{len(heads)} chain head(s) recorded in Dagster match (latest: entry {top.seq}, "
                         f"{top.source})")
        return VerifyReport(True, n, None, "ok", tuple(notes))


def _link_fault(i: int, entry: dict[str, Any], position: dict[str, int]) -> str:
    """Why entry ``i`` does not follow entry ``i - 1``: reordered, deleted before it, or inserted."""
    target = entry.get("prev_hash")
    at = -1 if target == GENESIS else position.get(target)
    seq = entry.get("seq")
    if at is not None and at > i:
        return f"entry {i}: reordered (it follows line {at}, which comes after it)"
    if at == -1:
        return f"entry {i}: inserted (it claims to start the chain)"
    if at is not None:
        extra = f"line {at + 1} was" if at + 1 == i - 1 else f"lines {at + 1}..{i - 1} were"
        return f"entry {i}: follows line {at}, so {extra} inserted"
    if isinstance(seq, int) and seq > i:
        missing = seq - i
        return f"entry {i}: {missing} entr{'y' if missing == 1 else 'ies'} missing before it (deleted): it is " \
               f"seq {seq} and follows an entry not in the file"
    return f"entry {i}: broken link: it follows an entry not in the file (forged, or the one before it deleted)"
