"""Execution-shortfall feedback: nautilus fills with a planted slippage move the vectorized simulator's
slippage estimate by hand-computed amounts, point in time and within bounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.backtest import event_driven_fills, walk_forward
from tvquant_assets.core.execution_feedback import calibrated_rates, shortfall_table, slippage_path

DAYS = pd.bdate_range("2024-01-01", periods=8)
SYMBOLS = ["AAA", "BBB"]
CLASSES = {"AAA": "stock", "BBB": "stock"}
COMMISSION = 1e-4
SETTINGS = dict(halflife=1.0, min_fills=1, min_bps=0.0, max_bps=50.0)  # alpha = 0.5


def _market(price: float = 100.0) -> pd.DataFrame:
    return pd.DataFrame(price, index=DAYS, columns=SYMBOLS)


def _decisions() -> dict[str, pd.DataFrame]:
    w = pd.DataFrame([[0.5, 0.4], [0.2, 0.7]], index=[DAYS[0], DAYS[3]], columns=SYMBOLS)
    return {"e/p": w}


def _fills(close: pd.DataFrame, prob: float, horizon=DAYS[-1]):
    return event_driven_fills(close, _decisions(), DAYS[0], horizon, np.full(2, COMMISSION), tick=0.01,
                              fill_model={"prob_slippage": prob, "random_seed": 3})


def test_planted_one_tick_slippage_moves_the_estimate_by_hand():
    fills, days, per_day, skipped = _fills(_market(), prob=1.0)
    assert not skipped and len(fills) == 4  # two buys on day 0, one sell and one buy on day 3
    table = shortfall_table(fills, days, SYMBOLS, CLASSES, per_day)
    # every fill slipped one tick (0.01) against the order at a price of 100: +1 bp, buys and sells alike
    np.testing.assert_allclose(table["shortfall_bps"], 1.0, rtol=1e-9)
    path = slippage_path(table, {"stock": 5.0}, days, **SETTINGS)
    est = path.estimate["stock"]
    # 5 -> 5 + 0.5 * (1 - 5) = 3 after day 0, -> 3 + 0.5 * (1 - 3) = 2 after day 3
    np.testing.assert_allclose(est.to_numpy(), [3, 3, 3, 2, 2, 2, 2, 2], rtol=1e-9)
    np.testing.assert_allclose(path.before["stock"].to_numpy(), [5, 3, 3, 3, 2, 2, 2, 2], rtol=1e-9)
    assert path.fills["stock"].tolist() == [2, 0, 0, 2, 0, 0, 0, 0] and path.total["stock"].iloc[-1] == 4

    # the vectorized simulator then charges commission + the estimate in force: 1 + 3 bps on day 3's trade
    rates = calibrated_rates(path, pd.Series(COMMISSION, index=SYMBOLS), CLASSES)
    np.testing.assert_allclose(rates.loc[DAYS[3]], 4e-4, rtol=1e-12)
    np.testing.assert_allclose(rates.loc[DAYS[0]], 6e-4, rtol=1e-12)
    close = _market().mul(np.linspace(1.0, 1.07, 8), axis=0)
    fixed = walk_forward(close, _decisions(), DAYS[0], [DAYS[-1]], 6e-4, 252)[DAYS[-1]]
    fed = walk_forward(close, _decisions(), DAYS[0], [DAYS[-1]], rates, 252)[DAYS[-1]]
    turnover_0, turnover_3 = 0.9, float(fed["turnover"].iloc[0]) - 0.9
    assert fed["costs"].iloc[0] == pytest.approx(6e-4 * turnover_0 + 4e-4 * turnover_3, rel=1e-9)
    assert fixed["costs"].iloc[0] == pytest.approx(6e-4 * (turnover_0 + turnover_3), rel=1e-9)


def test_no_slippage_pulls_the_estimate_to_zero_and_no_fills_keeps_the_prior():
    fills, days, per_day, _ = _fills(_market(), prob=0.0)
    table = shortfall_table(fills, days, SYMBOLS, CLASSES, per_day)
    assert (table["shortfall_bps"] == 0.0).all()
    path = slippage_path(table, {"stock": 5.0}, days, **SETTINGS)
    assert path.estimate["stock"].iloc[-1] == pytest.approx(1.25)  # 5 -> 2.5 -> 1.25
    none = slippage_path(table.iloc[:0], {"stock": 5.0}, days, **SETTINGS)
    assert (none.estimate["stock"] == 5.0).all() and (none.before["stock"] == 5.0).all()


def test_min_fills_pools_and_bounds_clip():
    fills, days, per_day, _ = _fills(_market(), prob=1.0)
    table = shortfall_table(fills, days, SYMBOLS, CLASSES, per_day)
    late = slippage_path(table, {"stock": 5.0}, days, **{**SETTINGS, "min_fills": 3})
    # day 0 has 2 fills (< 3): the prior holds; day 3 pools all 4 fills (+1 bp) in one step
    np.testing.assert_allclose(late.estimate["stock"].to_numpy(), [5, 5, 5, 3, 3, 3, 3, 3], rtol=1e-9)
    big = table.assign(shortfall_bps=500.0)
    capped = slippage_path(big, {"stock": 5.0}, days, **{**SETTINGS, "max_bps": 20.0})
    assert capped.estimate["stock"].max() == 20.0
    neg = table.assign(shortfall_bps=-500.0)
    floored = slippage_path(neg, {"stock": 5.0}, days, **{**SETTINGS, "min_bps": 0.5})
    assert floored.estimate["stock"].min() == 0.5 and floored.before["stock"].iloc[0] == 5.0


def test_point_in_time_future_fills_do_not_move_past_estimates():
    close = _market().mul(np.linspace(1.0, 1.07, 8), axis=0)
    fills, days, per_day, _ = _fills(close, prob=1.0)
    d = DAYS[2]
    # perturbing prices after d changes later fills but none stamped <= d
    shocked = close.copy()
    shocked.loc[DAYS[3]:] *= 1.3
    fills2, _, _, _ = _fills(shocked, prob=1.0)
    upto = [f for f in fills if f[0] <= 2]
    assert upto == [f for f in fills2 if f[0] <= 2] and fills != fills2
    # perturbing the shortfalls after d leaves every estimate and rate <= d unchanged
    table = shortfall_table(fills, days, SYMBOLS, CLASSES, per_day)
    worse = table.copy()
    worse.loc[worse["day"] > d, "shortfall_bps"] += 40.0
    a = slippage_path(table, {"stock": 5.0}, days, **SETTINGS)
    b = slippage_path(worse, {"stock": 5.0}, days, **SETTINGS)
    pd.testing.assert_frame_equal(a.estimate.loc[:d], b.estimate.loc[:d])
    assert not a.estimate.equals(b.estimate)
    # the rate of day t uses fills < t only: day 3's rate is the same even though its own fills changed
    commission = pd.Series(COMMISSION, index=SYMBOLS)
    ra, rb = calibrated_rates(a, commission, CLASSES), calibrated_rates(b, commission, CLASSES)
    pd.testing.assert_frame_equal(ra.loc[:DAYS[3]], rb.loc[:DAYS[3]])
