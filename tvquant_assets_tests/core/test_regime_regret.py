"""Threshold auditor ("regime regret"): hand-computed switch paths, suggestion, point in time."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.regime_regret import DTYPES, regime_regret
from tvquant_assets.hashing import df_hash
from tvquant_assets.manifest.schema import RegimeConfig, RegretConfig

DAYS = pd.bdate_range("2024-01-01", periods=10)
A, B = "custom/max_sharpe", "custom/min_variance"
PROFILE_OF = {"QUIET": "max_sharpe", "NORMAL": "max_sharpe", "TURBULENT": "min_variance", "CRISIS": "min_variance"}
CANDIDATE_OF = {"max_sharpe": A, "min_variance": B}
CFG = RegimeConfig(regret=RegretConfig(turbulent_grid=[1.5, 3.0]))
COST = 0.001


def market() -> tuple[pd.Series, pd.DataFrame]:
    """A earns +1 % a day but -5 % on days 5-7; B is cash. The score is stressed (2.0) on days 4-6."""
    a = np.full(10, 0.01)
    a[5:8] = -0.05
    returns = pd.DataFrame({A: a, B: 0.0}, index=DAYS)
    score = pd.Series(1.0, index=DAYS)
    score.iloc[4:7] = 2.0
    return score, returns


def test_daily_switching_by_hand_and_the_suggestion():
    score, returns = market()
    out = regime_regret(score, returns, DAYS, [DAYS[-1]], CFG, PROFILE_OF, CANDIDATE_OF, COST)[DAYS[-1]]
    assert {c: str(t) for c, t in out.dtypes.items()} == DTYPES
    low, high = out.set_index("turbulent_threshold").loc[1.5], out.set_index("turbulent_threshold").loc[3.0]
    # theta 1.5: stressed at the close of days 4-6 -> hold B on days 5-7, back to A on day 8: two switches
    adaptive = 7 * math.log(1.01) + 2 * math.log(1 - COST)
    best = 0.0  # B (cash) beats A: 7 log 1.01 + 3 log 0.95 < 0
    assert low["n_switches"] == 2 and low["adaptive_return"] == pytest.approx(math.expm1(adaptive))
    assert low["best_fixed"] == B and low["best_fixed_return"] == 0.0
    assert low["regret"] == pytest.approx(best - adaptive)
    assert low["stressed_share"] == pytest.approx(0.3)
    assert low["switch_cost_total"] == pytest.approx(-2 * math.log(1 - COST))
    # theta 3.0: never stressed, always A
    assert high["n_switches"] == 0 and high["stressed_share"] == 0.0
    assert high["regret"] == pytest.approx(-(7 * math.log(1.01) + 3 * math.log(0.95)))
    assert out["suggested"].tolist() == [True, False]
    assert out["current"].tolist() == [False, False]  # the manifest's turbulent threshold is 1.25
    assert (out["status"] == "ok").all()


def test_switches_only_on_rebalance_dates():
    score, returns = market()
    rebalance = [DAYS[0], DAYS[6]]  # decided at the close of day 6 (stressed): B held on days 7-9
    row = regime_regret(score, returns, rebalance, [DAYS[-1]], CFG, PROFILE_OF, CANDIDATE_OF, COST)[DAYS[-1]]
    low = row.set_index("turbulent_threshold").loc[1.5]
    adaptive = 5 * math.log(1.01) + 2 * math.log(0.95) + math.log(1 - COST)
    assert low["n_switches"] == 1 and low["regret"] == pytest.approx(-adaptive)


def test_point_in_time_and_missing_candidates():
    score, returns = market()
    d = DAYS[6]
    base = regime_regret(score, returns, DAYS, DAYS, CFG, PROFILE_OF, CANDIDATE_OF, COST)
    later_r, later_s = returns.copy(), score.copy()
    later_r.iloc[7:] = 0.3
    later_s.iloc[7:] = 9.0
    again = regime_regret(later_s, later_r, DAYS, [d], CFG, PROFILE_OF, CANDIDATE_OF, COST)[d]
    assert df_hash(again) == df_hash(base[d])
    assert base[DAYS[0]]["n_days"].tolist() == [1, 1]
    early = pd.Timestamp("2023-12-29")  # before any backtest return
    none = regime_regret(score, returns, DAYS, [early], CFG, PROFILE_OF, CANDIDATE_OF, COST)[early]
    assert (none["status"] == "no backtest returns yet").all() and not none["suggested"].any()
    hrp_only = {**PROFILE_OF, "CRISIS": "hrp"}
    miss = regime_regret(score, returns, DAYS, [d], CFG, hrp_only, CANDIDATE_OF, COST)[d]
    assert (miss["status"] == "no candidate for profile(s) hrp").all() and miss["regret"].isna().all()


def test_regret_config_validation():
    with pytest.raises(ValueError, match="profiles"):
        RegretConfig(profiles={"QUIET": "max_sharpe"})
    with pytest.raises(ValueError):
        RegretConfig(turbulent_grid=[])


def test_audit_of_learned_thresholds_uses_the_adaptive_map_and_the_applied_labels():
    """With the regime's thresholds learned, labels map to profiles as the adaptive engine maps them (label,
    then quadrant, then default) and one more row switches on the published labels."""
    from tvquant_assets.core.regime import adaptive_map
    from tvquant_assets.core.regime_regret import APPLIED_DTYPES

    score, returns = market()
    labels = np.where(score.to_numpy() >= 1.5, "TURBULENT", "NORMAL")
    published = pd.DataFrame({"label": labels, "growth": 0.05, "vol_short": 0.1, "turbulent_threshold": 1.5,
                              "crisis_threshold": 2.1}, index=DAYS)
    mapping, default = adaptive_map(None)  # EXPANSION -> max_sharpe, STAGNATION -> min_variance, TURBULENT -> hrp
    mapping = {**mapping, "TURBULENT": "min_variance"}
    out = regime_regret(score, returns, DAYS, [DAYS[-1]], CFG, {}, CANDIDATE_OF, COST,
                        (published, {}, mapping, default))[DAYS[-1]]
    assert {c: str(t) for c, t in out.dtypes.items()} == {**DTYPES, **APPLIED_DTYPES}
    applied = out[out["applied"]].iloc[0]
    low = out[~out["applied"] & (out["turbulent_threshold"] == 1.5)].iloc[0]
    # growth 5 % with low vol is EXPANSION -> max_sharpe (A) on calm days, min_variance (B) when TURBULENT:
    # exactly the theta-1.5 relabelling
    assert applied["current"] and not applied["suggested"] and applied["turbulent_threshold"] == 1.5
    assert applied["regret"] == pytest.approx(low["regret"]) and applied["n_switches"] == low["n_switches"] == 2
    # falling growth: STAGNATION -> min_variance on calm days too: cash all along, the best fixed, regret 0
    falling = published.assign(growth=-0.05)
    out = regime_regret(score, returns, DAYS, [DAYS[-1]], CFG, {}, CANDIDATE_OF, COST,
                        (falling, {}, mapping, default))[DAYS[-1]]
    applied = out[out["applied"]].iloc[0]
    assert applied["n_switches"] == 0 and applied["regret"] == pytest.approx(0.0, abs=1e-12)
