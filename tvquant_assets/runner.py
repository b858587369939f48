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
from tvquant_assets.stages import STAGES
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


def check_range(manifest: Manifest, start, end) -> tuple[pd.Timestamp, pd.Timestamp]:
    """Both ends must be partitions of the manifest (Dagster silently accepts bad range ends)."""
    s, e = pd.Timestamp(start), pd.Timestamp(end)
    for label, d in (("--start", s), ("--end", e)):
        if not is_partition(manifest, d):
            hint = manifest_dates(manifest, d - pd.Timedelta(days=7), d)
            near = f"; nearest earlier partition is {hint[-1].date()}" if hint else ""
            raise ManifestError(
                f"{label} {d.date()} is not a partition of {manifest.name} (calendar {manifest.calendar}, "
                f"first partition {manifest.start}){near}"
            )
    if e < s:
        raise ManifestError(f"--end {e.date()} is before --start {s.date()}")
    return s, e


def materialize_range(manifest_ref: str | Path, start, end, *, lake_root: str | None = None, instance=None,
                      extend_start: bool = True) -> RangeReport:
    """Run every stage of a manifest for [start, end] as one in-process Dagster run (after the history its
    plan needs, as a run of its own)."""
    # One "planned" event per range instead of per partition; materializations stored in batches.
    os.environ.setdefault("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    os.environ.setdefault("DAGSTER_EVENT_BATCH_SIZE", "500")
    from dagster import DagsterInstance

    from tvquant_assets.defs.checks import build_manifest_checks
    from tvquant_assets.defs.factory import IO_MANAGER_KEY, build_manifest_assets
    from tvquant_assets.defs.io_manager import LakeIOManagerFactory
    from tvquant_assets.defs.resources import LakeResource

    path, manifest = resolve_manifest(manifest_ref)
    s, e = check_range(manifest, start, end)
    root = lake_root or default_lake_root()
    plan = plan_range(manifest, Lake.open(root), s, e, extend_start=extend_start)
    s = plan.start
    if instance is None:
        ensure_dagster_home()
        instance = DagsterInstance.get()
    assets = build_manifest_assets(manifest, path)
    checks = build_manifest_checks(manifest)
    keys = [d.strftime("%Y-%m-%d") for d in (s, e)]
    fail_dead_runs(instance)  # runs of killed CLI processes would hold the queue's slots forever
    tags = {"tvquant/manifest": manifest.name, PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}
    resources = {IO_MANAGER_KEY: LakeIOManagerFactory(root=str(root)), "lake": LakeResource(root=str(root))}
    before = dict(progress.timings.seconds)
    t0 = time.perf_counter()
    if plan.history:  # trailing windows of the first dates read bars the lake does not have yet
        first, last = (d.strftime("%Y-%m-%d") for d in plan.history)
        history_assets = [a for a in assets if a.key.path[-1] in HISTORY_STAGES]
        history = _materialize(history_assets, instance, resources, tags, first, last)
        if not history.success:
            raise RunFailed(_first_failure(history, manifest.name))
    result = _materialize([*assets, *checks], instance, resources, tags, keys[0], keys[1])
    wall = time.perf_counter() - t0
    if not result.success:
        raise RunFailed(_first_failure(result, manifest.name))
    after = progress.timings.seconds
    return RangeReport(
        manifest=manifest.name, start=s, end=e, partitions=len(manifest_dates(manifest, s, e)),
        run_id=result.run_id, wall_seconds=wall,
        compute_seconds=after.get("compute", 0.0) - before.get("compute", 0.0),
        lake_write_seconds=after.get("lake_write", 0.0) - before.get("lake_write", 0.0),
        notes=[*plan.notes, *filter(None, [stale_note(Lake.open(root), manifest.name)])],
        stage_seconds=_per_stage(before, after, "stage:"), stage_cpu_seconds=_per_stage(before, after, "cpu:"),
    )


def _per_stage(before: dict, after: dict, prefix: str) -> dict[str, float]:
    return {k[len(prefix):].split("/", 1)[-1]: v - before.get(k, 0.0) for k, v in after.items()
            if k.startswith(prefix) and v - before.get(k, 0.0) > 0}


def _materialize(assets, instance, resources, tags, first: str, last: str):
    """One in-process run over [first, last] (a single partition when they are equal)."""
    from dagster import materialize

    if first == last:
        return materialize(assets, instance=instance, resources=resources, tags=tags, partition_key=first,
                           run_config=QUIET, raise_on_error=False)
    range_tags = {**tags, "dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last}
    return materialize(assets, instance=instance, resources=resources, tags=range_tags, run_config=QUIET,
                       raise_on_error=False)


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


__all__ = ["STAGES", "OutputsReport", "RangeReport", "RunFailed", "check_range", "ensure_dagster_home",
           "materialize_outputs", "materialize_range", "plan_start", "stage_frame"]
