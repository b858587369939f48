"""Bad history never reaches a decision: 14 faults planted in one sealed price partition of a real lake
(the shared Dagster run 2020-02-03..2020-03-31) are each refused in one line naming the partition (and the
symbol) when the next dates are computed, by the first stage that reads the trailing price window (scan;
for one fault every stage that reads it), before it returns anything;
restoring the file makes the same run pass. The verification is cached per file version (size, mtime):
an unchanged lake is hashed once."""

import shutil

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.errors import LakeError
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake import Lake
from tvquant_assets.stages import Stage
from tvquant_assets.stages import history as history_mod
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import run_stage, write

BAD = pd.Timestamp("2020-03-16")
NEXT = ("2020-04-01", "2020-04-03")
READERS = (Stage.SCAN, Stage.REGIME, Stage.SELECTION, Stage.ESTIMATION, Stage.TOURNAMENT, Stage.BACKTEST,
           Stage.DRIFT)


@pytest.fixture(scope="module")
def lake(small_lake, tmp_path_factory):
    root = tmp_path_factory.mktemp("history") / "lake"
    shutil.copytree(small_lake["lake_root"], root)
    m = small_lake["manifest"]
    lk = Lake(str(root))
    ctx = RunContext(m, lk)
    dates = manifest_dates(m, *NEXT)
    for stage in (Stage.CATALOG, Stage.PRICES, *READERS):  # the next dates, computed on the clean lake
        write(ctx, stage, run_stage(ctx, stage, dates))
    return {"root": root, "manifest": m, "dates": dates, "path": lk.path(m.name, "prices", BAD)}


def _run(lake, stages=(Stage.SCAN,)):
    ctx = lake.setdefault("ctx", RunContext(lake["manifest"], Lake(str(lake["root"]))))
    ctx.__dict__.pop("history", None)  # a new run: the ledger and the verification record read again
    return {s: run_stage(ctx, s, lake["dates"]) for s in stages}  # (the lake's cache checks size and mtime)


def _relabelled(path, change):
    """Rewrite the partition through the lake (a fresh, correct hash label): only the ledger can tell."""
    frame = pq.read_table(path).to_pandas()
    Lake(str(path).rsplit("/", 3)[0]).write_path(path, change(frame.copy()))


def _label_kept(path, change):
    """Change the content but keep the stored label (silent corruption that still decodes)."""
    table = pq.read_table(path)
    frame = change(table.to_pandas())
    new = pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata)
    pq.write_table(new, path, compression="snappy")


def _set(col, row, value):
    def change(f):
        f.loc[row, col] = value
        return f
    return change


def _flip_bit(f):
    v = np.array([f.loc[3, "close"]], dtype="float64").view("uint64")
    v ^= np.uint64(1 << 20)
    f.loc[3, "close"] = v.view("float64")[0]
    return f


def _stale(f):
    prev = pq.read_table(str(_stale.prev)).to_pandas().set_index("symbol")["close"]
    f["close"] = f["close"].where(f["symbol"] != f.loc[0, "symbol"], prev[f.loc[0, "symbol"]])
    return f


def _swap(f):
    f.loc[[0, 1], "close"] = f.loc[[1, 0], "close"].to_numpy()
    return f


FAULTS = {
    # (how, change, expected fragment): bars that cannot be used, named by symbol
    "nan close": (_relabelled, _set("close", 0, np.nan), "close nan"),
    "negative close": (_relabelled, _set("close", 0, -12.5), "close -12.5"),
    "zero close": (_relabelled, _set("close", 0, 0.0), "close 0"),
    "infinite close": (_relabelled, _set("close", 0, np.inf), "close inf"),
    "duplicate bar": (_relabelled, lambda f: pd.concat([f, f.iloc[[2]]], ignore_index=True), "duplicate bars (2 rows)"),
    "restamped bar": (_relabelled, _set("date", 1, pd.Timestamp("2020-03-13")), "bar stamped 2020-03-13"),
    # plausible-looking changes: the ledger's sealed hash tells
    "missing symbol": (_relabelled, lambda f: f.iloc[1:].reset_index(drop=True), "the ledger sealed"),
    "10x outlier": (_relabelled, lambda f: _set("close", 0, f.loc[0, "close"] * 10)(f), "the ledger sealed"),
    "stale series": (_relabelled, _stale, "the ledger sealed"),
    "added symbol": (_relabelled, lambda f: pd.concat(
        [f, f.iloc[[0]].assign(symbol="ZZZZ")], ignore_index=True), "the ledger sealed"),
    "swapped closes": (_relabelled, _swap, "the ledger sealed"),
    "rounded closes": (_relabelled, lambda f: f.assign(close=f["close"].round(1)), "the ledger sealed"),
    # the stored label no longer describes the content
    "flipped bit": (_label_kept, _flip_bit, "does not match its label"),
    "tiny change, label kept": (_label_kept, lambda f: _set("close", 5, f.loc[5, "close"] + 1e-9)(f),
                                "does not match its label"),
}


def test_the_clean_lake_runs_and_is_verified_once(lake):
    out = _run(lake, (Stage.SCAN, Stage.REGIME))
    assert all(len(r.frames) == len(lake["dates"]) for r in out.values())
    lk = Lake(str(lake["root"]))
    for stage, result in out.items():  # the same frames as the fixture's run wrote
        assert all(df_hash(result.frames[d]) == lk.read_with_hash(lake["manifest"].name, stage.value, d)[1]
                   for d in lake["dates"]), stage
    record = lake["root"] / lake["manifest"].name / history_mod.RECORD_NAME
    assert record.exists()
    calls = []
    real = history_mod.df_hash
    try:
        history_mod.df_hash = lambda f: calls.append(1) or real(f)
        _run(lake)
    finally:
        history_mod.df_hash = real
    assert calls == []  # unchanged files are not hashed again


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_fault_is_refused_by_every_reader_in_one_line(lake, name):
    how, change, fragment = FAULTS[name]
    path = lake["path"]
    original = open(path, "rb").read()
    _stale.prev = lake["path"].replace("2020-03-16", "2020-03-13")
    try:
        how(path, change)
        for stage in READERS if name == "zero close" else (Stage.SCAN,):
            with pytest.raises(LakeError) as info:
                _run(lake, (stage,))
            msg = str(info.value)
            assert len(msg.splitlines()) == 1, msg
            assert "prices/2020-03-16.parquet" in msg and fragment in msg, (stage, msg)
    finally:
        with open(path, "wb") as fh:
            fh.write(original)
    assert len(_run(lake)[Stage.SCAN].frames) == len(lake["dates"])  # restored: the run passes again


def test_a_raw_byte_flip_is_refused_or_harmless(lake):
    path = lake["path"]
    original = open(path, "rb").read()
    clean = _run(lake)[Stage.SCAN].frames
    try:
        for offset in range(8, len(original) - 8, max(1, len(original) // 4)):
            data = bytearray(original)
            data[offset] ^= 0x10
            with open(path, "wb") as fh:
                fh.write(bytes(data))
            try:
                got = _run(lake)[Stage.SCAN].frames
            except LakeError as exc:
                assert "2020-03-16" in str(exc) and len(str(exc).splitlines()) == 1
                continue
            assert all(df_hash(got[d]) == df_hash(clean[d]) for d in clean), offset  # a flip the reader never sees
    finally:
        with open(path, "wb") as fh:
            fh.write(original)


def test_later_dates_built_on_a_changed_date_are_flagged_stale(small_lake, tmp_path, monkeypatch):
    """Re-running a date whose source bars changed (a repair) seals new prices; every later sealed date
    was computed from the old bars: the audit says so, stale.json lists them, the CLI note gives the
    command, and re-sealing them clears it."""
    from tvquant_assets.stages import STAGES
    from tvquant_assets_tests import faults

    root = tmp_path / "lake"
    shutil.copytree(small_lake["lake_root"], root)
    m = small_lake["manifest"]
    changed = pd.Timestamp("2020-03-27")
    symbol = pq.read_table(str(Lake(str(root)).path(m.name, "prices", changed))).to_pandas()["symbol"].iloc[0]
    faults.install(monkeypatch, {(symbol, "2020-03-27"): 123.0})
    ctx = RunContext(m, Lake(str(root)))
    results = {}
    for stage in STAGES:
        results[stage] = run_stage(ctx, stage, [changed])
        write(ctx, stage, results[stage])
    later = [f"{d:%Y-%m-%d}" for d in manifest_dates(m, "2020-03-28", "2020-03-31")]
    assert results[Stage.AUDIT].notes[changed] == (f"prices changed since sealed; {len(later)} later sealed date(s) "
                                                   f"computed from the old bars are stale: {later[0]}..{later[-1]}")
    assert sorted(history_mod.stale_dates(ctx.lake, m.name)) == later
    note = history_mod.stale_note(ctx.lake, m.name)
    assert note.startswith(f"{len(later)} sealed date(s) 2020-03-30..2020-03-31 are stale: computed from prices "
                           f"2020-03-27") and f"--start {later[0]} --end {later[-1]}" in note
    monkeypatch.undo()
    ctx = RunContext(m, Lake(str(root)))
    dates = [pd.Timestamp(d) for d in later]
    for stage in STAGES[2:]:  # scan .. audit from the lake: the later dates recomputed and sealed again
        write(ctx, stage, run_stage(ctx, stage, dates))
    assert history_mod.stale_dates(ctx.lake, m.name) == {} and history_mod.stale_note(ctx.lake, m.name) is None


def test_a_dagster_backfill_on_changed_history_ends_with_the_partition(lake, small_lake, tmp_path, monkeypatch,
                                                                        capsys):
    """Through the CLI and a real Dagster run: the 10x outlier in sealed history stops the run at scan,
    the last line names the partition, and no scan partition of the range is written."""
    from tvquant_assets.cli import main

    path = lake["path"]
    original = open(path, "rb").read()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    scan_dir = lake["root"] / lake["manifest"].name / "scan"
    scans = {p.name: p.stat().st_mtime_ns for p in scan_dir.iterdir()}
    try:
        _relabelled(path, lambda f: _set("close", 0, f.loc[0, "close"] * 10)(f))
        code = main(["backfill", "--manifest", str(small_lake["manifest_path"]), "--start", NEXT[0], "--end", NEXT[1],
                     "--lake", str(lake["root"]), "--no-report", "--json"])
        last = capsys.readouterr().err.strip().splitlines()[-1]
    finally:
        with open(path, "wb") as fh:
            fh.write(original)
    assert code == 2
    # contained to its dates: the last line says which dates and names the first cause, the partition
    assert last.startswith(f"tvquant: error: {lake['manifest'].name}: ") and "first: scan " in last \
        and "LakeError: lake: history partition" in last and "prices/2020-03-16.parquet: content hash" in last, last
    assert {p.name: p.stat().st_mtime_ns for p in scan_dir.iterdir()} == scans  # nothing of scan rewritten
