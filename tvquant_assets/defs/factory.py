"""The asset factory: one manifest -> one daily-partitioned asset ``<manifest>/<stage>`` per stage module
(``tvquant_assets.stages``), in one group."""


import datetime as dt
import functools
import warnings
from pathlib import Path

import pandas as pd
from dagster import (
    AssetDep,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BetaWarning,
    DataVersion,
    Output,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
    asset,
    define_asset_job,
    in_process_executor,
)

from tvquant_assets import progress, repair
from tvquant_assets.calendar import CRON, calendar_dates, previous_dates
from tvquant_assets.defs import chunks
from tvquant_assets.defs.containment import run_contained
from tvquant_assets.defs.metadata import OWNERS, add_partition_metadata, finish_partition, partition_metadata
from tvquant_assets.defs.policies import SOURCE_RETRY, no_retry_on_configuration_errors, source_pool
from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.defs.run_warnings import warnings_to_run_log
from tvquant_assets.hashing import stamp_hash
from tvquant_assets.lake.store import prepare_frame
from tvquant_assets.manifest import Manifest, manifest_hash
from tvquant_assets.sources import last_partition_date
from tvquant_assets.stages import SPECS, ahead, assets_of, upstream_of
from tvquant_assets.stages.code_versions import code_version
from tvquant_assets.stages.context import RunContext

IO_MANAGER_KEY = "tvquant_lake_io"


def partitions_for(manifest: Manifest, now: dt.datetime | None = None) -> TimeWindowPartitionsDefinition:
    """Daily partitions from ``manifest.start`` to the last date with data (``Source.partitions_end``).

    A source that has data up to today (or its last closed session) keeps a moving end
    (``end_offset`` 1: up to today's partition, re-evaluated by Dagster at each tick), so a long-running code
    server keeps up; a fixed history
    (bundled, synthetic, files) ends at its last date, so "Latest", the materialize dialog and the schedule
    never target dates without data."""
    now = now or dt.datetime.now(dt.UTC)
    common = dict(start=manifest.start.strftime("%Y-%m-%d"), cron_schedule=CRON[manifest.calendar],
                  fmt="%Y-%m-%d", timezone="UTC")
    today = calendar_dates(manifest.calendar, pd.Timestamp(now.date()) - pd.Timedelta(days=7), now.date())[-1]
    last = _last_partition(manifest, now)
    if last >= previous_dates(manifest, today, 1)[0]:
        # A moving end, one period after now: the after-close schedule runs today's partition. Dagster
        # re-evaluates it at each tick, so a definition loaded after midnight UTC still has the evening's
        # partition (an end_offset of 0 would lose it at the next 17:30 New York tick).
        return TimeWindowPartitionsDefinition(**common, end_offset=1)
    after = calendar_dates(manifest.calendar, last + pd.Timedelta(days=1), last + pd.Timedelta(days=8))[0]
    # end: the exclusive end of the last window; end_offset 1 keeps a date's partition open on its own
    # evening (the schedule's tick) when that date is before the end
    return TimeWindowPartitionsDefinition(**common, end=after.strftime("%Y-%m-%d"), end_offset=1)


_LAST: dict[tuple[str, str], pd.Timestamp] = {}


def _last_partition(manifest: Manifest, now: dt.datetime) -> pd.Timestamp:
    """``last_partition_date``, asked of the source once per manifest and minute (every asset and check of a
    manifest shares one partitions definition)."""
    if manifest.source.kind == "files":  # the user's files grow between two runs of a minute (read cached by stat)
        return last_partition_date(manifest, now)
    key = (manifest_hash(manifest), now.strftime("%Y-%m-%dT%H:%M"))
    if key not in _LAST:
        _LAST[key] = last_partition_date(manifest, now)
    return _LAST[key]


def previous_deps(name: str, spec) -> list[AssetDep]:
    """Deps on the previous partition of ``spec.previous`` (a stage's own name: its carried state)."""
    previous = TimeWindowPartitionMapping(start_offset=-1, end_offset=-1, allow_nonexistent_upstream_partitions=True)
    return [AssetDep(AssetKey([name, str(p)]), partition_mapping=previous) for p in spec.previous]


def build_stage_asset(manifest: Manifest, stage: str, manifest_path: Path | None = None) -> AssetsDefinition:
    """The asset ``<manifest>/<stage>``: everything about it comes from the stage's ``StageSpec``."""
    spec = SPECS[str(stage)]
    mhash = manifest_hash(manifest)
    name = manifest.name

    @asset(
        key=AssetKey([name, spec.name]),
        deps=[*(AssetKey([name, str(up)]) for up in upstream_of(spec, manifest)), *previous_deps(name, spec),
              *(d for d in chunks.ordering_deps(name, spec.name) if spec.name not in spec.previous)],
        partitions_def=partitions_for(manifest),
        backfill_policy=chunks.backfill_policy(),  # single run unless chunked (defs/chunks.py)
        group_name=name,
        io_manager_key=IO_MANAGER_KEY,
        code_version=code_version(spec.name, manifest),
        description=f"{spec.description.strip()}\n\nManifest `{name}`: {manifest.description or manifest.source.kind}",
        kinds={"python", "parquet", *spec.kinds},
        owners=list(OWNERS),
        tags={"stage": spec.name, "manifest": name, "source": manifest.source.kind},
        metadata={"manifest": name, "manifest_path": str(manifest_path or ""), "manifest_hash": mhash},
        retry_policy=SOURCE_RETRY if spec.calls_source else None,
        pool=source_pool(manifest.source.kind) if spec.calls_source else None,
    )
    def _stage_asset(context: AssetExecutionContext, lake: LakeResource):
        keys = list(context.partition_keys)
        dates = [pd.Timestamp(k) for k in keys]
        ctx = RunContext(manifest, lake.open(), run_id=context.run.run_id)
        finish = functools.partial(finish_partition, spec.name, mhash)
        # the run's advisory stages, once their upstreams are written: computed by a worker beside the steps
        ahead.start_ready(ctx, context.run.run_id, run_stages(context, name), spec.name, dates,
                          lambda stage: functools.partial(finish_partition, stage, mhash))
        repaired = None
        if spec.name == "catalog" and context.run.tags.get(repair.RUN_TAG) == "true":
            repaired = repair.run_repair(ctx, dates)
            for line in repaired.lines():  # what it found and decided, in the run log
                context.log.info(line)
        with progress.stage(f"{name}/{spec.name}", len(keys)), warnings_to_run_log(context.log), \
                no_retry_on_configuration_errors():
            # each process of a date split hashes its own dates and makes their UI metadata (result.finished)
            result = ahead.take(context.run.run_id, spec.name, dates)
            if result is None:
                result = run_contained(ctx, spec.name, dates, finish=finish)
        outputs, hashes, finished = {}, {}, result.finished
        with progress.timed("lake_write"):  # the hash a lake write computes (one-shot: inside write_many)
            for key in keys:  # stamped: the IO manager writes it without hashing again
                d = pd.Timestamp(key)
                if d in finished:
                    outputs[key], hashes[key] = result.frames[d], finished[d][0]
                    stamp_hash(outputs[key], hashes[key])
                else:
                    outputs[key], hashes[key] = prepare_frame(result.frames[d])
        with progress.timed("metadata"):  # UI metadata: work only a Dagster run does
            by_partition = {}
            for key in keys:
                d = pd.Timestamp(key)
                if d in finished:
                    md = finished[d][1]
                else:
                    md = partition_metadata(outputs[key], hashes[key], result.upstream.get(d, {}), mhash,
                                            result.notes.get(d, ""), spec.name)
                    md.update(result.metadata.get(d, {}))  # audit: the ledger's chain head
                if repaired is not None:
                    md.update(repaired.metadata(pd.Timestamp(key)))
                by_partition[key] = md
            add_partition_metadata(context, by_partition)
        if len(keys) == 1:  # DataVersion can only be per partition when the run holds one
            return Output(outputs, data_version=DataVersion(hashes[keys[0]]))
        return outputs

    return _stage_asset


def run_stages(context: AssetExecutionContext, name: str) -> list[str]:
    """The stages of manifest ``name`` the step's run materializes."""
    keys = context.job_def.asset_layer.selected_asset_keys
    return [k.path[1] for k in keys if len(k.path) == 2 and k.path[0] == name]


def build_manifest_assets(manifest: Manifest, manifest_path: Path | None = None) -> list[AssetsDefinition]:
    with warnings.catch_warnings():  # backfill_policy is marked beta; we rely on it deliberately
        warnings.simplefilter("ignore", BetaWarning)
        return [build_stage_asset(manifest, stage, manifest_path) for stage in assets_of(manifest)]


def build_manifest_job(manifest: Manifest):
    return define_asset_job(
        f"{manifest.name}_pipeline",
        selection=[AssetKey([manifest.name, str(s)]) for s in assets_of(manifest)],
        executor_def=in_process_executor,
        description=f"Every stage of manifest {manifest.name} and its threshold auditor, in one process "
        "(ranges run as one run).",
    )
