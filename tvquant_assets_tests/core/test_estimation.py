"""Estimation: hand-checked moments, coverage and complete rows, layout, point in time, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.covariance import LedoitWolf

from tvquant_assets.core.estimation import (
    FIXED_COLUMNS,
    estimate,
    pack,
    returns_window,
    unpack,
)
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.hashing import df_hash
from tvquant_assets.manifest.schema import EstimationConfig

LOOKBACK = 20


def small_panel(n_rows: int = 40, seed: int = 1) -> PricePanel:
    rng = np.random.default_rng(seed)
    idx = pd.bdate_range("2021-01-04", periods=n_rows)
    rets = rng.normal(0.0005, 0.01, (n_rows, 3))
    close = pd.DataFrame(100 * np.cumprod(1 + rets, axis=0), index=idx, columns=["A", "B", "C"])
    return PricePanel(close=close)


def test_sample_moments_hand_checked():
    panel = small_panel()
    d = panel.close.index[-1]
    cfg = EstimationConfig(lookback=LOOKBACK, covariance="sample", periods_per_year=252)
    frame = estimate(panel, {d: ["C", "A", "B"]}, [d], cfg)[d]
    x = panel.close.pct_change().iloc[-LOOKBACK:].to_numpy()
    e = unpack(frame)
    assert e.symbols == ["A", "B", "C"] and e.n_obs == LOOKBACK and e.shrinkage == 0.0 and e.dropped == ()
    np.testing.assert_allclose(e.mu, x.mean(axis=0) * 252, rtol=1e-12)
    np.testing.assert_allclose(e.cov, np.cov(x, rowvar=False) * 252, rtol=1e-12)


def test_ledoit_wolf_matches_sklearn_and_records_shrinkage():
    panel = small_panel()
    d = panel.close.index[-1]
    cfg = EstimationConfig(lookback=LOOKBACK, periods_per_year=12)  # annualization follows the config
    frame = estimate(panel, {d: ["A", "B", "C"]}, [d], cfg)[d]
    lw = LedoitWolf().fit(panel.close.pct_change().iloc[-LOOKBACK:].to_numpy())
    e = unpack(frame)
    np.testing.assert_allclose(e.cov, lw.covariance_ * 12, rtol=1e-12)
    assert frame["shrinkage"].nunique() == 1 and frame["shrinkage"].iloc[0] == pytest.approx(lw.shrinkage_)
    assert 0 < e.shrinkage < 1


def test_coverage_drop_and_complete_rows():
    panel = small_panel()
    close = panel.close.copy()
    d = close.index[-1]
    close.iloc[-10:-3, 2] = np.nan  # C: 7 bars missing -> 8 returns missing of 20 (60% coverage): dropped
    close.iloc[-15, 1] = np.nan  # B: 1 bar missing -> 2 returns missing (90%): kept, 2 rows dropped
    frame = estimate(PricePanel(close), {d: ["A", "B", "C", "ZZZ"]}, [d], EstimationConfig(lookback=LOOKBACK))[d]
    e = unpack(frame)
    assert e.symbols == ["A", "B"]
    assert e.dropped == ("C", "ZZZ") and set(frame["dropped"]) == {"C,ZZZ"}
    assert e.n_obs == LOOKBACK - 2
    rw = returns_window(PricePanel(close), ["A", "B", "C"], d, LOOKBACK)
    assert list(rw.columns) == ["A", "B"] and len(rw) == LOOKBACK - 2 and not rw.isna().any().any()
    # no filling: the rows with B's gap are absent, not zero
    assert close.index[-15] not in rw.index and close.index[-14] not in rw.index


def test_short_history_is_dropped():
    panel = small_panel(n_rows=15)  # 14 returns < 0.8 * 20
    d = panel.close.index[-1]
    frame = estimate(panel, {d: ["A", "B"]}, [d], EstimationConfig(lookback=LOOKBACK))[d]
    assert frame.empty and list(frame.columns) == list(FIXED_COLUMNS)


def test_non_trading_day_is_as_of_last_bar():
    panel = small_panel()
    friday = panel.close.index[-1]
    assert friday.day_of_week == 4
    saturday = friday + pd.Timedelta(days=1)
    out = estimate(panel, {friday: ["A", "B"], saturday: ["A", "B"]}, [friday, saturday],
                   EstimationConfig(lookback=LOOKBACK))
    assert df_hash(out[friday]) == df_hash(out[saturday])


def test_empty_selection():
    panel = small_panel()
    d = panel.close.index[-1]
    frame = estimate(panel, {d: []}, [d], EstimationConfig(lookback=LOOKBACK))[d]
    assert list(frame.columns) == list(FIXED_COLUMNS) and len(frame) == 0
    assert frame["n_obs"].dtype == "int64" and frame["mu"].dtype == "float64"
    e = unpack(frame)
    assert e.symbols == [] and e.mu.shape == (0,) and e.cov.shape == (0, 0)


def test_missing_selection_date_raises():
    panel = small_panel()
    with pytest.raises(KeyError, match="no selection"):
        estimate(panel, {}, [panel.close.index[-1]], EstimationConfig(lookback=LOOKBACK))


def test_pack_unpack_layout_round_trip():
    cov = np.array([[0.04, 0.01], [0.01, 0.09]])
    frame = pack(["X", "Y"], np.array([0.1, 0.2]), cov, shrinkage=0.3, n_obs=100, dropped=["Q"])
    assert list(frame.columns) == [*FIXED_COLUMNS, "cov:X", "cov:Y"]
    assert isinstance(frame.index, pd.RangeIndex)
    assert frame.loc[0, "cov:Y"] == 0.01 and frame.loc[1, "cov:Y"] == 0.09
    e = unpack(frame)
    assert e.symbols == ["X", "Y"] and e.shrinkage == 0.3 and e.n_obs == 100 and e.dropped == ("Q",)
    np.testing.assert_array_equal(e.cov, cov)
    np.testing.assert_array_equal(e.mu, [0.1, 0.2])


# --- real data -------------------------------------------------------------------------------------------

D = pd.Timestamp("2020-03-02")
SYMS = ["AAPL", "JNJ", "JPM", "KO", "MSFT", "XOM"]


def test_output_frame_on_real_data(sp500_panel):
    frame = estimate(sp500_panel, {D: SYMS}, [D], EstimationConfig())[D]
    assert isinstance(frame.index, pd.RangeIndex)
    assert frame["symbol"].tolist() == SYMS and frame["n_obs"].iloc[0] == 252
    assert not frame[["symbol", "dropped"]].isna().any().any()
    e = unpack(frame)
    np.testing.assert_array_equal(e.cov, e.cov.T)
    assert np.linalg.eigvalsh(e.cov)[0] > 0
    rw = returns_window(sp500_panel, SYMS, D, 252)
    assert rw.index[-1] == D and list(rw.columns) == e.symbols and len(rw) == e.n_obs
    np.testing.assert_allclose(rw.mean().to_numpy() * 252, e.mu, rtol=1e-12)


def test_point_in_time(sp500_close):
    dates = [pd.Timestamp("2020-02-27"), D]
    sel = {d: SYMS for d in dates}
    base = estimate(PricePanel(sp500_close), sel, dates, EstimationConfig())
    rng = np.random.default_rng(0)
    future = sp500_close.index > D
    shocked = sp500_close.copy()
    shocked.loc[future] = shocked.loc[future].to_numpy() * rng.uniform(0.5, 1.5, (future.sum(), shocked.shape[1]))
    after = estimate(PricePanel(shocked), sel, dates, EstimationConfig())
    for d in dates:
        assert df_hash(after[d]) == df_hash(base[d])
    # the test has teeth: a change on D itself does change D's estimates
    shocked.loc[D, "AAPL"] *= 1.05
    assert df_hash(estimate(PricePanel(shocked), sel, [D], EstimationConfig())[D]) != df_hash(base[D])


def test_determinism(sp500_panel):
    a = estimate(sp500_panel, {D: SYMS}, [D], EstimationConfig())[D]
    b = estimate(sp500_panel, {D: list(reversed(SYMS))}, [D], EstimationConfig())[D]
    assert df_hash(a) == df_hash(b)
