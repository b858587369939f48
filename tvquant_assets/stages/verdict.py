"""Monthly verdict: does each third-party engine beat the custom engine? (advisory)

For every candidate of another engine and its custom counterpart (the custom candidate of the same profile,
else custom equal weight, the 1/N benchmark), over the month to D and the trailing twelve months of the
backtest's daily returns (first simulator): both realized Sharpe ratios, stability, deflated Sharpe, and a
paired Ledoit–Wolf test of the Sharpe difference, with a verdict — better / worse / no difference
(``core/verdict.py``). The monthly tournament review re-runs it over the month before; it decides nothing,
so it stays outside the ledger.
"""

from __future__ import annotations

import pandas as pd

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.core.verdict import verdict, window_start
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.markdown import md_table
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="verdict", description=__doc__, upstream=("backtest",), kinds=("statsmodels",),
                 sealed=False, parallel="interleaved")

LEVEL = 0.05
MIN_DAYS = 15


def pairs_of(manifest) -> tuple[dict[str, str], dict[str, str]]:
    """``({candidate: custom counterpart}, {candidate: engine})`` for the manifest's candidates."""
    custom: dict[str, str] = {}
    for c in manifest.tournament.candidates:
        if c.engine == "custom":
            custom.setdefault(c.profile.value, c.name)
    fallback = custom.get("equal_weight")
    pairs = {c.name: custom.get(c.profile.value, fallback) for c in manifest.tournament.candidates
             if c.engine not in ("custom", "adaptive")}
    return {k: v for k, v in pairs.items() if v is not None}, {c.name: c.engine for c in
                                                              manifest.tournament.candidates}


def daily_returns(ctx: RunContext, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """Each candidate's daily return in [first, last] from the backtest partitions (first simulator)."""
    m = ctx.manifest
    days = manifest_dates(m, max(first, pd.Timestamp(m.backtest_start)), last)
    primary = m.backtest.simulators[0] if m.backtest.simulators else None
    columns = {}
    for d, frame in ctx.frames("backtest", days).items() if days else []:
        if "candidate" not in frame.columns:
            continue
        if primary is not None and "simulator" in frame.columns:
            frame = frame.loc[frame["simulator"].astype(str) == str(primary)]
        columns[d] = frame.set_index("candidate")["day_return"]
    returns = pd.DataFrame(columns).T
    if not len(returns):  # before backtest.start: no returns yet
        return pd.DataFrame(index=pd.DatetimeIndex([]), dtype="float64")
    return returns.sort_index().astype("float64")


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    m = ctx.manifest
    pairs, engines = pairs_of(m)
    returns = daily_returns(ctx, window_start(min(dates), "12m"), max(dates))
    frames, notes = {}, {}
    for d in dates:
        frames[d] = verdict(returns, pairs, engines, d, m.backtest.periods_per_year, LEVEL, MIN_DAYS)
        if not pairs:
            notes[d] = "no candidate of another engine with a custom counterpart: nothing to judge"
    return StageResult(frames, ctx.same_date_hashes(SPEC.upstream, dates), notes)


def summary(frame: pd.DataFrame) -> dict:
    if frame.empty or "verdict" not in frame.columns:
        return {"summary": "no engine to judge against custom"}
    md = md_table(frame, ["window", "candidate", "counterpart", "n_days", "sharpe", "counterpart_sharpe",
                          "sharpe_diff", "p_value", "deflated_sharpe", "verdict"],
                  {"sharpe": ".2f", "counterpart_sharpe": ".2f", "sharpe_diff": ".2f", "p_value": ".3f",
                   "deflated_sharpe": ".3f"})
    out: dict = {"summary": f"Engines vs custom (paired Sharpe test at {LEVEL:g})\n\n" + md}
    for _, row in frame.loc[frame["window"] == "12m"].iterrows():
        out[f"verdict_12m {row['candidate']}"] = str(row["verdict"])
    return out
