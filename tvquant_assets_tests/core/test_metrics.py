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
