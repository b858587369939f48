"""Materialize a manifest's assets for a date range through Dagster, in process, as one run."""

from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tvquant_assets import progress
from tvquant_assets.calendar import is_partition, manifest_dates
from tvquant_assets.errors import ManifestError, TvquantError
from tvquant_assets.lake import Lake, atomic_write_bytes, default_lake_root
from tvquant_assets.manifest import Manifest, resolve_manifest
from tvquant_assets.permissions import DIR_MODE
from tvquant_assets.sources import last_partition_date
from tvquant_assets.stages import STAGES, assets_of
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.history import stale_note
from tvquant_assets.stages.plan import HISTORY_STAGES, plan_range, plan_start

DAGSTER_HOME_DEFAULT = "./.tvquant/dagster"
PROJECT_ROOT = Path(__file__).resolve().parents[1]


QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


class RunFailed(TvquantError):
    """A Dagster run failed; the message carries the first failing step's error."""


@dataclass
class RangeReport:
    manifest: str
    start: pd.Timestamp
    end: pd.Timestamp
    partitions: int
    run_id: str
    wall_seconds: float
    compute_seconds: float
    lake_write_seconds: float
    notes: list[str] = field(default_factory=list)
    stage_seconds: dict[str, float] = field(default_factory=dict)  # wall inside each asset body
    stage_cpu_seconds: dict[str, float] = field(default_factory=dict)  # CPU of the same (less load-sensitive)
    failures: list = field(default_factory=list)  # PartitionFailure: roots first, then what they block
    run_ids: list[str] = field(default_factory=list)  # every run of the range (the first, then containment's)

    @property
    def dagster_seconds(self) -> float:
        return max(0.0, self.wall_seconds - self.compute_seconds - self.lake_write_seconds)


def ensure_dagster_home() -> Path:
    """DAGSTER_HOME (default ./.tvquant/dagster), created with a dagster.yaml when missing."""
    home = Path(os.environ.get("DAGSTER_HOME") or DAGSTER_HOME_DEFAULT).resolve()
    home.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    cfg, template = home / "dagster.yaml", PROJECT_ROOT / "dagster.yaml"
    if not cfg.exists() and template.exists():
        atomic_write_bytes(cfg, template.read_bytes())
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def range_bounds(manifest: Manifest, start, end) -> tuple[pd.Timestamp, pd.Timestamp, list[str]]:
    """The partitions inside [start, end]: bounds that are not partitions (a weekend, a holiday) move inward,
    and the notes say so. Dagster silently accepts bad range ends, so they never reach it."""
    s, e = pd.Timestamp(start), pd.Timestamp(end)
    if e < s:
        raise ManifestError(f"--end {e.date()} is before --start {s.date()}")
    first = pd.Timestamp(manifest.start)
    last = last_partition_date(manifest)
    end_note = []
    if e > last >= max(s, first):  # a fixed history (or today's closed session) ends the range
        end_note = [f"--end {e.date()} is after {manifest.name}'s last partition with data {last.date()} "
                    f"(source {manifest.source.kind}): the range ends on {last.date()}"]
        e = last
    if e < first:
        raise ManifestError(f"--end {e.date()} is before the first partition of {manifest.name} "
                            f"(calendar {manifest.calendar}, first partition {manifest.start})")
    dates = manifest_dates(manifest, max(s, first), e)
    if not dates:
        raise ManifestError(f"no partition of {manifest.name} between {s.date()} and {e.date()} "
                            f"(calendar {manifest.calendar})")
    notes = list(end_note)
    if dates[0] != s:
        why = "before the first partition" if s < first else f"a {s.day_name()}, not a partition"
        notes.append(f"--start {s.date()} is {why} ({manifest.calendar}): the range starts on {dates[0].date()}")
    if dates[-1] != e:
        notes.append(f"--end {e.date()} is a {e.day_name()}, not a partition ({manifest.calendar}): the range ends "
                     f"on {dates[-1].date()}")
    return dates[0], dates[-1], notes


def check_range(manifest: Manifest, start, end) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The first and last partitions inside [start, end] (see :func:`range_bounds`)."""
    s, e, _ = range_bounds(manifest, start, end)
    return s, e


def check_data_end(manifest: Manifest, start: pd.Timestamp) -> None:
    """One line when the range starts after the last bar of a source whose history is known statically
    (``manifest.rules.source_facts``; live sources are not asked)."""
    from tvquant_assets.manifest.rules import source_facts

    facts = source_facts(manifest)
    if facts is not None and facts.last is not None and start.date() > facts.last:
        raise ManifestError(f"--start {start.date()} is after the last bar of {manifest.name}'s source "
                            f"{manifest.source.kind} ({facts.last}): nothing to materialize")


def materialize_range(manifest_ref: str | Path, start, end, *, lake_root: str | None = None, instance=None,
                      extend_start: bool = True, skip_fresh: bool = False) -> RangeReport:
    """Run every stage of a manifest for [start, end] as one in-process Dagster run (after the history its
    plan needs, as a run of its own)."""
    # One "planned" event per range instead of per partition; materializations stored in batches.
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "500")
    from dagster import AssetKey, DagsterInstance

    from tvquant_assets.defs.factory import IO_MANAGER_KEY
    from tvquant_assets.defs.io_manager import LakeIOManagerFactory
    from tvquant_assets.defs.launch import execute_job, manifest_job
    from tvquant_assets.defs.resources import LakeResource
    from tvquant_assets.sources.tradingview import run_report

    path, manifest = resolve_manifest(manifest_ref)
    s, e, bound_notes = range_bounds(manifest, start, end)
    root = lake_root or default_lake_root()
    check_data_end(manifest, s)
    plan = plan_range(manifest, Lake.open(root), s, e, extend_start=extend_start)
    plan.notes[:0] = bound_notes
    s = plan.start
    if instance is None:
        ensure_dagster_home()
        instance = DagsterInstance.get()
    keys = [d.strftime("%Y-%m-%d") for d in (s, e)]
    fail_dead_runs(instance)  # runs of killed CLI processes would hold the queue's slots forever
    tags = {"tvquant/manifest": manifest.name, PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    resources = {IO_MANAGER_KEY: LakeIOManagerFactory(root=str(root)), "lake": LakeResource(root=str(root))}
    job = manifest_job(manifest, path, resources)  # runs are recorded as <manifest>_pipeline, not ad hoc
    before = dict(progress.timings.seconds)
    t0 = time.perf_counter()
    if plan.history:  # trailing windows of the first dates read bars the lake does not have yet
        first, last = (d.strftime("%Y-%m-%d") for d in plan.history)
        history = execute_job(job, instance, tags=tags, run_config=QUIET, first=first, last=last,
                              asset_selection=[AssetKey([manifest.name, str(st)]) for st in HISTORY_STAGES])
        if not history.success:
            raise RunFailed(_first_failure(history, manifest.name))
    from tvquant_assets.defs.containment import contain, fresh_partitions

    def rerun(stages: list[str], first: str, last: str):
        return execute_job(job, instance, tags=tags, run_config=QUIET, first=first, last=last,
                           asset_selection=[AssetKey([manifest.name, st]) for st in stages], with_checks=True)

    ctx, dates = RunContext(manifest, Lake.open(root)), manifest_dates(manifest, s, e)
    done = fresh_partitions(ctx, dates, instance) if skip_fresh else set()
    if done:  # only what is missing or stale, in segments of dates
        contained = contain(ctx, dates, None, rerun, instance, done)
        failures, run_ids = contained.failures, contained.run_ids
        total = len(dates) * len(assets_of(manifest))
        plan.notes.append(f"skipped {len(done)} of {total} asset-partitions: in the lake, "
                          f"materialized with the current code version, nothing they read redone")
    else:
        result = execute_job(job, instance, tags=tags, run_config=QUIET, first=keys[0], last=keys[1])
        failures, run_ids = [], [result.run_id]
        if not result.success:  # contain the failure to its dates: re-run what does not depend on it
            contained = contain(ctx, dates, result, rerun, instance)
            if not contained.failures:
                raise RunFailed(_first_failure(result, manifest.name))
            failures, run_ids = contained.failures, contained.run_ids
    wall = time.perf_counter() - t0
    for run_id in run_ids:
        run_report.tag_run(instance, run_id, manifest, root)
    after = progress.timings.seconds
    return RangeReport(
        manifest=manifest.name, start=s, end=e, partitions=len(manifest_dates(manifest, s, e)),
        run_id=run_ids[0] if run_ids else "", wall_seconds=wall,
        compute_seconds=after.get("compute", 0.0) - before.get("compute", 0.0),
        lake_write_seconds=after.get("lake_write", 0.0) - before.get("lake_write", 0.0),
        notes=[*plan.notes, *run_report.notes(manifest, root),
               *filter(None, [stale_note(Lake.open(root), manifest.name)])],
        stage_seconds=_per_stage(before, after, "stage:"), stage_cpu_seconds=_per_stage(before, after, "cpu:"),
        failures=failures, run_ids=run_ids,
    )


def _per_stage(before: dict, after: dict, prefix: str) -> dict[str, float]:
    return {k[len(prefix):].split("/", 1)[-1]: v - before.get(k, 0.0) for k, v in after.items()
            if k.startswith(prefix) and v - before.get(k, 0.0) > 0}


PID_TAG, HOST_TAG = "tvquant/pid", "tvquant/host"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fail_dead_runs(instance) -> list[str]:
    """Mark failed the STARTED/STARTING runs this machine's CLI launched whose process is gone (SIGKILL,
    OOM, a closed laptop): Dagster's run monitoring watches only runs its daemon launched. Returns their ids."""
    from dagster import DagsterRunStatus, RunsFilter

    host, dead = socket.gethostname(), []
    runs = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING],
                                                tags={HOST_TAG: host}))
    for run in runs:
        pid = run.tags.get(PID_TAG, "")
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            instance.report_run_failed(run, f"tvquant: the process running it (pid {pid} on {host}) is gone "
                                            f"(killed); marked failed")
            dead.append(run.run_id)
    return dead


_WRAPPERS = ("DagsterExecutionStepExecutionError", "DagsterUserCodeExecutionError", "RetryRequestedFromPolicy")


def _one_line(message: str) -> str:
    """An error's text on one line, without Dagster's class-path prefix (``dagster._core...Failure: ``)."""
    text = " ".join(part.strip() for part in (message or "").strip().splitlines() if part.strip())
    return re.sub(r"^(?:[a-z_][\w]*\.)+(?=[A-Z]\w*: )", "", text)


def _first_failure(result, manifest_name: str) -> str:
    """The root cause of the run's first failed step, on one line: through Dagster's wrappers and past
    "Exceeded max_retries" to the error that caused it; a blocking check names its findings."""
    failed_checks = []
    for event in result.all_events:
        if event.event_type_value == "ASSET_CHECK_EVALUATION":
            ev = event.event_specific_data
            if not ev.passed:
                findings = ev.metadata.get("findings")
                detail = ", ".join(findings.value[:3]) if findings is not None else (ev.description or "")
                failed_checks.append(f"{ev.asset_check_key.name} ({detail})" if detail
                                     else ev.asset_check_key.name)
    for event in result.all_events:
        if event.is_step_failure:
            err = event.step_failure_data.error
            while err is not None and err.cause is not None and "TvquantError" not in err.cls_name \
                    and err.cls_name in _WRAPPERS:
                err = err.cause
            message = _one_line(err.message if err else "unknown error")
            if err is not None and err.cls_name == "Failure" and err.cause is not None:
                message = _one_line(err.cause.message)  # our configuration error, as raised
            if err is not None and err.cls_name == "DagsterAssetCheckFailedError" and failed_checks:
                message = f"blocking asset check failed: {'; '.join(failed_checks)}"
            return f"{manifest_name}: step {event.step_key} failed: {message}"
    return f"{manifest_name}: run {result.run_id} failed"


def stage_frame(manifest_name: str, stage: str, date, lake_root: str | None = None) -> pd.DataFrame:
    """One stage's output for one date, from the lake."""
    return Lake.open(lake_root or default_lake_root()).read(manifest_name, str(stage), date)


@dataclass
class OutputsReport:
    manifest: str
    run_id: str
    tearsheet: str | None
    as_of: str | None
    database: str | None
    views: int
    wall_seconds: float


def materialize_outputs(manifest_ref: str | Path, date=None, *, lake_root: str | None = None, instance=None,
                        report: bool = True, views: bool = True) -> OutputsReport:
    """Materialize ``<manifest>/report`` (for ``date``, default the latest backtest partition) and
    ``<manifest>/lake_views`` in one in-process run, recorded in the Dagster instance like a UI run."""
    from dagster import DagsterInstance, materialize

    from tvquant_assets.defs.outputs import LAKE_VIEWS, REPORT, build_output_assets
    from tvquant_assets.defs.resources import LakeResource

    path, manifest = resolve_manifest(manifest_ref)
    if date is not None:
        date = pd.Timestamp(date)
        if not is_partition(manifest, date):
            raise ManifestError(f"--date {date.date()} is not a partition of {manifest.name} "
                                f"(calendar {manifest.calendar}, first partition {manifest.start})")
    if instance is None:
        ensure_dagster_home()
        instance = DagsterInstance.get()
    wanted = {REPORT} if report else set()
    wanted |= {LAKE_VIEWS} if views else set()
    assets = [a for a in build_output_assets(manifest, path) if a.key.path[-1] in wanted]
    root = str(lake_root or default_lake_root())
    op = f"{manifest.name}__{REPORT}"
    run_config = {**QUIET, "ops": {op: {"config": {"date": "" if date is None else date.strftime("%Y-%m-%d")}}}} \
        if report else QUIET
    t0 = time.perf_counter()
    result = materialize(assets, instance=instance, resources={"lake": LakeResource(root=root)},
                         tags={"tvquant/manifest": manifest.name}, run_config=run_config, raise_on_error=False)
    if not result.success:
        raise RunFailed(_first_failure(result, manifest.name))
    md = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization
        md[mat.asset_key.path[-1]] = mat.metadata
    rep, lv = md.get(REPORT, {}), md.get(LAKE_VIEWS, {})
    return OutputsReport(
        manifest=manifest.name, run_id=result.run_id,
        tearsheet=rep["tearsheet"].value if "tearsheet" in rep else None,
        as_of=rep["as_of"].value if "as_of" in rep else None,
        database=lv["database"].value if "database" in lv else None,
        views=int(lv["views"].value) if "views" in lv else 0,
        wall_seconds=time.perf_counter() - t0,
    )


__all__ = ["STAGES", "OutputsReport", "RangeReport", "RunFailed", "check_data_end", "check_range",
           "range_bounds", "ensure_dagster_home",
           "materialize_outputs", "materialize_range", "plan_start", "stage_frame"]
