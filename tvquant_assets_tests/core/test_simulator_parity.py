"""The four simulators on the same decisions and data: vectorbt, cvxportfolio and nautilus vs vectorized.

Small on purpose (5 names, one year of skfolio's S&P 500 closes). Tolerances:
* vectorbt, no costs: equal daily returns to 1e-10.
* cvxportfolio, linear per-name costs, longs and shorts: daily returns to 1e-12 and far below 1 bp/yr.
* nautilus (event-driven, whole shares on a 1e8 book, prices rounded to 6 decimals): daily returns within
  2e-6 and a year's compounded return within 1e-5 (0.1 bp); the residual is the share rounding.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.backtest import walk_forward
from tvquant_assets.core.simulators import SIMULATORS, get_simulator
from tvquant_assets.errors import SimulatorError


@pytest.fixture(scope="module")
def close() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset().loc["2020-12-15":"2021-12-31"].iloc[:, :5]


def _monthly_targets(close: pd.DataFrame, seed: int, shorts: bool = False) -> np.ndarray:
    first = np.flatnonzero(~close.index.to_period("M").duplicated())[1:]  # from January: cash before
    tg = np.full(close.shape, np.nan)
    w = np.random.default_rng(seed).dirichlet(np.ones(close.shape[1]), len(first))
    tg[first] = w * 1.3 - 0.1 if shorts else w * 0.97
    return tg


def test_registry_has_four_simulators():
    assert set(SIMULATORS) == {"vectorized", "vectorbt", "cvxportfolio", "nautilus"}


def test_all_four_on_the_same_decisions(close):
    """One walk-forward, four simulators, no costs: the leaderboard rows agree."""
    tg = _monthly_targets(close, 1)
    rows = ~np.isnan(tg).all(axis=1)
    decisions = {"custom/random": pd.DataFrame(tg[rows], index=close.index[rows], columns=close.columns)}
    d = close.index[-1]
    board = walk_forward(close, decisions, close.index[0], [d], 0.0, 252,
                         simulators=["vectorized", "vectorbt", "cvxportfolio", "nautilus"])[d]
    by = board.set_index("simulator")
    ref = by.loc["vectorized"]
    assert abs(by.loc["vectorbt", "equity"] - ref["equity"]) < 1e-12
    assert abs(by.loc["cvxportfolio", "equity"] - ref["equity"]) < 1e-12
    assert abs(by.loc["nautilus", "equity"] - ref["equity"]) < 1e-5
    assert abs(by.loc["nautilus", "turnover"] - ref["turnover"]) < 1e-5


def test_vectorbt_equals_vectorized_without_costs(close):
    r, tg = close.pct_change().to_numpy(), _monthly_targets(close, 2)
    ours = get_simulator("vectorized")(r, tg, 0.0)
    ref = get_simulator("vectorbt")(r, tg, 0.0)
    assert np.abs(ours.returns - ref.returns).max() < 1e-10
    assert np.abs(ours.weights - ref.weights).max() < 1e-10
    assert np.abs(ours.turnover - ref.turnover).max() < 1e-10


def test_cvxportfolio_linear_costs_longs_and_shorts(close):
    r, tg = close.pct_change().to_numpy(), _monthly_targets(close, 3, shorts=True)
    rates = np.array([0.0006, 0.001, 0.0015, 0.0006, 0.003])  # per name, like costs per asset class
    ours = get_simulator("vectorized")(r, tg, rates)
    ref = get_simulator("cvxportfolio")(r, tg, rates)
    assert (tg[~np.isnan(tg)] < 0).any() and ours.costs.sum() > 1e-3
    assert np.abs(ours.returns - ref.returns).max() < 1e-12
    years = len(r) / 252
    gap = abs(np.prod(1 + ours.returns) ** (1 / years) - np.prod(1 + ref.returns) ** (1 / years))
    assert gap < 1e-4  # 1 bp per year (measured: ~1e-15)
    assert np.abs(ours.costs - ref.costs).max() < 1e-15


def test_nautilus_event_driven_within_share_rounding(close):
    r, tg = close.pct_change().to_numpy(), _monthly_targets(close, 4)
    fills: list = []
    ours = get_simulator("vectorized")(r, tg, 0.001)
    ref = get_simulator("nautilus")(r, tg, 0.001, fills=fills)
    assert np.abs(ours.returns - ref.returns).max() < 2e-6
    assert abs(np.prod(1 + ours.returns) - np.prod(1 + ref.returns)) < 1e-5
    assert np.abs(ours.costs - ref.costs).max() < 1e-7
    trade_days = np.flatnonzero(~np.isnan(tg).all(axis=1))
    assert {f[0] for f in fills} == set(trade_days)  # real fills on every rebalance day, none elsewhere
    assert all(isinstance(f[3], int) and f[3] > 0 for f in fills)  # whole shares
    with pytest.raises(SimulatorError, match="cannot short"):
        get_simulator("nautilus")(r, _monthly_targets(close, 4, shorts=True), 0.001)


def test_reference_simulators_refuse_what_they_do_not_model(close):
    r, tg = close.pct_change().to_numpy(), _monthly_targets(close, 5)
    for name in ("vectorbt", "cvxportfolio", "nautilus"):
        with pytest.raises(SimulatorError, match="drift_band"):
            get_simulator(name)(r, tg, 0.0, band=0.01)
