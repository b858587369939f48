"""Bit-for-bit reruns: BLAS and OpenMP run one thread, so floating-point reductions keep one order, and
on x86-64 with AVX2 OpenBLAS runs one kernel family, so hashes agree from machine to machine.

``pin_env`` (called when the package is imported, before numpy loads its BLAS) sets the thread
variables and ``OPENBLAS_CORETYPE`` unless the user set them; ``pin_threads`` (called before every stage
runs) also limits libraries that were loaded earlier or ignore the variables, through threadpoolctl.

Why the kernel: numpy's OpenBLAS is built for every x86 core type and picks kernels for the CPU it runs on;
an AVX-512 machine (SkylakeX kernels) and an AVX2 one (Haswell kernels) round the same products
differently in the last bit, so a ledger sealed on one would not verify on the other. Haswell's kernels
run on every AVX2 CPU (AVX-512 ones included); a CPU without AVX2 keeps OpenBLAS's own choice.
"""

from __future__ import annotations

import os

THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
BLAS_CORETYPE = "Haswell"


def _has_avx2() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return " avx2 " in f" {line.split(':', 1)[-1].strip()} "
    except OSError:
        pass
    return False


def pin_env() -> None:
    for name in THREAD_VARIABLES:
        os.environ.setdefault(name, "1")
    if "OPENBLAS_CORETYPE" not in os.environ and _has_avx2():
        os.environ["OPENBLAS_CORETYPE"] = BLAS_CORETYPE


def blas_coretype() -> str | None:
    """The kernel family of the loaded OpenBLAS (threadpoolctl's ``architecture``), None if none loaded."""
    from threadpoolctl import threadpool_info

    kinds = [info.get("architecture") for info in threadpool_info() if info.get("internal_api") == "openblas"]
    return kinds[0] if kinds else None


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
