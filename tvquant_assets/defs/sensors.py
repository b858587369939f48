"""Sensors: failed data-quality checks become data_repair runs; failed runs are retried, then alerted.

``data_repair_sensor`` walks the check executions recorded after its cursor (their storage id, kept by
the daemon, so a restart resumes where it stopped; never past a check still running). Failures of
repairable price checks from one run become one repair run (run key ``repair:<manifest>:<run id>``, so
even a lost cursor cannot launch it twice) over [first bad partition, newest price partition]. A failure
inside a repair run is not repaired again: it is alerted, a person has to look.

``contain_failed_ranges`` does for a range run the daemon launched (a UI backfill, one run by
``BackfillPolicy.single_run``) what ``runner.materialize_range`` does in process: when the run failed with
located partition failures (a stage's ``Failure`` metadata ``reasons``, a blocking check's
``failed_partitions``), it asks for one run per independent date segment of the stages left
(``containment.plan_segments``), run key ``contain:<run id>:<first>:<last>``. A segment run that fails
again is contained the same way, over its own range and selection.
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
from tvquant_assets.calendar import manifest_dates
from tvquant_assets.defs import containment
from tvquant_assets.defs.checks import REPAIRABLE
from tvquant_assets.defs.jobs import pipeline_job_name, repair_job_name
from tvquant_assets.lake import Lake, default_lake_root
from tvquant_assets.manifest import Manifest
from tvquant_assets.stages import Stage, assets_of
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import plan_start

RANGE_START, RANGE_END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"
ATTEMPT_TAG = "tvquant/attempt"
MAX_RUN_RETRIES = 2
CONTAINS_TAG = "tvquant/contains_run"  # a containment run: the failed run it continues
FAILED_TAG = "tvquant/failed_partitions"  # JSON {stage: {date: reason}} of the failures it works around
CLI_PID_TAG = "tvquant/pid"  # runs of `tvquant backfill`: contained in process by the runner
MAX_TAGGED_FAILURES = 50
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


def _manifest_of(run, manifests: list[Manifest]) -> Manifest | None:
    """The manifest whose pipeline job the run is, or whose assets an ad hoc run selected."""
    names = {k.path[0] for k in run.asset_selection or ()}
    for m in manifests:
        if run.job_name == pipeline_job_name(m) or (names and names == {m.name}):
            return m
    return None


def located_range_failure(run, record: containment.RunRecord) -> bool:
    """A run over a partition range that failed on named partitions: containment continues it (the sensor
    below for runs the daemon launched, the runner for CLI runs), a blind retry would fail the same way."""
    return RANGE_START in run.tags and bool(record.failures)


def _failures_tag(failures) -> str:
    out: dict[str, dict[str, str]] = {}
    for f in failures[:MAX_TAGGED_FAILURES]:
        out.setdefault(f.stage, {})[f.date.strftime("%Y-%m-%d")] = f.reason[:200]
    return json.dumps(out, sort_keys=True)


def contain_requests(run, manifest: Manifest, record: containment.RunRecord, lake: Lake):
    """The run requests that continue the failed range ``run``: each independent segment of what it left,
    and the failures (roots first) they work around."""
    dates = manifest_dates(manifest, pd.Timestamp(run.tags[RANGE_START]), pd.Timestamp(run.tags[RANGE_END]))
    ctx = RunContext(manifest, lake)
    assets = assets_of(manifest)
    selected = {k.path[-1] for k in run.asset_selection or ()} or set(assets)
    done = set(record.materialized) | {(s, d) for s in assets if s not in selected for d in dates}
    failures = record.failures + containment.unlocated_failures(record, dates)
    segments, _ = containment.plan_segments(ctx, dates, failures, done)
    ordered = containment.ordered_failures(ctx, failures, dates)
    roots = [f for f in ordered if f.blocked_by is None]
    requests = []
    for lo, hi, stages in segments:
        first, last = lo.strftime("%Y-%m-%d"), hi.strftime("%Y-%m-%d")
        requests.append(RunRequest(
            job_name=pipeline_job_name(manifest), run_key=f"contain:{run.run_id}:{first}:{last}",
            asset_selection=[AssetKey([manifest.name, str(s)]) for s in stages],
            tags={RANGE_START: first, RANGE_END: last, "tvquant/manifest": manifest.name,
                  CONTAINS_TAG: run.run_id, FAILED_TAG: _failures_tag(roots)}))
    return requests, containment.Containment(ordered, [run.run_id])


def build_containment_sensor(manifests: list[Manifest], jobs) -> object:
    """Failed UI range runs with located partition failures -> one run per independent date segment."""

    @run_failure_sensor(
        name="contain_failed_ranges", request_jobs=[j for j in jobs if j.name.endswith("_pipeline")],
        default_status=DefaultSensorStatus.RUNNING if any(m.schedule.running for m in manifests)
        else DefaultSensorStatus.STOPPED,
        description="A range run that failed on some dates -> runs of what does not depend on them, per segment.",
    )
    def contain_failed_ranges(context: RunFailureSensorContext):
        run = context.dagster_run
        manifest = _manifest_of(run, manifests)
        if manifest is None or RANGE_START not in run.tags:
            return SkipReason(f"run {run.run_id} is not a range run of a manifest")
        if CLI_PID_TAG in run.tags:
            return SkipReason(f"run {run.run_id} is a CLI run: the runner contains it in process")
        record = containment.read_run_of(context.instance, run.run_id)
        if not located_range_failure(run, record):
            return SkipReason(f"run {run.run_id} failed on no named partition: retry_or_alert_failed_runs")
        requests, result = contain_requests(run, manifest, record, Lake.open(default_lake_root()))
        containment.report(manifest.name, result, context.instance)  # each failed root partition says why
        roots = result.roots
        alerts.alert(f"{manifest.name}: run {run.run_id} failed on {len(roots)} partition(s), first "
                     f"{roots[0].line() if roots else '?'}; {len(requests)} containment run(s) requested",
                     {"run_id": run.run_id, "job": run.job_name,
                      "partitions": sorted({f.date.strftime('%Y-%m-%d') for f in roots})[:20]})
        if not requests:
            return SkipReason(f"run {run.run_id}: everything left depends on the failed partitions")
        return requests

    return contain_failed_ranges


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
        if RANGE_START in run.tags and located_range_failure(run, containment.read_run_of(context.instance,
                                                                                            run.run_id)):
            return SkipReason(f"run {run.run_id} failed on named partitions: contain_failed_ranges (UI) or "
                              "the runner (CLI) runs what does not depend on them")
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
