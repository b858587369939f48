"""Daily bars stamped D for the catalog's symbols (only the fields the source really has).

Bars come from the manifest's source; data_repair's decisions for D are applied (a filled bar carries
the last good close forward, an excluded symbol's bar is dropped).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tvquant_assets.repair import records as repair
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="prices", description=__doc__, upstream=("catalog",), kinds=("pandas",), calls_source=True,
                 local_parallel="dates")  # each date's bars: a bundled, files or synthetic source splits by dates


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    catalogs = ctx.read("catalog", dates)
    symbols = sorted(set().union(*[set(c["symbol"]) for c, _ in catalogs.values()])) if catalogs else []
    fields = list(ctx.source.fields)
    columns = ["date", "symbol", *fields]
    bars = ctx.source.history(symbols, min(dates), max(dates)) if symbols else pd.DataFrame(
        {"date": pd.Series(dtype="datetime64[ns]"), "symbol": pd.Series(dtype=str),
         **{f: pd.Series(dtype="float64") for f in fields}})
    bars = bars[columns].sort_values(["date", "symbol"], kind="stable").reset_index(drop=True)
    bar_days = bars["date"].to_numpy(dtype="datetime64[ns]")
    bar_symbols = bars["symbol"].to_numpy(dtype=object)
    records = repair.load_records(ctx.lake, ctx.name)  # decisions of the data_repair job
    frames, upstream = {}, {}
    for d in dates:
        cat, cat_hash = catalogs[d]
        lo, hi = np.searchsorted(bar_days, np.datetime64(d, "ns"), side="left"), \
            np.searchsorted(bar_days, np.datetime64(d, "ns"), side="right")
        keep = lo + np.flatnonzero(np.isin(bar_symbols[lo:hi], cat["symbol"].to_numpy(dtype=object)))
        frames[d] = repair.apply_to_prices(bars.iloc[keep].reset_index(drop=True), records, d, tuple(fields))
        upstream[d] = {"catalog": cat_hash}
    return StageResult(frames, upstream)


def summary(frame: pd.DataFrame) -> dict:
    fields = [c for c in frame.columns if c not in ("date", "symbol")]
    return {"summary": f"**{len(frame)}** bars; fields: {', '.join(fields) or 'none'}"}
