"""Regime metrics against hand-computed values and their reference libraries (statsmodels, hmmlearn)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tvquant_assets.core import regime_metrics as rm


def test_wavelet_entropy_by_hand():
    # haar, one level: [1, 0, 0, 0] -> approx [1/sqrt2, 0], detail [1/sqrt2, 0]: energy 1/2 + 1/2 -> entropy 1
    assert rm.wavelet_entropy(np.array([1.0, 0, 0, 0]), "haar", 1) == pytest.approx(1.0)
    assert rm.wavelet_entropy(np.array([1.0, 1, 1, 1]), "haar", 1) == 0.0  # all energy in the approximation
    assert rm.wavelet_entropy(np.array([1.0, -1, 1, -1]), "haar", 1) == 0.0  # all in the finest detail
    # two levels on [1, 0, 0, 0]: a2 = 1/2, d2 = 1/2, d1 = [1/sqrt2, 0] -> p = (1/4, 1/4, 1/2)
    p = np.array([0.25, 0.25, 0.5])
    assert rm.wavelet_entropy(np.array([1.0, 0, 0, 0]), "haar", 2) == pytest.approx(
        -(p * np.log(p)).sum() / math.log(3))
    assert math.isnan(rm.wavelet_entropy(np.zeros(8), "haar", 2))
    assert math.isnan(rm.wavelet_entropy(np.array([1.0, np.nan, 0, 0]), "haar", 1))


def test_vol_clustering_by_hand():
    r = np.array([0.01, -0.03, 0.01, -0.03, 0.01, -0.03])  # |r| alternates: autocorrelation -1
    assert rm.vol_clustering(r) == pytest.approx(-1.0)
    rng = np.random.default_rng(0)
    x = rng.normal(0, 0.01, 50)
    assert rm.vol_clustering(x) == pytest.approx(np.corrcoef(np.abs(x[:-1]), np.abs(x[1:]))[0, 1])
    assert math.isnan(rm.vol_clustering(np.full(5, 0.01)))


def test_adf_pvalue_equals_statsmodels_adfuller():
    from statsmodels.tsa.stattools import adfuller

    rng = np.random.default_rng(1)
    for trial in range(4):
        r = rng.normal(0.0003, 0.01, 126)
        if trial == 3:  # a mean-reverting level: small p-value
            r = np.diff(np.exp(0.02 * np.sin(np.arange(127) * 1.3) + rng.normal(0, 0.002, 127))) + 0.0
        level = np.cumsum(np.log1p(r))
        ref = adfuller(level, maxlag=1, autolag=None, regression="c", result_object=False)[1]
        assert rm.adf_pvalue(r) == pytest.approx(ref, rel=1e-9, abs=1e-12), trial
    assert rm.adf_pvalue(r) < 0.05
    assert math.isnan(rm.adf_pvalue(np.zeros(50)))


def two_regimes(seed: int = 2) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.r_[rng.normal(0.0005, 0.007, 160), rng.normal(-0.002, 0.03, 60), rng.normal(0.0005, 0.007, 40)]


def test_hmm_stress_state_is_the_high_variance_one_and_filtered_matches_hmmlearn():
    from hmmlearn.hmm import GaussianHMM

    x = two_regimes()
    model = rm.StressHMM(seed=7).fit(x)
    assert model.vars_[1] > 4 * model.vars_[0]  # state 1 = stress
    assert model.stress_probability(x[:220]) > 0.9  # inside the storm
    assert model.stress_probability(x) < 0.1  # calm again
    # the forward filter equals hmmlearn's posterior of the last day (smoothing adds nothing there)
    ref = GaussianHMM(n_components=2, covariance_type="diag")
    ref.startprob_, ref.transmat_ = model.startprob_, model.transmat_
    ref.means_, ref.covars_ = model.means_[:, None], model.vars_[:, None]
    for end in (100, 200, 220, 260):
        window = x[:end] * rm.SCALE
        assert model.stress_probability(x[:end]) == pytest.approx(ref.predict_proba(window[:, None])[-1, 1],
                                                                    abs=1e-9)
    again = rm.StressHMM(seed=7).fit(x)
    assert np.array_equal(again.vars_, model.vars_) and np.array_equal(again.transmat_, model.transmat_)
