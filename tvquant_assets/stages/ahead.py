"""The advisory stages computed ahead of their Dagster steps (no Dagster here).

In a Dagster run every stage is a step of its own, run in turn by the in-process executor, and each step
ends with work only the run's process does (lake writes, materialization events, checks). The advisory
stages that nothing else reads (``parallel.beside_stages``: the threshold auditor, the verdict) need only
their upstreams' partitions. As soon as a step begins with those upstreams written by the run
(:func:`mark_written`, from the IO manager), one forked worker computes them, each with its partitions'
hashes and UI metadata (``finish``), in turn beside the run's process (:func:`start_ready`), while the run's
own split stages use one worker fewer (``workers.reserved``). A stage's own step then takes its result
(:func:`take`): it waits for the worker when the worker has begun it, or computes the stage itself when it
has not (one shared claim per stage), so neither process waits for work the other could start. A stage
the worker fails on is computed again in the step, which locates the failing dates as it always does.

The worker reads the lake as the step would: every upstream is written before the lane starts, and a run
materializes each asset once. Results are the same frames, hashes and metadata as the step's own
computation (``tvquant_assets_tests/stages/test_ahead.py``, ``test_parallel.py``).
"""

from __future__ import annotations

import multiprocessing
import warnings
from collections import defaultdict
from collections.abc import Callable

import pandas as pd

from tvquant_assets.stages import SPECS
from tvquant_assets.stages.parallel import (
    _compute,
    _forked_pool,
    _token,
    _worker_context,
    lane_worthwhile,
    ready_beside,
    warn_again,
    warning_records,
)
from tvquant_assets.stages.spec import StageResult
from tvquant_assets.workers import reserved

FREE, WORKER, CALLER = 0, 1, 2

_WRITTEN: dict[str, set[str]] = defaultdict(set)  # run id -> stages whose partitions the run has written
_LANES: dict[str, Lane] = {}  # run id -> its lane (one per run)
_SLOTS = None  # the claims of the lane this (forked) worker serves, one per stage of _ORDER
_ORDER: tuple[str, ...] = ()


def mark_written(run_id: str, stage: str) -> None:
    """The run has written ``stage``'s partitions (its IO manager, after the write)."""
    _WRITTEN[run_id].add(stage)


def _claim(slots, i: int, who: int) -> bool:
    with slots.get_lock():
        if slots[i] != FREE:
            return False
        slots[i] = who
        return True


def _run_ahead(token: str, manifest, lake_root: str, run_id: str, environment, stage: str, index: int,
               dates: list[pd.Timestamp], finish) -> tuple[StageResult, list[tuple]] | None:
    """One stage of the lane in the (forked) worker, once claimed (None: the run's step took it): the result,
    each date finished, and the warnings raised."""
    if not _claim(_SLOTS, index, WORKER):
        return None
    ctx = _worker_context(token, manifest, lake_root, run_id, environment)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every one, once per place: the step's filters decide
        result = _compute(ctx, stage, dates, dates[0], None)
        result.finished = {d: finish(result, d) for d in result.frames}
    return result, warning_records(caught)


class Lane:
    """Stages of one run computed in turn by one forked worker, each with its own future."""

    def __init__(self, ctx, run_id: str, stages: list[str], dates: list[pd.Timestamp],
                 finish: Callable[[str], Callable]):
        global _SLOTS, _ORDER
        self.run_id, self.stages, self.dates = run_id, stages, list(dates)
        self.slots = _SLOTS = multiprocessing.get_context("fork").Array("i", len(stages))  # inherited by the fork
        _ORDER = tuple(stages)
        token = _token(ctx)
        self.pool = _forked_pool(ctx, token, 1)
        args = (token, ctx.manifest, str(ctx.lake.root), ctx.run_id, ctx.environment)
        self.futures = {s: self.pool.submit(_run_ahead, *args, s, i, self.dates, finish(s))
                        for i, s in enumerate(stages)}
        self._reserved = reserved()
        self._reserved.__enter__()  # until every stage is done or taken: see settle

    def settle(self, wait: bool = False) -> bool:
        """Release the reserved worker once every stage is done (``wait``: stop the lane now, cancelling what
        has not begun); whether the lane is over."""
        if self._reserved is None:
            return True
        if not wait and not all(f.done() for f in self.futures.values()):
            return False
        for i in range(len(self.stages)):
            _claim(self.slots, i, CALLER)  # nothing more begins
        self._reserved.__exit__(None, None, None)
        self._reserved = None
        self.pool.shutdown(wait=wait, cancel_futures=True)
        return True

    def take(self, stage: str, dates: list[pd.Timestamp]) -> StageResult | None:
        """The worker's result of ``stage`` for ``dates`` (waiting when it has begun); None when the step
        computes it itself: the worker has not begun it, it failed there, or it is not this lane's."""
        if stage not in self.futures or list(dates) != self.dates:
            return None
        future = self.futures.pop(stage)  # taken once: the lane keeps no result after it
        if _claim(self.slots, self.stages.index(stage), CALLER):
            self.settle()
            return None
        try:
            out = future.result()
        except Exception:  # noqa: BLE001 - computed again by the step, which locates the failing dates
            out = None
        self.settle()
        if out is None:
            return None
        result, caught = out
        warn_again(caught)
        return result


def start_ready(ctx, run_id: str, run_stages: list[str], current: str, dates: list[pd.Timestamp],
                finish: Callable[[str], Callable]) -> None:
    """At the start of ``current``'s step: a lane for the run's advisory stages whose upstreams the run has
    written, when none is running for it and one is worth it (forked workers, a local lake, a range long
    enough to split). ``finish(stage)``: what each date of that stage's result gets (hash, UI metadata)."""
    lane = _LANES.get(run_id)
    if lane is not None:
        lane.settle()
        return
    for other in [r for r in _LANES if r != run_id]:  # an earlier run's lane whose steps never came
        _LANES.pop(other).settle(wait=True)
        _WRITTEN.pop(other, None)
    if not lane_worthwhile(ctx, dates):
        return
    ready = ready_beside([s for s in SPECS if s in run_stages], _WRITTEN.get(run_id, set()), current)
    if ready:  # the last step first: the run's process may still compute an earlier one when its step comes
        _LANES[run_id] = Lane(ctx, run_id, ready[::-1], dates, finish)


def take(run_id: str, stage: str, dates: list[pd.Timestamp]) -> StageResult | None:
    """``stage``'s result for ``dates`` from the run's lane, or None (see :meth:`Lane.take`)."""
    lane = _LANES.get(run_id)
    return None if lane is None else lane.take(stage, dates)


def finish_run(run_id: str) -> None:
    """Stop the run's lane (what it has not begun is not computed) and forget the run."""
    lane = _LANES.pop(run_id, None)
    if lane is not None:
        lane.settle(wait=True)
    _WRITTEN.pop(run_id, None)
