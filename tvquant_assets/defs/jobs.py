"""Jobs besides the per-manifest pipeline job: data repair and the monthly tournament review."""

from dagster import AssetKey, define_asset_job, in_process_executor

from tvquant_assets import repair
from tvquant_assets.enums import STAGES, Stage
from tvquant_assets.manifest import Manifest

REVIEW_STAGES = (Stage.TOURNAMENT, Stage.BACKTEST, Stage.AUDIT)


def pipeline_job_name(manifest: Manifest) -> str:
    return f"{manifest.name}_pipeline"


def repair_job_name(manifest: Manifest) -> str:
    return f"{manifest.name}_data_repair"


def review_job_name(manifest: Manifest) -> str:
    return f"{manifest.name}_tournament_review"


def build_repair_job(manifest: Manifest):
    """All nine stages over [first bad partition, newest]: the catalog step re-fetches and plans the repair
    (fill or exclude), then every stage and check re-runs on the repaired prices."""
    return define_asset_job(
        repair_job_name(manifest),
        selection=[AssetKey([manifest.name, s.value]) for s in STAGES],
        executor_def=in_process_executor,
        tags={repair.RUN_TAG: "true", "tvquant/manifest": manifest.name},
        description=f"Repair bad price partitions of {manifest.name} from the source, then re-materialize "
                    "everything downstream (launched by data_repair_sensor; run it on a range by hand too).",
    )


def build_review_job(manifest: Manifest):
    return define_asset_job(
        review_job_name(manifest),
        selection=[AssetKey([manifest.name, s.value]) for s in REVIEW_STAGES],
        executor_def=in_process_executor,
        tags={"tvquant/manifest": manifest.name},
        description=f"Monthly review of {manifest.name}: re-runs tournament, backtest and audit over last month.",
    )
