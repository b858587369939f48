"""The paper account's session: orders of D-1 filled by nautilus's simulated exchange at D's open, against
hand-computed fills, commissions, cash and P&L."""

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core import paper
from tvquant_assets.core.execution_feedback import estimate_step, slippage_path

DECIDED, SESSION = pd.Timestamp("2020-03-02"), pd.Timestamp("2020-03-03")


def orders():
    return [paper.Order("AAA", "buy", 10, 99.00, DECIDED), paper.Order("BBB", "sell", 40, 50.10, DECIDED),
            paper.Order("CCC", "buy", 5, 20.00, DECIDED)]


def run(fill_model=None):
    account = paper.Account(10_000.0, {"BBB": 30}, {"BBB": 50.00}, candidate="custom/equal_weight")
    opens = pd.Series({"AAA": 100.00, "BBB": 50.25})  # CCC did not open on the session: its order waits
    closes = pd.Series({"AAA": 101.00, "BBB": 50.00})
    commission = pd.Series({"AAA": 0.001, "BBB": 0.001, "CCC": 0.001})
    return account, *paper.session(account, orders(), opens, closes, commission, SESSION, tick=0.01,
                                   fill_model=fill_model)


def test_a_buy_and_a_sell_fill_at_the_next_open_with_the_commission():
    before, after, fills = run()
    by = {f.symbol: f for f in fills}
    assert set(by) == {"AAA", "BBB"}
    assert (by["AAA"].side, by["AAA"].quantity, by["AAA"].price) == ("buy", 10, 100.00)
    assert (by["BBB"].side, by["BBB"].quantity, by["BBB"].price) == ("sell", 40, 50.25)
    assert by["AAA"].commission == pytest.approx(1.00)  # 10 x 100.00 x 10 bps
    assert by["BBB"].commission == pytest.approx(2.01)  # 40 x 50.25 x 10 bps
    assert by["AAA"].shortfall_bps == pytest.approx(1e4 * (100.00 - 99.00) / 99.00)  # paid up vs the close
    assert by["BBB"].shortfall_bps == pytest.approx(-1e4 * (50.25 - 50.10) / 50.10)  # sold above the close
    assert all(f.order_date == DECIDED for f in fills)
    # cash 10,000 - 1,000 - 1.00 + 2,010 - 2.01; BBB goes from 30 long to 10 short (a margin account)
    assert after.cash == pytest.approx(11_006.99)
    assert after.positions == {"AAA": 10, "BBB": -10}
    assert after.marks == {"AAA": 101.00, "BBB": 50.00}
    assert before.equity == pytest.approx(11_500.00)
    assert after.equity == pytest.approx(11_006.99 + 10 * 101.00 - 10 * 50.00)
    assert [(o.symbol, o.side, o.quantity) for o in after.pending] == [("CCC", "buy", 5)]
    assert after.candidate == "custom/equal_weight"


def test_the_fill_model_slips_each_fill_one_tick_against_the_order():
    _, after, fills = run({"prob_slippage": 1.0, "random_seed": 0})
    by = {f.symbol: f for f in fills}
    assert by["AAA"].price == pytest.approx(100.01) and by["BBB"].price == pytest.approx(50.24)
    assert by["AAA"].commission == pytest.approx(1.00) and by["BBB"].commission == pytest.approx(2.01)  # cents
    assert after.cash == pytest.approx(10_000 - 10 * 100.01 - 1.00 + 40 * 50.24 - 2.01)


def test_a_pending_order_nets_with_the_next_ones_and_fills_when_its_symbol_opens():
    _, after, _ = run()
    later = [paper.Order("CCC", "sell", 2, 21.00, SESSION)]
    nxt, fills = paper.session(after, later, pd.Series({"CCC": 20.50}), pd.Series({"CCC": 20.40}),
                               pd.Series({"CCC": 0.0}), SESSION + pd.Timedelta(days=1))
    assert [(f.symbol, f.side, f.quantity, f.price) for f in fills] == [("CCC", "buy", 3, 20.50)]
    assert nxt.positions["CCC"] == 3 and nxt.marks["CCC"] == 20.40 and nxt.pending == []
    assert nxt.marks["AAA"] == 101.00  # no bar for AAA that day: its last mark stays


def test_drift_rows_become_whole_unit_orders():
    sides = pd.Series({"A": "buy", "B": "sell_short", "C": "buy_to_cover", "D": "sell", "E": "none", "F": "buy"})
    qty = pd.Series({"A": 9.6, "B": 3.2, "C": 1.5, "D": 0.4, "E": 7.0, "F": np.nan})
    made = paper.to_orders(sides, qty, pd.Series(1.0, index=sides.index), DECIDED)
    assert [(o.symbol, o.side, o.quantity) for o in made] == [("A", "buy", 10), ("B", "sell", 3), ("C", "buy", 2)]


def test_the_frame_round_trips_the_account():
    _, after, fills = run()
    est = {"default": paper.Estimate(4.5, 10.0, 20.0, 2.0, 2)}
    f = paper.frame(after, fills, {}, est, pnl=16.99, day_return=16.99 / 11_500, backtest_return=0.001)
    assert list(f["kind"]) == ["account", "position", "position", "fill", "fill", "pending", "slippage"]
    back, est_back = paper.from_frame(f)
    assert (back.cash, back.positions, back.marks, back.pending, back.candidate) == \
        (after.cash, after.positions, after.marks, after.pending, after.candidate)
    assert est_back == est
    acc = f.iloc[0]
    assert acc["return_shortfall"] == pytest.approx(0.001 - 16.99 / 11_500)


def test_learning_day_by_day_from_paper_fills_is_the_feedback_over_all_of_them():
    """The paper stage steps the estimate one session at a time from its own partition; that is the
    execution-shortfall feedback's estimate over the same fills."""
    days = pd.DatetimeIndex(pd.bdate_range("2020-03-02", periods=6))
    rng = np.random.default_rng(0)
    rows = [{"day": days[t], "symbol": "X", "asset_class": "stock", "side": "buy", "quantity": 1.0,
             "price": 1.0, "reference": 1.0, "notional": float(rng.uniform(1, 5)),
             "shortfall_bps": float(rng.normal(8, 3))} for t in (0, 1, 1, 3, 5) for _ in range(2)]
    table = pd.DataFrame(rows)
    path = slippage_path(table, {"stock": 5.0}, days, halflife=2.0, min_fills=3, min_bps=0.0, max_bps=50.0)
    value, pool, alpha = 5.0, (0.0, 0.0, 0.0), 1.0 - 0.5 ** (1.0 / 2.0)
    for t, d in enumerate(days):
        mine = table[table["day"] == d]
        if len(mine):
            value, pool = estimate_step(value, pool, float((mine["notional"] * mine["shortfall_bps"]).sum()),
                                        float(mine["notional"].sum()), len(mine), alpha=alpha, min_fills=3,
                                        min_bps=0.0, max_bps=50.0)
        assert value == pytest.approx(path.estimate["stock"].iloc[t], abs=1e-12)
    assert value != 5.0
