"""Asset checks of manifests whose source is TradingView: catalog metadata parity with the live screener,
and the symbols whose fetch failed at the source."""

import pandas as pd
from dagster import AssetCheckResult, AssetChecksDefinition, AssetCheckSeverity, AssetKey, MetadataValue, asset_check

from tvquant_assets.defs.policies import SOURCE_RETRY, TRADINGVIEW_POOL
from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.manifest import Manifest
from tvquant_assets.stages.context import RunContext


def parity_result(report: pd.DataFrame, severity: str) -> AssetCheckResult:
    """Passed when the stored catalog and the live snapshot agree; mismatches listed with their fields."""
    return AssetCheckResult(
        passed=report.empty,
        severity=AssetCheckSeverity.ERROR if severity == "error" else AssetCheckSeverity.WARN,
        metadata={
            "mismatches": len(report),
            "fields": ", ".join(sorted(set(report["field"]))) if len(report) else "",
            "symbols": ", ".join(sorted(set(report["symbol"])))[:2000] if len(report) else "",
            "report": MetadataValue.md(report.head(50).to_markdown(index=False)) if len(report) else
            MetadataValue.md("no mismatches"),
        },
    )


def build_tradingview_checks(manifest: Manifest) -> list[AssetChecksDefinition]:
    if manifest.source.kind != "tradingview":
        return []

    @asset_check(asset=AssetKey([manifest.name, "catalog"]), name="metadata_parity", pool=TRADINGVIEW_POOL,
                 retry_policy=SOURCE_RETRY,
                 description="Stored catalog (exchange, type, currency, tick size, sector) vs a live screener "
                             "snapshot; severity from source.parity.severity.")
    def _metadata_parity(lake: LakeResource) -> AssetCheckResult:
        ctx = RunContext(manifest, lake.open())
        return parity_result(ctx.source.live_parity(), manifest.source.parity.severity)

    @asset_check(asset=AssetKey([manifest.name, "prices"]), name="source_failures",
                 description="No symbol of the catalog failed at the source (every failure listed with its "
                             "cause); an error when source.failed_symbols is fail, else a warning.")
    def _source_failures(lake: LakeResource) -> AssetCheckResult:
        from tvquant_assets.sources.tradingview.run_report import failed_symbols

        failed = failed_symbols(manifest, lake.open().root)
        lines = [f"{s}: {v['error']}" for s, v in failed.items()]
        return AssetCheckResult(
            passed=not failed,
            severity=AssetCheckSeverity.ERROR if manifest.source.failed_symbols == "fail" else AssetCheckSeverity.WARN,
            description=f"{len(failed)} symbol(s) failed at the source" + (f": {lines[0]}" if lines else ""),
            metadata={"failed": len(failed), "symbols": ", ".join(failed)[:2000],
                      "causes": MetadataValue.md("\n".join(f"- {x}" for x in lines[:50]) or "none")},
        )

    return [_metadata_parity, _source_failures]
