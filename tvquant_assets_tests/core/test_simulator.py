"""Vectorized simulator: hand-computed drift and cost examples, a per-day loop reference, vectorbt parity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.simulators import SIMULATORS, get_simulator
from tvquant_assets.core.simulators.vectorized import simulate
from tvquant_assets.errors import RegistryError


def reference_loop(returns: np.ndarray, targets: np.ndarray, cost_rate, borrow_rate: float = 0.0,
                   band: float = 0.0, tradable=None, liquidate=None):
    """Plain per-day dollar accounting of the documented conventions."""
    T, N = returns.shape
    r = np.nan_to_num(returns, nan=0.0)
    rates = np.broadcast_to(np.asarray(cost_rate, dtype=float), (N,))
    dollars, cash, value = np.zeros(N), 1.0, 1.0
    out = {k: np.zeros(T) for k in ("returns", "turnover", "costs")}
    weights = np.zeros((T, N))
    sold = []
    for t in range(T):
        cash -= borrow_rate * np.maximum(-dollars, 0.0).sum()  # shorts held over the period
        dollars = dollars * (1.0 + r[t])
        new_value = dollars.sum() + cash
        ret = new_value / value - 1.0
        onset = liquidate is not None and (liquidate[t] & ~(liquidate[t - 1] if t else np.zeros(N, bool))).any()
        if not np.isnan(targets[t]).all() or onset:
            drifted = dollars / new_value
            if np.isnan(targets[t]).all():
                target = drifted.copy()
            else:
                target = np.nan_to_num(targets[t], nan=0.0)
                target = np.where(np.abs(target - drifted) <= band, drifted, target) if band else target
            if tradable is not None:
                target = np.where(tradable[t], target, drifted)
            if liquidate is not None:
                sold += [(t, i, drifted[i]) for i in np.flatnonzero(liquidate[t] & (drifted != 0))]
                target[liquidate[t]] = 0.0
            traded = np.abs(target * new_value - dollars)  # sized on the pre-trade value
            cost = (rates * traded).sum()
            dollars = target * new_value
            cash = new_value - dollars.sum() - cost  # costs paid from cash
            out["turnover"][t], out["costs"][t] = traded.sum() / new_value, cost / new_value
            ret = (new_value - cost) / value - 1.0
        value = dollars.sum() + cash
        out["returns"][t] = ret
        weights[t] = dollars / value
    out["liquidations"] = sold
    return out, weights


def test_registry_lists_vectorized():
    assert "vectorized" in SIMULATORS
    assert get_simulator("vectorized") is simulate
    with pytest.raises(RegistryError) as err:
        get_simulator("nope")
    assert str(err.value) == "unknown simulator 'nope'; registered: cvxportfolio, nautilus, vectorbt, vectorized"


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


def _random_case(seed: int, T: int, N: int, mean: float, nan_share: float, first: int, decisions: int):
    """Daily returns with NaN gaps and an all-NaN target array with its decision rows chosen (the caller fills
    them): the rng is returned to draw the targets from."""
    rng = np.random.default_rng(seed)
    r = rng.normal(mean, 0.02, (T, N))
    r[rng.random((T, N)) < nan_share] = np.nan
    rows = np.sort(rng.choice(np.arange(first, T), decisions, replace=False))
    return rng, r, np.full((T, N), np.nan), rows


def test_matches_per_day_loop_with_costs_and_gaps():
    T, N = 300, 7
    rng, r, tg, rows = _random_case(3, T, N, 0.0005, 0.03, 5, 25)
    tg[rows] = rng.dirichlet(np.ones(N), len(rows)) * rng.uniform(0.7, 1.0, (len(rows), 1))
    tg[rows[3], 2] = np.nan
    res = simulate(r, tg, 0.0025)
    ref, weights = reference_loop(r, tg, 0.0025)
    for key in ("returns", "turnover", "costs"):
        np.testing.assert_allclose(getattr(res, key), ref[key], rtol=0, atol=1e-13)
    np.testing.assert_allclose(res.weights, weights, rtol=0, atol=1e-13)


def test_partial_rebalancing_by_hand():
    # Day 0 buys 50/50; day 1 drifts to 0.55/0.45 (total 1.0); day 2 targets 0.5/0.5 with a 6% band:
    # each name is 5 points off, inside the band, so nothing trades; with a 4% band both trade.
    r = np.array([[0.0, 0.0], [0.10, -0.10], [0.0, 0.0]])
    tg = np.full((3, 2), np.nan)
    tg[0] = tg[2] = [0.5, 0.5]
    wide = simulate(r, tg, 0.01, band=0.06)
    assert wide.turnover[2] == 0.0 and wide.costs[2] == 0.0
    np.testing.assert_allclose(wide.weights[2], wide.weights[1], atol=0)
    narrow = simulate(r, tg, 0.01, band=0.04)
    # value before day 2's trade: 0.55 + 0.45 - 0.01 = 0.99; drifted weights 0.55/0.99, 0.45/0.99
    drifted = np.array([0.55, 0.45]) / 0.99
    assert narrow.turnover[2] == pytest.approx(np.abs(0.5 - drifted).sum(), abs=1e-15)
    # a band between the two distances trades only the name outside it
    r2 = np.array([[0.0, 0.0], [0.20, 0.0], [0.0, 0.0]])
    one = simulate(r2, tg, 0.0, band=0.05)  # drifted 0.6/1.1=0.545 (4.5 pts), 0.5/1.1=0.4545 (4.5 pts)
    assert one.turnover[2] == 0.0
    tg3 = tg.copy()
    tg3[2] = [0.5, 0.40]  # the first stays 4.5 pts off (kept), the second is 5.5 pts off (trades)
    part = simulate(r2, tg3, 0.0, band=0.05)
    np.testing.assert_allclose(part.weights[2], [0.6 / 1.1, 0.40], atol=1e-15)
    assert part.turnover[2] == pytest.approx(0.5 / 1.1 - 0.40, abs=1e-15)


def test_short_with_borrow_by_hand():
    # Long 100% A, short 50% B (proceeds in cash: 1.5 cash... value = 1.0 - 0.5 + 0.5 = 1).
    r = np.array([[0.0, 0.0], [0.0, 0.10], [0.0, 0.0]])
    tg = np.full((3, 2), np.nan)
    tg[0] = [1.0, -0.5]
    res = simulate(r, tg, 0.0, borrow_rate=0.001)
    # day 1: short of 0.5 held over the period costs 0.0005; B rises 10% -> short loses 0.05
    assert res.returns[1] == pytest.approx(-0.05 - 0.0005, abs=1e-15)
    assert res.borrow[1] == pytest.approx(0.0005, abs=1e-15)
    # day 2: short notional is now 0.55 of a book worth 0.9495
    assert res.borrow[2] == pytest.approx(0.001 * 0.55 / 0.9495, abs=1e-15)
    assert res.returns[2] == pytest.approx(-0.001 * 0.55 / 0.9495, abs=1e-15)
    np.testing.assert_allclose(res.weights[1], [1.0 / 0.9495, -0.55 / 0.9495], atol=1e-15)
    # costs on a short: the short's notional is traded like any other
    c = simulate(r, tg, 0.01)
    assert c.turnover[0] == pytest.approx(1.5) and c.costs[0] == pytest.approx(0.015)


def test_per_name_costs_by_hand():
    r = np.zeros((2, 2))
    tg = np.full((2, 2), np.nan)
    tg[0] = [0.6, 0.4]
    res = simulate(r, tg, np.array([0.001, 0.01]))  # e.g. an equity and a crypto rate
    assert res.costs[0] == pytest.approx(0.6 * 0.001 + 0.4 * 0.01, abs=1e-15)
    with pytest.raises(ValueError, match="one per name"):
        simulate(r, tg, np.array([0.001, 0.01, 0.0]))


def test_liquidation_and_untradable_by_hand():
    # B is held 50/50, has no price on day 2 (untradable: a rebalance keeps it), and is delisted on day 3:
    # sold at its last price (valuation carried), the proceeds stay in cash.
    r = np.array([[0.0, 0.0], [0.0, 0.10], [0.0, np.nan], [0.10, np.nan], [0.0, np.nan]])
    tg = np.full((5, 2), np.nan)
    tg[0] = [0.5, 0.5]
    tg[2] = [0.5, 0.5]
    tradable = ~np.isnan(r)
    liquidate = np.zeros((5, 2), dtype=bool)
    liquidate[3:, 1] = True
    res = simulate(r, tg, 0.01, tradable=tradable, liquidate=liquidate)
    ref, weights = reference_loop(r, tg, 0.01, tradable=tradable, liquidate=liquidate)
    # day 2: only A trades (B keeps its drifted weight); value 1.04, A 0.5 -> 0.52: traded 0.02
    assert res.turnover[2] == pytest.approx(0.02 / (0.5 + 0.55 - 0.01), abs=1e-15)
    assert len(res.liquidations) == 1 and res.liquidations[0][:2] == (3, 1)
    assert res.weights[3, 1] == 0.0 and res.weights[4, 1] == 0.0
    assert res.liquidations[0][2] == pytest.approx(ref["liquidations"][0][2], abs=1e-15)
    for key in ("returns", "turnover", "costs"):
        np.testing.assert_allclose(getattr(res, key), ref[key], atol=1e-15)
    np.testing.assert_allclose(res.weights, weights, atol=1e-15)


def test_all_features_match_per_day_loop():
    T, N = 250, 6
    rng, r, tg, rows = _random_case(13, T, N, 0.0003, 0.02, 3, 20)
    tg[rows] = rng.normal(0.15, 0.25, (len(rows), N))  # longs and shorts
    liquidate = np.zeros((T, N), dtype=bool)
    liquidate[180:, 4] = True
    rates = rng.uniform(0.0, 0.003, N)
    kw = dict(borrow_rate=0.0002, band=0.03, tradable=~np.isnan(r), liquidate=liquidate)
    res = simulate(r, tg, rates, **kw)
    ref, weights = reference_loop(r, tg, rates, **kw)
    for key in ("returns", "turnover", "costs"):
        np.testing.assert_allclose(getattr(res, key), ref[key], rtol=0, atol=1e-12, err_msg=key)
    np.testing.assert_allclose(res.weights, weights, rtol=0, atol=1e-12)
    assert [x[:2] for x in res.liquidations] == [x[:2] for x in ref["liquidations"]] != []


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


@pytest.mark.parametrize("n", [0, 1, 7, 8, 13, 128, 129, 500, 1031, 5000])
def test_kernel_sums_bit_identical_to_numpy(n):
    from tvquant_assets.core.simulators.vectorized import _pairwise_sum

    rng = np.random.default_rng(n)
    a = rng.normal(size=n) * rng.exponential(size=n) * 1e3
    assert _pairwise_sum(a, n, np.empty((64, 4))) == a.sum()


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
