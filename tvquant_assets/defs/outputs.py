"""Per-manifest outputs built from the stages: the tearsheet (``<manifest>/report``) and the DuckDB views
over the lake (``<manifest>/lake_views``). Unpartitioned: each materialization reads the lake as it is,
the report for the latest backtest partition unless its run config names a date."""

# No ``from __future__ import annotations``: it breaks Dagster's context type hints (FACTS.md).

from pathlib import Path

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    MaterializeResult,
    asset,
    define_asset_job,
    in_process_executor,
)
from pydantic import Field

from tvquant_assets.defs.metadata import OWNERS, report_metadata, views_metadata
from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.manifest import Manifest, manifest_hash
from tvquant_assets.stages import ALL_STAGES, Stage, assets_of

REPORT = "report"
LAKE_VIEWS = "lake_views"
REPORT_DEPS = (Stage.BACKTEST, Stage.TOURNAMENT, Stage.REGIME, Stage.SELECTION, Stage.AUDIT)


class ReportConfig(Config):
    date: str = Field("", description="Report date YYYY-MM-DD; empty: the latest backtest partition in the lake.")


def build_report_asset(manifest: Manifest, manifest_path: Path | None = None) -> AssetsDefinition:
    name = manifest.name

    @asset(
        key=AssetKey([name, REPORT]),
        deps=[AssetKey([name, s.value]) for s in REPORT_DEPS],
        group_name=name,
        description=f"Self-contained HTML tearsheet of {name} (equity, drawdowns, rolling Sharpe, weights, "
                    "regimes, clusters, leaderboard, orders) for the latest backtest date, or the date in "
                    "the run config. Open it with the 'tearsheet_url' link (served by `tvquant ui`).",
        kinds={"python", "html"},
        owners=list(OWNERS),
        tags={"output": "report", "manifest": name},
        metadata={"manifest": name, "manifest_path": str(manifest_path or ""),
                  "manifest_hash": manifest_hash(manifest)},
    )
    def _report(context: AssetExecutionContext, config: ReportConfig, lake: LakeResource) -> MaterializeResult:
        from tvquant_assets.report import build_report

        opened = lake.open()
        result = build_report(manifest, config.date or None, lake=opened)
        context.log.info(f"tearsheet of {name} as of {result.date.date()}: {result.path}")
        local = opened.root.protocol in ("", "file", "local")
        return MaterializeResult(metadata=report_metadata(result, opened.root.path if local else None))

    return _report


def build_lake_views_asset(manifest: Manifest) -> AssetsDefinition:
    name = manifest.name

    @asset(
        key=AssetKey([name, LAKE_VIEWS]),
        deps=[AssetKey([name, str(s)]) for s in ALL_STAGES if s in assets_of(manifest)],
        group_name=name,
        description=f"DuckDB views over the parquet lake, schema {name}: one view per stage "
                    f"({name}.backtest, ...) plus {name}.ledger, in one database file for BI tools and "
                    "'tvquant lake sql'. Views read the files at query time.",
        kinds={"python", "duckdb", "sql"},
        owners=list(OWNERS),
        tags={"output": "lake_views", "manifest": name},
        metadata={"manifest": name},
    )
    def _lake_views(context: AssetExecutionContext, lake: LakeResource) -> MaterializeResult:
        from tvquant_assets.lake import duckdb_views

        opened = lake.open()
        db = duckdb_views.default_db_path(opened)
        views = duckdb_views.refresh(opened, [name], db)
        counts = duckdb_views.row_counts(db, views)
        context.log.info(f"{len(views)} views of {name} in {db}")
        return MaterializeResult(metadata=views_metadata(str(db), counts))

    return _lake_views


def build_output_assets(manifest: Manifest, manifest_path: Path | None = None) -> list[AssetsDefinition]:
    return [build_report_asset(manifest, manifest_path), build_lake_views_asset(manifest)]


def build_output_job(manifest: Manifest):
    return define_asset_job(
        f"{manifest.name}_outputs",
        selection=[AssetKey([manifest.name, REPORT]), AssetKey([manifest.name, LAKE_VIEWS])],
        executor_def=in_process_executor,
        description=f"The tearsheet and the DuckDB lake views of {manifest.name} (run after the pipeline).",
    )


__all__ = ["LAKE_VIEWS", "REPORT", "ReportConfig", "build_output_assets", "build_output_job"]
