"""Hash-chained, append-only audit ledger file: one JSONL file per manifest.

The chain (entry format, hashes, HMACs, what ``verify`` reports) is :mod:`tvquant_assets.core.ledger`;
this module keeps the file. With a key in ``TVQUANT_LEDGER_HMAC_KEY`` every new entry is signed and
``verify`` checks the signatures.

Appends take an exclusive ``flock`` on a sidecar ``.lock`` file, read the chain under it, write every
new line with one ``write`` on an ``O_APPEND`` descriptor and ``fsync`` before releasing the lock, so
appenders in several processes serialize and nothing is lost or interleaved.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tvquant_assets.core.ledger import Head, VerifyReport, entry_hash, latest_for, next_lines, verify_lines
from tvquant_assets.errors import LedgerError
from tvquant_assets.permissions import DIR_MODE, FILE_MODE

HMAC_ENV = "TVQUANT_LEDGER_HMAC_KEY"


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
            self.path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, FILE_MODE)
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
            report = verify_lines(lines, check_hmac=False)
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
        try:
            lines = next_lines(head, payloads, self._key)
        except (TypeError, ValueError) as exc:
            raise LedgerError(f"{self.path}: payload is not canonical-JSON serializable: {exc}") from exc
        out = [json.loads(line) for line in lines]
        # A complete last line that only lost its newline is still a valid head: finish it first.
        data = (b"\n" if finish_line else b"") + ("\n".join(lines) + "\n").encode("utf-8")
        created = not self.path.exists()
        # Writes on an O_APPEND descriptor, then fsync, all under the lock: the lines land whole at the
        # end, or (on a crash) as a truncated tail that verify reports; existing bytes are never touched.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, FILE_MODE)
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
                    last = buf[cut + 1 :]
                    if last.strip():
                        return last
                    lines = self._read_lines_unlocked()  # trailing blank line(s): the last entry is before them
                    return lines[-1].encode("utf-8") + b"\n" if lines else b""
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
        lines = lines[:-1] if lines and lines[-1] == "" else lines
        kept = [line for line in lines if line.strip()]  # a blank line (an editor's trailing newline) holds no entry
        self._blank = len(lines) - len(kept)
        return kept

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
        """The last entry whose ``payload[key] == value``, or None (see :func:`core.ledger.latest_for`)."""
        return latest_for(self.entries(), key, value)

    # verifying -------------------------------------------------------------------------------------
    def verify(self, heads: Sequence[Head] = ()) -> VerifyReport:
        """Check JSON, hashes, links, sequence numbers, HMACs (when a key is set) and that every
        recorded chain head in ``heads`` is still in the file; report the first fault and why."""
        report = verify_lines(self._read_lines(), heads, self._key, key_name=HMAC_ENV)
        if getattr(self, "_blank", 0):
            report = dataclasses.replace(report, notes=(*report.notes, f"{self._blank} blank line(s) skipped"))
        return report
