"""Threshold auditor: regret of adaptive profile switches vs the best fixed candidate per turbulent threshold,
and the threshold it suggests (advisory, never applied). With ``regime.regret.apply`` it audits the adaptive
engine's own profile map and the thresholds the regime stage learned and applied (the ``applied`` row).

For each threshold of ``regime.regret.turbulent_grid`` the published stress scores in
[backtest.start, D] are relabelled, mapped to profiles and candidates, and switched on rebalance dates
at a switch cost, against the backtest's daily candidate returns (``core/regime_regret.py``). It decides
nothing, so it stays outside the ledger.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.core.regime import adaptive_map
from tvquant_assets.core.regime_regret import regime_regret
from tvquant_assets.lake.duckdb_views import read_columns
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.markdown import md_table
from tvquant_assets.stages.spec import StageResult, StageSpec

LEARNED_COLUMNS = ("label", "growth", "vol_short", "turbulent_threshold", "crisis_threshold")
SPEC = StageSpec(name="regime_regret", description=__doc__, upstream=("regime", "backtest"), kinds=("numpy",),
                 sealed=False, parallel="interleaved")


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    """Regret of adaptive profile switches per turbulent threshold, from the backtest's daily candidate
    returns and the regime's scores in [backtest.start, D]."""
    m = ctx.manifest
    start, last = pd.Timestamp(m.backtest_start), max(dates)
    days = manifest_dates(m, start, last) if last >= start else []
    # Advisory: a backtest partition missing from the lake (a date that failed) drops that day's returns
    # instead of failing every later date; the note names the missing days.
    missing = [d for d in days if not ctx.lake.exists(ctx.name, "backtest", d)]
    present = [d for d in days if d not in set(missing)]
    backtests = read_columns(ctx.lake, ctx.name, "backtest", present, ["candidate", "simulator", "day_return"])
    first_sim = m.backtest.simulators[0]  # one row per candidate: the first configured simulator's
    returns = pd.DataFrame({d: f[f["simulator"] == first_sim].set_index("candidate")["day_return"]
                            for d, f in backtests.items()}).T
    returns = returns.sort_index().astype("float64") if len(returns) else pd.DataFrame(
        index=pd.DatetimeIndex([]), dtype="float64")
    scored = [d for d in days if ctx.lake.exists(ctx.name, "regime", d)]
    learned = m.regime.regret.apply
    wanted = ["stress_score", *(LEARNED_COLUMNS if learned else ())]
    regimes = read_columns(ctx.lake, ctx.name, "regime", scored, wanted)
    scores = pd.Series({d: float(f["stress_score"].iloc[0]) if len(f) else np.nan
                        for d, f in regimes.items()}, dtype="float64")
    presets = {str(getattr(k, "value", k)): v for k, v in m.regime_presets.items()}
    profile_of = {label.value: (presets[label.value].profile if label.value in presets
                                and presets[label.value].profile is not None else p).value
                  for label, p in m.regime.regret.profiles.items()}
    candidate_of: dict[str, str] = {}
    for c in m.tournament.candidates:
        candidate_of.setdefault(c.profile.value, c.name)
    cost = m.regime.regret.switch_cost if m.regime.regret.switch_cost is not None else 2 * m.backtest.costs.rate
    adaptive = None
    if learned:  # audit the adaptive engine's map on the thresholds the regime stage applied
        published = pd.DataFrame({d: f.iloc[0] for d, f in regimes.items() if len(f)}).T if regimes else \
            pd.DataFrame(columns=wanted)
        adaptive = (published, presets, *adaptive_map(m.tournament.adaptive))
    frames = regime_regret(scores, returns, ctx.rebalance_set(last), dates, m.regime, profile_of, candidate_of,
                           cost, adaptive)
    notes = {}
    for d, f in frames.items():
        pick = f.loc[f["suggested"], "turbulent_threshold"]
        if learned:
            row = f[f["applied"]].iloc[0]
            notes[d] = (f"audit of the learned thresholds: applied turbulent {row['turbulent_threshold']:g}, regret "
                        f"{row['regret']:.4f}; smallest fixed regret at {pick.iloc[0]:g}") if len(pick) else \
                "audit of the learned thresholds: no returns yet"
        else:
            notes[d] = (f"advisory, not applied: regret is smallest at turbulent {pick.iloc[0]:g} "
                        f"(manifest: {m.regime.thresholds.turbulent:g})") if len(pick) else "advisory: no returns yet"
        gaps = [x for x in missing if x <= d]
        if gaps:
            notes[d] += (f"; {len(gaps)} backtest day(s) missing from the lake and left out "
                         f"({gaps[0].date()}{'..' + str(gaps[-1].date()) if len(gaps) > 1 else ''})")
    return StageResult(frames, ctx.same_date_hashes(SPEC.upstream, dates), notes)


def summary(frame: pd.DataFrame) -> dict:
    if frame.empty or "turbulent_threshold" not in frame.columns:
        return {}
    cols = ["turbulent_threshold", "n_switches", "adaptive_return", "best_fixed", "regret", "current", "suggested"]
    md = md_table(frame, cols + (["applied"] if "applied" in frame.columns else []),
                  {"adaptive_return": ".4f", "regret": ".4f"})
    out: dict = {"summary": md}
    pick = frame.loc[frame["suggested"].astype(bool), "turbulent_threshold"]
    if len(pick):
        out["suggested_turbulent"] = float(pick.iloc[0])
    if "applied" in frame.columns and frame["applied"].astype(bool).any():
        row = frame[frame["applied"].astype(bool)].iloc[0]
        out["applied_turbulent"], out["applied_regret"] = float(row["turbulent_threshold"]), float(row["regret"])
    return out
