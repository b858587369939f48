"""TradingView scanner fields reconstructed point in time from daily bars.

Historical partitions must not use today's screener values, so the fields are recomputed from the OHLCV
lake; every value for D uses only bars stamped <= D (recursive averages start at the symbol's first stored
bar, the same for every run). Units follow the screener: performance and volatility in percent.

Technical ratings follow TradingView's published method ("Technical Ratings" help article): each
indicator votes Buy (+1), Sell (-1) or Neutral (0); Recommend.MA is the mean vote of 15 moving-average
indicators, Recommend.Other of 11 oscillators, Recommend.All their mean. Votes of indicators without
enough history are left out of the mean. Where the article leaves a detail open we say which reading we
took (marked "reading").
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

FIELD_COLUMNS = ["Perf.W", "Perf.1M", "Perf.3M", "Volatility.D", "ATR", "ADX", "Value.Traded",
                 "Recommend.MA", "Recommend.Other", "Recommend.All"]
MA_LENGTHS = (10, 20, 30, 50, 100, 200)


# moving averages as Pine defines them ------------------------------------------------------------------
def sma(x: pd.Series, n: int) -> pd.Series:
    return x.rolling(n, min_periods=n).mean()


def ema(x: pd.Series, n: int) -> pd.Series:
    """Pine ``ta.ema``: alpha 2/(n+1), seeded with the first value."""
    return x.ewm(alpha=2.0 / (n + 1), adjust=False).mean()


def rma(x: pd.Series, n: int) -> pd.Series:
    """Pine ``ta.rma`` (Wilder): seeded with the SMA of the first ``n`` values, then alpha 1/n."""
    v = x.to_numpy(dtype="float64")
    out = np.full(len(v), np.nan)
    ok = np.flatnonzero(~np.isnan(v))
    if len(ok) >= n:
        start = ok[0]
        seed = start + n - 1
        out[seed] = np.mean(v[start:seed + 1])
        rest = v[seed + 1:]
        if not np.isnan(rest).any():  # y[i] = v[i]/n + (1 - 1/n) y[i-1], as one linear filter
            from scipy.signal import lfilter  # here: importing scipy.signal costs ~1.5 s of every run's start

            a = 1.0 - 1.0 / n
            out[seed + 1:] = lfilter([1.0 / n], [1.0, -a], rest, zi=[a * out[seed]])[0]
        else:
            for i in range(seed + 1, len(v)):
                out[i] = out[i - 1] if np.isnan(v[i]) else (v[i] + (n - 1) * out[i - 1]) / n
    return pd.Series(out, index=x.index)


def _windows(x: pd.Series, n: int) -> np.ndarray:
    """``(len(x) - n + 1, n)`` view of the trailing windows of ``x``."""
    return sliding_window_view(x.to_numpy(dtype="float64"), n)


def _trailing(x: pd.Series, n: int, values: np.ndarray) -> pd.Series:
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1:] = values
    return pd.Series(out, index=x.index)


def wma(x: pd.Series, n: int) -> pd.Series:
    w = np.arange(1, n + 1, dtype="float64")
    return _trailing(x, n, _windows(x, n) @ w / w.sum() if len(x) >= n else np.empty(0))


def hma(x: pd.Series, n: int) -> pd.Series:
    return wma(2 * wma(x, n // 2) - wma(x, n), int(np.floor(np.sqrt(n))))


def vwma(close: pd.Series, volume: pd.Series, n: int) -> pd.Series:
    return sma(close * volume, n) / sma(volume, n)


# indicators --------------------------------------------------------------------------------------------
def true_range(high, low, close) -> pd.Series:
    prev = close.shift(1)
    tr = pd.concat([high - low, (high - prev).abs(), (low - prev).abs()], axis=1).max(axis=1, skipna=False)
    tr.iloc[0] = high.iloc[0] - low.iloc[0]
    return tr


def atr(high, low, close, n: int = 14) -> pd.Series:
    return rma(true_range(high, low, close), n)


def dmi(high, low, close, n: int = 14) -> tuple[pd.Series, pd.Series, pd.Series]:
    """+DI, -DI and ADX (Wilder, as Pine ``ta.dmi``)."""
    up, down = high.diff(), -low.diff()
    plus_dm = pd.Series(np.where((up > down) & (up > 0), up, 0.0), index=high.index)
    minus_dm = pd.Series(np.where((down > up) & (down > 0), down, 0.0), index=high.index)
    plus_dm.iloc[0] = minus_dm.iloc[0] = np.nan
    tr = rma(true_range(high, low, close).where(plus_dm.notna()), n)
    plus = 100 * rma(plus_dm, n) / tr
    minus = 100 * rma(minus_dm, n) / tr
    dx = 100 * (plus - minus).abs() / (plus + minus)
    return plus, minus, rma(dx, n)


def rsi(close: pd.Series, n: int = 14) -> pd.Series:
    ch = close.diff()
    gain, loss = rma(ch.clip(lower=0), n), rma((-ch).clip(lower=0), n)
    out = 100 - 100 / (1 + gain / loss)
    return out.where(loss != 0, 100.0).where(gain.notna())


def stoch(src, high, low, n: int) -> pd.Series:
    lo, hi = low.rolling(n, min_periods=n).min(), high.rolling(n, min_periods=n).max()
    return 100 * (src - lo) / (hi - lo)


def cci(src: pd.Series, n: int = 20) -> pd.Series:
    mean = sma(src, n)
    if len(src) >= n:
        win = _windows(src, n)
        dev = _trailing(src, n, np.mean(np.abs(win - win.mean(axis=1, keepdims=True)), axis=1))
    else:
        dev = _trailing(src, n, np.empty(0))
    return (src - mean) / (0.015 * dev)


def ultimate(high, low, close, fast=7, mid=14, slow=28) -> pd.Series:
    prev = close.shift(1)
    lo = pd.concat([low, prev], axis=1).min(axis=1)
    hi = pd.concat([high, prev], axis=1).max(axis=1)
    bp, tr = close - lo, hi - lo

    def avg(n):
        return bp.rolling(n, min_periods=n).sum() / tr.rolling(n, min_periods=n).sum()

    return 100 * (4 * avg(fast) + 2 * avg(mid) + avg(slow)) / 7


# votes -------------------------------------------------------------------------------------------------
def _vote(buy, sell, defined) -> pd.Series:
    v = np.where(buy, 1.0, np.where(sell, -1.0, 0.0))
    return pd.Series(np.where(defined, v, np.nan), index=defined.index)


def _cross_over(a, b):
    return (a > b) & (a.shift(1) < b.shift(1))


def _cross_under(a, b):
    return (a < b) & (a.shift(1) > b.shift(1))


def ma_votes(o: pd.DataFrame) -> pd.DataFrame:
    """15 votes: SMA and EMA 10..200, Ichimoku (9, 26, 52), VWMA 20, Hull MA 9. An average below the
    close votes Buy, above it Sell."""
    c = o["close"]
    votes = {}

    def price_vs(name, ma):
        votes[name] = _vote(ma < c, ma > c, ma.notna() & c.notna())

    for n in MA_LENGTHS:
        price_vs(f"SMA{n}", sma(c, n))
        # reading: an EMA votes once it has n bars (Pine's EMA exists from the first bar)
        price_vs(f"EMA{n}", ema(c, n).where(c.notna().cumsum() >= n))
    hh = lambda n: o["high"].rolling(n, min_periods=n).max()  # noqa: E731
    ll = lambda n: o["low"].rolling(n, min_periods=n).min()  # noqa: E731
    conversion, base = (hh(9) + ll(9)) / 2, (hh(26) + ll(26)) / 2
    lead1, lead2 = (conversion + base) / 2, (hh(52) + ll(52)) / 2
    # the article's rule, verbatim: Buy when base < price, conversion crosses price from below,
    # lead 1 > price and lead 1 > lead 2; Sell mirrored
    buy = (base < c) & _cross_over(conversion, c) & (lead1 > c) & (lead1 > lead2)
    sell = (base > c) & _cross_under(conversion, c) & (lead1 < c) & (lead1 < lead2)
    votes["Ichimoku"] = _vote(buy, sell, lead2.notna())
    price_vs("VWMA20", vwma(c, o["volume"], 20))
    price_vs("HullMA9", hma(c, 9))
    return pd.DataFrame(votes)


def oscillator_votes(o: pd.DataFrame) -> pd.DataFrame:
    """11 votes: RSI 14, Stochastic 14/3/3, CCI 20, ADX 14, Awesome Oscillator, Momentum 10, MACD 12/26/9,
    Stochastic RSI 3/3/14/14, Williams %R 14, Bull Bear Power 13, Ultimate Oscillator 7/14/28."""
    c, h, lo = o["close"], o["high"], o["low"]
    votes = {}
    r = rsi(c, 14)
    votes["RSI"] = _vote((r < 30) & (r > r.shift(1)), (r > 70) & (r < r.shift(1)), r.notna() & r.shift(1).notna())
    k = sma(stoch(c, h, lo, 14), 3)
    d = sma(k, 3)
    votes["Stoch"] = _vote((k < 20) & (d < 20) & _cross_over(k, d), (k > 80) & (d > 80) & _cross_under(k, d),
                           d.notna() & d.shift(1).notna())
    cc = cci((h + lo + c) / 3, 20)  # reading: typical price, as TradingView's CCI indicator
    votes["CCI"] = _vote((cc < -100) & (cc > cc.shift(1)), (cc > 100) & (cc < cc.shift(1)),
                         cc.notna() & cc.shift(1).notna())
    plus, minus, adx = dmi(h, lo, c, 14)
    votes["ADX"] = _vote((adx > 20) & _cross_over(plus, minus), (adx > 20) & _cross_under(plus, minus),
                         adx.notna())
    hl2 = (h + lo) / 2
    ao = sma(hl2, 5) - sma(hl2, 34)
    a1, a2 = ao.shift(1), ao.shift(2)
    saucer_up = (ao > 0) & (a1 > 0) & (a2 > 0) & (a1 < a2) & (ao > a1)
    saucer_down = (ao < 0) & (a1 < 0) & (a2 < 0) & (a1 > a2) & (ao < a1)
    zero = pd.Series(0.0, index=ao.index)
    votes["AO"] = _vote(saucer_up | _cross_over(ao, zero), saucer_down | _cross_under(ao, zero), a2.notna())
    mom = c - c.shift(10)
    votes["Mom"] = _vote(mom > mom.shift(1), mom < mom.shift(1), mom.shift(1).notna())
    macd = ema(c, 12) - ema(c, 26)
    signal = ema(macd, 9)
    enough = c.notna().cumsum() >= 26
    votes["MACD"] = _vote(macd > signal, macd < signal, enough)
    trend = sma(c, 50)  # reading: up/down trend = close above/below its 50-bar SMA
    up, down = c > trend, c < trend
    sk = sma(stoch(r, r, r, 14), 3)
    sd = sma(sk, 3)
    votes["StochRSI"] = _vote(down & (sk < 20) & (sd < 20) & _cross_over(sk, sd),
                              up & (sk > 80) & (sd > 80) & _cross_under(sk, sd), sd.notna() & sd.shift(1).notna())
    wr = -100 * (h.rolling(14, min_periods=14).max() - c) / (h.rolling(14, min_periods=14).max()
                                                             - lo.rolling(14, min_periods=14).min())
    votes["W%R"] = _vote((wr < -80) & (wr > wr.shift(1)), (wr > -20) & (wr < wr.shift(1)),
                         wr.notna() & wr.shift(1).notna())
    e13 = ema(c, 13)
    bull, bear = h - e13, lo - e13
    votes["BBPower"] = _vote(up & (bear < 0) & (bear > bear.shift(1)), down & (bull > 0) & (bull < bull.shift(1)),
                             trend.notna())
    uo = ultimate(h, lo, c)
    votes["UO"] = _vote(uo > 70, uo < 30, uo.notna())
    return pd.DataFrame(votes)


def _asof_change(close: pd.Series, offset: pd.DateOffset) -> pd.Series:
    """Percent change from the last close on or before (date - offset); NaN without such a bar."""
    idx = close.index
    then = close.reindex(idx - offset, method="ffill")
    then[(idx - offset) < idx[0]] = np.nan
    return 100 * (close.to_numpy() / then.to_numpy() - 1)


def scanner_fields(bars: pd.DataFrame) -> pd.DataFrame:
    """Scanner fields for every bar of one symbol: ``bars`` has date, open, high, low, close, volume
    (ascending dates); returns a frame indexed by date with ``FIELD_COLUMNS``."""
    o = bars.set_index("date").sort_index()[["open", "high", "low", "close", "volume"]].astype("float64")
    c = o["close"]
    out = pd.DataFrame(index=o.index)
    out["Perf.W"] = _asof_change(c, pd.DateOffset(weeks=1))
    out["Perf.1M"] = _asof_change(c, pd.DateOffset(months=1))
    out["Perf.3M"] = _asof_change(c, pd.DateOffset(months=3))
    out["Volatility.D"] = 100 * (o["high"] - o["low"]) / o["low"]  # reading: the day's range in % of its low
    out["ATR"] = atr(o["high"], o["low"], c, 14)
    out["ADX"] = dmi(o["high"], o["low"], c, 14)[2]
    out["Value.Traded"] = c * o["volume"]
    out["Recommend.MA"] = ma_votes(o).mean(axis=1, skipna=True)
    out["Recommend.Other"] = oscillator_votes(o).mean(axis=1, skipna=True)
    out["Recommend.All"] = (out["Recommend.MA"] + out["Recommend.Other"]) / 2
    return out[FIELD_COLUMNS]


def rating_label(value: float) -> str:
    """TradingView's buckets: strong sell < -0.5 <= sell < -0.1 <= neutral <= 0.1 < buy <= 0.5 < strong buy."""
    if np.isnan(value):
        return ""
    if value > 0.5:
        return "STRONG_BUY"
    if value > 0.1:
        return "BUY"
    if value >= -0.1:
        return "NEUTRAL"
    if value >= -0.5:
        return "SELL"
    return "STRONG_SELL"
