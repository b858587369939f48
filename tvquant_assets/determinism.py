"""Bit-for-bit reruns: BLAS and OpenMP run one thread, so floating-point reductions keep one order.

``pin_env`` (called when the package is imported, before numpy loads its BLAS) sets the thread
variables unless the user set them; ``pin_threads`` (called before every stage runs) also limits
libraries that were loaded earlier or ignore the variables, through threadpoolctl.
"""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def pin_env() -> None:
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")


_limiter = None


def pin_threads() -> None:
    """Limit every loaded BLAS/OpenMP pool to one thread (cheap; repeat it as libraries load)."""
    global _limiter
    from threadpoolctl import threadpool_limits

    _limiter = threadpool_limits(limits=1)


def blas_threads() -> int | None:
    """The largest thread count among loaded BLAS/OpenMP pools (1 when pinned), None if none loaded."""
    from threadpoolctl import threadpool_info

    counts = [int(info.get("num_threads") or 0) for info in threadpool_info()]
    return max(counts) if counts else None
