"""numba kernel of HRP's recursive bisection (imported lazily, for large universes only: see
:func:`tvquant_assets.core.engines.hierarchy.hrp`, whose numpy loop it mirrors split for split)."""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _cluster_variance(seriated, inv_var, lo, hi):
    total = 0.0
    for i in range(lo, hi):
        total += inv_var[i]
    risk = 0.0
    for i in range(lo, hi):
        row = 0.0
        for j in range(lo, hi):
            row += seriated[i, j] * inv_var[j]
        risk += row * inv_var[i]
    return risk / (total * total)


@numba.njit(cache=True, nogil=True)
def bisection(seriated, inv_var, max_weight):
    """Weights in seriated order: top-down midpoint splits, inverse-variance cluster risks, capped split
    factors (skfolio's rule with min 0 and a uniform cap)."""
    n = len(inv_var)
    w = np.ones(n)
    starts = np.zeros(n, dtype=np.int64)
    stops = np.zeros(n, dtype=np.int64)
    stops[0] = n
    count = 1
    while count:
        next_starts = np.zeros(2 * count, dtype=np.int64)
        next_stops = np.zeros(2 * count, dtype=np.int64)
        nxt = 0
        for b in range(count):
            start = starts[b]
            stop = stops[b]
            if stop - start < 2:
                continue
            mid = start + (stop - start) // 2
            left = _cluster_variance(seriated, inv_var, start, mid)
            right = _cluster_variance(seriated, inv_var, mid, stop)
            alpha = 1.0 - left / (left + right)
            alpha = min((mid - start) * max_weight / w[start], max(0.0, alpha))
            alpha = 1.0 - min((stop - mid) * max_weight / w[mid], max(0.0, 1.0 - alpha))
            for i in range(start, mid):
                w[i] *= alpha
            for i in range(mid, stop):
                w[i] *= 1.0 - alpha
            next_starts[nxt] = start
            next_stops[nxt] = mid
            next_starts[nxt + 1] = mid
            next_stops[nxt + 1] = stop
            nxt += 2
        starts = next_starts
        stops = next_stops
        count = nxt
    return w
