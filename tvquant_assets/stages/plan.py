"""The planner and dispatcher shared by the Dagster runner and the one-shot path (no Dagster here).

``plan_range`` decides what a range needs besides its own partitions (an earlier start when it carries a
decision or the backtest needs decisions not in the lake; catalog and prices history for the trailing
windows of its first dates); ``run_stage`` computes one stage for some dates; ``run_one_shot`` runs a
plan without Dagster.
"""

from __future__ import annotations

import datetime as dt
import gc
from dataclasses import dataclass, field

import pandas as pd

from tvquant_assets import progress
from tvquant_assets.calendar import manifest_dates, previous_dates
from tvquant_assets.determinism import pin_threads
from tvquant_assets.errors import SourceError
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import Manifest
from tvquant_assets.stages import MODULES, STAGES, Stage, assets_of, parallel
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.spec import StageResult

HISTORY_STAGES = (Stage.CATALOG, Stage.PRICES)
"""What the trailing windows of a range's first dates read from earlier partitions."""


GC_THRESHOLD = 50_000
"""Allocations between young-generation collections while stages run. Python's default (700) made the garbage
collector rescan pandas' many small objects: with two workers, 17.6 -> 15.4 s for the demo's two years;
reference cycles are still collected."""


def relax_gc() -> None:
    threshold = gc.get_threshold()
    if threshold[0] < GC_THRESHOLD:
        gc.set_threshold(GC_THRESHOLD, *threshold[1:])


def run_stage(ctx: RunContext, stage: str, dates, write_lake: bool = False, finish=None) -> StageResult:
    """Compute ``stage`` for ``dates`` (sorted here) from the lake: the one dispatcher of both paths. Stages
    whose dates are independent run in worker processes (``stages/parallel.py``, ``TVQUANT_WORKERS``).
    ``write_lake`` (the one-shot path) also writes the result, each worker its own dates; ``finish`` (the
    Dagster path: hashes and UI metadata) is applied by each process of a date split to its own part."""
    pin_threads()  # libraries loaded since the last stage get one thread too
    relax_gc()
    dates = sorted(pd.Timestamp(d) for d in dates)
    ctx.first_computed = dates[0] if dates else None  # price partitions before it are verified history
    if str(stage) in HISTORY_STAGES:  # the first stages of a range: start the workers of the later ones
        parallel.warm_up(len(dates))
        if parallel.worker_count() > 1 and len(dates) >= 2 * parallel.MIN_DATES_PER_PART:
            parallel.prepare(ctx)
    return parallel.run_parallel(ctx, str(stage), dates, lambda: MODULES[str(stage)].run(ctx, dates),
                                 (lambda result: write(ctx, stage, result)) if write_lake else None, finish)


def write(ctx: RunContext, stage: str, result: StageResult) -> None:
    ctx.lake.write_many([(ctx.lake.path(ctx.name, str(stage), d), f) for d, f in result.frames.items()])


# planning ------------------------------------------------------------------------------------------

def missing_history(ctx: RunContext, first_date: pd.Timestamp) -> list[pd.Timestamp]:
    """Partition dates before ``first_date`` that its trailing windows read and the lake lacks."""
    lo = max(ctx.window_start(first_date), pd.Timestamp(ctx.manifest.start))
    dates = [d for d in manifest_dates(ctx.manifest, lo, first_date) if d < first_date]
    return [d for d in dates if not all(ctx.lake.exists(ctx.name, s, d) for s in (Stage.PRICES, Stage.CATALOG))]


def plan_start(manifest: Manifest, lake: Lake, start: pd.Timestamp) -> tuple[pd.Timestamp, list[str]]:
    """Move the start back when the range depends on decisions that are not in the lake yet: the
    tournament carries the last rebalance decision, the backtest stitches decisions since its start."""
    ctx = RunContext(manifest, lake)
    notes, new_start = [], start
    rebalance = ctx.rebalance_set(start)
    if start not in rebalance and start > pd.Timestamp(manifest.start):
        prev = previous_dates(manifest, start, 1)[0]
        if not lake.exists(manifest.name, Stage.TOURNAMENT, prev):
            new_start = max((r for r in rebalance if r <= start), default=pd.Timestamp(manifest.start))
            notes.append(f"also ran {new_start.date()}..{prev.date()}: {start.date()} carries the decision of "
                         f"rebalance date {new_start.date()}, which was not in the lake")
    bt_start = pd.Timestamp(manifest.backtest_start)
    if bt_start < new_start:
        needed = [bt_start, *(r for r in rebalance if bt_start < r < new_start)]
        if any(not lake.exists(manifest.name, Stage.TOURNAMENT, d) for d in needed):
            notes.append(f"also ran {bt_start.date()}..{new_start.date()}: the backtest starts on "
                         f"{bt_start.date()} (backtest.start) and needs every decision since")
            new_start, carried = plan_start(manifest, lake, bt_start)  # which may carry an earlier decision
            notes += carried
    return new_start, notes


@dataclass
class RangePlan:
    """What to materialize for a requested range: ``history`` (catalog and prices, first), then every
    stage over [start, end]."""

    start: pd.Timestamp
    end: pd.Timestamp
    history: tuple[pd.Timestamp, pd.Timestamp] | None = None
    notes: list[str] = field(default_factory=list)


def plan_range(manifest: Manifest, lake: Lake, start, end, extend_start: bool = True) -> RangePlan:
    """The plan of [start, end]: moved back by :func:`plan_start` (unless ``extend_start`` is false), with the
    catalog and prices partitions its first dates' trailing windows read and the lake lacks."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    notes: list[str] = []
    if extend_start:
        start, notes = plan_start(manifest, lake, start)
    missing = missing_history(RunContext(manifest, lake), start)
    history = None
    if missing:
        history = (missing[0], missing[-1])
        notes.append(f"materialized catalog and prices {missing[0].date()}..{missing[-1].date()} first: history "
                     "for trailing windows")
    return RangePlan(start, end, history, notes)


# the one-shot path ---------------------------------------------------------------------------------

def run_one_shot(ctx: RunContext, dates, stages=None) -> None:
    """Compute and write every stage of ``stages`` for ``dates`` in order, without Dagster, after what the
    plan of the range needs first (an earlier start, catalog and prices history). Once the advisory stages
    nothing else reads have their upstreams written, a forked worker computes them in turn beside the rest
    of the chain (``parallel.beside_stages``, a lane); when the chain is done the caller takes those the
    worker has not begun. The chain's own errors are raised first."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    stages = assets_of(ctx.manifest) if stages is None else stages
    plan = plan_range(ctx.manifest, ctx.lake, dates[0], dates[-1])
    if plan.start < dates[0]:
        dates = manifest_dates(ctx.manifest, plan.start, dates[-1])
    if plan.history and Stage.PRICES in stages:
        history = manifest_dates(ctx.manifest, *plan.history)
        for stage in HISTORY_STAGES:
            run_stage(ctx, stage, history, write_lake=True)
    names = [str(s) for s in stages]
    done, lane = set(), None

    def compute(stage: str) -> None:
        with progress.stage(f"{ctx.name}/{stage}", len(dates)):
            run_stage(ctx, stage, dates, write_lake=True)
        done.add(stage)

    try:
        for stage in names:
            if stage in done or (lane is not None and stage in lane.stages):
                continue
            if lane is not None and lane.done():
                done.update(lane.finish())
                lane = None
            if lane is None:
                lane = parallel.start_beside(ctx, parallel.ready_beside(names, done, stage), dates)
            compute(stage)
        while lane is not None and (taken := lane.take()) is not None:  # what the lane has not begun
            compute(taken)
    except BaseException:
        if lane is not None:
            lane.finish(quiet=True)  # the chain's error is the one raised
        raise
    if lane is not None:
        done.update(lane.finish())


def latest_partition(ctx: RunContext, today=None) -> pd.Timestamp:
    """The last partition date <= ``today`` on which the source has a bar for the manifest's universe
    (what ``tvquant run`` materializes by default)."""
    today = pd.Timestamp(today if today is not None else dt.date.today()).normalize()
    for days in (14, 400, None):  # recent data first; a historical dataset ends long ago
        lo = pd.Timestamp(ctx.manifest.start) if days is None else today - pd.Timedelta(days=days)
        bars = ctx.source.history(ctx.universe_symbols, lo, today)
        if len(bars):
            last = pd.Timestamp(bars["date"].max())
            dates = manifest_dates(ctx.manifest, max(last - pd.Timedelta(days=10), pd.Timestamp(ctx.manifest.start)),
                                   last)
            if dates:
                return dates[-1]
            break
    raise SourceError(f"{ctx.name}: source {ctx.source.name} has no bars between {ctx.manifest.start} and "
                      f"{today.date()}; pass --date")


def pending_dates(ctx: RunContext, last) -> list[pd.Timestamp]:
    """Partition dates after the lake's last audited one up to ``last`` (dates appended to a source since
    the last run): just ``last`` when the lake has none yet, none when it already holds ``last``."""
    last = pd.Timestamp(last)
    done = ctx.lake.partitions(ctx.name, "audit")
    if not done:
        return [last]
    if done[-1] >= last:
        return []
    return manifest_dates(ctx.manifest, done[-1] + pd.Timedelta(days=1), last)


def run_backtest_range(ctx: RunContext, dates, write_lake: bool = True) -> tuple[StageResult, list[str]]:
    """One-shot backtest of ``dates`` without Dagster: the stage is one call over the range, reading every
    decision since ``backtest.start`` from the lake. When the lake lacks prices or tournament partitions it
    needs, the upstream stages are computed one-shot first (and written). Returns the result and notes."""
    dates = sorted(pd.Timestamp(d) for d in dates)
    m = ctx.manifest
    start, last = pd.Timestamp(m.backtest_start), dates[-1]
    notes: list[str] = []
    if last >= start:
        decision_dates = {start, *(r for r in ctx.rebalance_set(last) if start < r <= last)}
        wanted = [(Stage.TOURNAMENT, d) for d in sorted(decision_dates)]
        wanted += [(Stage.PRICES, d) for d in manifest_dates(m, start, last)]
        missing = [(s, d) for s, d in wanted if not ctx.lake.exists(ctx.name, s, d)]
        if missing:
            upstream = STAGES[: STAGES.index(Stage.TOURNAMENT) + 1]
            first = min(start, dates[0])
            run_one_shot(ctx, manifest_dates(m, first, last), stages=upstream)
            notes.append(f"computed {', '.join(upstream)} {first.date()}..{last.date()} first: "
                         f"{len(missing)} partitions the backtest reads were not in the lake")
    result = run_stage(ctx, Stage.BACKTEST, dates)
    if write_lake:
        write(ctx, Stage.BACKTEST, result)
    return result, notes
