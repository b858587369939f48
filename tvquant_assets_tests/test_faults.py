"""Faults and security: SIGKILL in the middle of a materialization (a real subprocess), secrets kept out
of everything we write, and names that could escape the lake."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from dagster import DagsterInstance, DagsterRunStatus

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.errors import LakeError, ManifestError
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest, parse_manifest
from tvquant_assets.runner import materialize_range
from tvquant_assets.stages import STAGES, Stage
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import run_one_shot

ROOT = Path(__file__).resolve().parents[1]
START, END = "2020-03-02", "2020-03-06"

# The child materializes the range through Dagster; its third scan partition write stops half-way
# through the temporary file and waits to be killed.
CHILD = r"""
import sys, time
from pathlib import Path
import tvquant_assets.lake.store as store
from tvquant_assets.runner import materialize_range

manifest, lake, marker = sys.argv[1], sys.argv[2], Path(sys.argv[3])
real, seen = store._write_local, []  # a local lake's atomic write

def stalling_write(path, data, fsync, made=None):
    if "/scan/" in str(path):
        seen.append(path)
        if len(seen) == 3:
            directory, name = str(path).rsplit("/", 1)
            with open(f"{directory}/.{name}.tmp-killed", "wb") as fh:
                fh.write(data[: len(data) // 2])
                fh.flush()
            marker.write_text(str(path))
            time.sleep(600)
    return real(path, data, fsync, made)

store._write_local = stalling_write
materialize_range(manifest, sys.argv[4], sys.argv[5], lake_root=lake)
"""


def write_manifest(directory: Path, name: str) -> Path:
    """The demo with partitions (and the backtest) starting at START: history is warm-up from the source."""
    text = (ROOT / "manifests" / "sp500_demo.yaml").read_text()
    text = text.replace("name: sp500_demo", f"name: {name}").replace("start: 2019-01-02", f"start: {START}")
    text = text.replace("start: 1991-01-02", f"start: {START}")
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def killed_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    path, lake_root, marker = write_manifest(tmp_path, "sp500_kill"), tmp_path / "lake", tmp_path / "stalled"
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(lake_root), str(marker), START, END],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline = time.monotonic() + 600
        while not marker.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the child never reached the third scan write"
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
        yield {"path": path, "lake_root": lake_root, "stalled": Path(marker.read_text())}
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def test_sigkill_mid_write_leaves_no_partial_partition_and_the_rerun_is_identical(killed_run, tmp_path):
    m, lake_root = load_manifest(killed_run["path"]), killed_run["lake_root"]
    lake = Lake(lake_root)
    stalled = killed_run["stalled"]
    assert (stalled.parent / f".{stalled.name}.tmp-killed").exists()  # killed half-way through the bytes
    assert not stalled.exists()
    dates = manifest_dates(m, START, END)
    assert lake.partitions(m.name, "scan") == dates[:2]  # the temp file is not a partition
    for file in Path(lake_root).rglob("*.parquet"):
        if not file.name.startswith("."):
            pd.read_parquet(file)  # every visible partition is whole
    ledger = Ledger(str(lake.ledger_path(m.name)))
    assert not ledger.path.exists() or ledger.verify().ok  # killed before the audit: nothing half-written
    instance = DagsterInstance.get()
    started = [r.run_id for r in instance.get_runs() if r.status == DagsterRunStatus.STARTED]
    assert len(started) == 1  # nobody is left to end the killed run

    materialize_range(killed_run["path"], START, END, lake_root=str(lake_root))
    killed = instance.get_run_by_id(started[0])
    assert killed.status == DagsterRunStatus.FAILURE  # the next run marks it failed: its queue slot is free
    failure = [e for e in instance.all_logs(started[0]) if e.is_dagster_event
               and e.dagster_event.event_type_value == "PIPELINE_FAILURE"]
    assert failure and "is gone (killed); marked failed" in failure[-1].dagster_event.message
    reference = Lake(tmp_path / "reference")
    run_one_shot(RunContext(m, reference), dates)
    for stage in STAGES:
        if stage is Stage.AUDIT:
            continue
        for d in dates:
            assert Lake(lake_root).read_with_hash(m.name, stage.value, d)[1] == \
                reference.read_with_hash(m.name, stage.value, d)[1], (stage, d)
    report = Ledger(str(Lake(lake_root).ledger_path(m.name))).verify()
    assert report.ok and report.n_entries == len(dates)


def test_secrets_stay_out_of_metadata_logs_lake_and_ledger(tmp_path, monkeypatch, capfd):
    secret = "tvq-secret-5c1d0a7e-session"
    monkeypatch.setenv("TVQUANT_TV_SESSIONID", secret)
    monkeypatch.setenv("DAGSTER_POSTGRES_PASSWORD", secret + "-pg")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    path = write_manifest(tmp_path, "sp500_secret")
    report = materialize_range(path, START, START, lake_root=str(tmp_path / "lake"))
    instance = DagsterInstance.get()
    logs = instance.all_logs(report.run_id)
    assert logs
    for entry in logs:
        assert secret not in repr(entry)  # messages and every metadata value
    for file in (tmp_path / "lake").rglob("*"):
        if file.is_file():
            assert secret.encode() not in file.read_bytes(), file  # partitions, ledger, repair records
    out, err = capfd.readouterr()
    assert secret not in out + err


def test_names_cannot_escape_the_lake(tmp_path):
    base = (ROOT / "manifests" / "sp500_demo.yaml").read_text()
    for bad in ("../../etc", "a/b", "..", "Demo"):
        with pytest.raises(ManifestError, match="name"):
            parse_manifest(base.replace("name: sp500_demo", f"name: '{bad}'"))
    with pytest.raises(ManifestError, match="symbol"):
        parse_manifest(base.replace("universe:\n", "universe:\n  symbols: ['../../x']\n", 1))
    lake = Lake(tmp_path / "lake")
    for manifest, asset in (("..", "prices"), ("m", "../prices"), ("m/x", "prices")):
        with pytest.raises(LakeError, match="not a safe path component"):
            lake.write(manifest, asset, "2020-01-02", pd.DataFrame({"a": [1]}))
    assert not any(tmp_path.rglob("*.parquet"))
    with pytest.raises(ManifestError, match="not valid YAML|must be a mapping"):
        parse_manifest("!!python/object/apply:os.system ['echo pwned']")  # safe_load refuses tags
