"""Drift-triggered trading (``rebalance.rule: drift``): a decision trades only when the book's drift exceeds
the threshold, by hand on two assets, the same trade days for every simulator, the drift monitor's orders
equal to the trade, and no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.backtest import books, walk_forward
from tvquant_assets.core.drift import drift_orders
from tvquant_assets.core.simulators.vectorized import simulate

DAYS = pd.bdate_range("2021-01-04", periods=6)
# A rises 10%, 5%, 10%, then both flat; B flat. Targets 50/50 every day.
CLOSE = pd.DataFrame({"A": [100.0, 110.0, 115.5, 127.05, 127.05, 127.05], "B": 50.0}, index=DAYS)
DAILY = pd.DataFrame(0.5, index=DAYS, columns=["A", "B"])


def test_two_assets_by_hand_trade_only_when_the_drift_crosses():
    # no costs: after day 1 A holds 0.55 / 1.05 = 0.5238 (drift 0.0476), day 2 0.5360 (0.0719), day 3 0.5596 (0.1191)
    a1 = 0.55 / 1.05
    a2 = a1 * 1.05 / (a1 * 1.05 + (1 - a1))
    a3 = a2 * 1.10 / (a2 * 1.10 + (1 - a2))
    drifts = [2 * (a - 0.5) for a in (a1, a2, a3)]
    assert drifts[1] < 0.08 < drifts[2]  # the threshold is crossed on day 3 only
    res = simulate(CLOSE.pct_change().to_numpy(), DAILY.to_numpy(), 0.0, threshold=0.08)
    assert res.triggered.tolist() == [True, False, False, True, False, False]
    np.testing.assert_allclose(res.pre_trade[1:4, 0], [a1, a2, a3], rtol=1e-12)
    np.testing.assert_allclose(res.turnover, [1.0, 0, 0, drifts[2], 0, 0], rtol=1e-12)
    # untouched days carry the drifted book; day 3 is back on target
    np.testing.assert_allclose(res.weights[2, 0], a2, rtol=1e-12)
    np.testing.assert_allclose(res.weights[3], [0.5, 0.5], rtol=1e-12)
    # threshold 0 is the plain simulation: every row trades
    plain = simulate(CLOSE.pct_change().to_numpy(), DAILY.to_numpy(), 0.001)
    assert plain.triggered is None and (plain.turnover[1:4] > 0).all()

    # walk_forward and the drift monitor agree: orders on day 3 only, sized as the trade (with costs: a
    # post-trade book holds target / (1 - cost), so the drift path moves slightly; day 3 still crosses)
    boards = walk_forward(CLOSE, {"x/ew": DAILY}, DAYS[0], DAYS, 0.001, 252, threshold=0.08)
    turnover = np.diff([0.0] + [boards[d]["turnover"].iloc[0] for d in DAYS])
    assert (turnover > 0).tolist() == [True, False, False, True, False, False]
    np.testing.assert_allclose(turnover[3], drifts[2], rtol=1e-2)
    held = books(CLOSE, DAILY, DAYS[0], DAYS, 0.001, threshold=0.08)
    for k, d in enumerate(DAYS[1:], start=1):
        w, target, equity = held[d]
        o = drift_orders("x/ew", w, target, CLOSE.loc[d], 1e6 * equity, 0.08, mode="full")
        sent = o[o["side"] != "none"]
        assert float(sent["notional"].sum()) / (1e6 * equity) == pytest.approx(turnover[k], abs=1e-12)
    assert held[DAYS[3]][0]["A"] == pytest.approx(a3, rel=1e-2)  # the book before day 3's trade
    # partial mode: the band keeps names within it; here both are off by the same amount
    partial = walk_forward(CLOSE, {"x/ew": DAILY}, DAYS[0], DAYS, 0.0, 252, threshold=0.08, band=0.05)
    assert partial[DAYS[-1]]["turnover"].iloc[0] == pytest.approx(1.0 + drifts[2], rel=1e-12)


@pytest.fixture(scope="module")
def close() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset().loc["2020-01":"2020-06"].iloc[:, :5]


def _daily_targets(close: pd.DataFrame) -> pd.DataFrame:
    """Fresh targets every day that move slowly (a rolling inverse-volatility book, point in time)."""
    vol = close.pct_change().rolling(60, min_periods=2).std().bfill()
    inv = 1.0 / vol
    return inv.div(inv.sum(axis=1), axis=0)


def test_every_simulator_trades_on_the_gated_days(close):
    dec = _daily_targets(close)
    dates = list(close.index)
    boards = walk_forward(close, {"x/iv": dec}, close.index[0], dates, 0.0006, 252, threshold=0.05,
                          simulators=["vectorized", "cvxportfolio"])
    per_sim = {}
    for sim in ("vectorized", "cvxportfolio"):
        t = np.array([boards[d].set_index("simulator").loc[sim, "turnover"] for d in dates])
        per_sim[sim] = np.diff(np.r_[0.0, t]) > 1e-9
    assert 3 <= per_sim["vectorized"].sum() < len(dates) // 3
    assert (per_sim["cvxportfolio"] == per_sim["vectorized"]).all()


@pytest.mark.parametrize("mode, band", [("partial", 0.02), ("full", 0.0)])
def test_drift_monitor_orders_are_the_backtest_trade_every_day(close, mode, band):
    dec = _daily_targets(close)
    dates = list(close.index[1:])
    boards = walk_forward(close, {"x/iv": dec}, close.index[0], [close.index[0], *dates], 0.0006, 252,
                          threshold=0.05, band=band)
    held = books(close, dec, close.index[0], dates, 0.0006, threshold=0.05, band=band)
    traded = 0
    for prev, d in zip([close.index[0], *dates], dates):
        turnover = boards[d]["turnover"].iloc[0] - boards[prev]["turnover"].iloc[0]
        w, target, equity = held[d]
        o = drift_orders("x/iv", w, target, close.loc[d], equity, 0.05, band, mode)
        assert o["notional"].sum() / equity == pytest.approx(turnover, abs=1e-12), d
        traded += turnover > 0
    assert 3 <= traded < len(dates) // 3


def test_no_look_ahead_and_range_equals_per_date(close, perturbed_after):
    dec = _daily_targets(close)
    dates = list(close.index[20:90:7])
    whole = walk_forward(close, {"x/iv": dec}, close.index[0], dates, 0.0006, 252, threshold=0.05)
    held = books(close, dec, close.index[0], dates, 0.0006, threshold=0.05)
    for d in dates[::3]:
        future = perturbed_after(close, d, seed=3)
        later = pd.concat([dec.loc[:d], _daily_targets(future).loc[d + pd.Timedelta(days=1):]])
        one = walk_forward(future, {"x/iv": later}, close.index[0], [d], 0.0006, 252, threshold=0.05)[d]
        pd.testing.assert_frame_equal(one, whole[d])
        w, target, equity = books(future, later, close.index[0], [d], 0.0006, threshold=0.05)[d]
        assert w.equals(held[d][0]) and target.equals(held[d][1]) and equity == held[d][2]


def test_rule_drift_is_refused_with_limits_it_cannot_simulate():
    from tvquant_assets.manifest.schema import Manifest

    base = {"name": "x", "start": "2020-01-02", "rebalance": {"rule": "drift"}}
    Manifest.model_validate(base)
    with pytest.raises(ValueError, match="backtest.drift.max_orders and backtest.drift.max_traded") as err:
        Manifest.model_validate({**base, "backtest": {"drift": {"max_orders": 3, "max_traded": 0.1}}})
    assert "rebalance.rule drift" in str(err.value)
    with pytest.raises(ValueError, match="backtest.execution next_open"):
        Manifest.model_validate({**base, "backtest": {"execution": "next_open"}})
    with pytest.raises(ValueError, match="backtest.execution_feedback.enabled"):
        Manifest.model_validate({**base, "backtest": {"execution_feedback": {"enabled": True}}})
    # the tournament decides on every partition date
    from tvquant_assets.calendar import rebalance_dates

    assert rebalance_dates(DAYS, Manifest.model_validate(base).rebalance) == list(DAYS)
    with pytest.raises(ValueError, match="needs execution close"):
        walk_forward(CLOSE, {"x/ew": DAILY}, DAYS[0], DAYS, 0.0, 252, threshold=0.08, execution="next_open",
                     open_=CLOSE)
