"""Replay a date: recompute every stage for D from the inputs in the lake and compare bit for bit.

Each stage is recomputed by its stage module from the lake's own upstream partitions (so a
difference is pinned on the stage whose output or inputs moved), in memory: nothing is written to
the lake or the ledger. For every stage three ``df_hash``es are compared: the one the ledger's latest
entry for D records, the one of the lake's partition now, and the recomputed one; the inputs the
stage reads now are compared with the input hashes the entry recorded. No Dagster here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import pandas as pd

from tvquant_assets.errors import LedgerError, TvquantError
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import Manifest
from tvquant_assets.stages import ALL_STAGES, SPECS, Stage
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.lineage import input_hashes, output_hashes
from tvquant_assets.stages.plan import run_stage

COMPUTED = tuple(s for s in ALL_STAGES if s is not Stage.AUDIT)  # those a manifest enables


@dataclass
class StageReplay:
    """One row of the replay table. ``problems`` is empty when the stage replays bit for bit."""

    stage: str
    ledger: str | None
    lake: str | None
    replayed: str | None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass
class ReplayReport:
    manifest: str
    date: str
    entry_seq: int | None
    entry_hash: str | None
    stages: list[StageReplay]

    @property
    def ok(self) -> bool:
        return all(s.ok for s in self.stages)

    @property
    def failed(self) -> list[StageReplay]:
        return [s for s in self.stages if not s.ok]

    def as_dict(self) -> dict:
        return {"manifest": self.manifest, "date": self.date, "ok": self.ok, "entry_seq": self.entry_seq,
                "entry_hash": self.entry_hash, "stages": [{**asdict(s), "ok": s.ok} for s in self.stages]}


def latest_entry(ledger: Ledger, date: pd.Timestamp) -> dict:
    """The ledger's last entry for ``date`` after checking the chain.

    Raises
    ------
    LedgerError
        If the chain is broken or holds no entry for the date.
    """
    report = ledger.verify()
    if not report.ok:
        raise LedgerError(f"{ledger.path}: ledger broken at entry {report.first_bad}: {report.reason}; "
                          "run 'tvquant audit verify'")
    entry = ledger.latest_for("date", date.strftime("%Y-%m-%d"))
    if entry is None:
        raise LedgerError(f"{ledger.path}: no entry for {date.date()}; materialize that date first")
    return entry


def replay(manifest: Manifest, lake_root, date) -> ReplayReport:
    """Recompute every stage of ``manifest`` for ``date`` and compare with the lake and the ledger.

    Raises
    ------
    LedgerError
        If the ledger is broken or has no entry for the date.
    """
    d = pd.Timestamp(date)
    lake = Lake(lake_root)  # a private instance: no frame cached by this process is trusted
    entry = latest_entry(Ledger(lake.ledger_path(manifest.name)), d)
    payload = entry["payload"]
    recorded = output_hashes(payload)
    ctx = RunContext(manifest, lake)
    ctx.history.content = ctx.history.persist = False  # replay names changed inputs itself, and writes nothing
    computed = [s for s in COMPUTED if SPECS[s].enabled(manifest)]
    inputs_now = input_hashes(ctx, [d], [SPECS[s] for s in computed], verify=True)[d]  # from the files' content
    rows = []
    for stage in computed:
        row = StageReplay(stage.value, recorded.get(stage.value), _lake_hash(lake, manifest.name, stage, d), None)
        try:
            frame = run_stage(ctx, stage, [d]).frames[d].reset_index(drop=True)
            row.replayed = df_hash(frame)
        except TvquantError as exc:
            row.problems.append(f"cannot recompute: {str(exc).splitlines()[0]}")
        rec_inputs = (payload["stages"].get(stage.value) or {}).get("inputs") \
            if isinstance(payload["stages"].get(stage.value), dict) else None
        if rec_inputs is not None:
            moved = [a for a in sorted(set(rec_inputs) | set(inputs_now[stage.value]))
                     if (rec_inputs.get(a) or {}).get("hash") != (inputs_now[stage.value].get(a) or {}).get("hash")]
            if moved:
                row.problems.append("inputs changed since the ledger entry: " + ", ".join(
                    f"{a} {(inputs_now[stage.value].get(a) or rec_inputs.get(a))['dates']}" for a in moved))
        if row.replayed is not None and row.replayed != row.lake:
            row.problems.insert(0, "replay != lake")
        if row.lake != row.ledger:
            row.problems.append("lake != ledger (the partition changed after the entry)")
        rows.append(row)
    rows.append(_audit_row(lake, manifest.name, d, entry))
    return ReplayReport(manifest.name, d.strftime("%Y-%m-%d"), entry["seq"], entry["entry_hash"], rows)


def _lake_hash(lake: Lake, manifest: str, stage: Stage, d: pd.Timestamp) -> str | None:
    try:
        return lake.read_with_hash(manifest, stage.value, d, verify=True)[1]  # from the content
    except TvquantError:
        return None


def _audit_row(lake: Lake, manifest: str, d: pd.Timestamp, entry: dict) -> StageReplay:
    """The audit partition must name the ledger's latest entry for D and carry its stage hashes."""
    row = StageReplay(Stage.AUDIT.value, entry["entry_hash"], None, None)
    try:
        frame = lake.read(manifest, Stage.AUDIT.value, d)
    except TvquantError:
        row.problems.append("no audit partition in the lake")
        return row
    row.lake = str(frame["entry_hash"].iloc[0])
    recorded = output_hashes(entry["payload"])
    stored = {c[len("hash_"):]: str(frame[c].iloc[0]) for c in frame.columns if c.startswith("hash_")}
    if row.lake != row.ledger:
        row.problems.append("the audit partition names another ledger entry")
    if stored != recorded:
        row.problems.append("its stage hashes differ from the ledger entry")
    return row
