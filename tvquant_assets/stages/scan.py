"""Screened universe for D with scanner fields computed from the price lake, bars <= D only.

Per symbol: perf 1w/1m/3m, 20-day volatility, 20-day value traded (NaN and a flag when the source has no
volume), eligibility and its reason (``core/scan.py``). Sources with scanner fields of their own add them
point in time (``Source.scan_fields``; TradingView adds reconstructed fields, ratings and toxic-data marks).
"""

from __future__ import annotations

import pandas as pd

from tvquant_assets.core.scan import compute_scan
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="scan", description=__doc__, upstream=("prices", "catalog"), kinds=("numpy",),
                 price_window=True, parallel="dates")


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    catalogs = ctx.frames("catalog", dates)
    panel = ctx.window_panel(dates)
    listed = {d: list(c["symbol"]) for d, c in catalogs.items()}
    frames = compute_scan(panel, dates, ctx.manifest.universe, listed, history_rows=ctx.lookback_rows())
    frames = ctx.source.scan_fields(frames)
    return StageResult(frames, ctx.same_date_hashes(SPEC.upstream, dates))


def summary(frame: pd.DataFrame) -> dict:
    if "eligible" not in frame.columns:
        return {}
    n = int(frame["eligible"].sum())
    md = f"**{n}** of {len(frame)} symbols eligible"
    if "reason" in frame.columns and n < len(frame):
        reasons = frame.loc[~frame["eligible"], "reason"].astype(str).value_counts().head(5)
        md += "\n\n" + "\n".join(f"- {k}: {v}" for k, v in reasons.items())
    return {"summary": md, "eligible": n}
