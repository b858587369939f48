"""Process-wide progress and timing hooks (no Dagster): stage wrappers report, the CLI listens."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator


class Timings:
    """Seconds spent in our code, per bucket (stage compute, lake writes)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._lock = threading.Lock()

    def add(self, bucket: str, seconds: float) -> None:
        with self._lock:
            self.seconds[bucket] += seconds

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


_listener: Callable[[str, str, int], None] | None = None
timings = Timings()


@contextlib.contextmanager
def listening(callback: Callable[[str, str, int], None]) -> Iterator[None]:
    """Receive ``(event, stage, n_partitions)`` with event in {"start", "done"} while inside."""
    global _listener
    previous, _listener = _listener, callback
    try:
        yield
    finally:
        _listener = previous


@contextlib.contextmanager
def stage(name: str, n: int, bucket: str = "compute") -> Iterator[None]:
    """Time a stage body: into ``bucket`` and ``stage:<name>`` (wall) and ``cpu:<name>`` (this thread's CPU)."""
    if _listener:
        _listener("start", name, n)
    t0, c0 = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        wall = time.perf_counter() - t0
        timings.add(bucket, wall)
        timings.add(f"stage:{name}", wall)
        timings.add(f"cpu:{name}", time.thread_time() - c0)
        if _listener:
            _listener("done", name, n)


@contextlib.contextmanager
def timed(bucket: str) -> Iterator[None]:
    """Time a block: into ``bucket`` (wall) and ``thread_cpu:<bucket>`` (this thread's CPU)."""
    t0, c0 = time.perf_counter(), time.thread_time()
    try:
        yield
    finally:
        timings.add(bucket, time.perf_counter() - t0)
        timings.add(f"thread_cpu:{bucket}", time.thread_time() - c0)
