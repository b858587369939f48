"""Export a manifest's price lake in the ``files`` source's own format (``tvquant lake export``).

``prices`` becomes one long file (``date, symbol, <fields>``, sorted by date then symbol) beside a
``catalog.csv`` (the attributes of the latest catalog partition), so a user can start from any manifest's
data, extend the file and point a ``files`` source at it. Files are written atomically.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tvquant_assets.errors import LakeError
from tvquant_assets.lake.duckdb_views import read_range
from tvquant_assets.lake.store import Lake, atomic_write_bytes
from tvquant_assets.sources.base import BAR_FIELDS, CATALOG_COLUMNS

FORMATS = ("csv", "parquet")
STAGES = ("prices",)


@dataclass(frozen=True)
class Exported:
    prices: Path
    catalog: Path | None
    rows: int
    symbols: int
    first: pd.Timestamp
    last: pd.Timestamp


def bars_bytes(bars: pd.DataFrame, fmt: str) -> bytes:
    """Long bars in ``fmt``: dates as ``YYYY-MM-DD``, floats written as their shortest exact repr."""
    if fmt == "csv":
        out = bars.copy()
        out["date"] = pd.to_datetime(out["date"]).dt.strftime("%Y-%m-%d")
        return out.to_csv(index=False, lineterminator="\n").encode()  # floats as repr: exact round trip
    if fmt == "parquet":
        buf = io.BytesIO()
        bars.to_parquet(buf, index=False)
        return buf.getvalue()
    raise LakeError(f"lake export: unknown format {fmt!r} (allowed: {', '.join(FORMATS)})")


def export_prices(lake: Lake, manifest: str, out: Path | str, fmt: str = "csv", start=None,
                  end=None) -> Exported:
    """Write ``<out>`` (the long price file) and ``catalog.csv`` beside it; returns what was written."""
    if fmt not in FORMATS:
        raise LakeError(f"lake export: unknown format {fmt!r} (allowed: {', '.join(FORMATS)})")
    dates = lake.partitions(manifest, "prices")
    if not dates:
        raise LakeError(f"lake export: {manifest} has no prices partitions in {lake.root}; materialize it first")
    lo = pd.Timestamp(start) if start is not None else dates[0]
    hi = pd.Timestamp(end) if end is not None else dates[-1]
    frame = read_range(lake, manifest, "prices", lo, hi)
    if frame.empty:
        raise LakeError(f"lake export: {manifest} has no bars between {lo.date()} and {hi.date()}")
    fields = [f for f in BAR_FIELDS if f in frame.columns]
    bars = frame[["date", "symbol", *fields]].sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, bars_bytes(bars, fmt))
    catalog_path = None
    cats = [d for d in lake.partitions(manifest, "catalog") if d <= hi]
    if cats:
        cat = lake.read(manifest, "catalog", cats[-1])
        cat = cat[[c for c in CATALOG_COLUMNS if c in cat.columns]]
        cat = cat[cat["symbol"].isin(set(bars["symbol"]))].sort_values("symbol")
        catalog_path = out.parent / "catalog.csv"
        atomic_write_bytes(catalog_path, cat.to_csv(index=False, lineterminator="\n").encode())
    return Exported(out, catalog_path, len(bars), int(bars["symbol"].nunique()), pd.Timestamp(bars["date"].min()),
                    pd.Timestamp(bars["date"].max()))
