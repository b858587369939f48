"""The audit ledger's hash chain, as pure functions over entries and lines (the file is ``lake/ledger.py``).

Each entry is ``{"seq", "prev_hash", "payload", "entry_hash"[, "hmac"]}``, one canonical JSON object per
line. ``entry_hash`` is the SHA-256 of the canonical JSON of the entry without ``entry_hash`` and
``hmac``; ``prev_hash`` is the previous entry's ``entry_hash`` (:data:`GENESIS` for the first). With a key
every entry also carries ``hmac = HMAC-SHA256(key, entry_hash)``, so an entry forged with a recomputed
chain fails. Editing, deleting, inserting or reordering lines breaks the chain and :func:`verify_lines`
names the first bad entry and why; a consistent rewrite of the whole chain is caught against chain heads
recorded elsewhere (the ``audit`` asset's Dagster metadata), passed as ``heads``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tvquant_assets.hashing import canonical_json, obj_hash

GENESIS = "0" * 64
_UNHASHED = ("entry_hash", "hmac")


@dataclass(frozen=True)
class Head:
    """A chain head recorded outside the file: entry ``seq`` had ``entry_hash`` (``source`` says where)."""

    seq: int
    entry_hash: str
    source: str


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of :func:`verify_lines`: ``first_bad`` is the 0-based line/entry index of the first fault."""

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


def next_lines(head: Mapping[str, Any] | None, payloads: Sequence[dict[str, Any]],
               key: bytes | None = None) -> list[str]:
    """The canonical JSON lines of the entries that chain ``payloads``, in order, after ``head`` (None:
    from the start), signed with ``key`` when given.

    Raises
    ------
    TypeError, ValueError
        If a payload is not canonical-JSON serializable (NaN, unknown types).
    """
    seq = 0 if head is None else head["seq"] + 1
    prev = GENESIS if head is None else head["entry_hash"]
    lines = []
    for payload in payloads:
        entry: dict[str, Any] = {"seq": seq, "prev_hash": prev, "payload": payload}
        entry["entry_hash"] = entry_hash(entry)
        if key:
            entry["hmac"] = entry_hmac(key, entry["entry_hash"])
        lines.append(canonical_json(entry))
        seq, prev = seq + 1, entry["entry_hash"]
    return lines


def latest_for(entries: Sequence[dict[str, Any]], key: str, value: Any) -> dict[str, Any] | None:
    """The last of ``entries`` whose ``payload[key] == value``, or None.

    ``value`` is compared in its stored (canonical JSON) form, so a Timestamp matches the ISO string it
    was written as.
    """
    value = json.loads(canonical_json(value))
    for entry in reversed(entries):
        payload = entry.get("payload")
        if isinstance(payload, dict) and key in payload and payload[key] == value:
            return entry
    return None


def verify_lines(lines: Sequence[str], heads: Sequence[Head] = (), key: bytes | None = None, *,
                 check_hmac: bool = True, key_name: str = "the HMAC key") -> VerifyReport:
    """Check JSON, hashes, links and sequence numbers of ``lines`` (one entry each), HMACs against ``key``
    when ``check_hmac`` and a key is given, and that every recorded chain head in ``heads`` is still
    there; report the first fault and why. ``key_name`` says in messages where the key comes from."""
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
        if check_hmac and key:
            if "hmac" not in entry:
                return VerifyReport(False, n, i, f"entry {i}: no HMAC although {key_name} is set "
                                                 "(forged, or written without the key)")
            if not hmac.compare_digest(str(entry["hmac"]), entry_hmac(key, entry["entry_hash"])):
                return VerifyReport(False, n, i, f"entry {i}: HMAC mismatch (forged, or written with "
                                                 "another key)")
        prev = entry["entry_hash"]
    if check_hmac:
        if key:
            notes.append(f"HMAC checked on all {n} entries")
        elif signed:
            notes.append(f"{signed} entries carry an HMAC; set {key_name} to check them")
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
        tail = n - 1 - top.seq
        if tail > 0 and not (check_hmac and key):  # with a key every entry's HMAC was checked above
            return VerifyReport(
                False, n, top.seq + 1,
                f"entry {top.seq + 1}: {tail} entr{'y' if tail == 1 else 'ies'} after the last chain head "
                f"recorded in Dagster (entry {top.seq}, {top.source}) are covered by no head: appended outside "
                f"a Dagster run, by a run still in progress, or forged (set {key_name} to sign and check "
                f"every entry)", tuple(notes))
        if tail > 0:
            notes.append(f"{tail} entries after the last recorded head are covered by their HMAC")
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
