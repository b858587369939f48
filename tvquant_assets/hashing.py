"""Deterministic content hashes.

``df_hash`` canonical form (documented in docs/architecture.md):
1. columns sorted by name (as strings);
2. the index reset into columns named ``__index__<level>`` (rows keep their order: order is content);
3. a header of ``name:dtype`` for every column, then each column's values: numbers as little-endian
   float64/int64 bytes (``-0.0`` folded to ``0.0``, every NaN to one pattern), datetimes as int64
   nanoseconds, booleans as bytes, everything else as UTF-8 of ``str(value)`` with a length prefix;
4. SHA-256 over all of it, hex.
Columns whose name ends in ``_ms`` hold wall-clock timings (measurements, not content) and are left out.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd


def column_arrays(df: pd.DataFrame) -> list:
    """Each column's values (a numpy array or a pandas extension array), in column order, without building a
    Series per column (that per-column overhead dominated hashing and writing the small frames of a daily
    partition). The same arrays ``df.iloc[:, i].array`` holds."""
    try:
        manager = df._mgr
        return [manager.iget_values(i) for i in range(df.shape[1])]
    except AttributeError:  # a pandas without the block manager's accessor
        return [df.iloc[:, i].array for i in range(df.shape[1])]


def _as_numpy(values, dtype: str, na_value=None) -> np.ndarray:
    """``Series.to_numpy(dtype, na_value)`` of a column's values (numpy arrays hold no missing markers)."""
    if isinstance(values, np.ndarray):
        return np.asarray(values, dtype=dtype)
    if na_value is None:
        return values.to_numpy(dtype=dtype)
    return values.to_numpy(dtype=dtype, na_value=na_value)


def _column_bytes(values) -> bytes:
    """A column's canonical bytes; ``values``: a Series or a column's array (the same bytes)."""
    kind = values.dtype.kind
    if kind in "fi" and not isinstance(values.dtype, pd.CategoricalDtype):
        arr = np.array(_as_numpy(values, "float64", np.nan), dtype="float64", copy=True)
        arr[arr == 0.0] = 0.0  # fold -0.0
        arr[np.isnan(arr)] = np.nan  # one NaN bit pattern
        return arr.astype("<f8").tobytes()
    if kind == "u":
        return _as_numpy(values, "<u8").tobytes()
    if kind == "b":
        return _as_numpy(values, "bool").tobytes()
    if kind == "M" and isinstance(values.dtype, np.dtype):  # tz-naive: skip the slow .dt accessor
        return np.asarray(values).astype("datetime64[ns]").view("<i8").tobytes()
    if kind == "M":
        values = values if isinstance(values, pd.Series) else pd.Series(values, copy=False)
        ns = values.dt.tz_localize(None) if getattr(values.dt, "tz", None) else values
        return ns.astype("datetime64[ns]").to_numpy().view("<i8").tobytes()
    packed = _arrow_string_bytes(values)
    if packed is not None:
        return packed
    items = _arrow_strings(values)
    if items is None:
        items = values.tolist()
    encoded = [("\x00NA" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)).encode("utf-8")
               for v in items]
    lengths = np.fromiter((len(b) for b in encoded), dtype="<i8", count=len(encoded))
    return lengths.tobytes() + b"".join(encoded)


def _arrow_string_bytes(values) -> bytes | None:
    """The canonical bytes of a pyarrow-backed string array straight from its buffers: an Arrow string
    array is its UTF-8 bytes end to end plus offsets, so the lengths are the offsets' differences and the
    values the data between the first and last offset (what encoding each ``str`` gives, without a Python
    object per value). Missing values are filled with their text first (see :func:`_arrow_strings`). None
    when ``values`` is not such an array."""
    dtype = values.dtype
    if isinstance(values, pd.Series) or not isinstance(dtype, pd.StringDtype) or dtype.storage != "pyarrow":
        return None
    import pyarrow as pa
    import pyarrow.compute as pc

    arrow = pa.array(values)
    if isinstance(arrow, pa.ChunkedArray):
        arrow = arrow.combine_chunks()
    if arrow.null_count:
        arrow = pc.fill_null(arrow, str(pd.NA) if dtype.na_value is pd.NA else "\x00NA")
    if arrow.type != pa.large_string():
        arrow = arrow.cast(pa.large_string())
    _, offsets_buffer, data = arrow.buffers()
    n = len(arrow)
    offsets = np.frombuffer(offsets_buffer, dtype="<i8", count=arrow.offset + n + 1)[arrow.offset:]
    lo, hi = (int(offsets[0]), int(offsets[-1])) if n else (0, 0)
    body = data.to_pybytes()[lo:hi] if data is not None and hi > lo else b""
    return np.diff(offsets).astype("<i8").tobytes() + body


def _arrow_strings(values) -> list | None:
    """``values.tolist()`` of a pyarrow-backed string array, straight from arrow (pandas' own ``tolist``
    goes through an object array): missing values as ``tolist`` gives them (``str`` dtype: NaN, encoded
    as missing; ``string`` dtype: ``pd.NA``, whose text "<NA>" is what the hash has always held)."""
    dtype = values.dtype
    if isinstance(values, pd.Series) or not isinstance(dtype, pd.StringDtype) or dtype.storage != "pyarrow":
        return None
    import pyarrow as pa

    arrow = pa.array(values)
    items = arrow.to_pylist()
    if arrow.null_count and dtype.na_value is pd.NA:
        text = str(pd.NA)
        items = [text if v is None else v for v in items]
    return items


def df_hash(df: pd.DataFrame) -> str:
    """Content hash of a frame, independent of column order and of storage round trips."""
    positions: dict[str, int] = {}
    for i, c in enumerate(df.columns):
        if not str(c).endswith("_ms"):
            positions[str(c)] = i  # a repeated name: the last column counts
    index = df.index
    default_index = isinstance(index, pd.RangeIndex) and index.start == 0 and index.step == 1
    index_names = ["__index__0"] if default_index else [f"__index__{level}" for level in range(index.nlevels)]
    # Each column's array straight from the frame (no Series per column: the per-column pandas overhead,
    # not the hashing, dominated the small frames of a daily partition); bytes are those of the Series.
    arrays = column_arrays(df)
    h = hashlib.sha256()
    h.update(f"rows={len(df)};".encode())
    for name in sorted([*positions, *index_names]):
        if name in positions:
            values = arrays[positions[name]]
        elif default_index:
            h.update(f"{name}:num;".encode())
            h.update(np.arange(len(df), dtype="<f8").tobytes())  # a default index: just row numbers
            continue
        else:
            values = pd.Series(index.get_level_values(int(name.rsplit("__", 1)[1])), copy=False)
        h.update(f"{name}:{_dtype_family(values)};".encode())
        h.update(_column_bytes(values))
    return h.hexdigest()


def _dtype_family(series) -> str:
    kind = series.dtype.kind
    if isinstance(series.dtype, pd.CategoricalDtype):
        return "str"
    return {"f": "num", "i": "num", "u": "uint", "b": "bool", "M": "datetime"}.get(kind, "str")


def _default(obj: Any) -> Any:
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (pd.Timestamp,)):
        return obj.isoformat()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON-serializable for hashing: {type(obj).__name__}")


def canonical_json(obj: Any) -> str:
    """Canonical JSON: sorted keys, no whitespace, UTF-8, NaN refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False, default=_default)


def obj_hash(obj: Any) -> str:
    """SHA-256 of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode("utf-8")).hexdigest()


def file_hash(path: str | Path) -> str | None:
    """SHA-256 of a file's bytes, or None when it does not exist."""
    p = Path(path)
    if not p.is_file():
        return None
    return hashlib.sha256(p.read_bytes()).hexdigest()


def combine(hashes: Mapping[str, str]) -> str:
    """One hash over named hashes (order-independent)."""
    return obj_hash(dict(hashes))


_STAMP = "tvquant_df_hash"


def stamp_hash(df: pd.DataFrame, digest: str) -> None:
    """Remember a frame's hash on the frame itself (bound to this object: copies don't inherit it)."""
    df.attrs[_STAMP] = (id(df), digest)


def hash_of(df: pd.DataFrame) -> str:
    """The stamped hash if it belongs to this very object, else a fresh ``df_hash``."""
    stamp = df.attrs.get(_STAMP)
    if stamp and stamp[0] == id(df):
        return stamp[1]
    return df_hash(df)
