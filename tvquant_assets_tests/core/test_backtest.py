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


def _two_assets() -> pd.DataFrame:
    days = pd.bdate_range("2020-01-06", periods=6)
    return pd.DataFrame({"A": [100.0, 110.0, 110.0, 121.0, 121.0, 121.0],
                         "B": [50.0, 45.0, 45.0, 45.0, 45.0, 45.0]}, index=days)


def test_next_open_execution_by_hand():
    close = _two_assets()
    opens = close.shift(1).fillna(close)  # opens at the previous close, except A's gap up on day 3
    opens.loc[close.index[3], "A"] = 115.5  # overnight +5%, intraday +4.76%
    dec = pd.DataFrame({"A": [1.0], "B": [0.0]}, index=[close.index[2]])
    d = close.index[-1]
    at_close = walk_forward(close, {"x/y": dec}, close.index[0], [d], 0.0, 252)[d].iloc[0]
    at_open = walk_forward(close, {"x/y": dec}, close.index[0], [d], 0.0, 252, execution="next_open",
                           open_=opens)[d].iloc[0]
    assert at_close["equity"] == pytest.approx(1.1)  # bought A at 110, sold... held to 121
    assert at_open["equity"] == pytest.approx(121.0 / 115.5)  # bought at day 3's open
    assert at_open["engine"] == "x" and at_open["profile"] == "y" and at_open["simulator"] == "vectorized"
    # decided on day 5 (the last): no trade yet under next_open
    late = pd.DataFrame({"A": [1.0]}, index=[d])
    assert walk_forward(close, {"x/y": late}, close.index[0], [d], 0.0, 252, execution="next_open",
                        open_=opens)[d].iloc[0]["turnover"] == 0.0
    with pytest.raises(ValueError, match="open prices"):
        walk_forward(close, {"x/y": dec}, close.index[0], [d], 0.0, 252, execution="next_open")


def test_band_costs_per_symbol_and_shorts_through_walk_forward():
    close = _two_assets()
    dec = pd.DataFrame({"A": [0.5, 0.5], "B": [0.5, 0.5]}, index=close.index[[0, 2]])
    d = close.index[-1]
    full = walk_forward(close, {"c": dec}, close.index[0], [d], 0.0, 252)[d].iloc[0]
    banded = walk_forward(close, {"c": dec}, close.index[0], [d], 0.0, 252, band=0.06)[d].iloc[0]
    assert full["turnover"] == pytest.approx(1.0 + 0.1)  # day 2: 0.55/0.45 back to halves
    assert banded["turnover"] == pytest.approx(1.0)  # 5 points off: inside the band, no trade
    costly = walk_forward(close, {"c": dec}, close.index[0], [d], {"A": 0.001, "B": 0.01}, 252)[d].iloc[0]
    opened = 0.5 * 0.001 + 0.5 * 0.01  # day 0; cash is then -0.0055, so day 2's book is worth 0.9945
    day2 = 0.001 * abs(0.5 - 0.55 / 0.9945) + 0.01 * abs(0.5 - 0.45 / 0.9945)
    assert costly["costs"] == pytest.approx(opened + day2, rel=1e-12)
    with pytest.raises(ValueError, match="no rate for B"):
        walk_forward(close, {"c": dec}, close.index[0], [d], {"A": 0.001}, 252)
    short = pd.DataFrame({"A": [1.0], "B": [-0.5]}, index=close.index[:1])
    row = walk_forward(close, {"s": short}, close.index[0], [d], 0.0, 252, borrow_bps_per_year=252.0)[d].iloc[0]
    assert row["borrow"] > 0 and row["equity"] < 1 + 0.21 + 0.05  # A +21%, short B gains 10% of 0.5


def test_delisting_and_missing_price_on_held_names(close):
    px = close.iloc[:, :3].loc["2018-03":"2018-06"].copy()
    gone, gap = px.columns[1], px.columns[2]
    px.loc[px.index >= "2018-05-01", gone] = np.nan  # delisted: no bar after April
    px.loc[px.index[10:13], gap] = np.nan  # three days without a price, then back
    dec = pd.DataFrame(1.0 / 3, index=pd.DatetimeIndex(["2018-03-01", "2018-05-02"]), columns=px.columns)
    events: list[dict] = []
    d = px.index[-1]
    out = walk_forward(px, {"ew": dec}, px.index[0], [px.index[12], d], COST, 252, delist_after=5, events=events)
    row = out[d].iloc[0]
    assert row["liquidations"] == 1 and np.isfinite(row["equity"])
    (e,) = events
    assert e["symbol"] == gone and e["date"] == px.index[px.index.searchsorted(pd.Timestamp("2018-05-01")) + 5]
    assert e["weight"] > 0
    # the May rebalance cannot buy the stale name again: its weight stays in cash
    assert out[px.index[12]].iloc[0]["liquidations"] == 0
    # a held name without a price keeps its last value: equity equals a run with that price carried forward
    ffilled = px.copy()
    ffilled[gap] = ffilled[gap].ffill()
    day = px.index[12]
    a = walk_forward(px, {"ew": dec}, px.index[0], [day], COST, 252)[day].iloc[0]
    b = walk_forward(ffilled, {"ew": dec}, px.index[0], [day], COST, 252)[day].iloc[0]
    assert a["equity"] == pytest.approx(b["equity"], rel=1e-14)


def test_several_simulators_and_cross_candidate_scores(close):
    dec = {"custom/ew": monthly_equal_weight(close), "custom/rnd": weekly_random(close)}
    d = pd.Timestamp("2019-12-31")
    f = walk_forward(close, dec, START, [d], COST, 252, simulators=["vectorized", "vectorbt"])[d]
    assert sorted(zip(f["candidate"], f["simulator"])) == [
        ("custom/ew", "vectorbt"), ("custom/ew", "vectorized"),
        ("custom/rnd", "vectorbt"), ("custom/rnd", "vectorized")]
    assert f["rank"].tolist() == [1, 2, 3, 4]
    assert f["dsr"].between(0, 1).all() and f["pbo"].between(0, 1).all()
    assert (f["var_95"] > 0).all() and (f["cvar_95"] >= f["var_95"]).all()
    by = f.set_index(["candidate", "simulator"])
    # vectorbt cannot pay fees below zero cash, so it only approximately agrees with costs (FACTS.md)
    assert by.loc[("custom/ew", "vectorbt"), "equity"] == pytest.approx(by.loc[("custom/ew", "vectorized"), "equity"],
                                                                      rel=1e-3)


def test_manifest_backtest_section_validates_in_one_line():
    from pydantic import ValidationError

    from tvquant_assets.manifest.schema import BacktestConfig

    cfg = BacktestConfig()
    assert cfg.simulators == ["vectorized"] and cfg.execution == "close" and cfg.drift_band == 0.0
    ok = BacktestConfig(simulators=["vectorized", "nautilus"], costs_by_class={"crypto": {"commission_bps": 10}},
                        execution="next_open", drift_band=0.02, borrow_bps_per_year=50)
    assert ok.costs_by_class["crypto"].rate == pytest.approx(15e-4)
    for bad, field in [({"simulators": ["zipline"]}, "unknown simulator 'zipline'"),
                       ({"simulators": ["vectorized", "vectorized"]}, "listed twice"),
                       ({"pbo_blocks": 7}, "must be even"), ({"drift_band": -0.1}, "drift_band"),
                       ({"execution": "vwap"}, "execution"), ({"slippage": 1}, "slippage")]:
        with pytest.raises(ValidationError, match=field):
            BacktestConfig(**bad)


def test_plan_start_reaches_the_decision_the_backtest_start_carries(tmp_path):
    # A fresh lake and a range after backtest.start (2019-01-02): the run must start at the rebalance date
    # 2019-01-01 whose decision 2019-01-02 carries, not at 2019-01-02 (its tournament would find no carry).
    from pathlib import Path

    from tvquant_assets.lake import Lake
    from tvquant_assets.manifest import load_manifest
    from tvquant_assets.stages.plan import plan_start

    m = load_manifest(Path(__file__).resolve().parents[2] / "manifests" / "sp500_demo.yaml")
    start, notes = plan_start(m, Lake(tmp_path), pd.Timestamp("2022-10-03"))
    assert start == pd.Timestamp("2019-01-01") and len(notes) == 2
