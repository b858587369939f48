"""Repair loop through real Dagster: a planted bad bar fails a blocking check, the cursor-based sensor
asks for exactly one data_repair run, the run fills the bar and re-materializes downstream, a second
repair changes nothing. Also the run-failure sensor and the schedules, with every run request validated
against its job."""

import datetime as dt
import json
import zoneinfo
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetCheckKey,
    AssetKey,
    AssetRecordsFilter,
    DagsterInstance,
    PartitionKeyRange,
    RunRequest,
    SkipReason,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
    validate_run_config,
)

from tvquant_assets import alerts, repair
from tvquant_assets.calendar import manifest_dates
from tvquant_assets.definitions import build_definitions
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import materialize_range
from tvquant_assets.stages import STAGES, Stage
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import run_stage
from tvquant_assets_tests import faults

ROOT = Path(__file__).resolve().parents[2]
START, END, BAD = "2020-03-02", "2020-03-06", "2020-03-04"


def write_manifest(directory: Path, name: str) -> Path:
    text = (ROOT / "manifests" / "sp500_demo.yaml").read_text()
    text = text.replace("name: sp500_demo", f"name: {name}").replace("start: 2019-01-02", f"start: {START}")
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


def validate_request(defs, request: RunRequest, job_name: str) -> list[str]:
    """The request targets ``job_name``, its run config validates, its partitions exist; returns the keys."""
    job = defs.resolve_job_def(request.job_name or job_name)
    assert job.name == job_name
    validate_run_config(job, request.run_config)
    pdef = defs.resolve_asset_graph().get(next(iter(job.asset_layer.executable_asset_keys))).partitions_def
    if request.partition_key:
        keys = [request.partition_key]
    else:
        start, end = (request.tags[f"dagster/asset_partition_range_{e}"] for e in ("start", "end"))
        keys = pdef.get_partition_keys_in_range(PartitionKeyRange(start, end))
        assert keys[0] == start and keys[-1] == end
    assert all(pdef.has_partition_key(k) for k in keys)
    return keys


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TVQUANT_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv(alerts.ALERTS_ENV, str(tmp_path / "alerts.jsonl"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    path = write_manifest(tmp_path, "sp500_ops")
    return {"tmp": tmp_path, "path": path, "manifest": load_manifest(path), "lake": Lake(tmp_path / "lake"),
            "defs": build_definitions([path])}


def test_failed_check_to_one_repair_run_that_fills_and_is_idempotent(env, monkeypatch):
    m, lake, defs = env["manifest"], env["lake"], env["defs"]
    faults.install(monkeypatch, {("MSFT", BAD): float("nan")})  # the source keeps serving the bad bar
    report = materialize_range(env["path"], START, END, lake_root=str(env["tmp"] / "lake"))
    assert report.failures and min(f.date for f in report.failures) == pd.Timestamp(BAD)  # contained
    instance = DagsterInstance.get()
    sensor = defs.resolve_sensor_def("data_repair_sensor")

    first = sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=None, definitions=defs))
    assert len(first.run_requests) == 1
    request = first.run_requests[0]
    keys = validate_request(defs, request, f"{m.name}_data_repair")
    # starts on BAD: containment materialized every date before it, the decision BAD carries included
    assert keys == [d.strftime("%Y-%m-%d") for d in manifest_dates(m, BAD, END)]
    assert json.loads(request.tags["tvquant/bad_partitions"]) == [BAD]

    again = sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs))
    assert again.run_requests == [] and again.skip_message  # a restart resumes from the stored cursor
    lost = sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=None, definitions=defs))
    assert [r.run_key for r in lost.run_requests] == [request.run_key]  # same key: Dagster launches it once

    job = defs.resolve_job_def(request.job_name)
    result = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
    assert result.success
    fixed = lake.read(m.name, "prices", BAD).set_index("symbol")
    before = lake.read(m.name, "prices", "2020-03-03").set_index("symbol")
    assert fixed.loc["MSFT", "close"] == before.loc["MSFT", "close"]  # 1 bad bar <= max_fill_bars: filled
    records = repair.load_records(lake, m.name)
    assert set(records.fills) == {BAD} and "NaN close" in records.fills[BAD]["MSFT"]["reason"]
    for stage in STAGES:
        assert all(lake.exists(m.name, stage.value, d) for d in keys), stage
    ledger = Ledger(str(lake.ledger_path(m.name)))
    assert ledger.verify().ok
    n_entries = ledger.verify().n_entries
    hashes = {s: lake.read_with_hash(m.name, s.value, BAD)[1] for s in STAGES if s is not Stage.AUDIT}
    entry = lake.read(m.name, "audit", BAD)["entry_hash"].iloc[0]
    history = instance.event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey([m.name, "prices"]), "price_values"), limit=50)
    check = next(r for r in history if r.partition == BAD)  # the newest evaluation of the bad partition
    assert check.run_id == result.run_id and check.event.dagster_event.event_specific_data.passed
    # the repair run said what it found and decided: in its log and in the catalog partition's metadata
    catalog = instance.fetch_materializations(AssetRecordsFilter(asset_key=AssetKey([m.name, "catalog"]),
                                                                 asset_partitions=[BAD]), limit=1).records[0]
    md = catalog.asset_materialization.metadata
    assert md["repair_filled"].value == ["MSFT"] and md["repair_excluded"].value == []
    assert "1 unusable bar(s) in the lake; 0 re-fetched, 1 filled, 0 excluded" in md["repair_summary"].value
    logged = [e.user_message for e in instance.all_logs(result.run_id)]
    assert any(msg.startswith(f"{BAD} MSFT: filled: NaN close; carried forward") for msg in logged), logged[-20:]

    after = sensor.evaluate_tick(build_sensor_context(instance=instance, cursor=first.cursor, definitions=defs))
    assert after.run_requests == []  # the repair run's checks passed: nothing new to repair

    rerun = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
    assert rerun.success
    assert repair.load_records(lake, m.name) == records
    assert {s: lake.read_with_hash(m.name, s.value, BAD)[1] for s in STAGES if s is not Stage.AUDIT} == hashes
    assert lake.read(m.name, "audit", BAD)["entry_hash"].iloc[0] == entry  # the same ledger entry
    assert Ledger(str(lake.ledger_path(m.name))).verify().n_entries == n_entries  # nothing re-appended


def test_long_gap_excludes_the_symbol_with_its_reason_in_the_catalog(tmp_path):
    m = load_manifest(write_manifest(tmp_path, "sp500_gap"))
    lake = Lake(tmp_path / "lake")
    pipe = RunContext(m, lake)
    bad_days = manifest_dates(m, "2020-03-02", "2020-03-06")
    pipe.__dict__["source"] = faults.FaultySource(pipe.source, {("KO", d.strftime("%Y-%m-%d")): faults.DROP
                                                                 for d in bad_days})
    found = repair.plan_and_record(pipe, bad_days)
    # the first max_fill_bars missing bars are filled, the rest exclude KO on those dates
    assert sorted(found.fills) == [d.strftime("%Y-%m-%d") for d in bad_days[:m.quality.max_fill_bars]]
    excluded = [d.strftime("%Y-%m-%d") for d in bad_days[m.quality.max_fill_bars:]]
    assert sorted(found.exclusions) == excluded
    cat = run_stage(pipe, Stage.CATALOG, bad_days).frames
    lake.write_many([(lake.path(m.name, "catalog", d), f) for d, f in cat.items()])
    last = cat[bad_days[-1]].set_index("symbol")
    assert not last.loc["KO", "active"] and "more than quality.max_fill_bars=3" in last.loc["KO", "exclusion"]
    assert cat[bad_days[0]].set_index("symbol").loc["KO", "exclusion"] == ""
    prices = run_stage(pipe, Stage.PRICES, bad_days).frames
    assert "KO" not in set(prices[bad_days[-1]]["symbol"]) and "KO" in set(prices[bad_days[0]]["symbol"])
    assert repair.plan_and_record(pipe, bad_days) == found  # idempotent
    assert repair.load_records(lake, m.name) == found


def test_run_failure_sensor_retries_then_alerts(env):
    m, defs = env["manifest"], env["defs"]
    instance = DagsterInstance.get()
    job = defs.resolve_job_def(f"{m.name}_pipeline")
    sensor = defs.resolve_sensor_def("retry_or_alert_failed_runs")
    # empty lake: the tournament of BAD carries the decision of 2020-03-02, not in the lake: a LakeError
    for attempt, expect_retry in (("0", True), ("2", False)):
        result = job.execute_in_process(instance=instance, partition_key=BAD, raise_on_error=False,
                                        tags={"tvquant/attempt": attempt})
        assert not result.success
        run = instance.get_run_by_id(result.run_id)
        failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
        ctx = build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=failure,
                                              dagster_instance=instance, dagster_run=run).for_run_failure()
        out = sensor(ctx)
        if expect_retry:
            assert isinstance(out, RunRequest) and out.tags["tvquant/attempt"] == "1"
            assert validate_request(defs, out, job.name) == [BAD]
        else:
            assert isinstance(out, SkipReason) and "alerted" in out.skip_message
            (entry,) = alerts.read_alerts()
            assert result.run_id in entry["message"] and "after 3 attempt(s)" in entry["message"]


def test_schedules_are_timezone_aware_and_their_requests_validate(env):
    m, defs = env["manifest"], env["defs"]
    ny = zoneinfo.ZoneInfo("America/New_York")
    repo = defs.get_repository_def()

    def tick(schedule, when: dt.datetime):
        with build_schedule_context(scheduled_execution_time=when, repository_def=repo) as ctx:
            return schedule.evaluate_tick(ctx).run_requests

    daily = defs.resolve_schedule_def(f"{m.name}_daily")
    assert daily.execution_timezone == "America/New_York" and daily.cron_schedule == "30 17 * * 1-5"
    (req,) = tick(daily, dt.datetime(2020, 3, 4, 17, 30, tzinfo=ny))
    assert validate_request(defs, req, f"{m.name}_pipeline") == ["2020-03-04"]
    # 00:30 UTC on the 5th is still the evening of the 4th in New York
    assert tick(daily, dt.datetime(2020, 3, 5, 0, 30, tzinfo=dt.UTC))[0].partition_key == "2020-03-04"
    assert tick(daily, dt.datetime(2020, 3, 7, 17, 30, tzinfo=ny)) == []  # a Saturday is no partition
    review = defs.resolve_schedule_def(f"{m.name}_monthly_review")
    (req,) = tick(review, dt.datetime(2020, 4, 1, 19, 0, tzinfo=ny))
    keys = validate_request(defs, req, f"{m.name}_tournament_review")
    assert keys[0] == "2020-03-02" and keys[-1] == "2020-03-31" and len(keys) == 22


def test_run_failure_sensor_covers_ui_runs_of_the_ad_hoc_asset_job(env):
    """The UI's Materialize launches Dagster's implicit asset job, not a tvquant job: still retried, as the
    pipeline job restricted to the assets the run selected."""
    m, defs = env["manifest"], env["defs"]
    instance = DagsterInstance.get()
    sensor = defs.resolve_sensor_def("retry_or_alert_failed_runs")
    keys = [AssetKey([m.name, s.value]) for s in (Stage.TOURNAMENT, Stage.BACKTEST)]
    ui_job = defs.resolve_implicit_global_asset_job_def()
    result = ui_job.execute_in_process(instance=instance, partition_key=BAD, raise_on_error=False,
                                       asset_selection=keys)
    assert not result.success and ui_job.name != f"{m.name}_pipeline"
    run = instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    ctx = build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=failure,
                                          dagster_instance=instance, dagster_run=run).for_run_failure()
    out = sensor(ctx)
    assert isinstance(out, RunRequest) and out.job_name == f"{m.name}_pipeline"
    assert sorted(out.asset_selection, key=lambda k: k.path) == sorted(keys, key=lambda k: k.path)
    assert validate_request(defs, out, f"{m.name}_pipeline") == [BAD]
