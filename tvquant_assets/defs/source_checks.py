"""Asset checks of manifests whose source is the user's files: stored price partitions vs the files now."""

import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from tvquant_assets.defs.factory import partitions_for
from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.manifest import Manifest
from tvquant_assets.source_edits import NAME, check_source_unchanged
from tvquant_assets.stages.context import RunContext


def build_source_checks(manifest: Manifest) -> list:
    if manifest.source.kind != "files":
        return []

    @asset_check(asset=AssetKey([manifest.name, "prices"]), name=NAME, partitions_def=partitions_for(manifest),
                 description="Every stored prices partition up to the run's last date equals what the files say "
                             "now: an edited historical row fails it, naming the partition and symbols (the lake "
                             "and the decisions keep the bars they were made with until the dates are re-run).",
                 metadata={"manifest": manifest.name, "repairable": False})
    def _source_unchanged(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
        last = max(pd.Timestamp(k) for k in context.op_execution_context.partition_keys)
        report = check_source_unchanged(RunContext(manifest, lake.open()), upto=last)
        if not report.passed:
            context.log.warning(report.summary())
        return AssetCheckResult(passed=report.passed, severity=AssetCheckSeverity.ERROR,
                                description=report.summary(), metadata=report.metadata())

    return [_source_unchanged]
