"""The parquet lake: ``<root>/<manifest>/<asset>/<YYYY-MM-DD>.parquet``, atomic writes, a read cache.

Local roots write to a temporary file in the target directory and ``os.replace`` it into place, so a
killed run leaves either the old file or the new one, never a partial one. Other fsspec roots (via
universal-pathlib) write to a temporary key and move it, as atomic as the backend's rename.
"""

from __future__ import annotations

import io
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
from tvquant_assets.hashing import df_hash

LAKE_ENV = "TVQUANT_LAKE"
DEFAULT_LAKE = "./.tvquant/lake"
_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def default_lake_root() -> str:
    return os.environ.get(LAKE_ENV) or DEFAULT_LAKE


def date_key(date) -> str:
    return pd.Timestamp(date).strftime("%Y-%m-%d")


def _safe(part: str, what: str) -> str:
    if not _SAFE.match(part) or part in (".", ".."):
        raise LakeError(f"lake: {what} {part!r} is not a safe path component (letters, digits, _ . - only)")
    return part


def to_parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), buf, compression="zstd")
    return buf.getvalue()


def atomic_write_bytes(path: UPath | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers see the old file or the whole new one, never a part."""
    path = UPath(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    if path.protocol in ("", "file", "local"):
        local, local_tmp = Path(path.path), Path(tmp.path)
        local.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(local_tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(local_tmp, local)
        except BaseException:
            local_tmp.unlink(missing_ok=True)
            raise
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.write_bytes(data)
        path.fs.mv(tmp.path, path.path)
    except BaseException:
        if tmp.exists():
            tmp.unlink()
        raise


class Lake:
    """Reads and writes stage partitions. One instance per root per process (``Lake.open``) shares a
    bounded cache of frames written or read, validated against the file's mtime and size."""

    _instances: dict[str, Lake] = {}
    _lock = threading.Lock()

    def __init__(self, root: str | os.PathLike, cache_size: int = 60_000) -> None:
        self.root = UPath(root)
        if self.root.protocol in ("", "file", "local"):
            self.root = UPath(Path(self.root.path).resolve())
        self._cache: OrderedDict[str, tuple[tuple, pd.DataFrame, str]] = OrderedDict()
        self._cache_size = cache_size
        self._cache_lock = threading.Lock()

    @classmethod
    def open(cls, root: str | os.PathLike | None = None) -> Lake:
        key = str(root or default_lake_root())
        with cls._lock:
            if key not in cls._instances:
                cls._instances[key] = cls(key)
            return cls._instances[key]

    # paths -----------------------------------------------------------------------------------------
    def manifest_dir(self, manifest: str) -> UPath:
        return self.root / _safe(manifest, "manifest name")

    def asset_dir(self, manifest: str, asset: str) -> UPath:
        return self.manifest_dir(manifest) / _safe(asset, "asset name")

    def path(self, manifest: str, asset: str, date) -> UPath:
        return self.asset_dir(manifest, asset) / f"{date_key(date)}.parquet"

    def ledger_path(self, manifest: str) -> UPath:
        return self.manifest_dir(manifest) / "ledger.jsonl"

    # cache -----------------------------------------------------------------------------------------
    @staticmethod
    def _stamp(path: UPath) -> tuple | None:
        try:
            if path.protocol in ("", "file", "local"):
                st = os.stat(path.path)
                return (st.st_mtime_ns, st.st_size)
            info = path.fs.info(path.path)
            return (info.get("mtime") or info.get("LastModified"), info.get("size"))
        except (FileNotFoundError, OSError):
            return None

    def _remember(self, path: UPath, df: pd.DataFrame, digest: str) -> None:
        stamp = self._stamp(path)
        with self._cache_lock:
            self._cache[str(path)] = (stamp, df, digest)
            self._cache.move_to_end(str(path))
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _cached(self, path: UPath) -> tuple[pd.DataFrame, str] | None:
        with self._cache_lock:
            hit = self._cache.get(str(path))
        if hit is None:
            return None
        if hit[0] != self._stamp(path):
            return None
        return hit[1], hit[2]

    # write / read ----------------------------------------------------------------------------------
    def write_path(self, path: UPath, df: pd.DataFrame) -> str:
        """Atomically write one frame; returns its df_hash."""
        if not isinstance(df, pd.DataFrame):
            raise LakeError(f"lake: {path} expects a DataFrame, got {type(df).__name__}")
        df = df.reset_index(drop=True)
        digest = df_hash(df)
        atomic_write_bytes(path, to_parquet_bytes(df))
        self._remember(UPath(path), df, digest)
        return digest

    def write(self, manifest: str, asset: str, date, df: pd.DataFrame) -> str:
        return self.write_path(self.path(manifest, asset, date), df)

    def read_path(self, path: UPath) -> pd.DataFrame:
        return self.read_path_with_hash(path)[0]

    def read_path_with_hash(self, path: UPath) -> tuple[pd.DataFrame, str]:
        path = UPath(path)
        hit = self._cached(path)
        if hit is not None:
            return hit
        try:
            if path.protocol in ("", "file", "local"):
                table = pq.read_table(path.path)
            else:
                with path.open("rb") as fh:
                    table = pq.read_table(fh)
        except FileNotFoundError:
            raise LakeError(f"lake: missing partition {path}; materialize it first") from None
        except (pa.ArrowInvalid, OSError) as exc:
            raise LakeError(f"lake: unreadable partition {path} ({exc}); re-materialize it") from None
        df = table.to_pandas()
        digest = df_hash(df)
        self._remember(path, df, digest)
        return df, digest

    def exists(self, manifest: str, asset: str, date) -> bool:
        return self._stamp(self.path(manifest, asset, date)) is not None

    def read(self, manifest: str, asset: str, date) -> pd.DataFrame:
        return self.read_path(self.path(manifest, asset, date))

    def read_with_hash(self, manifest: str, asset: str, date) -> tuple[pd.DataFrame, str]:
        return self.read_path_with_hash(self.path(manifest, asset, date))

    def read_many(self, manifest: str, asset: str, dates: Iterable, *, missing_ok: bool = False
                  ) -> dict[pd.Timestamp, tuple[pd.DataFrame, str]]:
        """Frames and hashes for many dates (threaded for cache misses). Missing partitions raise unless
        ``missing_ok``, in which case they are left out."""
        dates = [pd.Timestamp(d) for d in dates]

        def one(d):
            path = self.path(manifest, asset, d)
            try:
                return d, self.read_path_with_hash(path)
            except LakeError:
                if missing_ok and self._stamp(path) is None:
                    return d, None
                raise

        if len(dates) > 16:
            with ThreadPoolExecutor(max_workers=4) as pool:
                results = list(pool.map(one, dates))
        else:
            results = [one(d) for d in dates]
        return {d: r for d, r in results if r is not None}

    def partitions(self, manifest: str, asset: str) -> list[pd.Timestamp]:
        """Dates with a partition file, ascending."""
        d = self.asset_dir(manifest, asset)
        if not d.exists():
            return []
        names = [p.name for p in d.iterdir() if p.name.endswith(".parquet") and not p.name.startswith(".")]
        return sorted(pd.Timestamp(n[: -len(".parquet")]) for n in names)
