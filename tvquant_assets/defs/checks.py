"""Asset checks per manifest: thin wrappers over ``tvquant_assets.quality``.

Checks are partitioned like their asset. A run checks its partition or range (every partition in the lake
when it has none: the UI's "Execute all") from what is in the lake, and records one evaluation per
partition (``partition_evaluations``), so the UI shows each partition's check as passed or failed; its
metadata ``failed_partitions`` names the partition when it failed, which the repair sensor reads.
Blocking checks stop downstream steps of the same run: a corrupt price partition never reaches selection
or the ledger.
"""

import pandas as pd
from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetRecordsFilter,
    DagsterEventType,
    Output,
    asset_check,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData
from dagster._core.definitions.metadata import normalize_metadata
from dagster._core.events import DagsterEvent, DagsterEventBatchMetadata, generate_event_batch_id

from tvquant_assets import quality
from tvquant_assets.calendar import is_partition, previous_dates
from tvquant_assets.defs.factory import partitions_for
from tvquant_assets.defs.resources import LakeResource
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import Manifest
from tvquant_assets.stages import Stage
from tvquant_assets.stages.history import stale_dates, stale_metadata

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
    "history_current": (Stage.AUDIT, False, AssetCheckSeverity.WARN),
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
    "history_current": "The sealed date was not computed from prices that changed after it (an earlier date "
                       "re-run with new bars makes every later sealed date stale until it is re-run).",
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
    if name == "history_current":
        stale = stale_dates(lake, m.name)
        return quality.CheckReport(name, len(dates), [quality.Finding(d, "", stale[k]) for d in dates
                                                      if (k := f"{d:%Y-%m-%d}") in stale])
    raise KeyError(f"unknown check {name!r} (known: {', '.join(CHECKS)})")


def check_dates(op, manifest: Manifest, lake: Lake, stage: Stage) -> list[pd.Timestamp]:
    """The partitions a check run covers: the run's partition or range (``op``: its op execution context); a
    run without one (the UI's "Execute all" on a partitioned asset) checks every partition of the asset in
    the lake."""
    if op.has_partitions:
        return sorted(pd.Timestamp(k) for k in op.partition_keys)
    return [d for d in lake.partitions(manifest.name, stage.value) if is_partition(manifest, d)]


def partition_evaluations(instance, check_key: AssetCheckKey, report: quality.CheckReport,
                          dates: list[pd.Timestamp], severity: AssetCheckSeverity,
                          blocking: bool, extra: dict[str, dict] | None = None) -> list[AssetCheckEvaluation]:
    """One evaluation per partition, passed or failed for that partition alone, each naming the latest
    materialization of its partition (Dagster shows a check result only while it targets the partition's
    current materialization). An ``AssetCheckResult`` of a range run would be recorded once, for no
    partition, and every partition of the range would stay "planned", then "skipped". ``extra``: more
    metadata by partition key."""
    keys = [d.strftime("%Y-%m-%d") for d in dates]
    targets = latest_materializations(instance, check_key.asset_key, keys)
    out = []
    for d, key in zip(dates, keys, strict=True):
        one = report.only(d)
        metadata = {**one.metadata(), **(extra or {}).get(key, {})}
        out.append(AssetCheckEvaluation(
            asset_key=check_key.asset_key, check_name=check_key.name, passed=one.passed, partition=key,
            metadata=normalize_metadata(metadata), severity=severity, description=one.summary(),
            blocking=blocking, target_materialization_data=targets.get(key),
        ))
    return out


def batched_checks(instance) -> bool:
    """Whether the instance's event log writes a batch of check evaluations at once (``defs/storage.py``)."""
    from tvquant_assets.defs.storage import BatchedSqliteEventLogStorage

    return isinstance(instance.event_log_storage, BatchedSqliteEventLogStorage)


def log_passed(op, evaluations: list[AssetCheckEvaluation]) -> None:
    """Record evaluations as one batch of events of the step of ``op`` (its op execution context; a range
    run has one per partition and check: one by one they cost three SQLite commits each; ``defs/storage.py``
    writes a batch in one transaction). The same events Dagster logs for a yielded evaluation, only with
    batch metadata."""
    if not evaluations:
        return
    step = op._step_execution_context  # noqa: SLF001 (no public batch API)
    batch = generate_event_batch_id()
    for i, e in enumerate(evaluations):
        DagsterEvent.from_step(
            event_type=DagsterEventType.ASSET_CHECK_EVALUATION, step_context=step, event_specific_data=e,
            message=f"Asset check '{e.check_name}' on '{e.asset_key.to_user_string()}' passed."
                    + ("" if e.description is None else f" Description: '{e.description}'"),
            batch_metadata=DagsterEventBatchMetadata(batch, i == len(evaluations) - 1))


def latest_materializations(instance, asset_key: AssetKey,
                            keys: list[str]) -> dict[str, AssetCheckEvaluationTargetMaterializationData]:
    """The latest materialization of each partition in ``keys`` (two queries, however many partitions)."""
    from tvquant_assets.defs.storage import materialization_targets

    ids = instance.event_log_storage.get_latest_storage_id_by_partition(
        asset_key, DagsterEventType.ASSET_MATERIALIZATION, set(keys))
    wanted = sorted(ids.values())
    rows = materialization_targets(instance.event_log_storage, asset_key, wanted)
    if rows is not None:
        return {k: AssetCheckEvaluationTargetMaterializationData(storage_id=i, run_id=r, timestamp=t)
                for k, (i, r, t) in rows.items()}
    out = {}
    for i in range(0, len(wanted), 500):
        chunk = wanted[i:i + 500]
        records = instance.fetch_materializations(AssetRecordsFilter(asset_key=asset_key, storage_ids=chunk),
                                                  limit=len(chunk)).records
        for r in records:
            out[r.partition_key] = AssetCheckEvaluationTargetMaterializationData(
                storage_id=r.storage_id, run_id=r.run_id, timestamp=r.timestamp)
    return out


def run_check(op, manifest: Manifest, lake: Lake, name: str) -> list[AssetCheckEvaluation]:
    """Check ``name`` over the partitions of the run of ``op`` (an op execution context: the check's own, or
    the ``<manifest>_checks`` job's) from the lake: one evaluation per partition, its summary in the log."""
    stage, blocking, severity = CHECKS[name]
    check_key = AssetCheckKey(AssetKey([manifest.name, stage.value]), name)
    dates = check_dates(op, manifest, lake, stage)
    extra = None
    if name == "history_current":  # a re-sealed date makes later ones stale: they are evaluated too
        stale = stale_metadata(lake, manifest.name)
        dates = sorted(set(dates) | {pd.Timestamp(k) for k in stale if lake.exists(manifest.name, "audit", k)})
        extra = stale
    report = evaluate(manifest, lake, name, dates) if dates else quality.CheckReport(name, 0)
    if not report.passed:
        op.log.warning(report.summary())
    else:
        op.log.info(report.summary())
    return partition_evaluations(op.instance, check_key, report, dates, severity, blocking, extra)


def build_check(manifest: Manifest, name: str):
    stage, blocking, severity = CHECKS[name]
    check_key = AssetCheckKey(AssetKey([manifest.name, stage.value]), name)

    @asset_check(
        asset=check_key.asset_key, name=name, blocking=blocking,
        description=f"{DESCRIPTIONS[name]} Re-run it on one partition: job {manifest.name}_checks, Launchpad "
                    "(pick the partition).", partitions_def=partitions_for(manifest),
        metadata={"manifest": manifest.name, "repairable": name in REPAIRABLE},
    )
    def _check(context: AssetCheckExecutionContext, lake: LakeResource):
        op = context.op_execution_context
        evaluations = run_check(op, manifest, lake.open(), name)
        if batched_checks(context.instance):
            log_passed(op, [e for e in evaluations if e.passed])
            yield from (e for e in evaluations if not e.passed)  # through Dagster: a blocking failure stops the run
        else:  # a storage without batched check events (PostgreSQL): Dagster's own path, one by one
            yield from evaluations
        yield Output(None)  # the check's own output; its results are the evaluations

    return _check


def build_manifest_checks(manifest: Manifest) -> list:
    from tvquant_assets.defs.source_checks import build_source_checks  # checks a manifest's source kind adds

    return [build_check(manifest, name) for name in CHECKS] + build_source_checks(manifest)
