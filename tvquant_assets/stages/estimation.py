"""Expected returns and Ledoit-Wolf covariance of the selected symbols, as of D.

Annualized expected returns (historical / EWMA / James-Stein / Black-Litterman) and covariance (sample /
Ledoit-Wolf / OAS, regime-scaled shrinkage, nearest-PSD repair) of the long book's symbols over
``estimation.lookback`` returns <= D, in ``cov:<symbol>`` columns with the cluster ids and views
(``core/estimation.py``, docs/engines.md). The short book is published by selection, not optimized.
"""

from __future__ import annotations

import pandas as pd

from tvquant_assets.core.estimation import estimate
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.markdown import cell
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="estimation", description=__doc__, upstream=("selection", "regime"), kinds=("scikitlearn",),
                 price_window=True)


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    selections = ctx.frames("selection", dates)
    # the tournament is long-only: the short book ("direction" short) is published, not optimized here
    selected = {d: sorted(f.loc[f["selected"] & (f["direction"] != "short"), "symbol"])
                for d, f in selections.items()}
    regimes = ctx.frames("regime", dates)
    panel = ctx.window_panel(dates)
    frames = estimate(panel, selected, dates, ctx.manifest.estimation, selections, regimes)
    return StageResult(frames, ctx.same_date_hashes(SPEC.upstream, dates))


def summary(frame: pd.DataFrame) -> dict:
    if frame.empty:
        return {"summary": "empty universe: nothing to estimate"}
    row = frame.iloc[0]
    parts = [f"**{len(frame)}** symbols"]
    for c in ("shrinkage", "n_obs"):
        if c in frame.columns:
            parts.append(f"{c} {cell(row[c])}")
    return {"summary": " · ".join(parts)}
