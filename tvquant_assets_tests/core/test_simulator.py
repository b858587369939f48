"""Vectorized simulator: hand-computed drift and cost examples, a per-day loop reference, vectorbt parity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.simulators import SIMULATORS, get_simulator
from tvquant_assets.core.simulators.vectorized import simulate


def reference_loop(returns: np.ndarray, targets: np.ndarray, cost_rate: float):
    """Plain per-day dollar accounting of the documented conventions."""
    T, N = returns.shape
    r = np.nan_to_num(returns, nan=0.0)
    dollars, cash, value = np.zeros(N), 1.0, 1.0
    out = {k: np.zeros(T) for k in ("returns", "turnover", "costs")}
    weights = np.zeros((T, N))
    for t in range(T):
        dollars = dollars * (1.0 + r[t])
        new_value = dollars.sum() + cash
        ret = new_value / value - 1.0
        if not np.isnan(targets[t]).all():
            target = np.nan_to_num(targets[t], nan=0.0)
            traded = np.abs(target * new_value - dollars).sum()  # sized on the pre-trade value
            cost = cost_rate * traded
            dollars = target * new_value
            cash = new_value - dollars.sum() - cost  # costs paid from cash
            out["turnover"][t], out["costs"][t] = traded / new_value, cost / new_value
            ret = (new_value - cost) / value - 1.0
        value = dollars.sum() + cash
        out["returns"][t] = ret
        weights[t] = dollars / value
    return out, weights


def test_registry_lists_vectorized():
    assert "vectorized" in SIMULATORS
    assert get_simulator("vectorized") is simulate
    with pytest.raises(ValueError, match="unknown simulator"):
        get_simulator("nope")


def test_drift_by_hand():
    r = np.array([[0.0, 0.0], [0.10, -0.10], [0.0, 0.20], [0.0, 0.0]])
    tg = np.full((4, 2), np.nan)
    tg[0] = [0.5, 0.5]
    res = simulate(r, tg, 0.0)
    # day 1: 0.55 + 0.45 = 1.00 -> return 0; weights drift to 0.55 / 0.45
    # day 2: 0.55 + 0.54 = 1.09 -> return 0.09; weights 0.55/1.09, 0.54/1.09
    np.testing.assert_allclose(res.returns, [0.0, 0.0, 0.09, 0.0], atol=1e-15)
    np.testing.assert_allclose(res.weights[1], [0.55, 0.45], atol=1e-15)
    np.testing.assert_allclose(res.weights[2], [0.55 / 1.09, 0.54 / 1.09], atol=1e-15)
    np.testing.assert_allclose(res.weights[3], res.weights[2], atol=0)
    np.testing.assert_allclose(res.turnover, [1.0, 0, 0, 0])
    assert res.costs.sum() == 0.0


def test_costs_by_hand():
    r = np.array([[0.0, 0.0], [0.10, 0.0], [0.0, 0.0]])
    tg = np.full((3, 2), np.nan)
    tg[0] = tg[2] = [0.5, 0.5]
    res = simulate(r, tg, 0.01)
    # day 0: buy 1.0 of notional from cash, pay 0.01 -> value 0.99, holdings 0.5 / 0.5, cash -0.01
    assert res.turnover[0] == pytest.approx(1.0)
    assert res.costs[0] == pytest.approx(0.01)
    assert res.returns[0] == pytest.approx(-0.01)
    np.testing.assert_allclose(res.weights[0], [0.5 / 0.99, 0.5 / 0.99])
    # day 1: 0.55 + 0.5 - 0.01 = 1.04
    assert res.returns[1] == pytest.approx(1.04 / 0.99 - 1.0, abs=1e-15)
    # day 2: rebalance from 0.55/1.04, 0.5/1.04 back to halves of 1.04 dollars: trade 0.025 + 0.02 dollars
    traded = abs(0.52 - 0.55) + abs(0.52 - 0.50)
    assert res.turnover[2] == pytest.approx(traded / 1.04, abs=1e-15)
    assert res.costs[2] == pytest.approx(0.01 * traded / 1.04, abs=1e-15)
    assert res.returns[2] == pytest.approx(-0.01 * traded / 1.04, abs=1e-15)
    np.testing.assert_allclose(res.weights[2], [0.52 / (1.04 - 0.01 * traded)] * 2, atol=1e-15)


def test_cash_before_first_target_and_nan_handling():
    r = np.array([[0.05, 0.05], [0.05, np.nan], [0.0, 0.10], [np.nan, 0.0]])
    tg = np.full((4, 2), np.nan)
    tg[1] = [np.nan, 0.5]  # NaN inside a target row means 0; 0.5 stays in cash
    res = simulate(r, tg, 0.0)
    assert res.returns[0] == 0.0 and res.returns[1] == 0.0  # all cash until the close of day 1
    np.testing.assert_allclose(res.weights[1], [0.0, 0.5])
    assert res.returns[2] == pytest.approx(0.05)
    assert res.returns[3] == 0.0  # NaN return of an unheld name
    none = simulate(r, np.full((4, 2), np.nan), 0.001)
    assert not none.returns.any() and not none.weights.any() and not none.costs.any()


def test_matches_per_day_loop_with_costs_and_gaps():
    rng = np.random.default_rng(3)
    T, N = 300, 7
    r = rng.normal(0.0005, 0.02, (T, N))
    r[rng.random((T, N)) < 0.03] = np.nan
    tg = np.full((T, N), np.nan)
    rows = np.sort(rng.choice(np.arange(5, T), 25, replace=False))
    tg[rows] = rng.dirichlet(np.ones(N), len(rows)) * rng.uniform(0.7, 1.0, (len(rows), 1))
    tg[rows[3], 2] = np.nan
    res = simulate(r, tg, 0.0025)
    ref, weights = reference_loop(r, tg, 0.0025)
    for key in ("returns", "turnover", "costs"):
        np.testing.assert_allclose(getattr(res, key), ref[key], rtol=0, atol=1e-13)
    np.testing.assert_allclose(res.weights, weights, rtol=0, atol=1e-13)


def test_prefix_is_bit_identical():
    # A shorter run must reproduce the head of a longer one exactly (range backtest == per-date backtest).
    rng = np.random.default_rng(5)
    T, N = 120, 6
    r = rng.normal(0, 0.02, (T, N))
    tg = np.full((T, N), np.nan)
    tg[[3, 20, 41, 77, 100]] = rng.dirichlet(np.ones(N), 5)
    full = simulate(r, tg, 0.001)
    for k in (4, 20, 21, 50, 77, 78, 119):
        part = simulate(r[:k], tg[:k], 0.001)
        assert np.array_equal(part.returns, full.returns[:k])
        assert np.array_equal(part.costs, full.costs[:k])
        assert np.array_equal(part.weights, full.weights[:k])


def test_unused_columns_change_nothing():
    # A symbol that is never held (e.g. one listing later) must not move any bit of the result.
    rng = np.random.default_rng(8)
    T, N = 90, 9
    r = rng.normal(0, 0.02, (T, N))
    tg = np.full((T, N), np.nan)
    tg[[0, 7, 30, 61]] = rng.dirichlet(np.ones(N), 4)
    base = simulate(r, tg, 0.001)
    at = [0, 4, 4, 9]
    wide_r = np.insert(r, at, np.nan, axis=1)
    wide_t = np.insert(tg, at, 0.0, axis=1)
    wide_t[np.isnan(tg).all(axis=1)] = np.nan
    wide = simulate(wide_r, wide_t, 0.001)
    keep = np.delete(np.arange(N + len(at)), np.array(at) + np.arange(len(at)))
    for key in ("returns", "turnover", "costs"):
        assert np.array_equal(getattr(base, key), getattr(wide, key)), key
    assert np.array_equal(base.weights, wide.weights[:, keep])


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="shape"):
        simulate(np.zeros((3, 2)), np.zeros((3, 3)), 0.0)
    with pytest.raises(ValueError, match="cost_rate"):
        simulate(np.zeros((3, 2)), np.zeros((3, 2)), -0.1)


@pytest.fixture(scope="module")
def sp500_close() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset().loc["2017":"2021"].iloc[:, :6]


def _monthly(close: pd.DataFrame, weights: np.ndarray) -> pd.DataFrame:
    first = ~close.index.to_period("M").duplicated()
    tg = pd.DataFrame(np.nan, index=close.index, columns=close.columns)
    tg.loc[first] = weights[: first.sum()] if weights.ndim == 2 else weights
    return tg


@pytest.mark.parametrize("kind", ["equal", "random"])
def test_matches_vectorbt_without_fees(sp500_close, kind):
    import vectorbt as vbt  # a required dependency: a broken install must fail, not skip
    close = sp500_close
    n = close.shape[1]
    months = int((~close.index.to_period("M").duplicated()).sum())
    w = np.full(n, 1.0 / n) if kind == "equal" else np.random.default_rng(1).dirichlet(np.ones(n), months) * 0.95
    tg = _monthly(close, w)
    pf = vbt.Portfolio.from_orders(
        close, size=tg, size_type="targetpercent", group_by=True, cash_sharing=True, call_seq="auto",
        update_value=False, fees=0.0, init_cash=1e9, freq="1D",
    )
    ours = simulate(close.pct_change().to_numpy(), tg.to_numpy(), 0.0)
    gap = np.abs(pf.returns().to_numpy() - ours.returns).max()
    assert gap < 1e-10, gap
