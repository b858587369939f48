"""The audit stage's ledger entries: what they hold, when they supersede, how they serialize."""

import json
from pathlib import Path

import pandas as pd
import pytest

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import HMAC_ENV, Ledger
from tvquant_assets.manifest import load_manifest, manifest_hash
from tvquant_assets.stages import SPECS, STAGES, Stage
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.lineage import input_partitions, output_hashes
from tvquant_assets.stages.plan import run_stage

ROOT = Path(__file__).resolve().parents[2]
DATES = [pd.Timestamp("2020-03-02"), pd.Timestamp("2020-03-03")]
ENV = {"uv_lock_hash": "a" * 64, "git_sha": "b" * 40, "git_dirty": False, "python": "3.12.9",
       "packages": {"numpy": "2.5.5"}, "blas_threads": 1}


def run_audit(ctx: RunContext, dates, run_id: str = "one-shot"):
    ctx.run_id = run_id
    return run_stage(ctx, Stage.AUDIT, dates)


@pytest.fixture
def lake(tmp_path, monkeypatch):
    """A lake holding small stand-in frames for every stage on DATES and prices for part of their windows."""
    monkeypatch.delenv(HMAC_ENV, raising=False)
    m = load_manifest(ROOT / "manifests" / "sp500_demo.yaml")
    lake = Lake(tmp_path / "lake")
    for d in manifest_dates(m, "2020-01-27", DATES[-1]):
        lake.write(m.name, "prices", d, pd.DataFrame({"symbol": ["AAPL"], "close": [100.0 + d.day_of_year]}))
    for stage in STAGES:
        if stage not in (Stage.AUDIT, Stage.PRICES):
            for d in DATES:
                lake.write(m.name, stage.value, d, pd.DataFrame({"stage": [stage.value], "day": [d]}))
    return m, lake


def test_entry_holds_every_stage_inputs_outputs_and_provenance(lake):
    m, lk = lake
    pipe = RunContext(m, lk, environment=ENV)
    result = run_audit(pipe, DATES, run_id="run-1")
    entries = Ledger(lk.ledger_path(m.name)).entries()
    assert [e["payload"]["date"] for e in entries] == ["2020-03-02", "2020-03-03"]
    p = entries[1]["payload"]
    assert set(p) == {"manifest", "date", "stages", "manifest_hash", "environment", "git", "run_id", "timestamp",
                      "supersedes"}
    assert (p["manifest"], p["run_id"], p["manifest_hash"], p["supersedes"]) == (m.name, "run-1", manifest_hash(m),
                                                                                    None)
    assert p["environment"] == {"uv_lock_hash": "a" * 64, "python": "3.12.9", "packages": {"numpy": "2.5.5"},
                                "blas_threads": 1}
    assert p["git"] == {"sha": "b" * 40, "dirty": False}
    assert pd.Timestamp(p["timestamp"]).tzinfo is not None
    d = DATES[1]
    outputs = output_hashes(p)
    assert set(outputs) == {s.value for s in STAGES if s is not Stage.AUDIT}
    assert outputs["regime"] == lk.read_with_hash(m.name, "regime", d)[1]
    # inputs: same-date upstreams by their df_hash, windows by one hash over "date:df_hash" lines
    est = p["stages"]["estimation"]["inputs"]
    assert est["selection"] == {"dates": "2020-03-03", "n": 1, "hash": outputs["selection"]}
    window = manifest_dates(m, pipe.window_start(d), d)
    assert est["prices"]["dates"] == f"{window[0]:%Y-%m-%d}..2020-03-03"
    assert est["prices"]["n"] == 27  # the partitions of the window that exist
    import hashlib

    lines = "\n".join(f"{x:%Y-%m-%d}:{lk.read_with_hash(m.name, 'prices', x)[1]}" for x in window
                      if lk.exists(m.name, "prices", x))
    assert est["prices"]["hash"] == hashlib.sha256(lines.encode()).hexdigest()
    assert p["stages"]["catalog"]["inputs"] == {}
    assert p["stages"]["tournament"]["inputs"]["tournament"]["dates"] == "2020-03-02"  # carried decision
    assert "tournament" not in entries[0]["payload"]["stages"]["tournament"]["inputs"]  # 03-02 rebalances
    assert set(input_partitions(pipe, SPECS[Stage.BACKTEST], d)) == {"tournament", "prices"}
    # the audit frame points at the entry; metadata carries the chain head
    frame = result.frames[d].iloc[0]
    assert (frame["seq"], frame["entry_hash"], result.metadata[d]["ledger_appended"]) == \
        (1, entries[1]["entry_hash"], True)
    assert result.metadata[d]["ledger_head_seq"] == 1
    assert result.metadata[d]["ledger_head_hash"] == entries[1]["entry_hash"]
    assert result.metadata[d]["ledger"] == str(lk.ledger_path(m.name))


def test_rematerializing_appends_a_superseding_entry_never_rewrites(lake):
    m, lk = lake
    pipe = RunContext(m, lk, environment=ENV)
    first = run_audit(pipe, DATES, run_id="run-1")
    ledger = Ledger(lk.ledger_path(m.name))
    before = ledger.path.read_bytes()
    again = run_audit(pipe, DATES, run_id="run-2")  # identical record: nothing new to prove
    assert ledger.path.read_bytes() == before and not again.metadata[DATES[0]]["ledger_appended"]
    assert all(df_hash(again.frames[d]) == df_hash(first.frames[d]) for d in DATES)  # the audit partition too
    assert again.metadata[DATES[0]]["ledger_head_seq"] == 1
    # a stage re-materialized with other content
    lk.write(m.name, "tournament", DATES[1], pd.DataFrame({"stage": ["tournament"], "day": [DATES[1]], "v": [2]}))
    third = run_audit(pipe, DATES, run_id="run-3")
    assert ledger.path.read_bytes().startswith(before)  # append-only
    entries = ledger.entries()
    assert len(entries) == 3 and entries[2]["payload"]["date"] == "2020-03-03"
    assert entries[2]["payload"]["supersedes"] == entries[1]["entry_hash"]
    assert entries[2]["payload"]["run_id"] == "run-3"
    assert output_hashes(entries[2]["payload"])["tournament"] == lk.read_with_hash(m.name, "tournament", DATES[1])[1]
    assert third.frames[DATES[0]]["seq"].iloc[0] == 0 and third.frames[DATES[1]]["seq"].iloc[0] == 2
    # new code (another git sha) re-proves the same outputs: a superseding entry says so
    run_audit(RunContext(m, lk, environment={**ENV, "git_sha": "c" * 40}), DATES[:1], run_id="run-4")
    last = ledger.entries()[-1]
    assert last["payload"]["git"]["sha"] == "c" * 40 and last["payload"]["supersedes"] == entries[0]["entry_hash"]
    # an input window changed (a price in the trailing window rewritten)
    lk.write(m.name, "prices", pd.Timestamp("2020-02-28"), pd.DataFrame({"symbol": ["AAPL"], "close": [1.0]}))
    run_audit(RunContext(m, lk, environment={**ENV, "git_sha": "c" * 40}), DATES[:1], run_id="run-5")
    last2 = ledger.entries()[-1]
    assert last2["payload"]["supersedes"] == last["entry_hash"]
    assert last2["payload"]["stages"]["scan"]["inputs"]["prices"]["hash"] != \
        last["payload"]["stages"]["scan"]["inputs"]["prices"]["hash"]
    assert output_hashes(last2["payload"]) == output_hashes(last["payload"])
    assert ledger.verify().ok


def test_hmac_key_signs_audit_entries_and_is_never_stored(lake, monkeypatch):
    m, lk = lake
    secret = "do-not-leak-7f3a"
    monkeypatch.setenv(HMAC_ENV, secret)
    result = run_audit(RunContext(m, lk, environment=ENV), DATES, run_id="r")
    text = Path(str(lk.ledger_path(m.name))).read_text()
    assert secret not in text and all("hmac" in json.loads(line) for line in text.splitlines())
    assert secret not in json.dumps({str(k): v for k, v in result.metadata.items()}, default=str)
    assert secret not in result.frames[DATES[0]].to_json(date_format="iso")
    assert Ledger(lk.ledger_path(m.name)).verify().ok
    monkeypatch.setenv(HMAC_ENV, "another-key")
    assert "HMAC mismatch" in Ledger(lk.ledger_path(m.name)).verify().reason


def test_audit_frame_hashes_match_the_lake(lake):
    m, lk = lake
    frames = run_audit(RunContext(m, lk, environment=ENV), DATES).frames
    row = frames[DATES[0]].iloc[0]
    for stage in STAGES:
        if stage is not Stage.AUDIT:
            assert row[f"hash_{stage.value}"] == df_hash(lk.read(m.name, stage.value, DATES[0]))


def test_book_spans_of_a_range_hash_as_each_date_alone(lake):
    """A range's book spans (closes since ``backtest.start``, one date longer each day) share one growing
    digest; each must equal the digest of its own labels joined, spelled out per date."""
    import hashlib

    from tvquant_assets.stages.lineage import input_hashes

    m, lake = lake
    m = m.model_copy(update={"backtest": m.backtest.model_copy(update={"start": pd.Timestamp("2020-01-27").date()})})
    ctx = RunContext(m, lake)
    dates = manifest_dates(m, "2020-02-24", DATES[-1])
    for d in dates:  # prices of every date: the book span then reads only present partitions
        if not lake.exists(m.name, "prices", d):
            lake.write(m.name, "prices", d, pd.DataFrame({"symbol": ["AAPL"], "close": [1.0 + d.day_of_year]}))
    spec = SPECS[Stage.BACKTEST]
    got = input_hashes(ctx, dates, [spec])
    for d in dates:
        window = input_partitions(ctx, spec, d)["prices"]
        lines = "\n".join(f"{x:%Y-%m-%d}:{lake.read_with_hash(m.name, 'prices', x)[1]}" for x in window)
        assert len(window) > 20 and got[d]["backtest"]["prices"] == {
            "dates": f"{window[0]:%Y-%m-%d}..{window[-1]:%Y-%m-%d}", "n": len(window),
            "hash": hashlib.sha256(lines.encode()).hexdigest()}
        assert got[d] == input_hashes(ctx, [d], [spec])[d]  # alone: no span to extend
