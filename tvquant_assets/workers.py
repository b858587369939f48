"""The worker processes of date-parallel stage runs (``stages/parallel.py``): how many, the pool, its start.

Light on purpose (nothing of ours but ``errors``): a command can start the workers before it imports the
stack itself, so their imports run beside its own.
"""

from __future__ import annotations

import os

from tvquant_assets.errors import ConfigurationError

ENV = "TVQUANT_WORKERS"
IDLE_TIMEOUT = 600
"""Seconds an idle worker waits for more work before it exits (the next range starts it again)."""


def worker_count() -> int:
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


def executor(workers: int):
    """joblib's reusable loky executor of ``workers`` processes (the same one while the count is unchanged)."""
    from joblib.externals.loky import get_reusable_executor

    return get_reusable_executor(max_workers=workers, timeout=IDLE_TIMEOUT)


def _import_stages() -> int:
    """A worker's first task: import the stages (what every later task needs)."""
    import tvquant_assets.stages  # noqa: F401

    return os.getpid()


_STARTING: list = []  # the start-up tasks: until they are done, stages run in process
_STARTED: set[int] = set()  # pool sizes started in this process (an idle pool that exited restarts on use)


def start() -> None:
    """Start the workers without waiting (nothing when one process is asked for or they were started)."""
    n = worker_count() - 1
    if n >= 1 and n not in _STARTED:
        _STARTED.add(n)
        pool = executor(n)
        _STARTING[:] = [pool.submit(_import_stages) for _ in range(n)]


def starting() -> bool:
    """Whether workers are still importing: a stage then runs in process rather than wait for them."""
    if all(f.done() for f in _STARTING):
        _STARTING.clear()
        return False
    return True
