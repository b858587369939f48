"""The benchmark's closes: a symbol of the source, a file (date, close), or a bundled series.

A symbol's closes come from the same trailing panel as the candidates' (the price lake), so a benchmark
symbol is exactly what the backtest would trade. A file is read like a ``files`` source (one line per bad
row); the bundled ``sp500_index`` is skfolio's S&P 500 index closes (1990-01-02..2022-12-28), read from the
file skfolio ships without importing skfolio.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from tvquant_assets.errors import SourceError
from tvquant_assets.manifest.schema import BenchmarkConfig


@functools.lru_cache(maxsize=1)
def sp500_index() -> pd.Series:
    import gzip
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("skfolio")
    if spec is None or spec.origin is None:
        raise SourceError("benchmark.bundled: the skfolio package (which ships the S&P 500 index) is not "
                          "installed; run `uv sync`")
    with gzip.open(Path(spec.origin).parent / "datasets" / "data" / "sp500_index.csv.gz", "rt") as fh:
        frame = pd.read_csv(fh, index_col=0)
    close = frame.iloc[:, 0].astype("float64")
    close.index = pd.DatetimeIndex(pd.to_datetime(close.index, format="%Y-%m-%d")).as_unit("ns")
    close.index.name = "date"
    return close.sort_index().rename("close")


def read_file(path: str) -> pd.Series:
    """Closes of a benchmark file: a date column and a close column (a symbol column, if any, must hold one
    symbol)."""
    from tvquant_assets.sources import files  # read like a files source: pyarrow, one line per bad row

    table = files._read_table(path)
    names = list(table.column_names)
    where = files._Where((path,))
    date_col = files._find_column(names, "date", {}, path)
    close_col = files._find_column(names, "close", {}, path) or files._find_column(names, "adj_close", {}, path)
    if date_col is None or close_col is None:
        raise SourceError(f"benchmark.file: {path} needs a date and a close column (columns: {', '.join(names)})")
    sym_col = files._find_column(names, "symbol", {}, path)
    if sym_col is not None:
        symbols = pd.unique(table[sym_col].to_pandas())
        if len(symbols) > 1:
            raise SourceError(f"benchmark.file: {path} holds {len(symbols)} symbols; keep one "
                              f"({', '.join(map(str, symbols[:3]))}...)")
    days, _ = files._dates(table[date_col], path, where, 0, files.FilesConfig(prices=path))
    close = files._numbers(table[close_col], "close", where, 0, allow_missing=False)
    order = np.argsort(days, kind="stable")
    dup = np.flatnonzero(days[order][1:] == days[order][:-1])
    if len(dup):
        raise SourceError(f"source files: {where.at(0, int(order[dup[0] + 1]), date_col)}: duplicate date "
                          f"{str(days[order][dup[0]])[:10]}")
    return pd.Series(close[order], index=pd.DatetimeIndex(days[order], name="date"), name="close")


def benchmark_closes(cfg: BenchmarkConfig, panel_close: pd.DataFrame, source=None) -> pd.Series:
    """The benchmark's closes (all dates it has; the backtest cuts them at D)."""
    if cfg.bundled == "sp500_index":
        return sp500_index()
    if cfg.file is not None:
        return _cached_file(cfg.file, *_stamp(cfg.file))
    if cfg.symbol in panel_close.columns:
        return panel_close[cfg.symbol].dropna().rename("close")
    if source is not None:
        bars = source.history([cfg.symbol], pd.Timestamp.min, panel_close.index.max())
        return pd.Series(bars["close"].to_numpy(), index=pd.DatetimeIndex(bars["date"], name="date"), name="close")
    raise SourceError(f"benchmark.symbol: {cfg.symbol} has no prices in the lake")


def _stamp(path: str) -> tuple:
    import os

    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise SourceError(f"benchmark.file: no such file {path}") from None
    return st.st_size, st.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _cached_file(path: str, size: int, mtime: int) -> pd.Series:
    return read_file(path)
