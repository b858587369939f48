"""Universe scan: per-symbol liquidity/health metrics and eligibility, point in time.

Every metric is computed from the symbol's *own bars* (rows where it has a close) up to its last bar
<= D, directly on that window: the row for D depends only on rows stamped <= D, and not on where the
panel starts (no running sums carried from older rows), so a backfill and a daily run agree bit for bit.
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

DTYPES = {
    "symbol": "str", "last_close": "float64", "history_days": "int64", "days_since_last_bar": "int64",
    "perf_1w": "float64", "perf_1m": "float64", "perf_3m": "float64", "volatility_20d": "float64",
    "value_traded_20d": "float64", "value_traded_available": "bool", "eligible": "bool", "reason": "str",
}
COLUMNS = list(DTYPES)


def _own_bars(values: np.ndarray, has: np.ndarray) -> np.ndarray:
    """Each column's bars packed to the top in time order (NaN below): row k = the symbol's k-th bar."""
    order = np.argsort(~has, axis=0, kind="stable")
    packed = np.take_along_axis(values, order, axis=0)
    packed[np.take_along_axis(~has, order, axis=0)] = np.nan
    return packed


def _last_bars(packed: np.ndarray, ordinal: np.ndarray, cols: np.ndarray, n: int) -> np.ndarray:
    """``(len(cols), n)``: the last ``n`` own bars up to ``ordinal``, oldest first, NaN before the first."""
    idx = ordinal[:, None] + np.arange(1 - n, 1)
    out = packed[np.maximum(idx, 0), cols[:, None]]
    out[idx < 0] = np.nan
    return out


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
    history_rows: int | None = None,
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
    history_rows : int, optional
        Count ``history_days`` only among the last ``history_rows`` panel rows <= date (the pipeline
        passes its lookback, so the count never depends on where a backfill range starts). Default: the
        whole panel.

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
    packed_close = _own_bars(values, has)
    volume_available = volume is not None
    packed_volume = _own_bars(volume.to_numpy(dtype="float64"), has) if volume_available else None
    depth = max(*PERF_BARS.values(), VOL_BARS, VALUE_TRADED_BARS) + 1

    allowed = np.ones(len(symbols), dtype=bool)
    if cfg.symbols is not None:
        allowed = np.isin(symbols, np.asarray(cfg.symbols, dtype=object))
    position = {s: j for j, s in enumerate(symbols)}
    by_name = np.argsort(symbols, kind="stable")  # the panel promises sorted columns; do not rely on it

    keys: list[pd.Timestamp] = []
    columns: dict[str, list[np.ndarray]] = {c: [] for c in COLUMNS}
    for date in map(pd.Timestamp, dates):
        t = int(close.index.searchsorted(date, side="right")) - 1
        mask = allowed & (history[t] > 0) if t >= 0 else np.zeros(len(symbols), dtype=bool)
        if listed is not None:
            if date not in listed:
                raise SourceError(f"listed symbols missing for {date.date()}: pass every requested date")
            on = np.zeros(len(symbols), dtype=bool)
            on[[position[s] for s in listed[date] if s in position]] = True
            mask &= on
        js = by_name[mask[by_name]]
        if t >= 0:
            lb, hist = last_bar[t, js], history[t, js]
        else:
            lb = hist = np.zeros(0, dtype="int64")
        closes = _last_bars(packed_close, hist - 1, js, depth)
        with np.errstate(divide="ignore", invalid="ignore"):
            frame = {
                "symbol": symbols[js],
                "last_close": closes[:, -1],
                "history_days": hist if history_rows is None or t - history_rows < 0
                else hist - history[t - history_rows, js],
                "days_since_last_bar": (t - lb).astype("int64"),
            }
            for name, n in PERF_BARS.items():
                frame[name] = closes[:, -1] / closes[:, -1 - n] - 1.0
            tail = closes[:, -VOL_BARS - 1:]
            rets = tail[:, 1:] / tail[:, :-1] - 1.0
            frame["volatility_20d"] = np.std(rets, axis=1, ddof=1) * np.sqrt(ANNUALIZATION)
            if packed_volume is None:
                frame["value_traded_20d"] = np.full(js.size, np.nan)
            else:
                vols = _last_bars(packed_volume, hist - 1, js, VALUE_TRADED_BARS)
                frame["value_traded_20d"] = np.mean(closes[:, -VALUE_TRADED_BARS:] * vols, axis=1)
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
