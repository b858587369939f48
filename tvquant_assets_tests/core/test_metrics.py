"""Metrics: hand numbers, skfolio's measures, and expanding == direct computation on every prefix."""

from __future__ import annotations

import numpy as np
import pytest

from tvquant_assets.core.metrics import METRICS, expanding_metrics, summary


def test_hand_numbers():
    r = np.array([0.10, -0.20, 0.05])
    m = summary(r, periods_per_year=3)
    assert m["n_days"] == 3
    assert m["equity"] == pytest.approx(1.1 * 0.8 * 1.05)
    assert m["total_return"] == pytest.approx(-0.076)
    assert m["ann_return"] == pytest.approx(-0.076)  # one year of three periods
    assert m["max_drawdown"] == pytest.approx(-0.2)  # 0.88 / 1.10 - 1
    std = np.sqrt(((r - r.mean()) ** 2).sum() / 2)
    assert m["ann_vol"] == pytest.approx(std * np.sqrt(3))
    assert m["sharpe"] == pytest.approx(r.mean() / std * np.sqrt(3))


def test_edge_cases():
    assert summary([-0.05, 0.01], 252)["max_drawdown"] == pytest.approx(-0.05)  # a first-day loss counts
    assert summary([0.01, 0.02], 252)["max_drawdown"] == 0.0
    wiped = summary([0.1, -1.0, 0.0], 252)
    assert wiped["ann_return"] == -1.0 and wiped["max_drawdown"] == -1.0
    one = summary([0.01], 252)
    assert np.isnan(one["ann_vol"]) and np.isnan(one["sharpe"])
    # constant returns: zero volatility exactly, Sharpe undefined (not 1e8 from rounding noise)
    flat = expanding_metrics(np.full(50, 0.0003), np.zeros(50), 252)
    assert np.all(flat["ann_vol"][1:] == 0.0) and np.isnan(flat["sharpe"]).all()


def test_against_skfolio():
    from skfolio.datasets import load_sp500_dataset
    from skfolio.measures import get_drawdowns, max_drawdown, mean, standard_deviation

    r = load_sp500_dataset()["AAPL"].loc["2015":"2019"].pct_change().dropna().to_numpy()
    m = summary(r, 252)
    assert m["ann_vol"] == pytest.approx(standard_deviation(r) * np.sqrt(252), rel=1e-12)
    assert m["sharpe"] == pytest.approx(mean(r) / standard_deviation(r) * np.sqrt(252), rel=1e-12)
    # skfolio reports the drawdown magnitude; ours is signed
    assert m["max_drawdown"] == pytest.approx(-max_drawdown(get_drawdowns(r, compounded=True)), rel=1e-12)
    e = expanding_metrics(r, np.zeros_like(r), 252)
    assert e["sharpe"][-1] == pytest.approx(m["sharpe"], rel=1e-9)
    assert e["ann_vol"][-1] == pytest.approx(m["ann_vol"], rel=1e-9)


def test_expanding_equals_direct_on_every_prefix():
    rng = np.random.default_rng(11)
    r = np.concatenate([np.zeros(5), rng.normal(0.0004, 0.015, 400)])  # starts in cash, like a backtest
    turnover = rng.uniform(0, 0.3, r.size)
    e = expanding_metrics(r, turnover, 252)
    for t in range(r.size):
        direct = summary(r[: t + 1], 252)
        for key in METRICS:
            np.testing.assert_allclose(e[key][t], direct[key], rtol=1e-9, atol=1e-12, err_msg=f"{key}@{t}")
    np.testing.assert_allclose(e["turnover"], np.cumsum(turnover))


def test_expanding_prefix_is_bit_identical():
    r = np.random.default_rng(2).normal(0, 0.01, 300)
    full = expanding_metrics(r, np.ones_like(r), 252)
    for k in (1, 2, 17, 299):
        part = expanding_metrics(r[:k], np.ones(k), 252)
        for key, v in part.items():
            assert np.array_equal(v, full[key][:k], equal_nan=True), key


def test_extra_metrics_by_hand_and_direct():
    from tvquant_assets.core.metrics import rolling_sharpe, tail_risk

    r = np.array([0.0, 0.0, 0.02, -0.01, 0.03, -0.02, 0.01])
    e = expanding_metrics(r, np.zeros_like(r), 252)
    down = np.sqrt((0.01**2 + 0.02**2) / 7)
    assert e["sortino"][-1] == pytest.approx(r.mean() / down * np.sqrt(252), rel=1e-12)
    assert e["hit_rate"][-1] == pytest.approx(3 / 5)  # the two cash days do not count
    assert np.isnan(e["hit_rate"][0]) and np.isnan(e["sortino"][2])  # no active day / no loss yet
    m = summary(r, 252)
    assert e["calmar"][-1] == pytest.approx(m["ann_return"] / -m["max_drawdown"], rel=1e-12)
    var, cvar = tail_risk(np.arange(1, 101) / 100.0 - 0.5)  # -0.49 .. 0.50
    assert var == pytest.approx(-np.quantile(np.arange(1, 101) / 100.0 - 0.5, 0.05))
    assert cvar == pytest.approx(-np.mean(np.arange(1, 6) / 100.0 - 0.5))  # the five worst are <= q
    # stability: std of the rolling Sharpe, computed directly on a prefix
    x = np.random.default_rng(4).normal(0.0005, 0.01, 300)
    ex = expanding_metrics(x, np.zeros_like(x), 252)
    roll = rolling_sharpe(x, 63, 252)
    for t in (61, 62, 63, 150, 299):
        valid = roll[: t + 1][~np.isnan(roll[: t + 1])]
        want = valid.std(ddof=1) if valid.size >= 2 else np.nan
        np.testing.assert_allclose(ex["stability"][t], want, rtol=1e-9, equal_nan=True)
    w = x[100:163]
    assert roll[162] == pytest.approx(w.mean() / w.std(ddof=1) * np.sqrt(252), rel=1e-12)


def test_deflated_sharpe_paper_example():
    # Bailey & Lopez de Prado (2014), section "a numerical example": 100 trials with annualized Sharpe
    # variance 0.5, an annualized Sharpe of 2.5 over 1250 days, skewness -3, kurtosis 10 -> DSR ~ 0.9004.
    from tvquant_assets.core.metrics import expected_max_sharpe, probabilistic_sharpe

    sr0 = expected_max_sharpe(0.5 / 250, 100)
    assert sr0 == pytest.approx(0.1132, abs=1e-4)
    assert probabilistic_sharpe(2.5 / np.sqrt(250), 1250, -3.0, 10.0, sr0) == pytest.approx(0.9004, abs=1e-3)


def test_deflated_sharpe_falls_with_more_trials():
    from tvquant_assets.core.metrics import deflated_sharpe

    r = np.random.default_rng(1).normal(0.001, 0.01, 500)
    sr = r.mean() / r.std(ddof=1)
    one = deflated_sharpe(r, np.array([sr]))
    few = deflated_sharpe(r, np.array([sr, 0.0, 0.05, -0.03]))
    many = deflated_sharpe(r, np.r_[sr, np.random.default_rng(2).normal(0, 0.04, 99)])
    assert 1.0 > one > few > many > 0.0


def test_pbo_hand_case_and_limits():
    from tvquant_assets.core.metrics import pbo_cscv

    # Two candidates, two blocks: each wins the block the other loses -> the in-sample winner is always
    # the out-of-sample loser: PBO = 1.
    a = np.r_[[0.02, 0.01, 0.03, 0.02], [-0.01, 0.0, -0.02, -0.01]]
    b = np.r_[[-0.01, 0.0, -0.02, -0.01], [0.02, 0.01, 0.03, 0.02]]
    assert pbo_cscv(np.c_[a, b], blocks=2) == 1.0
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.01, (1200, 20))
    assert 0.25 < pbo_cscv(noise, blocks=10) < 0.75  # pure luck: around one half
    skilled = noise.copy()
    skilled[:, 3] += 0.004
    assert pbo_cscv(skilled, blocks=10) == 0.0
    assert np.isnan(pbo_cscv(noise[:, :1], 8))
    with pytest.raises(ValueError, match="even"):
        pbo_cscv(noise, blocks=3)
