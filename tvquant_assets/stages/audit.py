"""Hash-chained ledger entry for D proving every stage's output, manifest and environment.

The entry's payload holds, for every sealed stage, its output ``df_hash`` and the hashes of the lake
partitions it read for D (``lineage.input_partitions``), the manifest hash, the environment (uv.lock hash,
Python, package versions, BLAS threads), the git sha, the run id and the entry it supersedes. A date whose
record is unchanged appends nothing, so re-running is idempotent; the chain head after the append goes into
the partition's metadata, with ``ledger_appended`` (false on an unchanged re-run, whose audit partition is
then byte-identical).
"""

from __future__ import annotations

import pandas as pd

import tvquant_assets.stages as registry
from tvquant_assets.core.frames import one_row_frames
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.history import update_stale
from tvquant_assets.stages.lineage import audit_payload, input_hashes, output_hashes, same_record
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="audit", description=__doc__, kinds=("json",), sealed=False, seals=True)


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    """Seal every stage's output for each date in the ledger. A date whose record (hashes, inputs,
    manifest, environment, code) is unchanged appends nothing; anything else appends an entry that
    supersedes the last one for that date. The chain head after the append goes into the metadata."""
    ledger = Ledger(str(ctx.lake.ledger_path(ctx.name)))
    sealed = registry.sealed_specs(ctx.manifest)
    hashes = ctx.same_date_hashes([s.name for s in sealed], dates)
    inputs = input_hashes(ctx, dates, sealed)
    payloads = {d: audit_payload(ctx, d, hashes[d], inputs[d]) for d in dates}
    kept: dict[pd.Timestamp, dict] = {}  # dates whose last entry already says all of it
    seen = {"head": None}

    changed: dict[str, str] = {}  # dates whose sealed prices this run replaces
    sealed_dates: list[str] = []

    def plan(entries: list[dict]) -> list[dict]:  # runs under the ledger's lock
        seen["head"] = entries[-1] if entries else None
        latest = {e["payload"].get("date"): e for e in entries}  # later entries supersede earlier
        sealed_dates[:] = sorted(d for d in latest if d)
        new = []
        for d, payload in payloads.items():
            prior = latest.get(payload["date"])
            if prior is not None and same_record(prior["payload"], payload):
                kept[d] = prior
            else:
                payload["supersedes"] = prior["entry_hash"] if prior else None
                new.append(payload)
                old = output_hashes(prior["payload"]).get("prices") if prior else None
                if old is not None and old != hashes[d].get("prices"):
                    changed[payload["date"]] = ctx.run_id
        return new

    new_entries = ledger.append_planned(plan)
    later = update_stale(ctx.lake, ctx.name, [p["date"] for p in payloads.values()], changed, sealed_dates)
    notes = {pd.Timestamp(d): f"prices changed since sealed; {len(e)} later sealed date(s) computed from the old "
                              f"bars are stale" + (f": {e[0]}..{e[-1]}" if e else "") for d, e in later.items()}
    head = new_entries[-1] if new_entries else seen["head"]
    appended = iter(new_entries)
    rows, metadata, entries_by_date = {}, {}, {}
    for d in dates:
        entries_by_date[d] = (kept[d], False) if d in kept else (next(appended), True)
    for d in dates:
        entry, was_appended = entries_by_date[d]
        stages = hashes[d]
        row = {"date": d, "seq": int(entry["seq"]), "entry_hash": entry["entry_hash"],
               "prev_hash": entry["prev_hash"], "manifest_hash": ctx.manifest_hash}
        row.update({f"hash_{s}": h for s, h in sorted(stages.items())})
        rows[d] = row  # the same on a re-run: whether it appended is run metadata
        metadata[d] = {"ledger_appended": was_appended, "ledger_seq": int(entry["seq"]),
                       "ledger_entry_hash": entry["entry_hash"],
                       "ledger_head_seq": int(head["seq"]) if head else -1,
                       "ledger_head_hash": head["entry_hash"] if head else "", "ledger": str(ledger.path)}
    return StageResult(one_row_frames(rows), hashes, notes=notes, metadata=metadata)


def summary(frame: pd.DataFrame) -> dict:
    if frame.empty or "entry_hash" not in frame.columns:
        return {}
    row = frame.iloc[0]
    md = f"chain position **#{int(row['seq'])}**, entry `{row['entry_hash']}`, previous `{row['prev_hash']}`"
    return {"summary": md}  # the typed chain head values come from the run's metadata
