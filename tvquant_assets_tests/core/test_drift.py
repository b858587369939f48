"""Drift monitor: orders by hand, partial vs full, and books that are point in time and range == per date."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.backtest import books
from tvquant_assets.core.drift import COLUMNS, drift_orders, order_instruments


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


# Execution ranking: cluster 1 = A, B, C (execution scores 0.9, 0.5, 0.2), cluster 2 = D, E (0.7, 0.3).
RANK_HELD = pd.Series({"A": 0.20, "B": 0.10, "C": 0.05, "D": 0.30, "E": 0.25})
RANK_TARGET = pd.Series({"A": 0.25, "B": 0.15, "C": 0.10, "D": 0.25, "E": 0.20})
RANK_PRICES = pd.Series({"A": 10.0, "B": 20.0, "C": 40.0, "D": 50.0, "E": 25.0})
CLUSTERS = pd.Series({"A": 1, "B": 1, "C": 1, "D": 2, "E": 2})
SCORES = pd.Series({"A": 0.9, "B": 0.5, "C": 0.2, "D": 0.7, "E": 0.3})


def _ranked(**kw) -> pd.DataFrame:
    f = drift_orders("x", RANK_HELD, RANK_TARGET, kw.pop("prices", RANK_PRICES), 1000.0, threshold=0.1,
                     mode="full", clusters=CLUSTERS, execution_score=SCORES, **kw)
    assert list(f.columns) == list(COLUMNS) and {c: str(t) for c, t in f.dtypes.items()} == COLUMNS
    return f.set_index("symbol")


def test_order_limit_restores_the_largest_cluster_gap_in_execution_rank():
    # cluster 1 needs +0.15, cluster 2 -0.10: with 2 orders cluster 1 goes first; A (rank 1) and B (rank 2)
    # take their own +0.05 each and C's +0.05 (cut by the limit) goes to A: A +0.10, B +0.05; cluster 2 waits.
    o = _ranked(max_orders=2)
    assert o["execution_rank"].to_dict() == {"A": 1, "B": 2, "C": 3, "D": 1, "E": 2}
    assert o.loc["A", "side"] == "buy" and o.loc["A", "notional"] == pytest.approx(100.0)
    assert o.loc["A", "quantity"] == pytest.approx(10.0)
    assert o.loc["B", "side"] == "buy" and o.loc["B", "notional"] == pytest.approx(50.0)
    assert (o.loc[["C", "D", "E"], "side"] == "none").all()
    assert o.loc["C", "reason"] == "order limit: cluster 1 gap filled through A in execution rank"
    assert "fills C order limit" in o.loc["A", "reason"] and o.loc["D", "reason"] == "order limit: not traded"
    # without limits every name trades its own gap
    free = drift_orders("x", RANK_HELD, RANK_TARGET, RANK_PRICES, 1000.0, threshold=0.1, mode="full",
                        clusters=CLUSTERS, execution_score=SCORES).set_index("symbol")
    np.testing.assert_allclose(free["notional"].to_numpy(), 50.0)


def test_a_name_without_a_price_is_filled_by_its_best_ranked_cluster_mate():
    o = _ranked(prices=RANK_PRICES.drop("B"))
    # B's +0.05 cannot trade: cluster 1 still gets +0.15, A (rank 1) takes 0.05 + 0.05
    assert o.loc["A", "notional"] == pytest.approx(100.0) and o.loc["C", "notional"] == pytest.approx(50.0)
    assert o.loc["B", "side"] == "none" and o.loc["B", "reason"].startswith("no price: cluster 1 gap filled through A")
    assert o.loc["D", "side"] == "sell" and o.loc["D", "notional"] == pytest.approx(50.0)
    assert o.loc["E", "notional"] == pytest.approx(50.0)
    assert o["notional"].sum() == pytest.approx(250.0)
    assert o.loc["A", "cost"] == 0.0  # no cost rate given


def test_traded_notional_limit_clips_in_sequence_and_costs():
    o = _ranked(max_traded=0.12, cost_rate=pd.Series(0.001, index=list("ABCDE")))
    # cluster 1 first: A 0.05, B 0.05, C clipped to 0.02; nothing left for cluster 2
    np.testing.assert_allclose(o.loc[["A", "B", "C", "D", "E"], "notional"].to_numpy(), [50, 50, 20, 0, 0])
    assert "clipped at max traded 0.1200" in o.loc["C", "reason"]
    assert o.loc["A", "cost"] == pytest.approx(0.05)


def test_opposite_trades_inside_a_cluster_net_out_under_a_limit():
    held = pd.Series({"A": 0.30, "B": 0.20, "D": 0.50})
    target = pd.Series({"A": 0.20, "B": 0.30, "D": 0.50})
    o = drift_orders("x", held, target, RANK_PRICES, 1000.0, threshold=0.1, mode="full", clusters=CLUSTERS,
                     execution_score=SCORES, max_orders=5).set_index("symbol")
    assert (o["side"] == "none").all() and "net out" in o.loc["A", "reason"]


def test_orders_name_the_instrument_they_trade():
    """``primary``: the symbol; ``alternative``: D's alternative (e.g. the perpetual of a spot pair), the
    symbol when D lists none, and its order says so."""
    f = drift_orders("custom/ew", pd.Series({"BTC": 0.6, "LINK": 0.4}), pd.Series({"BTC": 0.5, "LINK": 0.5}),
                     pd.Series({"BTC": 60_000.0, "LINK": 15.0}), 1e6, threshold=0.1)
    assert list(f["instrument"]) == ["BTC", "LINK"]
    alt = order_instruments(f, pd.Series({"BTC": "BTC.P", "LINK": ""}), "alternative")
    assert list(alt["instrument"]) == ["BTC.P", "LINK"] and list(alt["quantity"]) == list(f["quantity"])
    assert alt["reason"].iloc[1].endswith("; no alternative on D: trades the symbol")
    assert alt["reason"].iloc[0] == f["reason"].iloc[0]
    assert order_instruments(f, pd.Series({"BTC": "BTC.P"}), "primary").equals(f)
    with pytest.raises(ValueError, match="drift instrument 'cheapest'"):
        order_instruments(f, pd.Series(dtype=str), "cheapest")
