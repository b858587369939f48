"""The job ``<manifest>_checks``: re-run asset checks on one partition (or a range) from the UI, reading the lake.

Dagster 1.13 disables a partitioned check's own Execute button ("Executing checks on their own for partitioned
assets is not yet supported", ``ui-core/src/assets/asset-checks/ExecuteChecksButton.tsx``), its "Execute all"
launches without a partition, and an asset job has no Launchpad tab (``ui-core/src/nav/PipelineNav.tsx``:
``hasLaunchpad = !isAssetJob``). This op job has one: pick a partition there (or partitions on its Partitions
tab for a backfill, one run per partition), optionally narrow ``checks`` in the config, launch. It evaluates the
same checks (``checks.run_check``) and records each result on the check itself, for that partition, so the
asset's Checks tab and the repair sensor see it as they see the check's own runs. A failed blocking check fails
the run with ``DagsterAssetCheckFailedError`` (as Dagster does for a blocking check): the retry sensor leaves
it to the repair sensor. Nothing is materialized: a corrupt file stays in the lake until it is repaired.
"""

from dagster import Config, OpExecutionContext, in_process_executor, job, op
from dagster._core.errors import DagsterAssetCheckFailedError
from pydantic import Field, field_validator

from tvquant_assets.defs.checks import CHECKS, batched_checks, log_passed, run_check
from tvquant_assets.defs.factory import partitions_for
from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.manifest import Manifest


def checks_job_name(manifest: Manifest) -> str:
    return f"{manifest.name}_checks"


class RecheckConfig(Config):
    checks: list[str] = Field(default_factory=lambda: list(CHECKS),
                              description=f"The checks to run (default: all): {', '.join(CHECKS)}.")

    @field_validator("checks")
    @classmethod
    def _known(cls, names: list[str]) -> list[str]:
        unknown = [n for n in names if n not in CHECKS]
        if unknown or not names:
            raise ValueError(f"checks: unknown {', '.join(unknown) or '(none given)'}; known: {', '.join(CHECKS)}")
        return names


def build_checks_job(manifest: Manifest):
    @op(name=f"{manifest.name}_recheck", description="Re-run the configured checks on the run's partition(s) "
                                                     "from the lake (every partition in the lake without one).")
    def recheck(context: OpExecutionContext, config: RecheckConfig, lake: LakeResource) -> None:
        opened, failed = lake.open(), []
        for name in dict.fromkeys(config.checks):
            evaluations = run_check(context, manifest, opened, name)
            if batched_checks(context.instance):
                log_passed(context, evaluations)
            else:
                for e in evaluations:
                    context.log_event(e)
            if CHECKS[name][1]:  # blocking
                failed += [f"{name} on {e.partition}" for e in evaluations if not e.passed]
        if failed:
            raise DagsterAssetCheckFailedError(f"Blocking check(s) failed: {', '.join(failed[:10])}"
                                               + (f" and {len(failed) - 10} more" if len(failed) > 10 else ""))

    @job(name=checks_job_name(manifest), partitions_def=partitions_for(manifest), executor_def=in_process_executor,
         tags={"tvquant/manifest": manifest.name},
         description=f"Re-run the asset checks of {manifest.name} on a partition chosen in the Launchpad (or a "
                     "range from the Partitions tab) on what is in the lake; nothing is materialized.")
    def checks_job():
        recheck()

    return checks_job
