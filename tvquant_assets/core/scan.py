"""Universe scan: per-symbol liquidity/health metrics and eligibility, point in time.

Every metric is a backward-looking rolling quantity over the symbol's *own bars* (rows where it has a
close), computed once for the whole panel and then read at the symbol's last bar <= D. So the row for D
depends only on rows stamped <= D, and a long backfill costs one pass over the panel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from tvquant_assets.core.panel import PricePanel
from tvquant_assets.errors import SourceError
from tvquant_assets.manifest.schema import UniverseConfig

ANNUALIZATION = 252
PERF_BARS = {"perf_1w": 5, "perf_1m": 21, "perf_3m": 63}
VOL_BARS = 20
VALUE_TRADED_BARS = 20

COLUMNS = [
    "symbol", "last_close", "history_days", "days_since_last_bar", "perf_1w", "perf_1m", "perf_3m",
    "volatility_20d", "value_traded_20d", "value_traded_available", "eligible", "reason",
]
_METRICS = [*PERF_BARS, "volatility_20d", "value_traded_20d"]


def _bar_metrics(close: pd.DataFrame, volume: pd.DataFrame | None) -> dict[str, np.ndarray]:
    """Metrics of frames whose columns have no interior gaps (every row in a column's span is a bar)."""
    rets = close.pct_change(fill_method=None)
    out = {name: (close / close.shift(n) - 1.0).to_numpy() for name, n in PERF_BARS.items()}
    out["volatility_20d"] = (rets.rolling(VOL_BARS, min_periods=VOL_BARS).std() * np.sqrt(ANNUALIZATION)).to_numpy()
    if volume is None:
        out["value_traded_20d"] = np.full(close.shape, np.nan)
    else:
        traded = close * volume
        out["value_traded_20d"] = traded.rolling(VALUE_TRADED_BARS, min_periods=VALUE_TRADED_BARS).mean().to_numpy()
    return out


def _own_bar_metrics(close: pd.DataFrame, volume: pd.DataFrame | None, has: np.ndarray) -> dict[str, np.ndarray]:
    """Metrics at every bar row, computed over each symbol's own bars (T x N arrays, NaN off-bar)."""
    t, n = close.shape
    metrics = {name: np.full((t, n), np.nan) for name in _METRICS}
    if n == 0 or t == 0:
        return metrics
    first = np.argmax(has, axis=0)
    last = t - 1 - np.argmax(has[::-1], axis=0)
    count = has.sum(axis=0)
    contiguous = (count == 0) | (count == last - first + 1)
    # Fast path: without interior gaps, rolling over panel rows is rolling over own bars.
    block = np.flatnonzero(contiguous)
    if block.size:
        vol_block = None if volume is None else volume.iloc[:, block]
        for name, arr in _bar_metrics(close.iloc[:, block], vol_block).items():
            metrics[name][:, block] = arr
    for j in np.flatnonzero(~contiguous):
        rows = np.flatnonzero(has[:, j])
        c = close.iloc[rows, [j]]
        v = None if volume is None else volume.iloc[rows, [j]]
        for name, arr in _bar_metrics(c, v).items():
            metrics[name][rows, j] = arr[:, 0]
    return metrics


DTYPES = {
    "symbol": "str", "last_close": "float64", "history_days": "int64", "days_since_last_bar": "int64",
    "perf_1w": "float64", "perf_1m": "float64", "perf_3m": "float64", "volatility_20d": "float64",
    "value_traded_20d": "float64", "value_traded_available": "bool", "eligible": "bool", "reason": "str",
}


def frames_by_date(
    keys: list[pd.Timestamp], columns: dict[str, list[np.ndarray]], dtypes: Mapping[str, str]
) -> dict[pd.Timestamp, pd.DataFrame]:
    """One frame per key from per-key column pieces.

    Builds a single frame and slices it: constructing thousands of small frames (string columns above
    all) costs far more than the arithmetic of a stage core.

    Parameters
    ----------
    keys : list of Timestamp
    columns : dict name -> list of 1-d arrays
        Piece ``i`` of every column belongs to ``keys[i]``; pieces of one key have equal lengths.
    dtypes : mapping name -> dtype
        Column order and dtypes of the frames.
    """
    if not keys:
        return {}
    lengths = [len(piece) for piece in columns[next(iter(dtypes))]]
    big = pd.DataFrame({c: pd.Series(np.concatenate(columns[c]), dtype=d) for c, d in dtypes.items()})
    out: dict[pd.Timestamp, pd.DataFrame] = {}
    stop = 0
    for key, n in zip(keys, lengths, strict=True):
        start, stop = stop, stop + n
        frame = big.iloc[start:stop]
        frame.index = pd.RangeIndex(n)
        out[key] = frame
    return out


def _num(x: float) -> str:
    return f"{x:.4g}"


def compute_scan(
    panel: PricePanel,
    dates: Iterable[pd.Timestamp],
    cfg: UniverseConfig,
    listed: Mapping[pd.Timestamp, list[str]] | None = None,
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Scan the universe on each date, point in time.

    Parameters
    ----------
    panel : PricePanel
        Daily bars; ``volume`` may be None (then value traded is NaN and its rule is skipped).
    dates : iterable of Timestamp
        Partition dates; a non-trading date reads as of the last bar <= date.
    cfg : UniverseConfig
        Filters. Rules are checked in order history, stale, price, volatility, value traded; ``reason``
        names the first one that fails.
    listed : mapping date -> symbols, optional
        Symbols listed on each date (must hold every requested date). Default: every panel symbol.
        ``cfg.symbols``, when set, restricts further. Symbols without a bar <= date are absent.

    Returns
    -------
    dict of Timestamp -> DataFrame
        Columns ``symbol, last_close, history_days, days_since_last_bar, perf_1w, perf_1m, perf_3m,
        volatility_20d, value_traded_20d, value_traded_available, eligible, reason``; one row per symbol,
        sorted by symbol, RangeIndex. ``perf_*`` are close returns over 5/21/63 own bars,
        ``volatility_20d`` the annualized (sqrt 252) std of the last 20 own-bar returns,
        ``days_since_last_bar`` the panel rows between the symbol's last bar and the date's last row,
        ``value_traded_available`` False when the source has no volume.
    """
    close = panel.close
    symbols = np.asarray([str(c) for c in close.columns], dtype=object)
    values = close.to_numpy(dtype="float64")
    volume = None if panel.volume is None else panel.volume.reindex(index=close.index, columns=close.columns)
    has = ~np.isnan(values)
    history = np.cumsum(has, axis=0, dtype="int64")
    rows = np.arange(values.shape[0])[:, None]
    last_bar = np.maximum.accumulate(np.where(has, rows, -1), axis=0)
    metrics = _own_bar_metrics(close, volume, has)
    volume_available = volume is not None

    allowed = np.ones(len(symbols), dtype=bool)
    if cfg.symbols is not None:
        allowed = np.isin(symbols, np.asarray(cfg.symbols, dtype=object))
    position = {s: j for j, s in enumerate(symbols)}
    by_name = np.argsort(symbols, kind="stable")  # the panel promises sorted columns; do not rely on it

    keys: list[pd.Timestamp] = []
    columns: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    for date in dates:
        date = pd.Timestamp(date)
        t = int(close.index.searchsorted(date, side="right")) - 1
        mask = allowed & (history[t] > 0) if t >= 0 else np.zeros(len(symbols), dtype=bool)
        if listed is not None:
            if date not in listed:
                raise SourceError(f"listed symbols missing for {date.date()}: pass every requested date")
            on = np.zeros(len(symbols), dtype=bool)
            on[[position[s] for s in listed[date] if s in position]] = True
            mask &= on
        js = by_name[mask[by_name]]
        lb = last_bar[t, js] if t >= 0 else np.zeros(0, dtype="int64")
        frame = {
            "symbol": symbols[js],
            "last_close": values[lb, js],
            "history_days": history[t, js] if t >= 0 else np.zeros(0, dtype="int64"),
            "days_since_last_bar": (t - lb).astype("int64"),
        }
        for name in _METRICS:
            frame[name] = metrics[name][lb, js]
        frame["value_traded_available"] = np.full(js.size, volume_available)
        reason = _reasons(frame, cfg, volume_available)
        frame["eligible"] = reason == ""
        frame["reason"] = reason
        keys.append(date)
        for c in COLUMNS:
            columns[c].append(frame[c])
    return frames_by_date(keys, columns, DTYPES)


def _reasons(frame: dict[str, np.ndarray], cfg: UniverseConfig, volume_available: bool) -> np.ndarray:
    """First failed rule per row, "" when all pass."""
    n = frame["symbol"].size
    reason = np.full(n, "", dtype=object)

    def apply(fails: np.ndarray, text) -> None:
        for i in np.flatnonzero(fails & (reason == "")):
            reason[i] = text(i)

    hist, stale = frame["history_days"], frame["days_since_last_bar"]
    apply(hist < cfg.min_history_days, lambda i: f"history {hist[i]} < {cfg.min_history_days}")
    apply(stale > cfg.max_stale_days, lambda i: f"stale: no bar for {stale[i]} days")
    price = frame["last_close"]
    apply(~(price >= cfg.min_price), lambda i: f"price {_num(price[i])} < {_num(cfg.min_price)}")
    if cfg.max_volatility is not None:
        vol = frame["volatility_20d"]
        apply(np.isnan(vol), lambda i: f"volatility unknown: fewer than {VOL_BARS + 1} bars")
        apply(vol > cfg.max_volatility, lambda i: f"volatility {_num(vol[i])} > {_num(cfg.max_volatility)}")
    # Without volume the rule is skipped (value_traded_available says so); volume is never invented.
    if cfg.min_value_traded is not None and volume_available:
        vt = frame["value_traded_20d"]
        apply(np.isnan(vt), lambda i: f"value traded unknown: fewer than {VALUE_TRADED_BARS} bars with volume")
        apply(vt < cfg.min_value_traded, lambda i: f"value traded {_num(vt[i])} < {_num(cfg.min_value_traded)}")
    return reason
