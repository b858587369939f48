"""Optimal leaf ordering that returns exactly what ``scipy.cluster.hierarchy.optimal_leaf_ordering`` returns,
in a fraction of its time (numba, compiled once to the on-disk cache).

Why the same answer and not just "an optimal" one: HRP bisects the seriated list in the middle, so any other
orientation of the tree (even one with the same cost) moves assets across the split and changes the weights;
skfolio seriates with scipy's function, and our HRP agrees with skfolio to 1e-16 only with scipy's exact
orientation. scipy's result is the Bar-Joseph et al. (2001) dynamic program, read out greedily (each node
orients its children from its own best end pair, scipy issue 11227), with the DP table in float32 and
``fl32(fl32(M[u,m] + M[w,k]) + D[m,k])`` as the candidate cost. This module computes the same table with the
same arithmetic and the same first-minimum tie rule, so the returned linkage is bitwise equal.

Where the time goes: scipy searches the (m, k) pairs for every end pair (u, w) and re-sorts a list for each
(~0.6 s at N=500). Here the real-valued minimum is separated into two min-plus products,
``T[u, k] = min_m M[u, m] + D[m, k]`` (vectorized) and ``min_k T[u, k] + M[k, w]`` (searched in increasing
``M[k, w]`` with Bar-Joseph's early termination); only the few (m, k) within float32 rounding of that minimum
are then costed with scipy's arithmetic. N=500 takes ~30-40 ms.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import leaves_list
from scipy.cluster.hierarchy import optimal_leaf_ordering as scipy_optimal_leaf_ordering
from scipy.spatial.distance import squareform

# Below this many leaves scipy's own function takes about a millisecond: use it and skip loading numba
# (~0.5-1 s per process even with the compiled code cached on disk). Both give the same linkage.
SCIPY_BELOW = 64


def optimal_leaf_ordering(z: np.ndarray, condensed: np.ndarray, scipy_below: int = SCIPY_BELOW) -> np.ndarray:
    """Linkage ``z`` with children swapped to scipy's optimal leaf order for distances ``condensed``.

    Parameters
    ----------
    z : ndarray of shape (n - 1, 4)
        A valid linkage matrix (``scipy.cluster.hierarchy.linkage``).
    condensed : ndarray of shape (n * (n - 1) / 2,)
        Condensed distances the tree was built on (finite).
    scipy_below : int
        Trees with fewer leaves go to scipy's function (same result, no numba load).

    Returns
    -------
    ndarray of shape (n - 1, 4)
        Bitwise equal to ``scipy.cluster.hierarchy.optimal_leaf_ordering(z, condensed)``.
    """
    z = np.asarray(z, dtype="float64")
    n = len(z) + 1
    if n < 3:
        return z.copy()
    if n < scipy_below:
        return scipy_optimal_leaf_ordering(z, condensed)
    flip, _ = _kernels().identify_swaps(*_by_position(z, condensed))
    out = z.copy()
    rows = flip.astype(bool)
    out[rows, 0], out[rows, 1] = z[rows, 1], z[rows, 0]
    return out


def minimal_path_length(z: np.ndarray, condensed: np.ndarray) -> float:
    """The dynamic program's minimum, over the tree's 2^(n-1) orientations, of the summed distance between
    neighbouring leaves (float32 precision, as scipy's table). scipy's greedy read-out does not always
    reach it (scipy issue 11227); the order :func:`optimal_leaf_ordering` returns is scipy's."""
    z = np.asarray(z, dtype="float64")
    if len(z) + 1 < 3:
        return float(np.sum(np.asarray(condensed, dtype="float64")))
    return float(_kernels().identify_swaps(*_by_position(z, condensed))[1])


def _by_position(z: np.ndarray, condensed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Children with leaves relabelled to their position in the tree's leaf order, and the distances
    between positions (scipy's layout: every cluster is a range of positions)."""
    n = len(z) + 1
    leaves = leaves_list(z)
    position = np.empty(n, dtype=np.int64)
    position[leaves] = np.arange(n)
    children = z[:, :2].astype(np.int64)
    is_leaf = children < n
    children[is_leaf] = position[children[is_leaf]]
    dist = squareform(np.asarray(condensed, dtype="float64"), checks=False)
    return children, np.ascontiguousarray(dist[np.ix_(leaves, leaves)])


_COMPILED = None


def _kernels():
    """The numba kernels, compiled (or loaded from the disk cache) on first use, not at import."""
    global _COMPILED
    if _COMPILED is None:
        from tvquant_assets.core import _leaf_ordering_numba

        _COMPILED = _leaf_ordering_numba
    return _COMPILED


def compile_seconds() -> float:
    """Seconds to import and compile/load the kernels in this process (0 when already loaded)."""
    import time

    if _COMPILED is not None:
        return 0.0
    t0 = time.perf_counter()
    k = _kernels()
    k.identify_swaps(np.array([[0, 1], [3, 2]], dtype=np.int64), np.ones((3, 3)) - np.eye(3))
    return time.perf_counter() - t0
