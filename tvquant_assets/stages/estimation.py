"""Expected returns and Ledoit-Wolf covariance of the selected symbols, as of D.

Annualized expected returns (historical / EWMA / James-Stein / Black-Litterman) and covariance (sample /
Ledoit-Wolf / OAS, regime-scaled shrinkage, nearest-PSD repair) of the traded book's symbols over
``estimation.lookback`` returns <= D, in ``cov:<symbol>`` columns with the cluster ids and views
(``core/estimation.py``, docs/engines.md). The books traded are the manifest's (``tournament.book``): the
long book, the short book, or both (then a ``direction`` column says each symbol's book).
"""

from __future__ import annotations

import pandas as pd

from tvquant_assets.core.estimation import estimate
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.markdown import cell
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="estimation", description=__doc__, upstream=("selection", "regime"), kinds=("scikitlearn",),
                 price_window=True, parallel="dates")


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    selections = ctx.frames("selection", dates)
    book = ctx.manifest.book
    wanted = {"long": ("long",), "short": ("short",), "long_short": ("long", "short")}[book]
    selected = {d: sorted(f.loc[f["selected"] & f["direction"].isin(wanted), "symbol"])
                for d, f in selections.items()}
    regimes = ctx.frames("regime", dates)
    panel = ctx.window_panel(dates)
    frames = estimate(panel, selected, dates, ctx.manifest.estimation, selections, regimes)
    if book != "long":  # each row's book, for the tournament's sign per book
        for d, f in frames.items():
            side = dict(zip(selections[d]["symbol"].astype(str), selections[d]["direction"].astype(str)))
            f["direction"] = pd.array([side.get(str(s), "long") for s in f["symbol"]], dtype="str")
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
