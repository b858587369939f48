"""The worker processes of date-parallel stage runs (``stages/parallel.py``): how many, how they start, the pool.

Two ways to start them (``TVQUANT_WORKER_START``): ``fork`` (the default where the platform has it) forks
the caller for each split stage, so a worker starts with everything the caller holds: its imports, its
compiled numba kernels and the lake's read cache (the frames it wrote or read); ``loky`` (the default
elsewhere) keeps joblib's reusable spawned workers, which import the stack once and read the lake from disk.

Light on purpose (nothing of ours but ``errors``): a command can start loky workers before it imports the
stack itself, so their imports run beside its own.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os

from tvquant_assets.errors import ConfigurationError

ENV = "TVQUANT_WORKERS"
START_ENV = "TVQUANT_WORKER_START"
START_METHODS = ("fork", "loky")
IDLE_TIMEOUT = 600
"""Seconds an idle worker waits for more work before it exits (the next range starts it again)."""


def worker_count() -> int:
    """``TVQUANT_WORKERS``, else the number of cores this process may run on; less the workers
    :func:`reserved` holds (at least 1: this process)."""
    return max(1, configured_workers() - _RESERVED)


_RESERVED = 0  # workers busy beside this process's chain (stages/parallel.Beside)


@contextlib.contextmanager
def reserved():
    """While inside, one worker fewer for this process's split stages (another computes beside it)."""
    global _RESERVED
    _RESERVED += 1
    try:
        yield
    finally:
        _RESERVED -= 1


def configured_workers() -> int:
    """``TVQUANT_WORKERS``, else the number of cores this process may run on."""
    raw = os.environ.get(ENV, "").strip()
    if not raw:
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        n = int(raw)
    except ValueError:
        n = 0
    if n < 1:
        raise ConfigurationError(f"{ENV}={raw!r}: the number of worker processes must be a whole number >= 1 "
                                 "(1 computes in one process)")
    return n


MEMORY_GROWTH = 2 * 1024**3
"""Bytes a worker may grow by after its first task before loky replaces it. loky's default, 300 MB, is less
than what our workers load by design (the engines' libraries, the lake's bounded read cache): a replaced
worker imports the stack again (~5 s) while the caller waits for its part."""


def _allow_growth() -> None:
    """Each worker's initializer: loky's leak limit raised to :data:`MEMORY_GROWTH` (a module global its
    worker loop reads after every task)."""
    from joblib.externals.loky import process_executor

    process_executor._MAX_MEMORY_LEAK_SIZE = MEMORY_GROWTH
    mark_worker()


def start_method() -> str:
    """``TVQUANT_WORKER_START``, else ``fork`` where the platform has it, else ``loky``."""
    raw = os.environ.get(START_ENV, "").strip().lower()
    if not raw:
        return "fork" if "fork" in multiprocessing.get_all_start_methods() else "loky"
    if raw not in START_METHODS or (raw == "fork" and "fork" not in multiprocessing.get_all_start_methods()):
        raise ConfigurationError(f"{START_ENV}={raw!r}: expected one of {', '.join(START_METHODS)} "
                                 "(fork where the platform has it)")
    return raw


def executor(workers: int):
    """``fork``: a new standard-library process pool of ``workers`` processes forked from this one now (its
    user shuts it down); ``loky``: joblib's reusable executor (the same one while the count is unchanged)."""
    if start_method() == "fork":
        return forked_pool(workers)
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=workers, timeout=IDLE_TIMEOUT, initializer=_allow_growth)


def _import_stages() -> int:
    """A worker's first task: import the stages (what every later task needs)."""
    import tvquant_assets.stages  # noqa: F401

    return os.getpid()


FORK_WRITE_MIN = 64
"""Partition files a local lake writes in one call from which forked workers write a share (~1 ms per
file against ~10 ms to fork and reap a worker)."""
_IN_WORKER = False  # this process is a worker: it forks no workers of its own


def mark_worker() -> None:
    global _IN_WORKER
    _IN_WORKER = True


_BUSY = 0  # > 0: this process's workers are computing (a split stage): its writes stay in process


@contextlib.contextmanager
def workers_busy():
    """While inside, :func:`fork_writers` forks no writer: the other cores already compute."""
    global _BUSY
    _BUSY += 1
    try:
        yield
    finally:
        _BUSY -= 1


def fork_writers(n_files: int) -> int:
    """Processes to write ``n_files`` partition files (1: this one alone): forked workers only."""
    if _IN_WORKER or _BUSY or n_files < FORK_WRITE_MIN or start_method() != "fork":
        return 1
    return max(1, min(worker_count(), n_files // (FORK_WRITE_MIN // 2)))


def contiguous(n_items: int, n: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]``: ``n_items`` in ``n`` contiguous parts of nearly equal length, first first."""
    n = max(1, min(n, n_items))
    size, extra = divmod(n_items, n)
    bounds, at = [], 0
    for i in range(n):
        bounds.append((at, at + size + (1 if i < extra else 0)))
        at = bounds[-1][1]
    return bounds


_FORK_WARNING = r"This process .* is multi-threaded, use of fork\(\) may lead to deadlocks in the child"


def forked_pool(workers: int):
    """A standard-library pool of ``workers`` processes forked from this one now (Python warns on any fork
    from a process with threads: ours hold no lock a worker takes; a worker computes and writes partitions
    only, and ends without running this process's exit handlers)."""
    import gc
    import warnings
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                               initializer=mark_worker)
    # Frozen, this process's objects are out of the workers' garbage collections: a collection would
    # walk (and so copy, page by page) the whole inherited heap in each worker.
    gc.freeze()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _FORK_WARNING, DeprecationWarning)
            pool.submit(int).result()  # forks every worker now (the first submit starts them all)
    finally:
        gc.unfreeze()
    return pool


_STARTING: list = []  # the start-up tasks: until they are done, stages run in process
_STARTED: set[int] = set()  # pool sizes started in this process (an idle pool that exited restarts on use)


def start() -> None:
    """Start the workers without waiting (nothing when one process is asked for or they were started)."""
    n = worker_count() - 1
    if n >= 1 and n not in _STARTED and start_method() == "loky":  # forked workers start ready, when used
        _STARTED.add(n)
        pool = executor(n)
        _STARTING[:] = [pool.submit(_import_stages) for _ in range(n)]


def starting() -> bool:
    """Whether workers are still importing: a stage then runs in process rather than wait for them."""
    if all(f.done() for f in _STARTING):
        _STARTING.clear()
        return False
    return True
