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

from dataclasses import dataclass, field

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


@dataclass
class RepairOutcome:
    """What one repair run found and decided: per date, the symbols whose lake bar was unusable and the
    re-fetch returned usable (``refetched``), and the fills and exclusions planned (``found``)."""

    dates: list[pd.Timestamp]
    found: RepairRecords
    refetched: dict[str, list[str]] = field(default_factory=dict)
    lake_bad: dict[str, dict[str, str]] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """One line per decision (for the run log), then a total."""
        out = []
        for d, syms in sorted(self.refetched.items()):
            out += [f"{d} {s}: re-fetched ({self.lake_bad.get(d, {}).get(s, 'unusable')} in the lake; the "
                    "source now has a usable bar)" for s in syms]
        for d, v in sorted(self.found.fills.items()):
            out += [f"{d} {s}: filled: {x['reason']}" for s, x in sorted(v.items())]
        for d, v in sorted(self.found.exclusions.items()):
            out += [f"{d} {s}: {why}" for s, why in sorted(v.items())]
        return out + [self.summary()]

    def summary(self) -> str:
        n = lambda groups: sum(len(v) for v in groups.values())  # noqa: E731
        span = f"{self.dates[0].date()}..{self.dates[-1].date()}" if self.dates else "no dates"
        return (f"data_repair over {span}: {n(self.lake_bad)} unusable bar(s) in the lake; "
                f"{n(self.refetched)} re-fetched, {n(self.found.fills)} filled, "
                f"{n(self.found.exclusions)} excluded")

    def metadata(self, date: pd.Timestamp) -> dict:
        """The catalog partition's record of what the repair decided for ``date`` (plain values)."""
        k = pd.Timestamp(date).strftime("%Y-%m-%d")
        return {"repair_refetched": self.refetched.get(k, []),
                "repair_filled": sorted(self.found.fills.get(k, {})),
                "repair_excluded": sorted(self.found.exclusions.get(k, {})),
                "repair_summary": self.summary()}


def run_repair(ctx, dates: list[pd.Timestamp]) -> RepairOutcome:
    """Re-fetch ``dates`` (plus the history the decisions need) from the source, compare with the lake,
    plan the fills and exclusions, merge them into ``repairs.json``, and say what was found and decided."""
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
    outcome = RepairOutcome(dates, found)
    lake = ctx.lake.read_many(m.name, "prices", dates, missing_ok=True)
    fresh = {pd.Timestamp(d): g for d, g in bars.groupby("date", sort=True)} if len(bars) else {}
    for d, (frame, _) in lake.items():
        bad = bad_price_symbols(frame)
        if not bad:
            continue
        k = d.strftime("%Y-%m-%d")
        outcome.lake_bad[k] = bad
        g = fresh.get(d)
        now_bad = bad_price_symbols(g) if g is not None else {}
        have = set(g["symbol"].astype(str)) if g is not None else set()
        fixed = sorted(s for s in bad if s in have and s not in now_bad)
        if fixed:
            outcome.refetched[k] = fixed
    save_records(ctx.lake, ctx.name, load_records(ctx.lake, ctx.name).merge(found))
    return outcome


def plan_and_record(ctx, dates: list[pd.Timestamp]) -> RepairRecords:
    """``run_repair``'s decisions only."""
    return run_repair(ctx, dates).found


__all__ = ["RepairOutcome", "plan", "plan_and_record", "run_repair"]
