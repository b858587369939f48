"""Sensors: failed data-quality checks become data_repair runs; failed runs are retried, then alerted.

``data_repair_sensor`` walks the check executions recorded after its cursor (their storage id, kept by
the daemon, so a restart resumes where it stopped; never past a check still running). Failures of
repairable price checks from one run become one repair run (run key ``repair:<manifest>:<run id>``, so
even a lost cursor cannot launch it twice) over [first bad partition, newest price partition]. A failure
inside a repair run is not repaired again: it is alerted, a person has to look.
"""

import json
from collections import defaultdict

import pandas as pd
from dagster import (
    AssetCheckKey,
    AssetKey,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    run_failure_sensor,
    sensor,
)
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from tvquant_assets import alerts, repair
from tvquant_assets.defs.checks import REPAIRABLE
from tvquant_assets.defs.jobs import pipeline_job_name, repair_job_name
from tvquant_assets.lake import Lake, default_lake_root
from tvquant_assets.manifest import Manifest
from tvquant_assets.stages import Stage
from tvquant_assets.stages.plan import plan_start

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
ATTEMPT_TAG = "tvquant/attempt"
MAX_RUN_RETRIES = 2
BATCH = 500


def _repair_range(context, manifest: Manifest, bad: list[str]) -> tuple[str, str]:
    """[first bad partition (moved back when the tournament needs earlier decisions), newest prices]."""
    done = context.instance.get_materialized_partitions(AssetKey([manifest.name, Stage.PRICES.value]))
    end = max([*done, *bad])
    start, _ = plan_start(manifest, Lake.open(default_lake_root()), pd.Timestamp(min(bad)))
    return start.strftime("%Y-%m-%d"), end


def _new_executions(storage, key: AssetCheckKey, cursor: int) -> list:
    """Every execution record of ``key`` after ``cursor``, newest first (one per partition: a range run
    of 1,043 partitions leaves 1,043, so read them page by page)."""
    out, before = [], None
    while True:
        page = storage.get_asset_check_execution_history(key, limit=BATCH, cursor=before)
        fresh = [r for r in page if r.id > cursor]
        out += fresh
        if len(fresh) < len(page) or len(page) < BATCH:
            return out
        before = page[-1].id


def build_repair_sensor(manifests: list[Manifest], jobs) -> object:
    by_key = {AssetKey([m.name, Stage.PRICES.value]): m for m in manifests}

    @sensor(name="data_repair_sensor", jobs=jobs, minimum_interval_seconds=60,
            default_status=DefaultSensorStatus.RUNNING if any(m.schedule.running for m in manifests)
            else DefaultSensorStatus.STOPPED,
            description="Failed price checks -> one data_repair run per failed run, for the bad partitions on.")
    def data_repair_sensor(context: SensorEvaluationContext):
        cursor = int(context.cursor) if context.cursor else 0
        storage = context.instance.event_log_storage
        records, pending = [], []
        for asset_key in by_key:
            for name in sorted(REPAIRABLE):
                for record in _new_executions(storage, AssetCheckKey(asset_key, name), cursor):
                    if record.status == AssetCheckExecutionRecordStatus.PLANNED:
                        run = context.instance.get_run_by_id(record.run_id)
                        if run is not None and not run.is_finished:
                            pending.append(record.id)  # not evaluated yet: look again next tick
                        continue
                    records.append(record)
        if not records:
            return SkipReason("no new evaluations of repairable price checks")
        newest = max(r.id for r in records)
        if pending:  # never move the cursor past a check that is still running
            newest = min(newest, min(pending) - 1)
        records = sorted((r for r in records if r.id <= newest), key=lambda r: r.id)
        failures: dict[tuple[str, str], set[str]] = defaultdict(set)
        for record in records:
            evaluation = record.event.dagster_event.event_specific_data
            manifest = by_key[record.key.asset_key]
            if record.status != AssetCheckExecutionRecordStatus.FAILED or evaluation.passed:
                continue
            md = evaluation.metadata.get("failed_partitions")
            bad = list(md.value) if md is not None else [record.partition] if record.partition else []
            run = context.instance.get_run_by_id(record.run_id)
            if run is not None and run.tags.get(repair.RUN_TAG) == "true":
                alerts.alert(f"{manifest.name}: check {record.key.name} still fails after data_repair run "
                             f"{record.run_id} on {', '.join(bad[:5])}; fix the source or the manifest limits",
                             {"run_id": record.run_id, "partitions": bad})
                continue
            failures[(manifest.name, record.run_id)].update(bad)
        requests = []
        for (name, run_id), bad in sorted(failures.items()):
            manifest = next(m for m in manifests if m.name == name)
            start, end = _repair_range(context, manifest, sorted(bad))
            requests.append(RunRequest(
                job_name=repair_job_name(manifest), run_key=f"repair:{name}:{run_id}",
                tags={RANGE_START: start, RANGE_END: end, "tvquant/repairs_run": run_id,
                      "tvquant/bad_partitions": json.dumps(sorted(bad)[:20])},
            ))
        return SensorResult(run_requests=requests, cursor=str(newest))

    return data_repair_sensor


def _check_failure(context: RunFailureSensorContext) -> bool:
    """True when the run failed because a blocking check failed: a retry cannot fix that, repair can."""
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error if event.step_failure_data else None
        if error is not None and "DagsterAssetCheckFailedError" in error.cls_name:
            return True
    return False


def build_run_failure_sensor(manifests: list[Manifest], jobs) -> object:
    """Watches every run of this code location: the manifests' jobs (CLI runs are recorded as the pipeline
    job, see ``launch.py``) and the runs the UI launches of its ad hoc asset job (Materialize, backfills). A
    run of one of ``jobs`` is retried as itself; an ad hoc run as the first of ``jobs`` holding every asset it
    selected, for those assets."""
    job_assets = {job.name: _selected_keys(job) for job in jobs}

    @run_failure_sensor(
        name="retry_or_alert_failed_runs", request_jobs=jobs,  # no monitored_jobs: every job of the location
        default_status=DefaultSensorStatus.RUNNING if any(m.schedule.running for m in manifests)
        else DefaultSensorStatus.STOPPED,
        description=f"Re-runs a failed run of this location (CLI, UI, schedules) up to {MAX_RUN_RETRIES} times, "
                    "then alerts.",
    )
    def retry_or_alert_failed_runs(context: RunFailureSensorContext):
        run = context.dagster_run
        attempt = int(run.tags.get(ATTEMPT_TAG, "0"))
        reason = (context.failure_event.message or "").strip().splitlines()[0:1]
        if _check_failure(context):
            return SkipReason(f"run {run.run_id} stopped at a blocking check: data_repair_sensor handles it")
        selected = set(run.asset_selection or ())
        job_name = run.job_name if run.job_name in job_assets else next(
            (name for name, keys in job_assets.items() if selected and selected <= keys), None)
        if job_name is not None and attempt < MAX_RUN_RETRIES and run.status == DagsterRunStatus.FAILURE:
            keep = {k: v for k, v in run.tags.items()
                    if k in (RANGE_START, RANGE_END, "dagster/partition", "tvquant/manifest")}
            return RunRequest(job_name=job_name, run_key=f"retry:{run.run_id}",
                              partition_key=run.tags.get("dagster/partition"),
                              asset_selection=sorted(selected, key=lambda k: k.path) if selected else None,
                              tags={**keep, ATTEMPT_TAG: str(attempt + 1), "tvquant/retry_of": run.run_id})
        why = f"after {attempt + 1} attempt(s)" if job_name else "(no tvquant job holds its assets: not retried)"
        alerts.alert(f"{run.job_name}: run {run.run_id} failed {why}: "
                     f"{reason[0] if reason else 'see the run log'}", {"run_id": run.run_id, "job": run.job_name})
        return SkipReason(f"alerted: run {run.run_id} failed {attempt + 1} time(s)")

    return retry_or_alert_failed_runs


def _selected_keys(job) -> set[AssetKey]:
    """The asset keys an unresolved asset job selects (our jobs list their keys)."""
    from dagster._core.definitions.asset_selection import KeysAssetSelection

    selection = job.selection
    if not isinstance(selection, KeysAssetSelection):
        return set()
    return {AssetKey([getattr(part, "value", part) for part in key.path]) for key in selection.selected_keys}


def pipeline_jobs_of(manifests: list[Manifest]) -> list[str]:
    return [pipeline_job_name(m) for m in manifests]
