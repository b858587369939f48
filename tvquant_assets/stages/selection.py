"""Features, scores, raw vetoes, multi-lookback clusters, dynamic top-N, long/short books for D.

Per symbol (``core/selection.py``, ordered steps in its docstring): every feature (momentum,
volatility/stability, permutation entropy, efficiency ratio, Hurst, skew, kurtosis, 5% CVaR, liquidity, RSI,
trend), global percentiles, score and rank, raw-feature vetoes, correlation-distance clusters averaged
over ``selection.correlation_lookbacks`` (one ``LinkageConfig``), names per cluster from its effective
number of bets, the execution order, the long and the short ("selling rips") book, the relaxation stage
and the reason. The regime's preset of D sets ``top_n_per_cluster`` and ``max_symbols``.
"""

from __future__ import annotations

import pandas as pd

from tvquant_assets.core.selection import preset_overrides, select
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.markdown import md_table
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="selection", description=__doc__, upstream=("scan", "catalog", "regime"), kinds=("scipy",),
                 price_window=True, parallel="dates")


def sectors(catalogs: dict[pd.Timestamp, pd.DataFrame]) -> dict[pd.Timestamp, dict[str, str]]:
    """Each date's sectors, from that date's catalog (point in time: D's output never depends on the
    other dates of the range, so a range can be split into chunks of dates)."""
    return {d: dict(zip(cat["symbol"], cat["sector"], strict=True))
            for d, cat in catalogs.items()}


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    scans = ctx.frames("scan", dates)
    regimes = ctx.frames("regime", dates)
    panel = ctx.window_panel(dates)
    frames = select(panel, scans, dates, ctx.manifest.selection, None, preset_overrides(regimes),
                    sectors_by_date=sectors(ctx.frames("catalog", dates)))
    return StageResult(frames, ctx.same_date_hashes(SPEC.upstream, dates))


def summary(frame: pd.DataFrame) -> dict:
    if "selected" not in frame.columns:
        return {}
    sel = frame[frame["selected"]]
    k = int(sel["cluster"].nunique()) if "cluster" in frame.columns else 0
    md = f"**{len(sel)}** selected of {len(frame)} in **{k}** clusters\n\n" + md_table(
        sel, ["symbol", "cluster", "momentum_pct", "sector", "direction"], {"momentum_pct": ".2f"})
    return {"summary": md, "selected": len(sel), "clusters": k}
