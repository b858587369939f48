"""The monthly verdict: the Ledoit–Wolf Sharpe-difference test and the verdict frame."""

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.verdict import VERDICT_COLUMNS, hac_lags, sharpe_difference_test, verdict


def test_iid_standard_error_matches_the_closed_form():
    """Independent normal series, no lags: Var(SR_a - SR_b) = (2 + SR_a^2/2 + SR_b^2/2) / T (Jobson–Korkie /
    Lo 2002 for each Sharpe ratio, no covariance term)."""
    rng = np.random.default_rng(7)
    t = 40_000
    a, b = rng.normal(0.0005, 0.01, t), rng.normal(0.0003, 0.012, t)
    diff, se, p = sharpe_difference_test(a, b, lags=0)
    sr_a, sr_b = a.mean() / a.std(), b.mean() / b.std()
    assert diff == pytest.approx(sr_a - sr_b, rel=1e-12)
    assert se == pytest.approx(np.sqrt((2 + sr_a**2 / 2 + sr_b**2 / 2) / t), rel=0.03)
    assert 0.0 <= p <= 1.0


def test_moment_covariance_is_the_mean_not_the_sum():
    """With lags=0 the HAC matrix is the plain (ddof=0) covariance of the four moment series."""
    rng = np.random.default_rng(3)
    a = rng.normal(0.001, 0.02, 300)
    b = 0.6 * a + rng.normal(0.0, 0.01, 300)
    diff, se, _ = sharpe_difference_test(a, b, lags=0)
    mu, gam = np.array([a.mean(), b.mean()]), np.array([(a * a).mean(), (b * b).mean()])
    var = gam - mu**2
    grad = np.array([gam[0] / var[0] ** 1.5, -gam[1] / var[1] ** 1.5, -mu[0] / (2 * var[0] ** 1.5),
                     mu[1] / (2 * var[1] ** 1.5)])
    psi = np.cov(np.column_stack([a, b, a * a, b * b]), rowvar=False, ddof=0)
    assert se == pytest.approx(np.sqrt(grad @ psi @ grad / a.size), rel=1e-10)


def test_size_under_the_null_is_about_five_percent():
    rng = np.random.default_rng(11)
    draws = rng.normal(0.0004, 0.01, (800, 2, 500))
    rejected = np.mean([sharpe_difference_test(x[0], x[1])[2] < 0.05 for x in draws])
    assert 0.025 < rejected < 0.08


def test_identical_series_and_degenerate_inputs():
    r = np.random.default_rng(1).normal(0.0, 0.01, 100)
    assert sharpe_difference_test(r, r) == (0.0, 0.0, 1.0)
    assert np.isnan(sharpe_difference_test(np.zeros(100), r)[2])
    assert np.isnan(sharpe_difference_test(r[:2], r[:2])[0])
    assert hac_lags(250) == 4 and hac_lags(0) == 0


def _returns(n=300, seed=5):
    rng = np.random.default_rng(seed)
    days = pd.bdate_range("2021-01-04", periods=n)
    base = rng.normal(0.0003, 0.01, n)
    return pd.DataFrame({"custom/hrp": base, "skfolio/hrp": base + 0.002 + rng.normal(0, 0.001, n),
                         "riskfolio/hrp": base - 0.002 + rng.normal(0, 0.001, n),
                         "cvxportfolio/hrp": rng.normal(0.0003, 0.01, n)}, index=days)


def test_verdict_calls_each_direction():
    r = _returns()
    pairs = {c: "custom/hrp" for c in ("skfolio/hrp", "riskfolio/hrp", "cvxportfolio/hrp")}
    engines = {c: c.split("/")[0] for c in r.columns}
    frame = verdict(r, pairs, engines, r.index[-1], 252)
    twelve = frame.loc[frame["window"] == "12m"].set_index("candidate")
    assert twelve.loc["skfolio/hrp", "verdict"] == "better"
    assert twelve.loc["riskfolio/hrp", "verdict"] == "worse"
    assert twelve.loc["cvxportfolio/hrp", "verdict"] == "no difference"
    assert (twelve["n_days"] > 240).all()
    month = frame.loc[frame["window"] == "month"].set_index("candidate")
    assert month["window_start"].eq(str(r.index[-1].replace(day=1).date())).all()


def test_short_windows_are_insufficient_data():
    r = _returns(n=10)
    frame = verdict(r, {"skfolio/hrp": "custom/hrp"}, {}, r.index[-1], 252)
    assert set(frame["verdict"]) == {"insufficient data"}


def test_verdict_of_d_ignores_later_returns():
    r = _returns()
    d = r.index[200]
    pairs = {"skfolio/hrp": "custom/hrp"}
    before = verdict(r, pairs, {}, d, 252)
    later = r.copy()
    later.iloc[201:] = later.iloc[201:] * -5.0
    pd.testing.assert_frame_equal(before, verdict(later, pairs, {}, d, 252))


def test_no_returns_yet_gives_an_empty_verdict():
    empty = pd.DataFrame(index=pd.DatetimeIndex([]), dtype="float64")
    frame = verdict(empty, {"skfolio/hrp": "custom/hrp"}, {}, pd.Timestamp("2020-01-02"), 252)
    assert frame.empty and list(frame.columns) == list(VERDICT_COLUMNS)
    assert verdict(pd.DataFrame(dtype="float64"), {}, {}, pd.Timestamp("2020-01-02"), 252).empty
