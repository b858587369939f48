"""A range backfill launched from the UI (one run, ``BackfillPolicy.single_run``) is contained to its failed
dates by ``contain_failed_ranges``. The manifest is the reported case's scenario (cluster cap plus a
tighter CRISIS preset through the 2020 crash) with ``quality.min_selected: 7``: the CRISIS preset's
``top_n_per_cluster: 2`` selects 6 names on four crash dates, so the blocking selection check fails there.
The run over the range stops its downstream steps for every date; the sensor asks for the stages left on
the dates that do not depend on the failures, one run per segment, and those runs materialize, check and
seal them."""

import json
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance, RunRequest, SkipReason, build_run_status_sensor_context

from tvquant_assets import alerts
from tvquant_assets.definitions import build_definitions
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest
from tvquant_assets.stages import ASSETS
from tvquant_assets_tests.defs.test_sensors import validate_request

QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
ROOT = Path(__file__).resolve().parents[2]
SCENARIO = ROOT / "tvquant_assets_tests" / "scenarios" / "contain_cluster_cap_crisis.yaml"
START, END = "2020-03-02", "2020-03-12"  # the manifest starts on START, a rebalance date
FAILED = ["2020-03-04", "2020-03-05", "2020-03-09", "2020-03-11"]  # 6 names selected, fewer than 7
RANGE = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TVQUANT_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv(alerts.ALERTS_ENV, str(tmp_path / "alerts.jsonl"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    path = tmp_path / "contain_ui.yaml"
    text = SCENARIO.read_text().replace("name: contain_cluster_cap_crisis", "name: contain_ui")
    path.write_text(text.replace("start: 2020-02-18", f"start: {START}")
                    + "quality: {min_selected: 7}\n")
    return {"manifest": load_manifest(path), "lake": Lake(tmp_path / "lake"), "defs": build_definitions([path])}


def _failure_context(sensor, instance, run_id):
    run = instance.get_run_by_id(run_id)
    failure = next(e.dagster_event for e in instance.all_logs(run_id)
                   if e.is_dagster_event and e.dagster_event.event_type_value == "PIPELINE_FAILURE")
    return build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=failure,
                                           dagster_instance=instance, dagster_run=run).for_run_failure()


def test_ui_range_backfill_is_contained_by_the_sensor(env):
    m, lake, defs = env["manifest"], env["lake"], env["defs"]
    instance = DagsterInstance.get()
    job = defs.resolve_job_def(f"{m.name}_pipeline")
    sensor = defs.resolve_sensor_def("contain_failed_ranges")
    retry = defs.resolve_sensor_def("retry_or_alert_failed_runs")

    # what the UI launches for a range backfill of the job: one run with the partition-range tags
    first = job.execute_in_process(instance=instance, tags=dict(zip(RANGE, (START, END), strict=True)),
                                   raise_on_error=False, run_config=QUIET)
    assert not first.success
    dates = [d.strftime("%Y-%m-%d") for d in lake.partitions(m.name, "catalog")]
    assert len(dates) == 9 and not any(lake.exists(m.name, "estimation", d) for d in dates)  # all stopped

    # the retry sensor leaves it alone: a blind retry would fail the same way
    skipped = retry(_failure_context(retry, instance, first.run_id))
    assert isinstance(skipped, SkipReason) and "contain_failed_ranges" in skipped.skip_message

    requests = sensor(_failure_context(sensor, instance, first.run_id))
    again = sensor(_failure_context(sensor, instance, first.run_id))
    assert [r.run_key for r in again] == [r.run_key for r in requests]  # Dagster launches each key once
    after = list(ASSETS[ASSETS.index("estimation"):])
    # the decision of 03-04 is missing: every later tournament and book is blocked; estimation only reads
    # its own date's selection, so it runs on every date that did not fail
    expect = [(START, "2020-03-03", after), ("2020-03-06", "2020-03-06", ["estimation"]),
              ("2020-03-10", "2020-03-10", ["estimation"]), ("2020-03-12", END, ["estimation"])]
    got = [(r.tags[RANGE[0]], r.tags[RANGE[1]], [k.path[-1] for k in r.asset_selection]) for r in requests]
    assert got == expect
    for req in requests:
        assert isinstance(req, RunRequest) and req.job_name == job.name
        assert req.run_key == f"contain:{first.run_id}:{req.tags[RANGE[0]]}:{req.tags[RANGE[1]]}"
        keys = validate_request(defs, req, job.name)
        assert keys == [d for d in dates if req.tags[RANGE[0]] <= d <= req.tags[RANGE[1]]]
        assert set(req.asset_selection) <= set(job.asset_layer.executable_asset_keys)
        assert req.tags["tvquant/contains_run"] == first.run_id
        reasons = json.loads(req.tags["tvquant/failed_partitions"])
        assert sorted(reasons) == ["selection"] and sorted(reasons["selection"]) == FAILED
        assert "fewer than quality.min_selected 7" in reasons["selection"]["2020-03-04"]
    entries = alerts.read_alerts()  # one alert per evaluation, naming the first failed partition
    assert len(entries) == 2 and "selection 2020-03-04: check selection_size failed" in entries[0]["message"]
    assert entries[0]["details"]["partitions"] == FAILED and "4 containment run(s)" in entries[0]["message"]
    # the failed root partitions say why in the UI's partition view
    obs = instance.fetch_observations(AssetKey([m.name, "selection"]), limit=10).records
    by_partition = {r.partition_key: r.event_log_entry.asset_observation.metadata for r in obs}
    assert sorted(by_partition) == FAILED and "min_selected" in by_partition["2020-03-04"]["failed"].value

    # the daemon launches each request: that job, those assets (and their checks), that range
    for req in requests:
        run = job.execute_in_process(instance=instance, tags=req.tags, asset_selection=req.asset_selection,
                                     raise_on_error=False, run_config=QUIET)
        assert run.success
        assert any(e.event_type_value == "ASSET_CHECK_EVALUATION" or "_estimation" in (e.step_key or "")
                   for e in run.all_events)
    cut = "2020-03-04"
    blocked = {(s, d) for s in ASSETS for d in dates if d >= cut and
               (s in ("tournament", *ASSETS[ASSETS.index("tournament"):]) or (s == "estimation" and d in FAILED))}
    for stage in ASSETS:
        want = {d for d in dates if (stage, d) not in blocked}
        assert {d for d in dates if lake.exists(m.name, stage, d)} == want, stage
        mats = {r.partition_key for r in instance.fetch_materializations(AssetKey([m.name, stage]),
                                                                         limit=500).records}
        assert want <= mats, stage
    ledger = Ledger(lake.ledger_path(m.name))
    assert ledger.verify().ok
    assert {e["payload"]["date"] for e in ledger.entries()} == {d for d in dates if d < cut}
