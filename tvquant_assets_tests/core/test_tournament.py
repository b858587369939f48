"""Tournament: rebalance calendars, decisions, carry-forward, presets, empty universe, point in time."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.calendar import rebalance_dates
from tvquant_assets.core.estimation import estimate, pack
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.tournament import (
    COLUMNS,
    DECISION_COLUMNS,
    resolve_max_weight,
    run_tournament,
)
from tvquant_assets.errors import EngineError
from tvquant_assets.hashing import df_hash
from tvquant_assets.manifest.schema import (
    EstimationConfig,
    RebalanceConfig,
    RegimePreset,
    TournamentConfig,
)

CFG = TournamentConfig()  # custom min_variance / max_sharpe / equal_weight, skfolio hrp; cap 0.35
EST = EstimationConfig()
SYMS = ["AAPL", "BAC", "CVX", "JNJ", "KO", "MSFT", "PFE", "WMT", "XOM", "UNH"]
DATES = list(pd.bdate_range("2019-05-28", "2019-06-04"))  # rebalance 2019-06-03 (first of June) in between


def regime(max_weight: float = np.nan, label: str = "NORMAL", quadrant: str = "NORMAL") -> pd.DataFrame:
    return pd.DataFrame({"label": [label], "quadrant": [quadrant], "preset_max_weight": [max_weight]})


def decisions(frame: pd.DataFrame) -> str:
    return df_hash(frame[DECISION_COLUMNS])


def run(panel: PricePanel, dates, rebalance, *, regimes=None, previous=None, cfg=CFG, selected=None):
    sel = selected or {d: SYMS for d in dates}
    ests = estimate(panel, sel, [d for d in dates if d in rebalance], EST)
    regimes = regimes or {d: regime() for d in dates}
    return run_tournament(panel, ests, regimes, dates, lambda d: d in rebalance, cfg, {}, EST, previous)


# --- rebalance calendars ----------------------------------------------------------------------------------


def test_rebalance_dates_rules():
    cal = list(pd.bdate_range("2021-01-27", "2021-03-03"))  # starts mid-week, mid-month
    monthly = rebalance_dates(cal, RebalanceConfig(rule="monthly"))
    assert monthly == [pd.Timestamp(d) for d in ("2021-01-27", "2021-02-01", "2021-03-01")]
    weekly = rebalance_dates(cal, RebalanceConfig(rule="weekly"))
    assert weekly[:3] == [pd.Timestamp(d) for d in ("2021-01-27", "2021-02-01", "2021-02-08")]
    assert all(d.day_of_week == 0 for d in weekly[1:])
    every3 = rebalance_dates(cal, RebalanceConfig(rule="every_k_days", every_k_days=3))
    assert every3 == cal[::3]
    assert rebalance_dates(list(reversed(cal)), RebalanceConfig(rule="monthly")) == monthly


def test_weekly_uses_iso_weeks_across_year_end():
    cal = [pd.Timestamp(d) for d in ("2020-12-31", "2021-01-01", "2021-01-04")]
    # 2020-12-31 and 2021-01-01 are both in ISO week 2020-W53
    assert rebalance_dates(cal, RebalanceConfig(rule="weekly")) == [cal[0], cal[2]]


# --- decisions and carry-forward --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def base_run(sp500_panel):
    rebalance = {DATES[0], pd.Timestamp("2019-06-03")}
    return rebalance, run(sp500_panel, DATES, rebalance)


def test_decision_frame(base_run):
    rebalance, out = base_run
    assert list(out) == DATES
    f = out[DATES[0]]
    assert list(f.columns) == COLUMNS and isinstance(f.index, pd.RangeIndex)
    assert f[["candidate", "symbol"]].equals(f.sort_values(["candidate", "symbol"])[["candidate", "symbol"]]
                                             .reset_index(drop=True))
    assert set(f["candidate"]) == {c.name for c in CFG.candidates}
    assert f.dtypes["decision_date"] == "datetime64[ns]" and f.dtypes["rebalanced"] == "bool"
    for _, g in f.groupby("candidate"):
        assert sorted(g["symbol"]) == sorted(SYMS)
        assert abs(g["weight"].sum() - 1) < 1e-9 and g["weight"].max() <= 0.35 + 1e-6
    assert (f["status"] == "optimal").all() and (f["max_weight"] == 0.35).all()
    assert not f[["candidate", "engine", "profile", "symbol", "status", "fallback"]].isna().any().any()
    ew = f[f["candidate"] == "custom/equal_weight"]["weight"]
    np.testing.assert_allclose(ew, 0.1)


def test_carry_forward(base_run):
    rebalance, out = base_run
    first_rb, second_rb = sorted(rebalance)
    for d in DATES:
        f = out[d]
        decided = max(r for r in rebalance if r <= d)
        assert (f["decision_date"] == decided).all()
        assert (f["rebalanced"] == (d in rebalance)).all()
        if d not in rebalance:
            carried = out[decided].assign(rebalanced=False)
            assert df_hash(f) == df_hash(carried)  # unchanged, solve_ms included
    assert decisions(out[first_rb].assign(rebalanced=False)) != decisions(out[second_rb].assign(rebalanced=False))


def test_previous_argument_and_missing_previous(sp500_panel, base_run):
    rebalance, out = base_run
    tail = DATES[2:5]  # 2019-05-30 .. 2019-06-03: two carried dates then a rebalance
    with pytest.raises(EngineError, match="2019-05-30: not a rebalance date"):
        run(sp500_panel, tail, rebalance)
    again = run(sp500_panel, tail, rebalance, previous=out[DATES[1]])
    for d in tail:
        assert decisions(again[d]) == decisions(out[d])


def test_point_in_time_and_determinism(sp500_close, base_run):
    rebalance, out = base_run
    d = pd.Timestamp("2019-06-03")
    future = sp500_close.index > d
    shocked = sp500_close.copy()
    rng = np.random.default_rng(1)
    shocked.loc[future] = shocked.loc[future].to_numpy() * rng.uniform(0.5, 1.5, (future.sum(), shocked.shape[1]))
    upto = [x for x in DATES if x <= d]
    after = run(PricePanel(shocked), upto, rebalance)
    for x in upto:
        assert decisions(after[x]) == decisions(out[x]), x  # same decisions, re-solved in a fresh run


# --- caps from regime presets -----------------------------------------------------------------------------


def test_preset_max_weight_applied(sp500_panel):
    d = pd.Timestamp("2019-06-03")
    out = run(sp500_panel, [d], {d}, regimes={d: regime(0.12, "TURBULENT")})[d]
    assert (out["max_weight"] == 0.12).all()
    for cand, g in out.groupby("candidate"):
        assert g["weight"].max() <= 0.12 + 1e-6, cand
    mv = out[out["candidate"] == "custom/min_variance"]
    assert np.isclose(mv["weight"].max(), 0.12, atol=1e-6)  # binding (uncapped min-variance is above it)
    infeasible = run(sp500_panel, [d], {d}, regimes={d: regime(0.08)})[d]  # 10 x 0.08 < 1
    assert (infeasible["status"] == "cap_infeasible").all()
    np.testing.assert_allclose(infeasible["weight"], 0.1)


def test_resolve_max_weight():
    presets = {"CRISIS": RegimePreset(max_weight=0.2)}
    assert resolve_max_weight(regime(0.1), CFG, presets) == 0.1
    assert resolve_max_weight(regime(np.nan), CFG, presets) == 0.35
    legacy = pd.DataFrame({"label": ["CRISIS"], "quadrant": ["NORMAL"], "preset": ["CRISIS"]})
    assert resolve_max_weight(legacy, CFG, presets) == 0.2
    assert resolve_max_weight(None, CFG, presets) == 0.35


# --- empty universe ---------------------------------------------------------------------------------------------


def test_empty_universe_is_recorded(sp500_panel):
    d = pd.Timestamp("2019-06-03")
    empty = pack([], np.zeros(0), np.zeros((0, 0)))
    out = run_tournament(sp500_panel, {d: empty}, {d: regime()}, [d], lambda _: True, CFG, {}, EST, None)[d]
    assert len(out) == len(CFG.candidates)
    assert (out["symbol"] == "").all() and (out["weight"] == 0.0).all()
    assert (out["status"] == "empty_universe").all()
    assert list(out["candidate"]) == sorted(c.name for c in CFG.candidates)


def test_missing_inputs_on_rebalance_date_raise(sp500_panel):
    d = pd.Timestamp("2019-06-03")
    with pytest.raises(EngineError, match="no estimation frame"):
        run_tournament(sp500_panel, {}, {d: regime()}, [d], lambda _: True, CFG, {}, EST, None)
