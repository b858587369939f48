"""Point-in-time symbol catalog for D: listed symbols, sector, first and last bar, active.

A symbol is listed from its first bar on; it is active while its last bar <= D is at most
``universe.max_stale_days`` partition dates old. Sources with a point-in-time catalog put each date's
attributes in (``Source.catalog_as_of``); symbols data_repair excluded on D are inactive, with the reason
in ``exclusion``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tvquant_assets.repair import records as repair
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="catalog", description=__doc__, kinds=("pandas",), calls_source=True,
                 local_parallel="dates")  # each date reads bars up to itself: a local source splits by dates

OUTPUT = ["symbol", "exchange", "type", "sector", "industry", "currency", "first_date", "last_bar", "active"]


def _calendar_gap(calendar: str, since: np.ndarray, until: np.datetime64) -> np.ndarray:
    """Calendar partition dates after ``since`` up to ``until`` (weekdays or days)."""
    since_d = since.astype("datetime64[D]")
    until_d = np.datetime64(until, "D")
    if calendar == "weekdays":
        return np.busday_count(since_d, until_d)  # [since, until) == (since, until] for weekday dates
    return (until_d - since_d).astype(np.int64)


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    cat = ctx.source.catalog()
    cat = cat[cat["symbol"].isin(ctx.universe_symbols)].sort_values("symbol").reset_index(drop=True)
    first = pd.to_datetime(cat["symbol"].map(ctx.source.first_dates())).dt.as_unit("ns").to_numpy()
    bars = ctx.source.history(list(cat["symbol"]), pd.Timestamp.min, max(dates))
    by_symbol = {s: g["date"].to_numpy(dtype="datetime64[ns]") for s, g in bars.groupby("symbol")}
    day = np.array(dates, dtype="datetime64[ns]")
    last_bar = np.full((len(day), len(cat)), np.datetime64("NaT", "ns"))
    for j, s in enumerate(cat["symbol"]):  # last bar <= D for every D at once
        arr = by_symbol.get(s)
        if arr is not None and len(arr):
            i = np.searchsorted(arr, day, side="right")
            last_bar[i > 0, j] = arr[i[i > 0] - 1]
    stale = ctx.manifest.universe.max_stale_days
    columns = {c: cat[c].array for c in OUTPUT[:-3]}  # the source's columns, dtypes kept
    frames = {}
    for k, d in enumerate(dates):
        listed = first <= day[k]
        lb = last_bar[k, listed]
        gap = np.full(len(lb), 10**6, dtype=np.int64)
        has = ~np.isnat(lb)
        if has.any():
            gap[has] = _calendar_gap(ctx.manifest.calendar, lb[has], day[k])
        frames[d] = pd.DataFrame({**{c: a[listed] for c, a in columns.items()},
                                  "first_date": first[listed], "last_bar": lb, "active": gap <= stale})
    frames = ctx.source.catalog_as_of(frames)
    records = repair.load_records(ctx.lake, ctx.name)  # decisions of the data_repair job
    return StageResult({d: repair.apply_to_catalog(f, records, d) for d, f in frames.items()})


def summary(frame: pd.DataFrame) -> dict:
    active = int(frame["active"].sum()) if "active" in frame.columns else len(frame)
    return {"summary": f"**{len(frame)}** symbols listed, **{active}** active"}
