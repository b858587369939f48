"""Real Dagster, real data: a range materialized through the asset graph on a temp lake and a temp
SQLite instance (with the batched event storage), checked against the one-shot pipeline."""

import json
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.cli import main
from tvquant_assets.errors import ManifestError
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import check_range, materialize_range, range_bounds
from tvquant_assets.stages import STAGES, Stage
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import run_one_shot

ROOT = Path(__file__).resolve().parents[1]
START, END = "2020-02-03", "2020-03-31"  # the range of the shared sp500_it_run fixture (conftest)


@pytest.fixture(scope="module")
def run(sp500_it_run):
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(sp500_it_run["home"]))  # later runs in this module use the same instance
    yield sp500_it_run
    mp.undo()


def test_every_stage_and_partition_is_in_the_lake_and_the_instance(run):
    m = run["manifest"]
    dates = manifest_dates(m, START, END)
    lake = Lake(run["lake_root"])
    instance = DagsterInstance.from_config(str(run["home"]))
    for stage in STAGES:
        assert all(lake.exists(m.name, stage.value, d) for d in dates), stage
        done = instance.get_materialized_partitions(AssetKey([m.name, stage.value]))
        assert {d.strftime("%Y-%m-%d") for d in dates} <= done, stage
    # trailing-window history was materialized first for catalog and prices only
    assert lake.exists(m.name, "prices", "2019-06-03") and not lake.exists(m.name, "scan", "2019-06-03")
    assert any("history for trailing windows" in n for n in run["report"].notes)


def test_metadata_carries_content_and_lineage_hashes(run):
    m = run["manifest"]
    lake = Lake(run["lake_root"])
    instance = DagsterInstance.from_config(str(run["home"]))
    key = AssetKey([m.name, "estimation"])
    event = instance.fetch_materializations(key, limit=1000).records
    by_partition = {r.partition_key: r.asset_materialization.metadata for r in event}
    md = by_partition["2020-03-16"]
    frame, digest = lake.read_with_hash(m.name, "estimation", "2020-03-16")
    assert md["df_hash"].value == digest
    assert md["dagster/row_count"].value == len(frame)
    upstream = md["upstream_hashes"].value
    assert upstream["selection"] == lake.read_with_hash(m.name, "selection", "2020-03-16")[1]
    assert upstream["regime"] == lake.read_with_hash(m.name, "regime", "2020-03-16")[1]
    assert len(md["manifest_hash"].value) == 64
    assert "symbol" in md["preview"].value
    tournament = {r.partition_key: r.asset_materialization.metadata
                  for r in instance.fetch_materializations(AssetKey([m.name, "tournament"]), limit=1000).records}
    assert tournament["2020-03-16"]["note"].value == "not a rebalance date: carries the decision of 2020-03-02"
    assert tournament["2020-03-02"]["note"].value == "rebalanced (monthly)"


def test_decisions_are_sane_and_crisis_preset_applies(run):
    m = run["manifest"]
    lake = Lake(run["lake_root"])
    regime = lake.read(m.name, "regime", "2020-03-20").iloc[0]
    assert regime["label"] in ("TURBULENT", "CRISIS")
    t = lake.read(m.name, "tournament", "2020-03-20")
    sums = t.groupby("candidate")["weight"].sum()
    assert sums.round(6).eq(1.0).all()
    assert set(t["candidate"]) == {"custom/min_variance", "custom/max_sharpe", "skfolio/hrp", "custom/equal_weight"}
    march = t[t["candidate"] == "custom/min_variance"]
    assert march["decision_date"].iloc[0] == pd.Timestamp("2020-03-02") and not march["rebalanced"].any()
    cap = march["max_weight"].iloc[0]
    assert march["weight"].max() <= cap + 1e-8
    board = lake.read(m.name, "backtest", END)
    assert len(board) == 4 and sorted(board["rank"]) == [1, 2, 3, 4]
    assert board["n_days"].max() == 41  # 42 weekdays, less Presidents Day (2020-02-17: no bars)


def test_dagster_run_equals_one_shot_pipeline(run, tmp_path):
    m = run["manifest"]
    other = Lake(tmp_path / "lake")
    run_one_shot(RunContext(m, other), manifest_dates(m, START, END))
    dagster_lake = Lake(run["lake_root"])
    for stage in STAGES:
        if stage is Stage.AUDIT:
            continue
        for d in manifest_dates(m, START, END):
            assert other.read_with_hash(m.name, stage.value, d)[1] == \
                dagster_lake.read_with_hash(m.name, stage.value, d)[1], (stage, d)
    a = dagster_lake.read(m.name, "audit", END)
    b = other.read(m.name, "audit", END)
    hash_cols = [c for c in a.columns if c.startswith("hash_")]
    assert len(hash_cols) == 9 and a[hash_cols].equals(b[hash_cols])


def test_rerun_is_idempotent_and_ledger_verifies(run, capsys):
    m = run["manifest"]
    lake = Lake(run["lake_root"])
    ledger = Ledger(str(lake.ledger_path(m.name)))
    n_before = len(ledger.entries())
    hashes_before = {d: lake.read_with_hash(m.name, "backtest", d)[1] for d in manifest_dates(m, START, END)}
    materialize_range(run["manifest_path"], "2020-03-02", END, lake_root=run["lake_root"])
    assert len(ledger.entries()) == n_before  # same decisions: nothing appended
    assert {d: Lake(run["lake_root"]).read_with_hash(m.name, "backtest", d)[1] for d in hashes_before} == \
        hashes_before
    assert ledger.verify().ok
    assert main(["audit", "verify", "--manifest", str(run["manifest_path"]), "--lake", run["lake_root"]]) == 0
    assert "ledger intact" in capsys.readouterr().out


def test_cli_verify_names_the_first_tampered_entry(run, tmp_path, capsys):
    m = run["manifest"]
    src = Path(str(Lake(run["lake_root"]).ledger_path(m.name)))
    lake = tmp_path / "lake"
    (lake / m.name).mkdir(parents=True)
    lines = src.read_text().splitlines()
    entry = json.loads(lines[5])
    entry["payload"]["stages"]["tournament"] = "0" * 64
    lines[5] = json.dumps(entry, sort_keys=True, separators=(",", ":"))
    (lake / m.name / "ledger.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify", "--manifest", str(run["manifest_path"]), "--lake", str(lake)]) == 1
    assert "entry 5: hash mismatch" in capsys.readouterr().err
    del lines[5]
    lines[5] = src.read_text().splitlines()[6]
    (lake / m.name / "ledger.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["audit", "verify", "--manifest", str(run["manifest_path"]), "--lake", str(lake)]) == 1
    assert "entry 5: 1 entry missing before it (deleted)" in capsys.readouterr().err


def test_bad_ranges_are_one_line_errors(run, capsys):
    m = run["manifest"]
    # non-partition bounds (Saturday 2020-02-01, Sunday 2020-02-09) cover the partitions inside, and say so
    s, e, notes = range_bounds(m, "2020-02-01", "2020-02-09")
    assert (s, e) == (pd.Timestamp("2020-02-03"), pd.Timestamp("2020-02-07"))
    assert notes == ["--start 2020-02-01 is a Saturday, not a partition (weekdays): the range starts on 2020-02-03",
                     "--end 2020-02-09 is a Sunday, not a partition (weekdays): the range ends on 2020-02-07"]
    assert check_range(m, "2020-02-01", "2020-02-05") == (pd.Timestamp("2020-02-03"), pd.Timestamp("2020-02-05"))
    with pytest.raises(ManifestError, match="no partition of sp500_it between 2020-02-08 and 2020-02-09"):
        check_range(m, "2020-02-08", "2020-02-09")
    code = main(["backfill", "--manifest", str(run["manifest_path"]), "--start", "2024-06-03", "--end",
                 "2024-06-07", "--lake", run["lake_root"]])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "--start 2024-06-03 is after the last bar of sp500_it's source bundled (2022-12-28)" in err
    with pytest.raises(ManifestError, match="before --start"):
        check_range(m, "2020-02-05", "2020-02-03")
    code = main(["backfill", "--manifest", str(run["manifest_path"]), "--start", "1980-01-02", "--end",
                 "1980-01-03", "--lake", run["lake_root"]])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "first partition 1991-01-02" in err


def test_missing_window_history_is_read_from_the_source(tmp_path):
    """A UI backfill of a late range: the trailing windows' history is not in the lake, so it comes
    from the source, and the scan equals the one computed on a lake that holds that history."""
    from tvquant_assets.stages.plan import missing_history, run_stage

    m = load_manifest(ROOT / "manifests" / "sp500_demo.yaml")
    d = pd.Timestamp("2020-02-03")
    sparse, full = RunContext(m, Lake(tmp_path / "sparse")), RunContext(m, Lake(tmp_path / "full"))
    history = missing_history(full, d)
    assert len(history) > 250
    for pipe, dates in ((sparse, [d]), (full, [*history, d])):
        for stage in (Stage.CATALOG, Stage.PRICES):
            frames = run_stage(pipe, stage, dates).frames
            pipe.lake.write_many([(pipe.lake.path(m.name, stage.value, k), f) for k, f in frames.items()])
    assert not sparse.lake.exists(m.name, "prices", history[0])
    scan = run_stage(sparse, Stage.SCAN, [d]).frames[d]
    pd.testing.assert_frame_equal(scan, run_stage(full, Stage.SCAN, [d]).frames[d])
    assert scan["eligible"].sum() > 10


@pytest.fixture(scope="module")
def extended(run, tmp_path_factory):
    """A private copy of the shared lake and instance for the tests that extend the range past END: the
    shared ones stay read-only for other modules (the tearsheet reads its latest date)."""
    import shutil

    root = tmp_path_factory.mktemp("extended")
    shutil.copytree(run["lake_root"], root / "lake")
    shutil.copytree(run["home"], root / "home")
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(root / "home"))
    yield {**run, "lake_root": str(root / "lake"), "home": root / "home"}
    mp.undo()


def test_console_script_backfill_extends_a_range_and_reports_json(extended):
    import os
    import subprocess

    run = extended

    env = {**os.environ, "DAGSTER_HOME": str(run["home"])}
    out = subprocess.run(
        ["tvquant", "backfill", "--manifest", str(run["manifest_path"]), "--start", "2020-04-01", "--end",
         "2020-04-03", "--lake", run["lake_root"], "--json"],
        capture_output=True, text=True, env=env, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["partitions"] == 3 and summary["notes"] == []  # everything it needs is in the lake
    seconds = summary["seconds"]
    assert seconds["run_wall"] >= seconds["our_compute"] > 0
    board = Lake(run["lake_root"]).read("sp500_it", "backtest", "2020-04-03")
    assert board["n_days"].max() == 41 + 3
    assert Ledger(str(Lake(run["lake_root"]).ledger_path("sp500_it"))).verify().ok


def test_single_partition_run_sets_the_data_version_to_the_content_hash(extended):
    run = extended
    m = run["manifest"]
    report = materialize_range(run["manifest_path"], "2020-04-06", "2020-04-06", lake_root=run["lake_root"])
    assert report.partitions == 1
    instance = DagsterInstance.from_config(str(run["home"]))
    records = instance.fetch_materializations(AssetKey([m.name, "regime"]), limit=5).records
    latest = next(r for r in records if r.partition_key == "2020-04-06")
    digest = Lake(run["lake_root"]).read_with_hash(m.name, "regime", "2020-04-06")[1]
    assert latest.asset_materialization.tags["dagster/data_version"] == digest


def test_one_shot_backtest_command_equals_the_dagster_asset(run, tmp_path, capsys):
    """`tvquant backtest` (one call over a range, no Dagster) gives the Dagster backtest asset's frames:
    same df_hash on every date, whether run over the whole range, a later sub-range or one date."""
    import shutil

    m = run["manifest"]
    dagster_lake = Lake(run["lake_root"])
    lake_root = tmp_path / "lake"
    shutil.copytree(run["lake_root"], lake_root)
    shutil.rmtree(lake_root / m.name / "backtest")  # decisions and prices stay; the leaderboards go
    want = {str(d.date()): dagster_lake.read_with_hash(m.name, "backtest", d)[1] for d in manifest_dates(m, START, END)}
    for start, end in ((START, END), ("2020-03-09", "2020-03-20"), (END, END)):
        assert main(["backtest", "--manifest", str(run["manifest_path"]), "--start", start, "--end", end,
                     "--lake", str(lake_root), "--json"]) == 0
        got = json.loads(capsys.readouterr().out)
        assert got["hashes"] == {d: h for d, h in want.items() if start <= d <= end}
        assert got["notes"] == [] and got["written"]
    assert Lake(lake_root).read_with_hash(m.name, "backtest", END)[1] == want[END]
    pd.testing.assert_frame_equal(Lake(lake_root).read(m.name, "backtest", END),
                                  dagster_lake.read(m.name, "backtest", END))
    assert main(["backtest", "--manifest", str(run["manifest_path"]), "--start", END, "--end", END,
                 "--lake", str(lake_root), "--simulators", "zipline"]) == 2
    assert "unknown simulator 'zipline'" in capsys.readouterr().err


def test_cli_runs_are_the_manifests_job_in_the_tvquant_location(run):
    """Not Dagster's ad hoc ``__ephemeral_asset_job__``: the UI's timeline and the run sensors see the run."""
    m = run["manifest"]
    instance = DagsterInstance.from_config(str(run["home"]))
    record = instance.get_run_by_id(run["report"].run_id)
    assert record.job_name == f"{m.name}_pipeline"
    origin = record.remote_job_origin
    assert origin.location_name == "tvquant" and origin.repository_origin.repository_name == "__repository__"
    assert origin.job_name == record.job_name
    history = [r for r in instance.get_runs() if r.run_id != record.run_id and r.job_name == record.job_name]
    assert history and all(r.remote_job_origin.location_name == "tvquant" for r in history)
    # the checks ran inside the run
    checks = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey([m.name, "prices"]), "price_values"), limit=100)
    assert any(c.run_id == record.run_id for c in checks)
