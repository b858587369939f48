"""Scanner fields and TradingView technical ratings reconstructed from bars, point in time."""

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.sources.tradingview.fields import (
    atr,
    ma_votes,
    oscillator_votes,
    rating_label,
    rsi,
    scanner_fields,
)


def crash_series(n=250):
    """A steady uptrend (close 100, 101, ...; high/low +-1) whose last bar crashes to 50 (high 350, low 49)."""
    c = 100 + np.arange(n, dtype=float)
    b = pd.DataFrame({"date": pd.date_range("2023-01-01", periods=n, freq="D"), "open": c - 0.5, "high": c + 1,
                      "low": c - 1, "close": c, "volume": 1000.0})
    b.loc[n - 1, ["open", "high", "low", "close"]] = [348.0, 350.0, 49.0, 50.0]
    return b


def test_rsi_matches_wilders_published_example():
    # StockCharts' RSI worksheet (Wilder smoothing, 14 periods): closes and the first six RSI values
    closes = [44.3389, 44.0902, 44.1497, 43.6124, 44.3278, 44.8264, 45.0955, 45.4245, 45.8433, 46.0826,
              45.8931, 46.0328, 45.6140, 46.2820, 46.2820, 46.0028, 46.0328, 46.4116, 46.2222, 45.6439]
    got = rsi(pd.Series(closes), 14).iloc[14:].round(2).tolist()
    assert got == pytest.approx([70.53, 66.32, 66.55, 69.41, 66.36, 57.97], abs=0.011)


def test_atr_is_wilder_smoothed_true_range():
    h = pd.Series([10.0, 11.0, 12.0, 11.5, 13.0])
    lo = pd.Series([9.0, 10.0, 10.5, 10.0, 11.0])
    c = pd.Series([9.5, 10.8, 11.0, 10.2, 12.5])
    # true ranges 1, 1.5 (11-9.5), 1.5, 1.5 (11.5-10), 2.8 (13-10.2); seed = mean of the first 3
    expected = [np.nan, np.nan, 4 / 3, (1.5 + 2 * 4 / 3) / 3, (2.8 + 2 * (1.5 + 2 * 4 / 3) / 3) / 3]
    np.testing.assert_allclose(atr(h, lo, c, 3).to_numpy(), expected)


def test_ratings_on_a_crash_bar_hand_checked():
    b = crash_series()
    o = b.set_index("date")
    ma = ma_votes(o).iloc[-1]
    # every SMA/EMA 10..200, VWMA 20 and Hull 9 sit above 50: 14 Sell votes; Ichimoku needs the conversion
    # line to cross the price from above, but it was below the close yesterday and is above it now: Neutral
    assert ma.drop("Ichimoku").eq(-1).all() and ma["Ichimoku"] == 0 and len(ma) == 15
    osc = oscillator_votes(o).iloc[-1]
    # RSI ~4 but falling, Stoch K 62 < D 83 (no cross below 20), CCI < -100 but falling, W%R -99.7 falling,
    # BB Power: downtrend but bull power rose (7 -> 49): all Neutral. +DI crosses under -DI with ADX 99,
    # AO crosses under zero, momentum falls (10 -> -289), MACD below its signal, UO 3.6 < 30: Sell.
    # Stoch RSI is undefined (RSI was a flat 100 over its window) and is left out of the mean.
    assert osc.to_dict() == {"RSI": 0, "Stoch": 0, "CCI": 0, "ADX": -1, "AO": -1, "Mom": -1, "MACD": -1,
                             "StochRSI": pytest.approx(np.nan, nan_ok=True), "W%R": 0, "BBPower": 0, "UO": -1}
    last = scanner_fields(b).iloc[-1]
    assert last["Recommend.MA"] == pytest.approx(-14 / 15)
    assert last["Recommend.Other"] == pytest.approx(-5 / 10)
    assert last["Recommend.All"] == pytest.approx((-14 / 15 - 0.5) / 2)
    assert rating_label(last["Recommend.All"]) == "STRONG_SELL"
    # scanner fields in the screener's units
    assert last["Perf.W"] == pytest.approx(100 * (50 / 342 - 1))  # close 7 days earlier: 342
    assert last["Volatility.D"] == pytest.approx(100 * (350 - 49) / 49)
    assert last["ATR"] == pytest.approx((13 * 2 + 301) / 14)  # TR was 2 for every earlier bar, 301 now
    assert last["Value.Traded"] == 50 * 1000
    assert last["ADX"] == pytest.approx(99.40, abs=0.01)


def test_rating_buckets():
    assert [rating_label(x) for x in (0.6, 0.5, 0.2, 0.1, 0.0, -0.1, -0.3, -0.5, -0.51, np.nan)] == [
        "STRONG_BUY", "BUY", "BUY", "NEUTRAL", "NEUTRAL", "NEUTRAL", "SELL", "SELL", "STRONG_SELL", ""]


def test_fields_for_d_ignore_every_bar_after_d(recorded_bars):
    bars = recorded_bars["BINANCE:ETHUSDT"][0]
    d = pd.Timestamp("2024-04-15")
    base = scanner_fields(bars)
    rng = np.random.default_rng(5)
    later = bars["date"] > d
    noisy = bars.copy()
    noisy.loc[later, ["open", "high", "low", "close", "volume"]] *= rng.uniform(0.3, 3.0, (int(later.sum()), 5))
    pd.testing.assert_frame_equal(scanner_fields(noisy).loc[:d], base.loc[:d])
    cut = scanner_fields(bars[bars["date"] <= d])
    pd.testing.assert_frame_equal(cut, base.loc[:d], check_freq=False)
    assert base.loc[d].notna().all()
