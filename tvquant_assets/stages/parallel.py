"""Date-parallel stage runs: a stage whose output for D does not depend on the other dates of the range
(``StageSpec.parallel``) is computed as parts of its dates in worker processes (joblib's loky executor,
reused across stages and runs): contiguous chunks (``dates``: the stages reading a trailing window), or every
k-th date (``interleaved``: the stages reading every partition since ``backtest.start``, whose later dates
cost more); the tournament as groups of candidates sharing an engine, each
group's decisions in date order (its previous decisions are its own). No Dagster here.

``TVQUANT_WORKERS`` sets the number of processes (default: the cores this process may use; 1 computes in
process). The calling process computes the first part itself and the workers the others; results come back
to it, merged in date (or candidate) order, and it writes them (one-shot) or hands them to the IO manager
(Dagster), so the lake sees the same frames, in the same order, as with one process. A range is split only
when each part holds at least :data:`MIN_DATES_PER_PART` dates. Warnings raised in a worker are raised
again in the caller (Dagster's run log), errors too (failure containment then locates the failing dates as
it does in one process).

How workers start (``workers.start_method``): forked from the caller for each split stage (the default on
Linux), they hold its context, imports and the lake's read cache as they were when the stage began, so
nothing is imported or read from disk again; with loky's spawned workers, a worker re-opens the manifest's
lake and source once per run (one cached :class:`RunContext`), the workers start with a range's catalog
stage, and a stage that begins while they are still importing runs in process instead of waiting.
"""

from __future__ import annotations

import functools
import uuid
import warnings
from collections.abc import Callable

import pandas as pd

from tvquant_assets.stages import MODULES, SPECS
from tvquant_assets.stages.spec import StageResult
from tvquant_assets.workers import (
    ENV,
    contiguous,
    executor,
    reserved,
    start,
    start_method,
    starting,
    worker_count,
    workers_busy,
)

__all__ = ["ENV", "MIN_DATES_PER_PART", "Beside", "beside_stages", "chunks", "merge_by_date", "preload", "prepare",
           "lane_worthwhile", "ready_beside", "run_parallel", "start_beside", "warm_up", "worker_count"]

MIN_DATES_PER_PART = 32
"""Fewer dates per part than this and the stage runs in process (a worker's first task imports ~5 s)."""


def chunks(dates: list[pd.Timestamp], n: int) -> list[list[pd.Timestamp]]:
    """``dates`` (sorted) in ``n`` contiguous parts of nearly equal length, earliest first."""
    return [dates[lo:hi] for lo, hi in contiguous(len(dates), n)]


_PRELOADED: dict[str, list] = {}  # manifest name -> what is left to import of its engines and simulators


def preload(manifest, stop: Callable[[], bool] = lambda: False) -> None:
    """Import what ``manifest``'s stages load on first use (its engines' and simulators' modules: skfolio,
    riskfolio, numba and its registries, ...), once per process, one module at a time until ``stop()`` says
    the wait is over. Only when a process would otherwise wait: a worker before its first part, the caller
    while its workers finish theirs. No output depends on it."""
    if manifest.name not in _PRELOADED:
        from tvquant_assets.core.engines import ENGINES
        from tvquant_assets.core.simulators import SIMULATORS

        engines = dict.fromkeys(c.engine for c in manifest.tournament.candidates)
        simulators = dict.fromkeys(["vectorized", *manifest.backtest.simulators])
        _PRELOADED[manifest.name] = [*(functools.partial(ENGINES.load, e) for e in engines),
                                     *(functools.partial(SIMULATORS.load, s) for s in simulators),
                                     _numba_registries]
    loads = _PRELOADED[manifest.name]
    while loads and not stop():
        try:
            loads.pop(0)()
        except Exception:  # noqa: BLE001 - the stage that needs it raises its own error, in its own place
            pass


def _numba_registries() -> None:
    """numba loads its typing registries on a kernel's first dispatch (~1.5 s on a quiet machine)."""
    from numba.core.registry import cpu_target

    cpu_target.target_context.refresh()


# worker side ---------------------------------------------------------------------------------------

_CONTEXT: tuple[str, object] | None = None  # (token, RunContext) of the run this worker serves


def _worker_context(token: str, manifest, lake_root: str, run_id: str, environment):
    """The caller's context in this worker, built once per caller context (a one-shot run, a Dagster step);
    the lake and its read cache (validated by mtime and size) are shared by every context of the process."""
    global _CONTEXT
    if _CONTEXT is None or _CONTEXT[0] != token:
        from tvquant_assets.lake import Lake
        from tvquant_assets.stages.context import RunContext

        _CONTEXT = (token, RunContext(manifest, Lake.open(lake_root), run_id=run_id, environment=environment))
    return _CONTEXT[1]


def _prepare_worker(token: str, manifest, lake_root: str, run_id: str, environment) -> None:
    """A worker's task while the caller runs the range's catalog and prices: its context and the manifest's
    engines and simulators, ready before its first part."""
    _worker_context(token, manifest, lake_root, run_id, environment)
    with warnings.catch_warnings():  # import-time notices: not on the command's stderr
        warnings.simplefilter("ignore")
        preload(manifest)


def warning_records(caught) -> list[tuple]:
    """Warnings recorded in a worker, once per message and place, in a form that pickles."""
    return list(dict.fromkeys((str(w.message), w.category, w.filename, w.lineno) for w in caught))


def warn_again(records: list[tuple]) -> None:
    """A worker's :func:`warning_records` raised again in this process (its filters decide)."""
    for message, category, filename, lineno in records:
        warnings.warn_explicit(message, category, filename, lineno)


def _compute(ctx, stage: str, dates: list[pd.Timestamp], first_computed, part) -> StageResult:
    from tvquant_assets.determinism import pin_threads

    pin_threads()
    ctx.first_computed = first_computed  # the range's first date, not the part's: the same history checks
    module = MODULES[stage]
    return module.run_part(ctx, dates, part) if part is not None else module.run(ctx, dates)


def _run_in_worker(token: str, manifest, lake_root: str, run_id: str, environment, stage: str,
                   dates: list[pd.Timestamp], first_computed, part, write: bool, finish=None
                   ) -> tuple[StageResult, list[tuple], dict | None]:
    """One part in a worker; with ``write`` (a date split of the one-shot path) its partitions are written
    here (atomic writes, as the caller's), and their hashes returned; with ``finish`` (a date split of the
    Dagster path) ``result.finished`` holds what it makes of each date's frame."""
    ctx = _worker_context(token, manifest, lake_root, run_id, environment)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every one, once per place: the caller's filters decide
        result = _compute(ctx, stage, dates, first_computed, part)
        written = None
        if write:
            seen = len(ctx.lake.edited_replaced)
            items = [(ctx.lake.path(ctx.name, stage, d), f) for d, f in result.frames.items()]
            written = {"hashes": dict(zip(result.frames, ctx.lake.write_many(items), strict=True)),
                       "edited": ctx.lake.edited_replaced[seen:]}
        if finish is not None:
            result.finished = {d: finish(result, d) for d in result.frames}
    return result, warning_records(caught), written


# caller side ---------------------------------------------------------------------------------------

def _executor(workers: int):
    return executor(workers)


def _starting() -> bool:
    return start_method() == "loky" and starting()


def _forked_pool(ctx, token: str, workers: int):
    """A pool forked from this process now, its workers holding ``ctx`` as their context."""
    global _CONTEXT
    _CONTEXT = (token, ctx)
    return _executor(workers)


def warm_up(n_dates: int) -> None:
    """Start the workers a range of ``n_dates`` will use, without waiting (their imports overlap the
    stages that run in process first: catalog, prices); nothing when they are running or starting."""
    if n_dates >= 2 * MIN_DATES_PER_PART:
        start()


def prepare(ctx) -> None:
    """Have the started workers build ``ctx``'s context and import its manifest's engines and simulators
    (once per context, without waiting), while the caller computes the stages that are not split."""
    n = worker_count() - 1
    local = ctx.lake.root.protocol in ("", "file", "local")
    if n < 1 or not local or start_method() != "loky" or getattr(ctx, "_parallel_prepared", False):
        return
    ctx._parallel_prepared = True
    pool = _executor(n)
    args = (_token(ctx), ctx.manifest, str(ctx.lake.root), ctx.run_id, ctx.environment)
    for _ in range(n):
        pool.submit(_prepare_worker, *args)


def _token(ctx) -> str:
    token = getattr(ctx, "_parallel_token", None)
    if token is None:
        token = ctx._parallel_token = uuid.uuid4().hex
    return token


def split_by_source(manifest, stage: str) -> str:
    """How a stage that calls the source splits (``StageSpec.local_parallel``): only when the source reads
    local data (bundled, files, synthetic); one that calls the network is retried and pooled in one process.
    The prices and the catalog split by dates, since a date reads only bars up to itself (at 500 symbols x
    10 years, two processes: prices 23.9 -> 12.5 s, catalog 6.9 -> 5.8 s)."""
    from tvquant_assets.sources import NETWORK_SOURCES

    return SPECS[stage].local_parallel if manifest.source.kind not in NETWORK_SOURCES else ""


def _parts(ctx, stage: str, dates: list[pd.Timestamp], n: int) -> list[tuple[list[pd.Timestamp], object]]:
    """``[(dates, part), ...]`` of the stage's split over ``n`` processes; one entry: not split."""
    mode = SPECS[stage].parallel or split_by_source(ctx.manifest, stage)
    k = min(n, len(dates) // MIN_DATES_PER_PART)
    if mode == "dates" and k > 1:
        return [(chunk, None) for chunk in chunks(dates, k)]
    if mode == "interleaved" and k > 1:  # every k-th date: the same work per part when later dates cost more
        return [(dates[i::k], None) for i in range(k)]
    if mode == "parts":  # the stage's own split (the tournament: groups of candidates)
        groups = MODULES[stage].parts(ctx, dates, n)
        if len(groups) > 1:
            return [(dates, g) for g in groups]
    return [(dates, None)]


def run_parallel(ctx, stage: str, dates: list[pd.Timestamp], compute: Callable[[], StageResult],
                 write: Callable[[StageResult], None] | None = None,
                 finish: Callable[[StageResult, pd.Timestamp], object] | None = None) -> StageResult:
    """``stage`` over ``dates`` (sorted), split over the worker processes when it can be; ``compute``
    computes it in process when it cannot (or one process is asked for). With ``write`` (the one-shot path)
    the result is also written: a date split's workers write their own parts, ``write`` the caller's. With
    ``finish`` (picklable: ``finish(result, date)``), each process of a date split also finishes its own
    dates (``StageResult.finished``), the caller before it waits for its workers."""
    n = worker_count()
    local = ctx.lake.root.protocol in ("", "file", "local")  # a worker cannot see an in-memory lake
    parts = _parts(ctx, stage, dates, n) if n > 1 and dates and local and not _starting() else [(dates, None)]
    if len(parts) == 1:
        result = compute()
        if write is not None:
            write(result)
        return result
    forked = start_method() == "fork"
    token = _token(ctx)
    by_date = parts[0][1] is None  # a date split: parts write their own dates; else the merged frames
    args = (token, ctx.manifest, str(ctx.lake.root), ctx.run_id, ctx.environment, stage)
    first_computed = ctx.first_computed
    pool = _forked_pool(ctx, token, len(parts) - 1) if forked else _executor(len(parts) - 1)
    futures = [pool.submit(_run_in_worker, *args, ds, first_computed, part, by_date and write is not None,
                           finish if by_date else None) for ds, part in parts[1:]]
    try:
        try:
            results = [_compute(ctx, stage, parts[0][0], first_computed, parts[0][1])]
            if by_date and write is not None:
                with workers_busy():  # its workers are still computing their parts
                    write(results[0])
            if by_date and finish is not None:  # its own dates while the workers finish theirs (counted
                results[0].finished = {d: finish(results[0], d) for d in results[0].frames}  # as compute)
        except BaseException:
            for f in futures:
                f.cancel()
            raise
        # the caller would wait: import what later stages load (forked workers of later stages inherit it)
        preload(ctx.manifest, stop=lambda: all(f.done() for f in futures))
        for f in futures:  # in submission order: deterministic, whatever finishes first
            result, caught, written = f.result()
            warn_again(caught)
            if written is not None:  # what the worker wrote, cached here as if this process had written it
                for d, digest in written["hashes"].items():
                    ctx.lake.adopt(ctx.lake.path(ctx.name, stage, d), result.frames[d].reset_index(drop=True),
                                   digest)
                ctx.lake.edited_replaced.extend(written["edited"])
            results.append(result)
    finally:
        if forked:  # the next split stage forks again, from what this process holds then
            pool.shutdown(wait=True, cancel_futures=True)
    if by_date:
        return merge_by_date(results)
    merged = MODULES[stage].merge_parts(results)
    if write is not None:
        write(merged)
    return merged


# stages beside the chain (the one-shot path) ----------------------------------------------------------

def beside_stages(stages) -> list[str]:
    """The advisory stages of ``stages`` that no other stage of ``stages`` reads (the threshold auditor, the
    verdict): what the one-shot path may compute in a process beside the rest of the chain."""
    names = [str(s) for s in stages]
    read = {u for n in names for u in (*SPECS[n].upstream, *SPECS[n].previous) if u != n}
    return [n for n in names if not SPECS[n].sealed and not SPECS[n].seals and n not in read]


_LANE = None  # the claim counter of the lane this (forked) worker serves: the index of the next stage to take


def _claim(counter, n: int) -> int | None:
    """The next unclaimed stage's index of a lane of ``n`` stages, or None: the lane's worker and the caller
    (once its chain is done) take stages in order from one shared counter."""
    with counter.get_lock():
        i = counter.value
        if i >= n:
            return None
        counter.value = i + 1
        return i


def _run_beside(token: str, manifest, lake_root: str, run_id: str, environment, stages: list[str],
                dates: list[pd.Timestamp]) -> tuple[list[tuple], list[str], list[str]]:
    """The lane's stages computed and written in order in this (forked) worker, each claimed first: the
    warnings raised, the files found edited outside the lake and the stages it computed."""
    ctx = _worker_context(token, manifest, lake_root, run_id, environment)
    seen, computed = len(ctx.lake.edited_replaced), []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        while (i := _claim(_LANE, len(stages))) is not None:
            result = _compute(ctx, stages[i], dates, dates[0], None)
            ctx.lake.write_many([(ctx.lake.path(ctx.name, stages[i], d), f) for d, f in result.frames.items()])
            computed.append(stages[i])
    return warning_records(caught), \
        ctx.lake.edited_replaced[seen:], computed


class Beside:
    """A lane: stages computed and written, in order, by one forked worker while the caller goes on with
    the chain; until :meth:`finish`, the caller's own split stages use one worker fewer
    (``workers.reserved``). Once its chain is done the caller takes the stages the worker has not begun
    (:meth:`take`), so neither process waits for a stage the other could have started."""

    def __init__(self, ctx, stages: list[str], dates: list[pd.Timestamp]):
        global _LANE
        import multiprocessing

        self.ctx, self.stages = ctx, stages
        self.claims = _LANE = multiprocessing.get_context("fork").Value("i", 0)  # inherited by the fork
        token = _token(ctx)
        self.pool = _forked_pool(ctx, token, 1)
        self.future = self.pool.submit(_run_beside, token, ctx.manifest, str(ctx.lake.root), ctx.run_id,
                                       ctx.environment, stages, dates)
        self._reserved = reserved()
        self._reserved.__enter__()

    def done(self) -> bool:
        return self.future.done()

    def take(self) -> str | None:
        """The next stage the worker has not begun, now the caller's to compute, or None."""
        i = _claim(self.claims, len(self.stages))
        return None if i is None else self.stages[i]

    def finish(self, quiet: bool = False) -> list[str]:
        """Wait for the worker; its warnings are raised again here, its errors too (``quiet``: neither,
        when the caller is already raising its own). The stages it computed."""
        try:
            caught, edited, computed = self.future.result()
        except BaseException:
            if quiet:
                return []
            raise
        finally:
            self._reserved.__exit__(None, None, None)
            self.pool.shutdown(wait=True, cancel_futures=True)
        warn_again(caught)
        self.ctx.lake.edited_replaced.extend(edited)
        return computed


def lane_worthwhile(ctx, dates: list[pd.Timestamp]) -> bool:
    """Whether a lane's worker is worth it: forked workers, a local lake, a range long enough to split."""
    local = ctx.lake.root.protocol in ("", "file", "local")
    return worker_count() >= 2 and start_method() == "fork" and local and len(dates) >= 2 * MIN_DATES_PER_PART


def ready_beside(stages, done, current: str) -> list[str]:
    """The advisory stages of ``stages`` (``beside_stages``) not done, not ``current``, whose upstreams among
    ``stages`` are all done: what a lane may compute now."""
    names = [str(s) for s in stages]
    return [b for b in beside_stages(names) if b not in done and b != current
            and all(u in done for u in SPECS[b].upstream if u in names)]


def start_beside(ctx, stages: list[str], dates: list[pd.Timestamp]) -> Beside | None:
    """:class:`Beside` for ``stages`` when a worker is worth it (:func:`lane_worthwhile`), else None (the caller
    computes them in turn)."""
    if not stages or not lane_worthwhile(ctx, dates):
        return None
    return Beside(ctx, stages, dates)


def merge_by_date(results: list[StageResult]) -> StageResult:
    """The parts of a date split as one result, in date order."""
    out = StageResult({})
    for r in results:
        out.frames.update(r.frames)
        out.upstream.update(r.upstream)
        out.notes.update(r.notes)
        out.metadata.update(r.metadata)
        out.finished.update(r.finished)
    order = sorted(out.frames)
    return StageResult({d: out.frames[d] for d in order}, {d: out.upstream[d] for d in order if d in out.upstream},
                       {d: out.notes[d] for d in order if d in out.notes},
                       {d: out.metadata[d] for d in order if d in out.metadata}, out.finished)
