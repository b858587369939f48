"""Toxic-data checks on daily bars: a symbol is marked with a reason, its data is never deleted."""

from __future__ import annotations

import numpy as np
import pandas as pd

FLAG_COLUMNS = ["symbol", "date", "flag", "detail"]


def toxic_flags(symbol: str, bars: pd.DataFrame, max_daily_return: float, frozen_bars: int,
                volume_spike: float, volume_window: int) -> pd.DataFrame:
    """One row per offending bar: ``return`` (close-to-close above ``max_daily_return``), ``frozen``
    (the ``frozen_bars``-th identical close in a row), ``volume_spike`` (volume above ``volume_spike`` x
    the median of the previous ``volume_window`` bars). Each flag uses only bars up to its own date."""
    b = bars.sort_values("date").reset_index(drop=True)
    close = b["close"].to_numpy(dtype="float64")
    rows = []
    with np.errstate(divide="ignore", invalid="ignore"):
        ret = close[1:] / close[:-1] - 1.0
    for i in np.flatnonzero(np.abs(ret) > max_daily_return):
        rows.append((symbol, b["date"].iloc[i + 1], "return", f"daily return {ret[i]:+.0%} > {max_daily_return:.0%}"))
    same = np.concatenate([[False], close[1:] == close[:-1]])
    run = np.zeros(len(close), dtype=int)
    for i in range(1, len(close)):
        run[i] = run[i - 1] + 1 if same[i] else 0
    for i in np.flatnonzero(run == frozen_bars - 1):
        rows.append((symbol, b["date"].iloc[i], "frozen", f"close {close[i]:g} unchanged for {frozen_bars} bars"))
    if "volume" in b:
        vol = b["volume"].astype("float64")
        median = vol.shift(1).rolling(volume_window, min_periods=volume_window).median()
        spike = (vol > volume_spike * median) & (median > 0)
        for i in np.flatnonzero(spike.to_numpy()):
            rows.append((symbol, b["date"].iloc[i], "volume_spike",
                         f"volume {vol.iloc[i]:.3g} > {volume_spike:g} x median {median.iloc[i]:.3g}"))
    out = pd.DataFrame(rows, columns=FLAG_COLUMNS)
    out["date"] = pd.to_datetime(out["date"]).astype("datetime64[ns]")
    return out.sort_values(["date", "flag"], kind="stable").reset_index(drop=True)


def reason_as_of(flags: pd.DataFrame, symbols, date) -> pd.Series:
    """The flags stamped <= ``date`` per symbol, joined ("" when clean)."""
    d = pd.Timestamp(date)
    sub = flags[flags["date"] <= d]
    joined = sub.groupby("symbol")["detail"].agg(lambda s: "; ".join(dict.fromkeys(s)))
    return pd.Series([joined.get(s, "") for s in symbols], index=list(symbols), dtype=object)
