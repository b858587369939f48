"""Walk-forward backtest: hand-rolled reference, point in time, range == per-date, schema and ranking."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.backtest import COLUMNS, walk_forward
from tvquant_assets.hashing import df_hash

COST = 0.0006
START = pd.Timestamp("2018-03-01")


@pytest.fixture(scope="module")
def close() -> pd.DataFrame:
    from skfolio.datasets import load_sp500_dataset

    return load_sp500_dataset().loc["2017-10":"2019-12"].iloc[:, :8]


def monthly_equal_weight(close: pd.DataFrame) -> pd.DataFrame:
    # dated on the 1st calendar day: weekends and holidays map to the previous trading day's close
    dates = pd.date_range("2018-01-01", "2019-12-01", freq="MS")
    return pd.DataFrame(1.0 / close.shape[1], index=dates, columns=close.columns)


def weekly_random(close: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    # dated on Saturdays: each trades at Friday's close, which a Friday report must not see
    dates = pd.date_range("2018-02-03", "2019-12-28", freq="W-SAT")
    w = np.random.default_rng(seed).dirichlet(np.ones(close.shape[1]), len(dates)) * 0.9
    return pd.DataFrame(w, index=dates, columns=close.columns)


def test_equal_weight_matches_hand_rolled_loop(close):
    dec = monthly_equal_weight(close)
    days = close.index[(close.index >= START) & (close.index <= "2019-12-31")]
    trade_days = {days[max(days.searchsorted(d, side="right") - 1, 0)] for d in dec.index}
    px = close.loc[days].to_numpy()
    n = px.shape[1]
    dollars, cash, value, rets, turnover, costs = np.zeros(n), 1.0, 1.0, [], 0.0, 0.0
    for i, day in enumerate(days):
        if i:
            dollars = dollars * px[i] / px[i - 1]
        pre = dollars.sum() + cash
        if day in trade_days:
            traded = np.abs(pre / n - dollars).sum()
            dollars = np.full(n, pre / n)
            cash = pre - dollars.sum() - COST * traded
            turnover += traded / pre
            costs += COST * traded / pre
        new = dollars.sum() + cash
        rets.append(new / value - 1.0)
        value = new
    rets = np.array(rets)
    frame = walk_forward(close, {"ew": dec}, START, [days[-1]], COST, 252)[days[-1]]
    row = frame.iloc[0]
    assert row["equity"] == pytest.approx(value, rel=1e-12)
    assert row["turnover"] == pytest.approx(turnover, rel=1e-12)
    assert row["costs"] == pytest.approx(costs, rel=1e-12)
    assert row["sharpe"] == pytest.approx(rets.mean() / rets.std(ddof=1) * np.sqrt(252), rel=1e-9)
    assert row["ann_return"] == pytest.approx(value ** (252 / len(rets)) - 1, rel=1e-12)
    peak = np.maximum.accumulate(np.maximum(np.cumprod(1 + rets), 1.0))
    assert row["max_drawdown"] == pytest.approx((np.cumprod(1 + rets) / peak - 1).min(), rel=1e-12)
    assert row["day_return"] == pytest.approx(rets[-1], abs=1e-15)
    assert row["n_days"] == len(days) and row["rank"] == 1


def test_point_in_time(close):
    d = pd.Timestamp("2019-06-14")  # a Friday
    ew, rnd = monthly_equal_weight(close), weekly_random(close)
    base = walk_forward(
        close.loc[:d], {"ew": ew.loc[:d], "rnd": rnd.loc[:d]}, START, [d], COST, 252
    )[d]

    future = close.index > d
    noisy = close.copy()
    noisy.loc[future] = noisy.loc[future] * np.random.default_rng(9).uniform(0.5, 1.5, (future.sum(), close.shape[1]))
    rnd2 = weekly_random(close, seed=1)
    rnd2 = pd.concat([rnd.loc[:d], rnd2.loc[rnd2.index > d]])  # includes Saturday 2019-06-15 -> Friday's close
    assert pd.Timestamp("2019-06-15") in rnd2.index
    ew2 = ew.copy()
    ew2.loc[ew2.index > d] = 0.5
    got = walk_forward(noisy, {"ew": ew2, "rnd": rnd2}, START, [d, pd.Timestamp("2019-09-30")], COST, 252)
    assert df_hash(got[d]) == df_hash(base)
    assert df_hash(got[pd.Timestamp("2019-09-30")]) != df_hash(base)


def test_range_equals_per_date_calls(close):
    decisions = {
        "ew": monthly_equal_weight(close),
        "rnd": weekly_random(close),
        "cash": pd.DataFrame(columns=close.columns, index=pd.DatetimeIndex([]), dtype=float),
    }
    # calendar days: weekends, the July 4th holiday, and Fridays whose Saturday decision is hidden
    dates = list(pd.date_range("2019-05-25", "2019-07-10", freq="D"))
    whole = walk_forward(close, decisions, START, dates, COST, 252)
    for d in dates:
        one = walk_forward(close, decisions, START, [d], COST, 252)[d]
        assert df_hash(whole[d]) == df_hash(one), d
    sat, fri = pd.Timestamp("2019-06-15"), pd.Timestamp("2019-06-14")
    # the Saturday report sees the Saturday decision traded at Friday's close, the Friday one does not
    rnd = {f: whole[f].set_index("candidate").loc["rnd"] for f in (fri, sat)}
    assert rnd[sat]["costs"] > rnd[fri]["costs"]
    assert rnd[sat]["day_return"] == 0.0 and rnd[fri]["day_return"] != 0.0


def test_schema_ranking_and_early_dates(close):
    ew = monthly_equal_weight(close)
    empty = pd.DataFrame(columns=close.columns, index=pd.DatetimeIndex([]), dtype=float)
    before, saturday, later = pd.Timestamp("2018-02-01"), pd.Timestamp("2018-03-03"), pd.Timestamp("2018-12-31")
    out = walk_forward(close, {"b": ew, "a": ew, "cash": empty}, START, [before, saturday, later], COST, 252)
    for frame in out.values():
        assert list(frame.columns) == list(COLUMNS)
        assert {c: str(t) for c, t in frame.dtypes.items()} == COLUMNS
    assert out[before].empty
    f = out[later]
    assert f["candidate"].tolist() == ["a", "b", "cash"] and f["rank"].tolist() == [1, 2, 3]
    assert np.isnan(f["sharpe"].iloc[2]) and f["equity"].iloc[2] == 1.0
    assert out[saturday]["day_return"].eq(0.0).all()

    no_panel = walk_forward(pd.DataFrame(dtype="float64"), {}, START, [before], COST, 252)[before]
    assert no_panel.empty and list(no_panel.columns) == list(COLUMNS)

    late_start = walk_forward(close, {"a": ew}, pd.Timestamp("2018-03-03"), [pd.Timestamp("2018-03-04")], COST, 252)
    row = late_start[pd.Timestamp("2018-03-04")].iloc[0]
    assert row["n_days"] == 0 and row["equity"] == 1.0  # no trading day yet in [start, D]


def test_rejects_weights_on_unknown_symbols(close):
    bad = pd.DataFrame({"NOPE": [1.0]}, index=[START])
    with pytest.raises(ValueError, match="NOPE"):
        walk_forward(close, {"x": bad}, START, [pd.Timestamp("2018-06-01")], COST, 252)


def test_symbol_listing_later_does_not_change_the_past(close):
    # A name that lists after D (sorted mid-alphabet) and is held only later must leave D's frame
    # bit-identical: sums over unheld zero columns would otherwise shift the last bit.
    from skfolio.datasets import load_sp500_dataset

    d = pd.Timestamp("2019-06-14")
    rnd = weekly_random(close)
    base = walk_forward(close.loc[:d], {"rnd": rnd.loc[:d]}, START, [d], COST, 252)[d]
    new = load_sp500_dataset().loc[close.index[0] : close.index[-1]].iloc[:, -1].rename("BBB")
    new.loc[:d] = np.nan
    wide = pd.concat([close, new], axis=1).sort_index(axis=1)
    later = rnd.index > d
    rnd2 = rnd.assign(BBB=0.0)
    rnd2.loc[later] = np.random.default_rng(4).dirichlet(np.ones(wide.shape[1]), later.sum())
    got = walk_forward(wide, {"rnd": rnd2}, START, [d, pd.Timestamp("2019-12-31")], COST, 252)[d]
    assert df_hash(got) == df_hash(base)
