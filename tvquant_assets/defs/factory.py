"""The asset factory: one manifest -> ten daily-partitioned assets ``<manifest>/<stage>`` in one group."""


import hashlib
import inspect
import warnings
from pathlib import Path

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    BackfillPolicy,
    BetaWarning,
    DataVersion,
    Output,
    TimeWindowPartitionsDefinition,
    asset,
    define_asset_job,
    in_process_executor,
)

from tvquant_assets import pipeline, progress, repair
from tvquant_assets.calendar import CRON
from tvquant_assets.defs.metadata import OWNERS, partition_metadata
from tvquant_assets.defs.policies import SOURCE_RETRY, source_pool
from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.enums import STAGES, Stage
from tvquant_assets.hashing import df_hash, stamp_hash
from tvquant_assets.manifest import Manifest, manifest_hash

DESCRIPTIONS = {
    Stage.CATALOG: "Point-in-time symbol catalog for D: listed symbols, sector, first and last bar, active.",
    Stage.PRICES: "Daily bars stamped D for the catalog's symbols (only the fields the source really has).",
    Stage.SCAN: "Screened universe for D with scanner fields computed from the price lake, bars <= D only.",
    Stage.SELECTION: "Features, scores, raw vetoes, multi-lookback clusters, dynamic top-N, long/short books for D.",
    Stage.REGIME: "Market regime for D: realized-vol ratio, growth/stress quadrant, label, active preset.",
    Stage.ESTIMATION: "Expected returns and Ledoit-Wolf covariance of the selected symbols, as of D.",
    Stage.TOURNAMENT: "Target weights of every engine x profile (solver status, fallbacks); carried off-rebalance.",
    Stage.BACKTEST: "Walk-forward of every candidate to D with drift and costs; metrics and leaderboard.",
    Stage.DRIFT: "Drift monitor for D: the leader's drifted book vs its latest targets; orders when drift exceeds "
                 "the threshold.",
    pipeline.REGIME_REGRET: "Threshold auditor: regret of adaptive profile switches vs the best fixed candidate per "
    "turbulent threshold, and the threshold it suggests (advisory, never applied).",
    Stage.AUDIT: "Hash-chained ledger entry for D proving every stage's output, manifest and environment.",
}

# Libraries doing the work of each stage, shown as kinds in the UI beside python and parquet.
STAGE_KINDS = {
    Stage.CATALOG: ("pandas",), Stage.PRICES: ("pandas",), Stage.SCAN: ("numpy",), Stage.SELECTION: ("scipy",),
    Stage.REGIME: ("numpy",), Stage.ESTIMATION: ("scikitlearn",), Stage.TOURNAMENT: ("cvxpy", "skfolio"),
    Stage.BACKTEST: ("numpy",), Stage.AUDIT: ("json",), pipeline.REGIME_REGRET: ("numpy",),
}

IO_MANAGER_KEY = "tvquant_lake_io"
ASSETS: tuple[Stage | str, ...] = (*STAGES, pipeline.REGIME_REGRET)
"""Every asset of a manifest: the nine stages plus the advisory threshold auditor."""
SOURCE_STAGES = (Stage.CATALOG, Stage.PRICES)  # the stages that call the manifest's source


def partitions_for(manifest: Manifest) -> TimeWindowPartitionsDefinition:
    return TimeWindowPartitionsDefinition(
        start=manifest.start.strftime("%Y-%m-%d"), cron_schedule=CRON[manifest.calendar], fmt="%Y-%m-%d",
        timezone="UTC", end_offset=1,  # today's partition exists: the schedule runs it after the close
    )


def _code_version(stage: Stage, mhash: str) -> str:
    """Manifest hash + the source of the stage runner, so a change of either marks partitions stale."""
    src = inspect.getsource(pipeline.RUNNERS[stage])
    return hashlib.sha256(f"{mhash}:{src}".encode()).hexdigest()[:16]


def _pipeline(manifest: Manifest, lake: LakeResource) -> pipeline.Pipeline:
    return pipeline.Pipeline(manifest, lake.open())


def build_stage_asset(manifest: Manifest, stage: Stage | str, manifest_path: Path | None = None) -> AssetsDefinition:
    mhash = manifest_hash(manifest)
    name = manifest.name

    @asset(
        key=AssetKey([name, str(stage)]),
        deps=[AssetKey([name, up.value]) for up in pipeline.UPSTREAM[stage]],
        partitions_def=partitions_for(manifest),
        backfill_policy=BackfillPolicy.single_run(),
        group_name=name,
        io_manager_key=IO_MANAGER_KEY,
        code_version=_code_version(stage, mhash),
        description=f"{DESCRIPTIONS[stage]}\n\nManifest `{name}`: {manifest.description or manifest.source.kind}",
        kinds={"python", "parquet", *STAGE_KINDS.get(stage, ())},
        owners=list(OWNERS),
        tags={"stage": str(stage), "manifest": name, "source": manifest.source.kind},
        metadata={"manifest": name, "manifest_path": str(manifest_path or ""), "manifest_hash": mhash},
        retry_policy=SOURCE_RETRY if stage in SOURCE_STAGES else None,
        pool=source_pool(manifest.source.kind) if stage in SOURCE_STAGES else None,
    )
    def _stage_asset(context: AssetExecutionContext, lake: LakeResource):
        keys = list(context.partition_keys)
        pipe = _pipeline(manifest, lake)
        extra = {"run_id": context.run.run_id} if stage is Stage.AUDIT else {}
        if stage is Stage.CATALOG and context.run.tags.get(repair.RUN_TAG) == "true":
            repair.plan_and_record(pipe, [pd.Timestamp(k) for k in keys])
        with progress.stage(f"{name}/{stage}", len(keys)):
            result = pipeline.run_stage(pipe, stage, [pd.Timestamp(k) for k in keys], **extra)
        outputs, hashes = {}, {}
        with progress.timed("lake_write"):  # the hash a lake write computes (one-shot: inside write_many)
            for key in keys:
                frame = result.frames[pd.Timestamp(key)].reset_index(drop=True)
                outputs[key], hashes[key] = frame, df_hash(frame)
                stamp_hash(frame, hashes[key])  # the IO manager writes it without hashing again
        with progress.timed("metadata"):  # UI metadata: work only a Dagster run does
            for key in keys:
                md = partition_metadata(outputs[key], hashes[key], result.upstream.get(pd.Timestamp(key), {}),
                                        mhash, result.notes.get(pd.Timestamp(key), ""), str(stage))
                md.update(result.metadata.get(pd.Timestamp(key), {}))  # audit: the ledger's chain head
                context.add_asset_metadata(md, partition_key=key)
        if len(keys) == 1:  # DataVersion can only be per partition when the run holds one
            return Output(outputs, data_version=DataVersion(hashes[keys[0]]))
        return outputs

    return _stage_asset


def build_manifest_assets(manifest: Manifest, manifest_path: Path | None = None) -> list[AssetsDefinition]:
    with warnings.catch_warnings():  # backfill_policy is marked beta; we rely on it deliberately
        warnings.simplefilter("ignore", BetaWarning)
        return [build_stage_asset(manifest, stage, manifest_path) for stage in ASSETS]


def build_manifest_job(manifest: Manifest):
    return define_asset_job(
        f"{manifest.name}_pipeline",
        selection=[AssetKey([manifest.name, str(s)]) for s in ASSETS],
        executor_def=in_process_executor,
        description=f"Every stage of manifest {manifest.name} and its threshold auditor, in one process "
        "(ranges run as one run).",
    )
