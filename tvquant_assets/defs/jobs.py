"""Jobs besides the per-manifest pipeline job: data repair and the monthly tournament review."""

from dagster import AssetKey, define_asset_job, in_process_executor

from tvquant_assets import repair
from tvquant_assets.manifest import Manifest
from tvquant_assets.stages import Stage, assets_of, downstream_of

REVIEW_STAGES = downstream_of(Stage.TOURNAMENT)
"""The monthly review re-runs the tournament and every stage that depends on it."""


def pipeline_job_name(manifest: Manifest) -> str:
    return f"{manifest.name}_pipeline"


def repair_job_name(manifest: Manifest) -> str:
    return f"{manifest.name}_data_repair"


def review_job_name(manifest: Manifest) -> str:
    return f"{manifest.name}_tournament_review"


def build_repair_job(manifest: Manifest):
    """Every stage over [first bad partition, newest]: the catalog step re-fetches and plans the repair
    (fill or exclude), then every stage and check re-runs on the repaired prices."""
    return define_asset_job(
        repair_job_name(manifest),
        selection=[AssetKey([manifest.name, str(s)]) for s in assets_of(manifest)],
        executor_def=in_process_executor,
        tags={repair.RUN_TAG: "true", "tvquant/manifest": manifest.name},
        description=f"Repair bad price partitions of {manifest.name} from the source, then re-materialize "
                    "everything downstream (launched by data_repair_sensor; run it on a range by hand too).",
    )


def review_stages(manifest: Manifest) -> tuple[Stage, ...]:
    """:data:`REVIEW_STAGES` that ``manifest`` has (opt-in stages only when enabled)."""
    return tuple(s for s in REVIEW_STAGES if s in assets_of(manifest))


def build_review_job(manifest: Manifest):
    return define_asset_job(
        review_job_name(manifest),
        selection=[AssetKey([manifest.name, str(s)]) for s in review_stages(manifest)],
        executor_def=in_process_executor,
        tags={"tvquant/manifest": manifest.name},
        description=f"Monthly review of {manifest.name}: re-runs {', '.join(review_stages(manifest))} over last month.",
    )
