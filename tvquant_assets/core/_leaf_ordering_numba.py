"""numba kernel of :mod:`tvquant_assets.core.leaf_ordering` (imported lazily: numba costs ~0.5 s to import).

Everything works on leaf *positions* in the input tree's leaf order, so every cluster is a range
``[start, stop)``. Arithmetic mirrors scipy's Cython code where it decides the result: the table ``M`` is float32 and a
candidate costs ``float32(float32(M[u, m] + M[w, k]) + D[m, k])``.
"""

from __future__ import annotations

import numba
import numpy as np

_BIG = np.float32(2.0**30)
# float32 rounding moves a candidate by ~1 ulp (2^-23 relative); 8 ulp of slack keeps every candidate that
# can hold scipy's float32 minimum.
_SLACK = 8.0 * 2.0**-23
_HUGE = 1e300


# Min-plus filters only: min is exact in any order, so they may vectorize (no NaN reaches them).
_FILTER_MATH = True


@numba.njit(cache=True, nogil=True, fastmath=_FILTER_MATH)
def _min_plus_row(T, a_row, D, m0, m1, k0, k1):
    """``T[k] = min_m a_row[m] + D[m, k0 + k]``."""
    nk = k1 - k0
    for ki in range(nk):
        T[ki] = _HUGE
    for m in range(m0, m1):
        a = a_row[m]
        d = D[m, k0:k1]
        for ki in range(nk):
            T[ki] = np.minimum(T[ki], a + d[ki])  # (vectorizes; the builtin min does not)


@numba.njit(cache=True, nogil=True)
def _sorted_ends(M64, k0, k1, w0, w1):
    """Each right end w's k list (offsets from k0) sorted by M[k, w], and those costs: built once per
    (w, k) split and shared by both orientations of the left child (scipy re-sorts it for every u)."""
    nk = k1 - k0
    nw = w1 - w0
    k_sorted = np.empty((nw, nk), dtype=np.int64)
    k_cost = np.empty((nw, nk), dtype=np.float64)
    for wi in range(nw):
        order = np.argsort(M64[w0 + wi, k0:k1])
        for j in range(nk):
            k_sorted[wi, j] = order[j]
            k_cost[wi, j] = M64[w0 + wi, k0 + order[j]]
    return k_sorted, k_cost


@numba.njit(cache=True, nogil=True)
def _best_end_pairs(M, M64, D, k_sorted, k_cost, u0, u1, m0, m1, k0, k1, w0, w1):
    """Fill ``M[u, w]`` (u in [u0, u1), w in [w0, w1)): the cheapest path through the left child from u to
    some m in [m0, m1), a step m -> k, and through the right child from some k in [k0, k1) to w.

    The real-valued minimum separates: ``T[u, k] = min_m M[u, m] + D[m, k]``, then
    ``min_k T[u, k] + M[k, w]``, searched over k in increasing ``M[k, w]`` and stopped once
    ``M[k, w] + min_k T[u, k]`` cannot beat it (Bar-Joseph et al.'s early termination, one level up).
    scipy's float32 candidate cost differs from the real one by ~1 float32 ulp, so only the (k, m) within
    ``_SLACK`` of the real minimum can hold scipy's minimum; those few are re-evaluated with scipy's
    arithmetic. ``M64`` mirrors ``M`` in float64 for the filters.
    """
    nk = k1 - k0
    nw = w1 - w0
    T = np.empty(nk, dtype=np.float64)
    m_best = np.empty(nk, dtype=np.int64)  # per u: argmin m of T[u, k] (-1: not yet looked at)
    m_second = np.empty(nk, dtype=np.float64)  # ... and the runner-up value
    for u in range(u0, u1):
        a_row = M64[u]
        _min_plus_row(T, a_row, D, m0, m1, k0, k1)
        t_min = _HUGE
        for ki in range(nk):
            t_min = min(t_min, T[ki])
            m_best[ki] = -1
        for wi in range(nw):
            w = w0 + wi
            costs = k_cost[wi]
            ks = k_sorted[wi]
            real = _HUGE
            bound = _HUGE  # stop once M[k, w] > bound: no later k can come within _SLACK of real
            scanned = nk
            for j in range(nk):
                b = costs[j]
                if b > bound:
                    scanned = j
                    break
                c = T[ks[j]] + b
                if c < real:
                    real = c
                    bound = real + _SLACK * real - t_min
            limit = real + _SLACK * real
            best = _BIG
            for j in range(scanned):
                ki = k_sorted[wi, j]
                b = k_cost[wi, j]
                if T[ki] + b > limit:
                    continue
                k = k0 + ki
                d_row = D[k]  # D is symmetric: the row is contiguous
                if m_best[ki] < 0:
                    first = _HUGE
                    second = _HUGE
                    arg = m0
                    for m in range(m0, m1):
                        v = a_row[m] + d_row[m]
                        if v < first:
                            second = first
                            first = v
                            arg = m
                        elif v < second:
                            second = v
                    m_best[ki] = arg
                    m_second[ki] = second
                b32 = M[w, k]
                if m_second[ki] + b > limit:  # only the argmin m is within reach
                    m = m_best[ki]
                    cost = np.float32(np.float32(M[u, m] + b32) + D[m, k])
                    if cost < best:
                        best = cost
                    continue
                for m in range(m0, m1):
                    if a_row[m] + d_row[m] + b > limit:
                        continue
                    cost = np.float32(np.float32(M[u, m] + b32) + D[m, k])
                    if cost < best:
                        best = cost
            M[u, w] = best
            M[w, u] = best
            M64[u, w] = best
            M64[w, u] = best


@numba.njit(cache=True, nogil=True)
def identify_swaps(children, D):
    """Per internal node: 1 when its two children end up swapped (scipy's read-out: each node's best end
    pair orients its children, a swap mirrors the subtree); and the DP's minimal path cost over the whole
    tree (float32, as scipy's table).

    ``children`` (n - 1, 2): linkage children with leaves relabelled to positions; ``D`` the distances
    between positions.
    """
    n = len(children) + 1
    start = np.empty(2 * n - 1, dtype=np.int64)
    stop = np.empty(2 * n - 1, dtype=np.int64)
    for i in range(n):
        start[i] = i
        stop[i] = i + 1
    for i in range(n - 1):
        start[n + i] = start[children[i, 0]]
        stop[n + i] = stop[children[i, 1]]
    M = np.zeros((n, n), dtype=np.float32)
    M64 = np.zeros((n, n), dtype=np.float64)
    must_swap = np.zeros(n - 1, dtype=np.int64)
    best = _BIG
    for i in range(n - 1):
        vl = children[i, 0]
        vr = children[i, 1]
        # Left child: u from its first child and m from its second (no swap), or the reverse (swap).
        # Right child: w from its second child and k from its first (no swap), or the reverse (swap).
        if vl < n:
            n_left = 1
        else:
            n_left = 2
        if vr < n:
            n_right = 1
        else:
            n_right = 2
        for swap_r in range(n_right):
            if vr < n:
                w_node = vr
                k_node = vr
            else:
                w_node = children[vr - n, 1 - swap_r]
                k_node = children[vr - n, swap_r]
            k0, k1, w0, w1 = start[k_node], stop[k_node], start[w_node], stop[w_node]
            k_sorted, k_cost = _sorted_ends(M64, k0, k1, w0, w1)
            for swap_l in range(n_left):
                if vl < n:
                    u_node = vl
                    m_node = vl
                else:
                    u_node = children[vl - n, swap_l]
                    m_node = children[vl - n, 1 - swap_l]
                _best_end_pairs(M, M64, D, k_sorted, k_cost, start[u_node], stop[u_node], start[m_node],
                                stop[m_node], k0, k1, w0, w1)
        # scipy's read-out: the first (row-major) cheapest (u, w) orients the two children.
        best = _BIG
        best_u = start[vl]
        best_w = start[vr]
        for u in range(start[vl], stop[vl]):
            for w in range(start[vr], stop[vr]):
                if M[u, w] < best:
                    best = M[u, w]
                    best_u = u
                    best_w = w
        if vl >= n:
            # swapped when u lies in the left child's second child
            must_swap[vl - n] = 1 if best_u >= start[children[vl - n, 1]] else 0
        if vr >= n:
            # swapped when w lies in the right child's first child
            must_swap[vr - n] = 1 if best_w < stop[children[vr - n, 0]] else 0
    # A swap at a node mirrors its whole subtree: a node's children end up swapped when an odd number of
    # the node and its ancestors must swap. Parents come after their children in a linkage.
    flip = must_swap.copy()
    for i in range(n - 2, -1, -1):
        for side in range(2):
            c = children[i, side]
            if c >= n:
                flip[c - n] ^= flip[i]
    return flip, best
