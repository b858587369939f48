"""Repair decisions (fill or exclude, per date and symbol) stored beside the lake in
``<lake>/<manifest>/repairs.json``, and how the catalog and prices stages apply them on every run, so a
repaired range re-runs to the same partitions. Planning them is ``repair.planning``'s job."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

from tvquant_assets.lake.store import atomic_write_bytes

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


def apply_to_catalog(frame: pd.DataFrame, records: RepairRecords, date) -> pd.DataFrame:
    """Excluded symbols are inactive on ``date`` and say why in ``exclusion`` ("" for the others)."""
    reasons = records.excluded(date)
    if not reasons:  # most dates: nothing excluded
        return frame.assign(exclusion=pd.Series("", index=frame.index, dtype=str))
    out = frame.assign(exclusion=pd.Series([reasons.get(s, "") for s in frame["symbol"]], index=frame.index,
                                           dtype=str))
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


__all__ = ["REPAIRS_FILE", "RUN_TAG", "RepairRecords", "apply_to_catalog", "apply_to_prices", "load_records",
           "records_path", "save_records"]
