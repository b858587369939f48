"""Scan core: hand-computed metrics and rules on a tiny panel, point in time and determinism on real data."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.scan import DTYPES, compute_scan
from tvquant_assets.errors import SourceError
from tvquant_assets.hashing import df_hash
from tvquant_assets.manifest.schema import UniverseConfig

DAYS = pd.bdate_range("2024-01-01", periods=30)  # Mon 2024-01-01 .. Fri 2024-02-09
LAST = DAYS[-1]
CFG = UniverseConfig(min_history_days=15, min_price=1.0, max_stale_days=5)


def tiny_close() -> pd.DataFrame:
    k = np.arange(30, dtype=float)
    close = pd.DataFrame(
        {
            "AAA": 10.0 + 0.1 * k + 0.05 * (-1.0) ** k,  # healthy
            "BBB": np.r_[[np.nan] * 10, 0.5 + 0.001 * k[10:]],  # penny stock, 20 bars
            "CCC": np.r_[20.0 + k[:23], [np.nan] * 7],  # last bar on row 22: stale at the end
            "DDD": np.nan,  # never trades
            "EEE": 30.0 + k,  # gets an interior gap below
            "FFF": np.r_[[np.nan] * 20, 0.5 + 0.01 * k[20:]],  # new listing: 10 bars, also a penny stock
        },
        index=DAYS,
    )
    close.loc[DAYS[25:27], "EEE"] = np.nan
    return close


def row(frame: pd.DataFrame, symbol: str) -> pd.Series:
    return frame.set_index("symbol").loc[symbol]


def test_hand_computed_metrics_and_rules():
    close = tiny_close()
    frame = compute_scan(PricePanel(close), [LAST], CFG)[LAST]

    assert list(frame.columns) == list(DTYPES)
    assert {c: str(t) for c, t in frame.dtypes.items()} == DTYPES
    assert isinstance(frame.index, pd.RangeIndex) and frame.index.start == 0
    assert list(frame["symbol"]) == ["AAA", "BBB", "CCC", "EEE", "FFF"]  # DDD has no bar: absent

    a = row(frame, "AAA")
    c = close["AAA"].to_numpy()
    assert a["last_close"] == c[29]
    assert a["history_days"] == 30 and a["days_since_last_bar"] == 0
    assert a["perf_1w"] == pytest.approx(c[29] / c[24] - 1, rel=1e-12)
    assert a["perf_1m"] == pytest.approx(c[29] / c[8] - 1, rel=1e-12)
    assert math.isnan(a["perf_3m"])  # needs 64 bars
    rets = [c[i] / c[i - 1] - 1 for i in range(10, 30)]  # the last 20 daily returns
    assert a["volatility_20d"] == pytest.approx(statistics.stdev(rets) * math.sqrt(252), rel=1e-10)
    assert math.isnan(a["value_traded_20d"]) and not a["value_traded_available"]
    assert a["eligible"] and a["reason"] == ""

    assert row(frame, "BBB")["reason"] == "price 0.529 < 1"
    stale = row(frame, "CCC")
    assert stale["days_since_last_bar"] == 7 and stale["last_close"] == 42.0 and stale["history_days"] == 23
    assert stale["reason"] == "stale: no bar for 7 days"
    assert row(frame, "FFF")["reason"] == "history 10 < 15"  # first failed rule wins over price

    # Interior gap on rows 25-26: "5 bars" are the symbol's own bars, so perf_1w reaches back to row 22.
    e = row(frame, "EEE")
    assert e["history_days"] == 28 and e["eligible"]
    assert e["perf_1w"] == pytest.approx(59.0 / 52.0 - 1, rel=1e-12)
    own = close["EEE"].dropna().to_numpy()
    own_rets = [own[i] / own[i - 1] - 1 for i in range(len(own) - 20, len(own))]
    assert e["volatility_20d"] == pytest.approx(statistics.stdev(own_rets) * math.sqrt(252), rel=1e-10)


def test_non_trading_dates_read_as_of_the_last_bar():
    panel = PricePanel(tiny_close())
    saturday, monday_after_end = pd.Timestamp("2024-02-10"), pd.Timestamp("2024-02-12")
    out = compute_scan(panel, [LAST, saturday, monday_after_end], CFG)
    assert df_hash(out[saturday]) == df_hash(out[LAST]) == df_hash(out[monday_after_end])


def test_before_any_bar_and_mid_history():
    panel = PricePanel(tiny_close())
    before, mid = pd.Timestamp("2023-12-29"), DAYS[12]
    out = compute_scan(panel, [before, mid], CFG)
    assert out[before].empty and list(out[before].columns) == list(DTYPES)
    assert {c: str(t) for c, t in out[before].dtypes.items()} == DTYPES
    frame = out[mid]
    assert list(frame["symbol"]) == ["AAA", "BBB", "CCC", "EEE"]  # FFF lists on row 20
    assert row(frame, "BBB")["history_days"] == 3
    assert row(frame, "BBB")["reason"] == "history 3 < 15"


def test_symbols_and_listed_restrict_the_universe():
    panel = PricePanel(tiny_close())
    only = compute_scan(panel, [LAST], CFG.model_copy(update={"symbols": ["EEE", "AAA", "DDD"]}))[LAST]
    assert list(only["symbol"]) == ["AAA", "EEE"]
    listed = compute_scan(panel, [LAST], CFG, listed={LAST: ["CCC", "ZZZ", "AAA"]})[LAST]
    assert list(listed["symbol"]) == ["AAA", "CCC"]
    with pytest.raises(SourceError):
        compute_scan(panel, [LAST, DAYS[3]], CFG, listed={LAST: ["AAA"]})


def test_value_traded_rule_uses_volume_and_is_skipped_without_it():
    close = tiny_close()
    volume = pd.DataFrame(10_000.0, index=close.index, columns=close.columns)
    volume["EEE"] = 100.0
    cfg = CFG.model_copy(update={"min_value_traded": 20_000.0})

    with_volume = compute_scan(PricePanel(close, volume=volume), [LAST], cfg)[LAST]
    a = row(with_volume, "AAA")
    assert a["value_traded_available"]
    assert a["value_traded_20d"] == pytest.approx(10_000.0 * close["AAA"].iloc[-20:].mean(), rel=1e-12)
    assert a["eligible"]
    e = row(with_volume, "EEE")  # 100 shares a day at ~50: 5k traded
    own = close["EEE"].dropna().iloc[-20:]
    assert e["value_traded_20d"] == pytest.approx(100.0 * own.mean(), rel=1e-12)
    assert e["reason"] == f"value traded {100.0 * own.mean():.4g} < 2e+04"

    without = compute_scan(PricePanel(close), [LAST], cfg)[LAST]
    assert not without["value_traded_available"].any()
    assert without["value_traded_20d"].isna().all()
    assert row(without, "AAA")["eligible"] and row(without, "EEE")["eligible"]  # rule skipped, not failed


def test_volatility_cap():
    panel = PricePanel(tiny_close())
    frame = compute_scan(panel, [LAST], UniverseConfig(min_history_days=1, min_price=0.0, max_volatility=0.05))[LAST]
    vol = row(frame, "AAA")["volatility_20d"]
    assert row(frame, "AAA")["reason"] == f"volatility {vol:.4g} > 0.05"
    assert row(frame, "FFF")["reason"] == "volatility unknown: fewer than 21 bars"


# real data ----------------------------------------------------------------------------------------------

REAL_DATES = [pd.Timestamp(d) for d in
              ("1990-06-29", "1995-06-30", "2008-10-10", "2020-03-14", "2022-12-28", "2022-12-30")]




def test_point_in_time(sp500_panel, sp500_close, perturbed_after):
    cfg = UniverseConfig(max_volatility=0.6)
    batch = compute_scan(sp500_panel, REAL_DATES, cfg)
    for i, date in enumerate(REAL_DATES):
        alone = compute_scan(PricePanel(perturbed_after(sp500_close, date, seed=i)), [date], cfg)[date]
        assert df_hash(alone) == df_hash(batch[date]), date
        assert len(alone) == 20


def test_independent_of_panel_start(sp500_close):
    """Metrics are computed on each window, not carried from older rows: a shorter panel agrees exactly."""
    cfg = UniverseConfig(min_history_days=100)
    date = pd.Timestamp("2008-10-10")
    full = compute_scan(PricePanel(sp500_close), [date], cfg)[date]
    start = sp500_close.index[sp500_close.index.get_loc(date) - 300]
    short = compute_scan(PricePanel(sp500_close.loc[start:]), [date], cfg)[date]
    assert (short["history_days"] == 301).all()
    assert df_hash(short.drop(columns="history_days")) == df_hash(full.drop(columns="history_days"))


def test_deterministic(sp500_panel):
    first = compute_scan(sp500_panel, REAL_DATES, UniverseConfig())
    second = compute_scan(sp500_panel, REAL_DATES, UniverseConfig())
    assert [df_hash(first[d]) for d in REAL_DATES] == [df_hash(second[d]) for d in REAL_DATES]
    early = first[pd.Timestamp("1990-06-29")]
    assert not early["eligible"].any() and early["reason"].str.startswith("history ").all()
