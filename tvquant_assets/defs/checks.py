"""Asset checks per manifest: thin wrappers over ``tvquant_assets.quality``.

Checks are partitioned like their asset. One evaluation covers every partition of the run (a range run
or one partition); its metadata ``failed_partitions`` names the bad ones, which the repair sensor reads.
(Dagster 1.13 also leaves a PLANNED row per partition of a range run that never resolves; the sensor
ignores PLANNED rows of finished runs.) Blocking checks stop downstream steps of the same run: a corrupt
price partition never reaches selection or the ledger.
"""

import pandas as pd
from dagster import AssetCheckExecutionContext, AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from tvquant_assets import quality
from tvquant_assets.calendar import previous_dates
from tvquant_assets.defs.factory import partitions_for
from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import Manifest
from tvquant_assets.stages import Stage

# check name -> (stage, blocking, severity)
CHECKS: dict[str, tuple[Stage, bool, AssetCheckSeverity]] = {
    "price_values": (Stage.PRICES, True, AssetCheckSeverity.ERROR),
    "unique_bars": (Stage.PRICES, True, AssetCheckSeverity.ERROR),
    "complete_bars": (Stage.PRICES, False, AssetCheckSeverity.ERROR),
    "plausible_returns": (Stage.PRICES, False, AssetCheckSeverity.WARN),
    "fresh_prices": (Stage.PRICES, False, AssetCheckSeverity.WARN),
    "selection_size": (Stage.SELECTION, True, AssetCheckSeverity.ERROR),
    "tournament_weights": (Stage.TOURNAMENT, True, AssetCheckSeverity.ERROR),
    "backtest_equity": (Stage.BACKTEST, True, AssetCheckSeverity.ERROR),
}
# Failures of these mean the price lake itself is wrong: the repair sensor acts on them.
REPAIRABLE = frozenset({"price_values", "unique_bars", "complete_bars"})

DESCRIPTIONS = {
    "price_values": "No NaN bar field, no price <= 0, no negative volume.",
    "unique_bars": "One bar per symbol, stamped with the partition date.",
    "complete_bars": "On a trading day every active catalog symbol has a bar.",
    "plausible_returns": "No |log return| above quality.max_abs_log_return (warning: real crashes exist).",
    "fresh_prices": "No close unchanged over quality.stale_bars bars; no listed symbol stopped reporting.",
    "selection_size": "Selected count within [quality.min_selected, selection.max_symbols].",
    "tournament_weights": "Every candidate's weights against its own book: no NaN, within its cap; long only "
                          "summing to 1, short only summing to -1, or long/short at its net and within its gross.",
    "backtest_equity": "Every candidate's equity is finite and positive.",
}


def evaluate(manifest: Manifest, lake: Lake, name: str, dates: list[pd.Timestamp]) -> quality.CheckReport:
    """Run one named check over ``dates`` of ``manifest`` from the lake (shared by the checks and tests)."""
    m, cfg = manifest, manifest.quality

    def read(stage: Stage, ds, missing_ok=False):
        return {d: f for d, (f, _) in lake.read_many(m.name, stage.value, ds, missing_ok=missing_ok).items()}

    def history():
        earlier = previous_dates(m, dates[0], cfg.stale_bars + 2)
        return read(Stage.PRICES, [d for d in earlier if d >= pd.Timestamp(m.start)], missing_ok=True)

    if name == "price_values":
        return quality.check_price_values(read(Stage.PRICES, dates))
    if name == "unique_bars":
        return quality.check_unique_bars(read(Stage.PRICES, dates))
    if name == "complete_bars":
        sessions = None
        if m.source.kind == "tradingview":  # an exchange session without any bar is a gap, not a holiday
            from tvquant_assets.sources.tradingview.schedule import closed_sessions

            sessions = closed_sessions(m, dates[0], dates[-1])
        return quality.check_complete(read(Stage.PRICES, dates), read(Stage.CATALOG, dates), sessions)
    if name == "plausible_returns":
        return quality.check_returns(read(Stage.PRICES, dates), history(), cfg)
    if name == "fresh_prices":
        return quality.check_fresh(read(Stage.PRICES, dates), history(), read(Stage.CATALOG, dates), cfg)
    if name == "selection_size":
        long_cap, short_cap = quality.selection_caps(m)
        return quality.check_selection_size(read(Stage.SELECTION, dates), long_cap, cfg, short_cap)
    if name == "tournament_weights":
        from tvquant_assets.core.book_limits import candidate_limits  # each candidate against its own book

        limits = {c.name: candidate_limits(m.book, c.engine, c.profile.value, m.tournament.constraints)
                  for c in m.tournament.candidates}
        return quality.check_weights(read(Stage.TOURNAMENT, dates), cfg, limits)
    if name == "backtest_equity":
        return quality.check_equity(read(Stage.BACKTEST, dates))
    raise KeyError(f"unknown check {name!r} (known: {', '.join(CHECKS)})")


def build_check(manifest: Manifest, name: str):
    stage, blocking, severity = CHECKS[name]

    @asset_check(
        asset=AssetKey([manifest.name, stage.value]), name=name, blocking=blocking,
        description=DESCRIPTIONS[name], partitions_def=partitions_for(manifest),
        metadata={"manifest": manifest.name, "repairable": name in REPAIRABLE},
    )
    def _check(context: AssetCheckExecutionContext, lake: LakeResource) -> AssetCheckResult:
        dates = [pd.Timestamp(k) for k in context.op_execution_context.partition_keys]
        report = evaluate(manifest, lake.open(), name, sorted(dates))
        if not report.passed:
            context.log.warning(report.summary())
        return AssetCheckResult(passed=report.passed, severity=severity, description=report.summary(),
                                metadata=report.metadata())

    return _check


def build_manifest_checks(manifest: Manifest) -> list:
    from tvquant_assets.defs.source_checks import build_source_checks  # checks a manifest's source kind adds

    return [build_check(manifest, name) for name in CHECKS] + build_source_checks(manifest)
