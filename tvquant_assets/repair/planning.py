"""Planning repairs: re-fetch bad partitions, fill short gaps, exclude what cannot be filled.

The data_repair job re-runs the whole graph over [first bad partition, newest partition]. Its catalog step
first calls ``plan_and_record``: the source's bars of those dates are fetched again and every symbol whose
bar is still unusable (NaN field, price <= 0, no bar on a trading day) is either

- filled: when the unusable run of bars ending at D is at most ``quality.max_fill_bars`` long, the last
  good close is carried forward (open = high = low = close, volume 0), or
- excluded on D: the catalog marks it inactive with the reason in its ``exclusion`` column and prices
  drops it.

Decisions use bars stamped <= D only and are stored in ``<lake>/<manifest>/repairs.json``; the catalog
and prices runners apply them on every later run too, so re-running a repaired range gives the same
partitions (the job is idempotent: the same failure planned twice records the same decisions).
"""

from __future__ import annotations

import pandas as pd

from tvquant_assets.calendar import previous_dates
from tvquant_assets.quality import bad_price_symbols
from tvquant_assets.repair.records import RepairRecords, load_records, save_records


def plan(bars: pd.DataFrame, dates: list[pd.Timestamp], fields: tuple[str, ...], max_fill_bars: int,
         max_stale_days: int) -> RepairRecords:
    """Fill/exclude decisions for ``dates`` from freshly fetched ``bars`` (long frame with history before
    the first date, at least ``max_fill_bars + max_stale_days`` trading days of it).

    A trading day is a date with at least one bar. A symbol is expected on a trading day when it had a
    usable bar within the last ``max_stale_days`` trading days; its bar is unusable when missing or bad.
    """
    out = RepairRecords()
    if bars.empty:
        return out
    by_date = {pd.Timestamp(d): g for d, g in bars.groupby("date", sort=True)}
    trading = sorted(by_date)
    usable: dict[pd.Timestamp, dict[str, float]] = {}  # trading day -> symbol -> close
    unusable: dict[pd.Timestamp, dict[str, str]] = {}
    for d in trading:
        g = by_date[d]
        bad = bad_price_symbols(g)
        dup = g["symbol"][g["symbol"].duplicated(keep=False)]
        bad.update({str(s): "duplicate bars" for s in dup})
        usable[d] = {str(s): float(c) for s, c in zip(g["symbol"], g["close"], strict=True) if str(s) not in bad}
        unusable[d] = bad
    wanted = {pd.Timestamp(d) for d in dates}
    for i, d in enumerate(trading):
        if d not in wanted:
            continue
        recent = trading[max(0, i - max_stale_days):i]
        expected = set().union(*(usable[r].keys() for r in recent)) if recent else set()
        problems = dict(unusable[d])
        for s in sorted(expected - set(usable[d]) - set(problems)):
            problems[s] = "no bar on a trading day"
        key = d.strftime("%Y-%m-%d")
        for s, why in sorted(problems.items()):
            run, last_good = 1, None  # unusable bars in a row ending at d, and the last usable one before
            for r in reversed(trading[:i]):
                if s in usable[r]:
                    last_good = r
                    break
                run += 1
            if last_good is not None and run <= max_fill_bars:
                out.fills.setdefault(key, {})[s] = {
                    "close": usable[last_good][s], "from": last_good.strftime("%Y-%m-%d"),
                    "reason": f"{why}; carried forward the close of {last_good.date()} ({run} bar(s) filled)",
                }
            else:
                limit = "no earlier usable bar" if last_good is None else \
                    f"{run} unusable bars in a row, more than quality.max_fill_bars={max_fill_bars}"
                out.exclusions.setdefault(key, {})[s] = f"excluded by data_repair: {why} ({limit})"
    return out


def plan_and_record(ctx, dates: list[pd.Timestamp]) -> RepairRecords:
    """Re-fetch ``dates`` (plus the history the decisions need) from the source, plan, merge, save."""
    m = ctx.manifest
    dates = sorted(pd.Timestamp(d) for d in dates)
    lookback = m.quality.max_fill_bars + m.universe.max_stale_days + 5
    first = previous_dates(m, dates[0], lookback)[0]
    symbols = ctx.universe_symbols
    refetch = getattr(ctx.source, "refetch", None)  # sources with a local store download the dates again
    if refetch is not None:
        refetch(symbols, first, dates[-1])
    bars = ctx.source.history(symbols, first, dates[-1])
    found = plan(bars, dates, tuple(ctx.source.fields), m.quality.max_fill_bars, m.universe.max_stale_days)
    records = load_records(ctx.lake, ctx.name).merge(found)
    save_records(ctx.lake, ctx.name, records)
    return found


__all__ = ["plan", "plan_and_record"]
