"""Selection features against hand-computed values on small inputs (and scipy where it has one)."""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import scipy.stats

from tvquant_assets.core import features as ft


def col(*values) -> np.ndarray:
    return np.asarray(values, dtype="float64")[:, None]


def test_momentum_and_bad_ends():
    assert ft.momentum(col(100, 105, 110))[0] == pytest.approx(0.10)
    out = ft.momentum(np.array([[100.0, np.nan, 0.0], [90.0, 5.0, 5.0]]))
    assert out[0] == pytest.approx(-0.10) and np.isnan(out[1]) and np.isnan(out[2])


def test_volatility_and_stability():
    r = [0.01, -0.01, 0.02, 0.0]
    vol = statistics.stdev(r) * math.sqrt(252)
    assert ft.volatility(col(*r))[0] == pytest.approx(vol)
    assert ft.stability(col(*r))[0] == pytest.approx(1 / vol)
    assert ft.volatility(col(0.01, np.nan, -0.01, 0.02, 0.0))[0] == pytest.approx(vol)  # NaN skipped
    assert np.isnan(ft.volatility(col(*r), min_obs=5)[0])  # too few observations
    assert np.isnan(ft.stability(col(0.01, 0.01, 0.01))[0])  # zero vol: no stability
    assert np.isnan(ft.volatility(np.full((5, 1), np.nan))[0])


def test_permutation_entropy_by_hand():
    assert ft.permutation_entropy(col(1, 2, 3, 4, 5, 6))[0] == 0.0  # one ordinal pattern
    # (1,3,2) (3,2,4) (2,4,3) (4,3,5): two patterns, half each -> ln 2 / ln 3!
    assert ft.permutation_entropy(col(1, 3, 2, 4, 3, 5))[0] == pytest.approx(math.log(2) / math.log(6))
    # all six patterns once each: maximal entropy 1
    six = col(0, 1, 5, 4, 3, 7, 2, 6)  # its six windows hold the six orderings once each
    assert ft.permutation_entropy(six)[0] == pytest.approx(1.0)
    # windows holding the NaN are skipped: (1,3,2) (4,3,5) (3,5,4) = patterns A, B, A
    gap = ft.permutation_entropy(col(1, 3, 2, np.nan, 4, 3, 5, 4))
    h = -(2 / 3 * math.log(2 / 3) + 1 / 3 * math.log(1 / 3)) / math.log(6)
    assert gap[0] == pytest.approx(h)
    assert np.isnan(ft.permutation_entropy(col(1, 2))[0])


def test_efficiency_ratio_by_hand():
    assert ft.efficiency_ratio(col(10, 11, 10, 12))[0] == pytest.approx(2 / 4)
    assert ft.efficiency_ratio(col(10, 11, 12, 13))[0] == pytest.approx(1.0)
    assert ft.efficiency_ratio(col(10, 11, np.nan, 10, 12))[0] == pytest.approx(0.5)  # NaN row skipped
    assert np.isnan(ft.efficiency_ratio(col(10, 10, 10))[0])  # never moved


def reference_hurst(prices: list[float], max_lag: int) -> float:
    logp = [math.log(p) for p in prices]
    xs, ys = [], []
    for k in range(1, max_lag + 1):
        diffs = [logp[i + k] - logp[i] for i in range(len(logp) - k)]
        xs.append(math.log(k))
        ys.append(math.log(statistics.pstdev(diffs)))
    return statistics.linear_regression(xs, ys).slope


def test_hurst_matches_a_plain_reference_and_separates_trend_from_noise():
    rng = np.random.default_rng(0)
    walk = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 400)))
    assert ft.hurst(walk[:, None], max_lag=10)[0] == pytest.approx(reference_hurst(list(walk), 10), rel=1e-10)
    assert 0.4 < ft.hurst(walk[:, None], max_lag=10)[0] < 0.6  # a random walk
    reverting = 100 * np.exp(0.01 * np.where(np.arange(400) % 2 == 0, 1.0, -1.0) + rng.normal(0, 1e-4, 400))
    assert ft.hurst(reverting[:, None], max_lag=10)[0] < 0.1
    steps = np.zeros(400)  # persistent increments (AR(1), phi 0.9): trending at these lags
    for i in range(1, 400):
        steps[i] = 0.9 * steps[i - 1] + rng.normal(0, 0.01)
    assert ft.hurst((100 * np.exp(np.cumsum(steps)))[:, None], max_lag=10)[0] > 0.75
    assert np.isnan(ft.hurst(col(1, 2, 3), max_lag=10)[0])


def test_skew_kurtosis_match_scipy():
    rng = np.random.default_rng(1)
    r = rng.standard_t(4, size=(200, 3)) * 0.01
    np.testing.assert_allclose(ft.skew(r), scipy.stats.skew(r, axis=0), rtol=1e-10)
    np.testing.assert_allclose(ft.kurtosis(r), scipy.stats.kurtosis(r, axis=0), rtol=1e-10)
    r[5, 1] = np.nan
    assert ft.skew(r)[1] == pytest.approx(scipy.stats.skew(r[:, 1], nan_policy="omit"), rel=1e-10)
    # by hand: [-1, 0, 0, 1] has m2 = 0.5, m3 = 0, m4 = 0.5 -> skew 0, kurtosis 0.5 / 0.25 - 3 = -1
    assert ft.skew(col(-1, 0, 0, 1))[0] == 0.0
    assert ft.kurtosis(col(-1, 0, 0, 1))[0] == pytest.approx(-1.0)
    assert np.isnan(ft.skew(col(1, 1, 1))[0])


def test_cvar_by_hand():
    r = col(*([0.01] * 38 + [-0.05, -0.04]))  # n = 40, worst ceil(2) = 2
    assert ft.cvar(r)[0] == pytest.approx(0.045)
    r21 = col(*([0.01] * 19 + [-0.05, -0.04]))  # n = 21: ceil(1.05) = 2
    assert ft.cvar(r21)[0] == pytest.approx(0.045)
    assert ft.cvar(col(-0.02, 0.01, np.nan))[0] == pytest.approx(0.02)  # n = 2: the single worst
    assert np.isnan(ft.cvar(np.full((4, 1), np.nan))[0])


def test_liquidity_and_rsi_by_hand():
    closes, volumes = col(10, 20, 30), col(100, 50, np.nan)
    assert ft.liquidity(closes, volumes)[0] == pytest.approx(1000.0)
    assert np.isnan(ft.liquidity(closes, None)[0])  # no volume: unknown, never invented
    assert ft.rsi(col(0.03, -0.01))[0] == pytest.approx(75.0)  # gains 0.015, losses 0.005: RS 3
    assert ft.rsi(col(0.02, -0.01, 0.01, -0.02))[0] == pytest.approx(50.0)
    assert ft.rsi(col(0.01, 0.02))[0] == 100.0 and ft.rsi(col(-0.01, -0.02))[0] == 0.0
