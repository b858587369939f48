"""Drift monitor: orders by hand, partial vs full, and books that are point in time and range == per date."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.backtest import books
from tvquant_assets.core.drift import COLUMNS, drift_orders


def test_orders_by_hand_partial_and_full():
    held = pd.Series({"A": 0.55, "B": 0.43, "C": 0.0})
    target = pd.Series({"A": 0.50, "B": 0.45, "C": 0.05})
    prices = pd.Series({"A": 110.0, "B": 45.0, "C": 20.0})
    # drift = 0.05 + 0.02 + 0.05 = 0.12 > 0.10: partial with band 0.03 trades A and C, not B
    f = drift_orders("custom/ew", held, target, prices, 1_000_000.0, threshold=0.10, band=0.03, mode="partial")
    assert list(f.columns) == list(COLUMNS) and {c: str(t) for c, t in f.dtypes.items()} == COLUMNS
    o = f.set_index("symbol")
    assert o.loc["A", "side"] == "sell" and o.loc["A", "notional"] == pytest.approx(50_000.0)
    assert o.loc["A", "quantity"] == pytest.approx(50_000.0 / 110.0)
    assert o.loc["C", "side"] == "buy" and o.loc["C", "quantity"] == pytest.approx(2_500.0)
    assert "(entry)" in o.loc["C", "reason"]
    assert o.loc["B", "side"] == "none" and "within band" in o.loc["B", "reason"]
    np.testing.assert_allclose(f["drift"], 0.12, rtol=1e-12)
    full = drift_orders("custom/ew", held, target, prices, 1_000_000.0, threshold=0.10, band=0.03, mode="full")
    assert full.set_index("symbol").loc["B", "notional"] == pytest.approx(20_000.0)
    quiet = drift_orders("custom/ew", held, target, prices, 1e6, threshold=0.2)
    assert quiet["side"].eq("none").all() and quiet["notional"].eq(0.0).all()
    no_price = drift_orders("x", held, target, prices.drop("C"), 1e6, threshold=0.1, mode="full")
    assert no_price.set_index("symbol").loc["C", "reason"] == "no price: cannot size an order"


@pytest.fixture(scope="module")
def close() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset().loc["2019-01":"2019-12"].iloc[:, :6]


def test_books_drift_and_are_point_in_time(close):
    dec = pd.DataFrame(1.0 / 6, index=close.index[~close.index.to_period("M").duplicated()], columns=close.columns)
    dates = list(close.index[100:130])
    whole = books(close, dec, close.index[0], dates, 0.0006)
    for d in dates[::7]:
        one = books(close, dec, close.index[0], [d], 0.0006)[d]
        assert one[0].equals(whole[d][0]) and one[2] == whole[d][2]
    d = dates[10]
    held, target, equity = whole[d]
    # drifted from the month's first close: weights proportional to each name's growth since then
    first = dec.index[dec.index <= d][-1]
    growth = close.loc[d] / close.loc[first]
    np.testing.assert_allclose(held.to_numpy(), (growth / 6 / (growth / 6).sum() * held.sum()).to_numpy(), rtol=1e-12)
    assert target.eq(1.0 / 6).all() and equity > 0
    future = close.copy()
    future.loc[future.index > d] *= 1.5
    later = pd.concat([dec.loc[:d], pd.DataFrame(0.5, index=[d + pd.Timedelta(days=1)], columns=close.columns)])
    again = books(future, later.sort_index(), close.index[0], [d], 0.0006)[d]
    assert again[0].equals(held) and again[1].equals(target) and again[2] == equity
