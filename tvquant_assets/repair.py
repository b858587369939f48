"""Price repair: re-fetch bad partitions, fill short gaps, exclude what cannot be filled (no Dagster here).

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

import json
from dataclasses import dataclass, field

import pandas as pd

from tvquant_assets.calendar import previous_dates
from tvquant_assets.lake.store import atomic_write_bytes
from tvquant_assets.quality import bad_price_symbols

REPAIRS_FILE = "repairs.json"
RUN_TAG = "tvquant/repair"  # runs carrying it plan repairs in their catalog step


@dataclass
class RepairRecords:
    """``fills[date][symbol] = {"close", "from", "reason"}``, ``exclusions[date][symbol] = reason``."""

    fills: dict[str, dict[str, dict]] = field(default_factory=dict)
    exclusions: dict[str, dict[str, str]] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"fills": self.fills, "exclusions": self.exclusions}, sort_keys=True, indent=1)

    def merge(self, other: RepairRecords) -> RepairRecords:
        fills = {d: dict(v) for d, v in self.fills.items()}
        exclusions = {d: dict(v) for d, v in self.exclusions.items()}
        for d, v in other.fills.items():
            fills.setdefault(d, {}).update(v)
        for d, v in other.exclusions.items():
            exclusions.setdefault(d, {}).update(v)
        return RepairRecords(fills, exclusions)

    def excluded(self, date) -> dict[str, str]:
        return self.exclusions.get(pd.Timestamp(date).strftime("%Y-%m-%d"), {})

    def filled(self, date) -> dict[str, dict]:
        return self.fills.get(pd.Timestamp(date).strftime("%Y-%m-%d"), {})


def records_path(lake, manifest: str):
    return lake.manifest_dir(manifest) / REPAIRS_FILE


def load_records(lake, manifest: str) -> RepairRecords:
    path = records_path(lake, manifest)
    if not path.exists():
        return RepairRecords()
    raw = json.loads(path.read_text())
    return RepairRecords(raw.get("fills", {}), raw.get("exclusions", {}))


def save_records(lake, manifest: str, records: RepairRecords) -> None:
    atomic_write_bytes(records_path(lake, manifest), records.to_json().encode())


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


def plan_and_record(pipe, dates: list[pd.Timestamp]) -> RepairRecords:
    """Re-fetch ``dates`` (plus the history the decisions need) from the source, plan, merge, save."""
    m = pipe.manifest
    dates = sorted(pd.Timestamp(d) for d in dates)
    lookback = m.quality.max_fill_bars + m.universe.max_stale_days + 5
    first = previous_dates(m, dates[0], lookback)[0]
    symbols = pipe._universe_symbols
    bars = pipe.source.history(symbols, first, dates[-1])
    found = plan(bars, dates, tuple(pipe.source.fields), m.quality.max_fill_bars, m.universe.max_stale_days)
    records = load_records(pipe.lake, pipe.name).merge(found)
    save_records(pipe.lake, pipe.name, records)
    return found


def apply_to_catalog(frame: pd.DataFrame, records: RepairRecords, date) -> pd.DataFrame:
    """Excluded symbols are inactive on ``date`` and say why in ``exclusion`` ("" for the others)."""
    out = frame.copy()
    reasons = records.excluded(date)
    out["exclusion"] = pd.Series([reasons.get(s, "") for s in out["symbol"]], index=out.index, dtype=str)
    if reasons:
        out.loc[out["exclusion"] != "", "active"] = False
    return out


def apply_to_prices(frame: pd.DataFrame, records: RepairRecords, date, fields: tuple[str, ...]) -> pd.DataFrame:
    """Drop excluded symbols' bars; put the recorded fill in place of missing or bad bars."""
    excluded, fills = records.excluded(date), records.filled(date)
    if not excluded and not fills:
        return frame
    out = frame[~frame["symbol"].isin(list(excluded) + list(fills))]
    if fills:
        rows = {"date": [pd.Timestamp(date)] * len(fills), "symbol": sorted(fills)}
        for f in fields:
            rows[f] = [0.0 if f == "volume" else fills[s]["close"] for s in sorted(fills)]
        filled = pd.DataFrame(rows).astype({f: "float64" for f in fields})
        filled["date"] = filled["date"].astype(out["date"].dtype)
        out = pd.concat([out, filled[out.columns]], ignore_index=True)
    return out.sort_values("symbol", kind="stable").reset_index(drop=True)


__all__ = ["RepairRecords", "apply_to_catalog", "apply_to_prices", "load_records", "plan", "plan_and_record",
           "save_records"]
