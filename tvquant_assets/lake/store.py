"""The parquet lake: ``<root>/<manifest>/<asset>/<YYYY-MM-DD>.parquet``, atomic writes, a read cache.

Local roots write to a temporary file in the target directory and ``os.replace`` it into place, so a
killed run leaves either the old file or the new one, never a partial one. Other fsspec roots (via
universal-pathlib) write to a temporary key and move it, as atomic as the backend's rename.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from upath import UPath

from tvquant_assets.errors import LakeError
from tvquant_assets.hashing import column_arrays, df_hash, hash_of, stamp_hash
from tvquant_assets.permissions import DIR_MODE, FILE_MODE

LAKE_ENV = "TVQUANT_LAKE"
DEFAULT_LAKE = "./.tvquant/lake"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def default_lake_root() -> str:
    return os.environ.get(LAKE_ENV) or DEFAULT_LAKE


_DATE_KEY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def is_date_key(key) -> bool:
    """``YYYY-MM-DD``: a daily partition key, the name of its file."""
    return isinstance(key, str) and _DATE_KEY.match(key) is not None


def date_key(date) -> str:
    if isinstance(date, str) and _DATE_KEY.match(date):  # already a partition key (Dagster's)
        return date
    return pd.Timestamp(date).strftime("%Y-%m-%d")


def _safe(part: str, what: str) -> str:
    if not _SAFE.match(part) or part in (".", ".."):
        raise LakeError(f"lake: {what} {part!r} is not a safe path component (letters, digits, _ . - only)")
    return part


HASH_KEY = b"tvquant_df_hash"
"""Parquet key-value metadata holding the frame's df_hash, computed once when the lake writes it."""


_SCHEMAS: dict[tuple, pa.Schema] = {}
_SCHEMAS_LOCK = threading.Lock()


def to_arrow(df: pd.DataFrame) -> pa.Table:
    """``pa.Table.from_pandas(df, preserve_index=False)`` without ``df.attrs``, the same table (schema and
    pandas metadata included), faster: columns are converted one by one from their arrays and the schema
    is built once per column layout (names, dtypes, arrow types) and reused (pyarrow's per-column pandas
    bookkeeping cost more than the conversion for the small frames of a daily partition). Layouts whose
    metadata depends on values (categoricals: their category count) or names that are not unique strings
    go through ``from_pandas``."""
    columns = df.columns
    names = tuple(columns.tolist())
    values = column_arrays(df)
    if (not names or len(set(names)) != len(names) or not all(isinstance(c, str) for c in names)
            or any(isinstance(v.dtype, pd.CategoricalDtype) for v in values)):
        return _from_pandas(df)
    try:
        arrays = [pa.array(v, from_pandas=True) for v in values]
    except (pa.ArrowException, TypeError, ValueError):
        return _from_pandas(df)  # its error names the column
    key = (type(columns), str(columns.dtype), columns.name, names, tuple(v.dtype for v in values),
           tuple(a.type for a in arrays))
    schema = _SCHEMAS.get(key)
    if schema is None:
        table = _from_pandas(df)
        with _SCHEMAS_LOCK:
            if len(_SCHEMAS) > 4096:  # layouts are few; a process making endless new ones starts over
                _SCHEMAS.clear()
            _SCHEMAS[key] = table.schema
        return table
    return pa.Table.from_arrays(arrays, schema=schema)


def _from_pandas(df: pd.DataFrame) -> pa.Table:
    if df.attrs:  # pyarrow would store them, with the in-memory hash stamp's object id
        df = df.copy(deep=False)
        df.attrs = {}
    return pa.Table.from_pandas(df, preserve_index=False)


def to_parquet_bytes(df: pd.DataFrame, digest: str | None = None) -> bytes:
    """Same frame, same bytes: ``df.attrs`` (pyarrow would store them, with the in-memory hash stamp's
    object id) stay out of the file."""
    return _encode(to_arrow(df), digest)


def _encode(table: pa.Table, digest: str | None) -> bytes:
    if digest is not None:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), HASH_KEY: digest.encode("ascii")})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf, compression="snappy")
    return buf.getvalue().to_pybytes()


def _default_index(df: pd.DataFrame) -> bool:
    """A RangeIndex from 0 by 1: what a partition file gives back."""
    index = df.index
    return isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1


def prepare_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, str]:
    """``df`` as a partition file holds it (a default index: reset when it has another, else the frame
    itself, no copy) and its df_hash, stamped on it so the lake write that follows does not hash again."""
    if not _default_index(df):
        df = df.reset_index(drop=True)
    digest = df_hash(df)
    stamp_hash(df, digest)
    return df, digest


FSYNC_ENV = "TVQUANT_LAKE_FSYNC"


def _is_local(path) -> bool:
    return isinstance(path, (str, Path)) or getattr(path, "protocol", "") in ("", "file", "local")


def _local(path) -> str:
    return path if isinstance(path, str) else str(path.path if isinstance(path, UPath) else path)


def atomic_write_bytes(path: UPath | Path | str, data: bytes, fsync: bool | None = None) -> tuple | None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never a part; returns
    the new file's (mtime_ns, size) for local paths.

    The rename is what makes a killed process harmless; ``fsync`` (default: env TVQUANT_LAKE_FSYNC=1)
    additionally protects against power loss at the price of ~10 ms per file."""
    if _is_local(path):
        local = _local(path)
        return _write_local(local, data, os.environ.get(FSYNC_ENV) == "1" if fsync is None else fsync)
    path = UPath(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.write_bytes(data)
        path.fs.mv(tmp.path, path.path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


def _write_local(local: str, data: bytes, fsync: bool, made: set[str] | None = None) -> tuple:
    """tmp file in the target directory + ``os.replace``; ``made``: directories known to exist (no
    ``makedirs`` per file; one that vanished is made again)."""
    directory, name = os.path.split(local)
    local_tmp = os.path.join(directory, f".{name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    if made is None or directory not in made:
        os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
    try:
        fd = os.open(local_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    except FileNotFoundError:  # the directory was removed since
        os.makedirs(directory, mode=DIR_MODE, exist_ok=True)
        fd = os.open(local_tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    if made is not None:
        made.add(directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            if fsync:
                os.fsync(fh.fileno())
            st = os.fstat(fh.fileno())
        os.replace(local_tmp, local)
    except BaseException:
        if os.path.exists(local_tmp):
            os.unlink(local_tmp)
        raise
    return (st.st_mtime_ns, st.st_size)


CACHE_ENV = "TVQUANT_LAKE_CACHE_MB"
DEFAULT_CACHE_MB = 512


def cache_budget_bytes() -> int:
    """The read cache's budget: env TVQUANT_LAKE_CACHE_MB (0 turns the cache off), else 512 MiB."""
    raw = os.environ.get(CACHE_ENV, "").strip()
    if not raw:
        return DEFAULT_CACHE_MB * 2**20
    try:
        mb = float(raw)
    except ValueError:
        raise LakeError(f"{CACHE_ENV}={raw!r}: expected a number of megabytes (0 turns the cache off)") from None
    if mb < 0:
        raise LakeError(f"{CACHE_ENV}={raw!r}: expected a number of megabytes >= 0")
    return int(mb * 2**20)


def frame_nbytes(df: pd.DataFrame, table: pa.Table | None = None) -> int:
    """What a cached frame holds, estimated cheaply: its columns' buffers (``table``: the arrow table made
    from it, whose buffers are the frame's; object columns count their pointers) plus a fixed cost per
    frame and column for pandas' own objects. A frame sliced from a larger one (a merged range, sliced per
    date) counts its own rows: ``nbytes`` follows array offsets, where ``get_total_buffer_size`` counted the
    whole shared buffers for every slice (1.75 MB for a 19 KB tournament partition)."""
    data = table.nbytes if table is not None else sum(int(getattr(a, "nbytes", 0)) for a in column_arrays(df))
    return 8192 + 512 * df.shape[1] + data  # measured: ~10 KiB per small frame in RSS


_FORKED: tuple | None = None  # (lake, items) a forked writer inherits


def _write_share(lo: int, hi: int) -> tuple[list[str], list[str]]:
    """In a forked writer: items ``lo:hi`` of the caller's ``write_many``; their hashes and the files
    found edited outside the lake."""
    from tvquant_assets.workers import mark_worker

    mark_worker()
    lake, items = _FORKED
    seen = len(lake.edited_replaced)
    digests = [lake.write_path(p, df) for p, df in items[lo:hi]]
    return digests, lake.edited_replaced[seen:]


class Lake:
    """Reads and writes stage partitions. One instance per root per process (``Lake.open``) shares a
    cache of frames written or read, validated against the file's mtime and size, bounded in bytes
    (``cache_bytes``, default :func:`cache_budget_bytes`) and in frames; least recently used go first."""

    _instances: dict[str, Lake] = {}
    _lock = threading.Lock()

    def __init__(self, root: str | os.PathLike, cache_size: int = 60_000, cache_bytes: int | None = None) -> None:
        self.root = UPath(root)
        self._local_root: str | None = None
        if self.root.protocol in ("", "file", "local"):
            self._local_root = str(Path(self.root.path).resolve())
            self.root = UPath(self._local_root)
        self._cache: OrderedDict[str, tuple[tuple, pd.DataFrame, str, int]] = OrderedDict()
        self._cache_size = cache_size
        self._hashes: OrderedDict[str, tuple] = OrderedDict()  # key -> (stamp, df_hash): outlives evicted frames
        self._cache_budget = cache_budget_bytes() if cache_bytes is None else cache_bytes
        self.cache_nbytes = 0  # estimated bytes of the cached frames
        self._cache_lock = threading.Lock()
        self._made: set[str] = set()  # local directories known to exist
        self.edited_replaced: list[str] = []  # files found edited outside the lake and rewritten

    @classmethod
    def open(cls, root: str | os.PathLike | None = None) -> Lake:
        key = str(root or default_lake_root())
        with cls._lock:
            if key not in cls._instances:
                cls._instances[key] = cls(key)
            return cls._instances[key]

    # paths -----------------------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return self._local_root is not None

    def manifest_dir(self, manifest: str) -> UPath:
        return self.root / _safe(manifest, "manifest name")

    def asset_dir(self, manifest: str, asset: str) -> UPath:
        return self.manifest_dir(manifest) / _safe(asset, "asset name")

    def path(self, manifest: str, asset: str, date) -> UPath | str:
        """A plain string for local lakes (fast), a UPath otherwise."""
        if self._local_root is not None:
            return f"{self._local_root}/{_safe(manifest, 'manifest name')}/{_safe(asset, 'asset name')}/" \
                   f"{date_key(date)}.parquet"
        return self.asset_dir(manifest, asset) / f"{date_key(date)}.parquet"

    def ledger_path(self, manifest: str) -> UPath:
        return self.manifest_dir(manifest) / "ledger.jsonl"

    # cache -----------------------------------------------------------------------------------------
    @staticmethod
    def _stamp(path) -> tuple | None:
        try:
            if _is_local(path):
                st = os.stat(_local(path))
                return (st.st_mtime_ns, st.st_size)
            info = path.fs.info(path.path)
            return (info.get("mtime") or info.get("LastModified"), info.get("size"))
        except (FileNotFoundError, OSError):
            return None

    @staticmethod
    def _key(path) -> str:
        return _local(path) if _is_local(path) else str(path)

    def _remember(self, path, df: pd.DataFrame, digest: str, stamp: tuple | None = None,
                  size: int | None = None) -> None:
        key = self._key(path)
        stamp = self._stamp(path) if stamp is None else stamp
        self._remember_hash(key, stamp, digest)
        if self._cache_budget <= 0:
            return
        size = frame_nbytes(df) if size is None else size
        with self._cache_lock:
            old = self._cache.pop(key, None)
            if old is not None:
                self.cache_nbytes -= old[3]
            if size > self._cache_budget:
                return
            self._cache[key] = (stamp, df, digest, size)
            self.cache_nbytes += size
            while len(self._cache) > self._cache_size or self.cache_nbytes > self._cache_budget:
                self.cache_nbytes -= self._cache.popitem(last=False)[1][3]

    def _forget(self, path) -> None:
        with self._cache_lock:
            old = self._cache.pop(self._key(path), None)
            if old is not None:
                self.cache_nbytes -= old[3]

    HASHES_KEPT = 1_000_000
    """Partition hashes remembered beyond the frame cache (~150 bytes each)."""

    def _remember_hash(self, key: str, stamp: tuple | None, digest: str) -> None:
        if stamp is None:
            return
        with self._cache_lock:
            self._hashes[key] = (stamp, digest)
            self._hashes.move_to_end(key)
            if len(self._hashes) > self.HASHES_KEPT:
                self._hashes.popitem(last=False)

    def hashes(self, manifest: str, asset: str, dates: Iterable, *, missing_ok: bool = False
               ) -> dict[pd.Timestamp, str]:
        """The df_hash of many partitions without reading their frames: from the frame cache, the hashes
        remembered for files this lake wrote or read (validated by mtime and size like cached frames), or
        the file's footer, which holds the hash the lake wrote (~0.06 ms against ~2 ms for a read); a file
        without one is read. Missing partitions raise unless ``missing_ok`` (then they are left out)."""
        out: dict[pd.Timestamp, str] = {}
        for d in (pd.Timestamp(x) for x in dates):
            path = self.path(manifest, asset, d)
            key = self._key(path)
            stamp = self._stamp(path)
            if stamp is None:
                if missing_ok:
                    continue
                raise LakeError(f"lake: missing partition {path}; materialize it first")
            with self._cache_lock:
                known = self._hashes.get(key)
            if known is not None and known[0] == stamp:
                out[d] = known[1]
                continue
            digest = None
            if _is_local(path):
                try:
                    digest = (pq.read_metadata(_local(path)).metadata or {}).get(HASH_KEY)
                except (pa.ArrowInvalid, OSError):
                    digest = None  # the read below says why
            if digest is not None:
                out[d] = digest.decode("ascii")
                self._remember_hash(key, stamp, out[d])
            else:
                out[d] = self.read_path_with_hash(path)[1]
        return out

    def adopt(self, path, df: pd.DataFrame, digest: str) -> None:
        """Cache ``df`` as the content of ``path``, which another process has just written with it (a
        worker's partitions); validated by mtime and size like every cached frame."""
        self._remember(path, df, digest)

    def _cached(self, path) -> tuple[pd.DataFrame, str] | None:
        key = self._key(path)
        with self._cache_lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)  # least recently used goes first
        if hit is None:
            return None
        if hit[0] != self._stamp(path):
            return None
        return hit[1], hit[2]

    # write / read ----------------------------------------------------------------------------------
    def write_path(self, path: UPath, df: pd.DataFrame) -> str:
        """Atomically write one frame; returns its df_hash. A partition already holding this content is left
        as it is (same inputs, same bytes: re-runs rewrite nothing, even when only ``_ms`` timings differ).
        A file edited outside the lake (its content no longer matches its stored hash) is replaced and its
        path recorded in ``edited_replaced``, so the run that overwrote it can say so."""
        if not isinstance(df, pd.DataFrame):
            raise LakeError(f"lake: {path} expects a DataFrame, got {type(df).__name__}")
        if _default_index(df):
            digest = hash_of(df)  # the caller's stamp when it hashed this very frame (the Dagster asset)
        else:  # the file holds no index: hash what a read gives back
            df = df.reset_index(drop=True)
            digest = df_hash(df)
        table = to_arrow(df)
        data, size = _encode(table, digest), frame_nbytes(df, table)
        kept = self._unchanged(path, data, digest)
        if kept is not None:
            if kept:  # byte-identical: the frame is the file's content
                self._remember(path, df, digest, size=size)
            return digest
        if self._local_root is not None and _is_local(path):
            stamp = _write_local(_local(path), data, os.environ.get(FSYNC_ENV) == "1", self._made)
        else:
            stamp = atomic_write_bytes(path, data)
        self._remember(path, df, digest, stamp, size)
        return digest

    def _unchanged(self, path, data: bytes, digest: str) -> bool | None:
        """True: the file holds exactly ``data``; False: the same content, other ``_ms`` timings (keep the
        file, forget the frame); None: write (absent, other content, or edited outside the lake)."""
        try:
            if _is_local(path):
                with open(_local(path), "rb") as fh:
                    old = fh.read()
            else:
                old = UPath(path).read_bytes()
        except (FileNotFoundError, OSError):
            return None
        if old == data:
            return True
        try:
            table = pq.read_table(pa.BufferReader(old))
        except (pa.ArrowInvalid, OSError):
            self._edited(path)
            return None
        label = (table.schema.metadata or {}).get(HASH_KEY)
        if label is not None and label.decode("ascii") != digest:
            return None  # new content
        if df_hash(table.to_pandas()) == digest:
            if label is None:
                return None  # rewrite it with its label
            self._forget(path)
            return False
        self._edited(path)  # labelled as this content (or unlabelled), holding another: edited outside the lake
        return None

    def _edited(self, path) -> None:
        with self._cache_lock:
            self.edited_replaced.append(str(path))

    def write_many(self, items: list[tuple[UPath | str, pd.DataFrame]]) -> list[str]:
        """Write many partitions. On a local lake one by one (threads cost more than they give there:
        ~1.14 vs 0.90 ms per demo partition file on 2 cores, the GIL held for most of a small frame's
        encoding), the later items by forked workers when there are many (``workers.fork_writers``);
        threaded on a remote lake (its round trips dominate)."""
        if self._local_root is not None and all(_is_local(p) for p, _ in items):
            from tvquant_assets.workers import fork_writers

            n = fork_writers(len(items))
            if n > 1:
                return self._write_forked(items, n)
            return [self.write_path(p, df) for p, df in items]
        if len(items) <= 8:
            return [self.write_path(p, df) for p, df in items]
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda item: self.write_path(*item), items))

    def _write_forked(self, items: list[tuple[str, pd.DataFrame]], n: int) -> list[str]:
        """``items`` in ``n`` contiguous parts, this process writing the first, forked workers the others
        (they inherit the frames: only their hashes come back); their frames are cached here as written."""
        global _FORKED
        from tvquant_assets.workers import contiguous, forked_pool

        bounds = contiguous(len(items), n)

        _FORKED = (self, items)
        try:
            pool = forked_pool(n - 1)
            try:
                futures = [pool.submit(_write_share, lo, hi) for lo, hi in bounds[1:]]
                digests = [self.write_path(p, df) for p, df in items[: bounds[0][1]]]
                for f, (lo, hi) in zip(futures, bounds[1:], strict=True):
                    theirs, edited = f.result()
                    for (path, df), digest in zip(items[lo:hi], theirs, strict=True):
                        self.adopt(path, df if _default_index(df) else df.reset_index(drop=True), digest)
                    digests += theirs
                    with self._cache_lock:
                        self.edited_replaced.extend(edited)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
        finally:
            _FORKED = None
        return digests

    def write(self, manifest: str, asset: str, date, df: pd.DataFrame) -> str:
        return self.write_path(self.path(manifest, asset, date), df)

    def read_path(self, path: UPath) -> pd.DataFrame:
        return self.read_path_with_hash(path)[0]

    def read_path_with_hash(self, path, verify: bool = False) -> tuple[pd.DataFrame, str]:
        """The frame and its df_hash: the one stored in the file when the lake wrote it (hashing every
        partition of a trailing window on each read cost more than reading it), recomputed from the
        content when the file has none or ``verify`` (audit verify/replay: content, not labels)."""
        hit = None if verify else self._cached(path)
        if hit is not None:
            return hit
        try:
            if _is_local(path):
                table = pq.read_table(_local(path))
            else:
                with path.open("rb") as fh:
                    table = pq.read_table(fh)
        except FileNotFoundError:
            raise LakeError(f"lake: missing partition {path}; materialize it first") from None
        except (pa.ArrowInvalid, OSError) as exc:
            why = " ".join(str(exc).split())  # one line: pyarrow's messages span several
            raise LakeError(f"lake: unreadable partition {path} ({why}); re-materialize it") from None
        try:
            df = table.to_pandas()
        except (ValueError, KeyError, TypeError, pa.ArrowException) as exc:  # e.g. a corrupt pandas-metadata block
            why = " ".join(str(exc).split())
            raise LakeError(f"lake: unreadable partition {path} ({type(exc).__name__}: {why}); "
                            f"re-materialize it") from None
        stored = None if verify else (table.schema.metadata or {}).get(HASH_KEY)
        digest = stored.decode("ascii") if stored else df_hash(df)
        self._remember(path, df, digest)
        return df, digest

    def exists(self, manifest: str, asset: str, date) -> bool:
        """True when the partition file is there (cheap: one stat)."""
        return self._stamp(self.path(manifest, asset, date)) is not None

    def read(self, manifest: str, asset: str, date) -> pd.DataFrame:
        return self.read_path(self.path(manifest, asset, date))

    def read_with_hash(self, manifest: str, asset: str, date, verify: bool = False) -> tuple[pd.DataFrame, str]:
        return self.read_path_with_hash(self.path(manifest, asset, date), verify=verify)

    def read_many(self, manifest: str, asset: str, dates: Iterable, *, missing_ok: bool = False,
                  verify: bool = False) -> dict[pd.Timestamp, tuple[pd.DataFrame, str]]:
        """Frames and hashes for many dates (threaded for cache misses). Missing partitions raise unless
        ``missing_ok``, in which case they are left out. ``verify``: hashes from the content."""
        dates = [pd.Timestamp(d) for d in dates]

        def one(d):
            path = self.path(manifest, asset, d)
            try:
                return d, self.read_path_with_hash(path, verify=verify)
            except LakeError:
                if missing_ok and self._stamp(path) is None:
                    return d, None
                raise

        found: dict[pd.Timestamp, tuple[pd.DataFrame, str] | None] = {}
        misses = []
        for d in dates:
            hit = None if verify else self._cached(self.path(manifest, asset, d))
            if hit is None:
                misses.append(d)
            else:
                found[d] = hit
        if len(misses) > 16:
            with ThreadPoolExecutor(max_workers=4) as pool:
                found.update(pool.map(one, misses))
        else:
            found.update(one(d) for d in misses)
        return {d: found[d] for d in dates if found[d] is not None}

    def partitions(self, manifest: str, asset: str) -> list[pd.Timestamp]:
        """Dates with a partition file, ascending."""
        d = self.asset_dir(manifest, asset)
        if not d.exists():
            return []
        names = [p.name for p in d.iterdir() if p.name.endswith(".parquet") and not p.name.startswith(".")]
        return sorted(pd.Timestamp(n[: -len(".parquet")]) for n in names)
