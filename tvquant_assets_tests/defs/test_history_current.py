"""The ``history_current`` check on ``<manifest>/audit``: re-running a date whose source bars changed
re-seals it, and every later sealed date, computed from the old bars, shows as a failed check in Dagster
(naming the re-sealed date and the command that clears it) until it is re-run."""

from pathlib import Path

from dagster import AssetCheckKey, AssetKey, DagsterInstance
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import materialize_range
from tvquant_assets_tests import faults

ROOT = Path(__file__).resolve().parents[2]
START, CHANGED, END = "2020-03-02", "2020-03-04", "2020-03-09"


def _latest(instance, key):
    """{partition: (status, evaluation)} of the latest evaluation of each partition."""
    out = {}
    for r in instance.event_log_storage.get_asset_check_execution_history(key, limit=1000):  # newest first
        if r.partition not in out:
            out[r.partition] = (r.status, r.event.dagster_event.event_specific_data)
    return out


def test_later_dates_show_stale_until_re_run(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    text = (ROOT / "manifests" / "sp500_demo.yaml").read_text()
    path = tmp_path / "sp500_current.yaml"
    path.write_text(text.replace("name: sp500_demo", "name: sp500_current").replace("start: 2019-01-02",
                                                                                      f"start: {START}"))
    m, root = load_manifest(path), str(tmp_path / "lake")
    assert not materialize_range(path, START, END, lake_root=root).failures
    instance = DagsterInstance.get()
    key = AssetCheckKey(AssetKey([m.name, "audit"]), "history_current")
    keys = [f"{d:%Y-%m-%d}" for d in manifest_dates(m, START, END)]
    first = _latest(instance, key)
    assert sorted(first) == keys and all(s == AssetCheckExecutionRecordStatus.SUCCEEDED for s, _ in first.values())

    # the source now reports another close for one bar of CHANGED: re-running that date re-seals it
    symbol = Lake(root).read(m.name, "prices", CHANGED)["symbol"].iloc[0]
    faults.install(monkeypatch, {(symbol, CHANGED): 123.0})
    assert not materialize_range(path, CHANGED, CHANGED, lake_root=root).failures
    later = [k for k in keys if k > CHANGED]
    got = _latest(instance, key)
    failed = sorted(p for p, (s, _) in got.items() if s == AssetCheckExecutionRecordStatus.FAILED)
    assert failed == later
    assert got[CHANGED][0] == AssetCheckExecutionRecordStatus.SUCCEEDED
    evaluation = got[later[0]][1]
    assert evaluation.severity.value == "WARN" and not evaluation.blocking
    assert evaluation.metadata["stale_since"].value == CHANGED
    assert evaluation.metadata["clear_with"].value == (f"tvquant backfill --manifest {m.name} --start {later[0]} "
                                                       f"--end {later[-1]}")
    assert evaluation.metadata["findings"].value == [f"{later[0]} -: computed from prices {CHANGED} before it "
                                                     f"changed"]
    infos = {i.partition_key: i for i in instance.event_log_storage.get_asset_check_partition_info([key])}
    assert all(infos[k].is_current for k in later)  # each targets its partition's latest materialization

    # re-running the later dates re-seals them: the check passes everywhere again
    monkeypatch.undo()
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    assert not materialize_range(path, later[0], later[-1], lake_root=root).failures
    got = _latest(instance, key)
    assert all(got[k][0] == AssetCheckExecutionRecordStatus.SUCCEEDED for k in keys), got
    assert not (Path(root) / m.name / "stale.json").exists() or Path(root, m.name, "stale.json").read_text() == "{}"
