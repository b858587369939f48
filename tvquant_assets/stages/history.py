"""Bad history never reaches a decision: the price partitions a trailing window reads from the lake are
checked before any stage uses them, and a failure is one ``LakeError`` line naming the partition (and the
symbol), raised before the stage writes anything.

Two checks (``RunContext.panel`` calls ``verify``):

- **bars** (every partition read): one bar per symbol, stamped with the partition's date, no NaN,
  infinite or non-positive price, no negative volume. A Dagster run never lets such a partition reach
  the stages after prices (the blocking checks ``price_values`` and ``unique_bars``), so one inside a
  window was changed afterwards; computing on it crashed cryptically ("cannot reshape", "SVD did not
  converge") or silently changed every later date.
- **content** (history: partitions dated before the first date the stage computes, i.e. not written by
  this run): the ``df_hash`` of the file's content must equal the hash label stored in the file and the
  prices hash the ledger sealed for that date (its latest entry). Hashing is done once per file version:
  the file's (size, mtime) and content hash are recorded in ``<lake>/<manifest>/.history_verified.json``
  and the content is hashed again only when the file's size or mtime changed.

What is caught: any change of a sealed partition (a NaN, a zero, a dropped or added symbol, a 10x outlier,
a stale series, a flipped bit, duplicate or restamped bars), relabelled or not. What is not: a partition
changed before it was ever sealed, and a forger who rewrites the ledger too (``audit verify`` checks the
ledger against the heads Dagster recorded, see ``docs/architecture.md``).
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd

from tvquant_assets.errors import LakeError
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake.store import atomic_write_bytes

PRICE_FIELDS = ("open", "high", "low", "close")
RECORD_NAME = ".history_verified.json"


def bar_problem(frame: pd.DataFrame, d: pd.Timestamp) -> tuple[str, str] | None:
    """(symbol, problem) of the first bar of ``frame`` (the partition of ``d``) that cannot be used."""
    found = bar_problems({pd.Timestamp(d): frame})
    return found[1:] if found else None


def bar_problems(frames: dict[pd.Timestamp, pd.DataFrame]) -> tuple[pd.Timestamp, str, str] | None:
    """(date, symbol, problem) of the first unusable bar over many partitions, checked in one pass."""
    frames = {d: f for d, f in frames.items() if len(f)}
    if not frames:
        return None
    for d, f in frames.items():
        missing = [c for c in ("date", "symbol", "close") if c not in f.columns]
        if missing:
            return d, "", f"column(s) {', '.join(missing)} missing"
    fields = [c for c in (*PRICE_FIELDS, "volume") if all(c in f.columns for f in frames.values())]
    dates = list(frames)
    lengths = np.array([len(frames[d]) for d in dates])
    part = np.repeat(np.array(dates, dtype="datetime64[ns]"), lengths)
    long = pd.concat([frames[d] for d in dates], ignore_index=True)  # whole frames: selecting columns costs more
    symbols = long["symbol"].to_numpy(dtype=object)
    stamps = _as_datetimes(long["date"])
    problems: list[tuple[int, str]] = []
    dup = pd.DataFrame({"p": part, "s": symbols}).duplicated(keep=False).to_numpy()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        n = int(((part == part[i]) & (symbols == symbols[i])).sum())
        problems.append((i, f"duplicate bars ({n} rows)"))
    off = np.flatnonzero(stamps != part)
    if len(off):
        problems.append((int(off[0]), f"bar stamped {pd.Timestamp(stamps[off[0]]).date()}, not the partition date"))
    for f in fields:
        values = _as_floats(long[f])
        bad = np.flatnonzero(values < 0) if f == "volume" else np.flatnonzero(~np.isfinite(values) | (values <= 0))
        if len(bad):
            problems.append((int(bad[0]), f"{f} {values[bad[0]]:g}"))
    if not problems:
        return None
    i, what = min(problems, key=lambda x: (part[x[0]], x[0]))
    return pd.Timestamp(part[i]), str(symbols[i]), what


def _as_datetimes(col: pd.Series) -> np.ndarray:
    try:
        return col.to_numpy(dtype="datetime64[ns]")
    except (TypeError, ValueError):
        return pd.to_datetime(col, errors="coerce").to_numpy(dtype="datetime64[ns]")


def _as_floats(col: pd.Series) -> np.ndarray:
    try:
        return col.to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError):
        return pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64")


# (path, size/mtime stamp) of partitions whose bars passed, and ledger stamps -> sealed hashes: every stage
# of a run in one process reads the same window, so each file version is checked once per process.
_BARS_OK: set[tuple] = set()
_SEALED: dict[str, tuple] = {}


class HistoryVerifier:
    """Checks a run's price reads; one per run context (the ledger and the record are read once)."""

    def __init__(self, lake, manifest: str) -> None:
        self.lake, self.manifest = lake, manifest
        self.content = True  # audit replay compares content itself: it keeps only the bars check
        self.persist = True  # write the verification record (replay writes nothing)
        self._sealed: dict[str, str] | None = None
        self._record: dict | None = None
        self._dirty = False

    # the ledger's sealed prices hashes -------------------------------------------------------------
    def sealed(self) -> dict[str, str]:
        if self._sealed is None:
            out: dict[str, str] = {}
            path = self.lake.ledger_path(self.manifest)
            stamp = self.lake._stamp(path)
            memo = _SEALED.get(str(path))
            if memo is not None and memo[0] == stamp:
                self._sealed = memo[1]
                return self._sealed
            if path.exists():
                # The file's lines read directly (not through lake.ledger, so editing the chain code moves
                # only the audit's code version); a line that is not JSON is audit verify's business.
                for line in path.read_text(encoding="utf-8").split("\n"):  # later entries supersede earlier
                    try:
                        entry = json.loads(line) if line.strip() else None
                    except ValueError:
                        entry = None
                    if not isinstance(entry, dict):
                        continue
                    payload = entry.get("payload")
                    if not isinstance(payload, dict) or not isinstance(payload.get("stages"), dict):
                        continue
                    stage = payload["stages"].get("prices")
                    h = stage.get("output") if isinstance(stage, dict) else stage
                    if payload.get("date") and h:
                        out[payload["date"]] = h
            self._sealed = out
            _SEALED[str(path)] = (stamp, out)
        return self._sealed

    # the (size, mtime) -> content hash record ------------------------------------------------------
    def _record_path(self) -> str | None:
        root = getattr(self.lake, "_local_root", None)
        return None if root is None else os.path.join(root, self.manifest, RECORD_NAME)

    def _load_record(self) -> dict:
        if self._record is None:
            path, self._record = self._record_path(), {}
            if path and os.path.exists(path):
                try:
                    self._record = json.loads(open(path, encoding="utf-8").read()).get("prices", {})
                except (OSError, ValueError, AttributeError):
                    self._record = {}  # unreadable: everything is hashed again
        return self._record

    def save(self) -> None:
        path = self._record_path()
        if not self._dirty or not self.persist or path is None or not os.path.isdir(os.path.dirname(path)):
            return
        merged = {}
        if os.path.exists(path):  # another run may have recorded other dates meanwhile
            try:
                merged = json.loads(open(path, encoding="utf-8").read()).get("prices", {})
            except (OSError, ValueError, AttributeError):
                merged = {}
        merged.update(self._record or {})
        atomic_write_bytes(path, json.dumps({"prices": merged}, sort_keys=True).encode())
        self._dirty = False

    def content_hash(self, d: pd.Timestamp, frame: pd.DataFrame) -> str:
        key = f"{d:%Y-%m-%d}"
        path = self.lake.path(self.manifest, "prices", d)
        stamp = self.lake._stamp(path)
        record = self._load_record()
        got = record.get(key)
        if stamp is not None and got and [got[0], got[1]] == [stamp[1], stamp[0]]:
            return got[2]
        digest = df_hash(frame)
        if stamp is not None:
            record[key] = [stamp[1], stamp[0], digest]  # size, mtime_ns, content hash
            self._dirty = True
        return digest

    # the check -------------------------------------------------------------------------------------
    def verify(self, prices: dict[pd.Timestamp, tuple[pd.DataFrame, str]], history_before: pd.Timestamp | None
               ) -> None:
        """Raise LakeError naming the first partition of ``prices`` ({date: (frame, stored label)}) that
        fails a check. Content checks apply to dates before ``history_before`` (None: to none)."""
        where = f"{self.lake.root}/{self.manifest}/prices"
        keys = {d: (str(self.lake.path(self.manifest, "prices", d)), self.lake._stamp(
            self.lake.path(self.manifest, "prices", d))) for d in prices}
        unchecked = {d: prices[d][0] for d in prices if keys[d] not in _BARS_OK}
        problem = bar_problems(unchecked)
        if problem is None:
            _BARS_OK.update(keys[d] for d in unchecked if keys[d][1] is not None)
        else:
            d, symbol, what = problem
            name = f"{where}/{d:%Y-%m-%d}.parquet" + (f" {symbol}" if symbol else "")
            raise LakeError(f"lake: history partition {name}: {what}; nothing was computed from it: restore the "
                            f"partition or re-run {d:%Y-%m-%d} (tvquant backfill --start {d:%Y-%m-%d} "
                            f"--end {d:%Y-%m-%d})")
        if history_before is None or not self.content:
            return
        sealed = None
        try:
            for d in sorted(prices):
                if d >= history_before:
                    continue
                frame, label = prices[d]
                content = self.content_hash(d, frame)
                if content != label:
                    raise LakeError(f"lake: history partition {where}/{d:%Y-%m-%d}.parquet: content hash "
                                    f"{content[:12]} does not match its label {label[:12]} (the file changed "
                                    f"after it was written); nothing was computed from it: re-run {d:%Y-%m-%d} "
                                    f"(tvquant backfill --start {d:%Y-%m-%d} --end {d:%Y-%m-%d})")
                sealed = self.sealed() if sealed is None else sealed
                want = sealed.get(f"{d:%Y-%m-%d}")
                if want is not None and want != content:
                    raise LakeError(f"lake: history partition {where}/{d:%Y-%m-%d}.parquet: content hash "
                                    f"{content[:12]} differs from the hash the ledger sealed {want[:12]} (the "
                                    f"partition changed after it was sealed); nothing was computed from it: "
                                    f"restore it, or re-run {d:%Y-%m-%d} through audit (tvquant backfill "
                                    f"--start {d:%Y-%m-%d} --end {d:%Y-%m-%d}) and then the dates after it")
        finally:
            self.save()


# later dates built on a changed date ---------------------------------------------------------------

STALE_NAME = "stale.json"


def _stale_path(lake, manifest: str) -> str | None:
    root = getattr(lake, "_local_root", None)
    return None if root is None else os.path.join(root, manifest, STALE_NAME)


def stale_dates(lake, manifest: str) -> dict[str, str]:
    """``{date: why}`` of sealed dates computed from prices that changed after they were sealed."""
    path = _stale_path(lake, manifest)
    if not path or not os.path.exists(path):
        return {}
    try:
        return dict(json.loads(open(path, encoding="utf-8").read()))
    except (OSError, ValueError, TypeError):
        return {}


def update_stale(lake, manifest: str, resealed: list[str], changed: dict[str, str], sealed_dates: list[str]
                 ) -> dict[str, list[str]]:
    """Record which sealed dates are stale now: every sealed date after a date whose prices changed
    (``changed``: {date: run}) that this run did not seal again; the dates it sealed (``resealed``) are
    fresh. Returns {changed date: its stale later dates}."""
    path = _stale_path(lake, manifest)
    stale = stale_dates(lake, manifest)
    cleared = [d for d in resealed if stale.pop(d, None) is not None]
    out: dict[str, list[str]] = {}
    again = set(resealed)
    for d in sorted(changed):
        later = [e for e in sealed_dates if e > d and e not in again]
        out[d] = later
        for e in later:
            stale.setdefault(e, f"computed from prices {d} before it changed")
    if path and (any(out.values()) or cleared) and os.path.isdir(os.path.dirname(path)):
        atomic_write_bytes(path, json.dumps(dict(sorted(stale.items())), indent=1).encode())
    return out


def _cause(why: str) -> str:
    return why.split("prices ", 1)[-1].split(" ", 1)[0]  # "computed from prices D before it changed"


def _clear_command(manifest: str, dates: list[str]) -> str:
    return f"tvquant backfill --manifest {manifest} --start {dates[0]} --end {dates[-1]}"


def stale_metadata(lake, manifest: str) -> dict[str, dict]:
    """Per stale date: the re-sealed date whose changed prices made it stale and the command that re-runs
    every stale date (metadata of the ``history_current`` check)."""
    stale = stale_dates(lake, manifest)
    if not stale:
        return {}
    command = _clear_command(manifest, sorted(stale))
    return {d: {"stale_since": _cause(why), "clear_with": command} for d, why in stale.items()}


def stale_note(lake, manifest: str) -> str | None:
    """One line for the CLI when sealed dates are stale, with the command that re-runs them."""
    stale = stale_dates(lake, manifest)
    if not stale:
        return None
    dates = sorted(stale)
    causes = sorted({_cause(why) for why in stale.values()})
    return (f"{len(dates)} sealed date(s) {dates[0]}..{dates[-1]} are stale: computed from prices "
            f"{', '.join(causes)} before it changed; re-run them: {_clear_command(manifest, dates)}")
