"""Exact projection of long-only weights onto per-asset and per-cluster caps together.

The projection keeps the shape of the weights it is given (an HRP or HERC allocation): it is the
minimizer of the relative entropy ``sum x log(x / w) - x`` over ``sum(x) = 1``, ``0 <= x <= u``,
``sum_{i in g} x_i <= C`` for every cluster ``g``. Its optimality conditions give the closed form

    x_i = min(u, a * b_g * w_i),     b_g = 1 unless cluster g sits at its cap C,

one global scale ``a`` (weight flowing into the clusters with room) and one scale per capped cluster:
weights inside a cluster keep their proportions until they hit ``u``. Every function of the scales is
piecewise linear, so ``a`` and the ``b_g`` are found exactly on their breakpoints (no iteration, no
renormalization that could break a cap; the old proportional loop renormalized and put 0.2276 in GE
under a 0.20 cap). When the held assets alone cannot meet the caps (zero weights), the Euclidean
projection onto the same set is solved as a small QP instead.

:func:`feasible_cluster_cap` gives the tightest cluster cap a date can meet (``sum_g min(C, u n_g) = 1``)
for the relaxation of an infeasible cap.
"""

from __future__ import annotations

import numpy as np

TOL = 1e-12


def _members(clusters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cluster ids and the index (0..k-1) of each asset's cluster."""
    ids, index = np.unique(np.asarray(clusters), return_inverse=True)
    return ids, index


def capacity(index: np.ndarray, k: int, cap: float, max_weight: float, support: np.ndarray | None = None) -> float:
    """Most weight the caps admit: ``sum_g min(cap, max_weight * n_g)`` (over ``support`` when given)."""
    mask = np.ones(len(index), dtype=bool) if support is None else support
    counts = np.bincount(index[mask], minlength=k)
    return float(np.minimum(cap, max_weight * counts).sum())


def feasible_cluster_cap(clusters: np.ndarray, max_weight: float) -> float:
    """The smallest cluster cap C with ``sum_g min(C, max_weight n_g) >= 1`` (inf when none exists)."""
    _, index = _members(clusters)
    counts = np.sort(np.bincount(index)) * max_weight  # each cluster's own ceiling, ascending
    if counts.sum() < 1.0 - TOL:
        return float("inf")
    # sum_g min(C, c_g) is piecewise linear in C with breakpoints at the sorted c_g.
    k = len(counts)
    below = 0.0
    for j, c in enumerate(counts):
        # clusters j.. are limited by C: below + (k - j) C = 1
        cap = (1.0 - below) / (k - j)
        if cap <= c + TOL:
            return float(cap)
        below += c
    return float(counts[-1])


def _scale_for(w: np.ndarray, u: float, target: float) -> float:
    """The c with ``sum min(u, c w) = target`` for positive ``w`` (``target <= u len(w)``), exactly."""
    order = np.sort(w)[::-1]
    rest = order.sum()
    for k in range(len(order)):  # k largest at the cap u, the rest scaled
        if rest <= 0:
            break
        c = (target - k * u) / rest
        if c * order[k] <= u * (1 + 1e-15) and (k == 0 or c * order[k - 1] >= u * (1 - 1e-15)):
            return float(c)
        rest -= order[k]
    return float(u / order[-1])  # every asset at its cap


def _cluster_totals(a: np.ndarray, w: np.ndarray, index: np.ndarray, k: int, u: float) -> np.ndarray:
    """Totals ``sum_{i in g} min(u, a w_i)`` for each scale in ``a`` (rows) and cluster (columns)."""
    x = np.minimum(u, a[:, None] * w[None, :])
    out = np.zeros((len(a), k))
    np.add.at(out.T, index, x.T)
    return out


def entropic_projection(w: np.ndarray, clusters: np.ndarray, cap: float, max_weight: float) -> np.ndarray:
    """``x_i = min(u, a b_g w_i)`` meeting both caps exactly (see the module docstring).

    ``w`` is long-only with a positive sum; assets with zero weight stay at zero, so the caps must be
    feasible on the held assets (:func:`capacity` with ``support = w > 0``).
    """
    w = np.asarray(w, dtype="float64")
    u = float(max_weight)
    ids, index = _members(clusters)
    k = len(ids)
    held = w > 0
    # Breakpoints of G(a) = sum_g min(C, T_g(a)): assets reaching u, and clusters reaching C.
    asset_bp = u / w[held]
    cluster_bp = [_scale_for(w[(index == g) & held], u, cap) for g in range(k)
                  if held[index == g].any() and u * np.count_nonzero(held[index == g]) > cap]
    bps = np.unique(np.concatenate([[0.0], asset_bp, cluster_bp]))
    totals = np.minimum(cap, _cluster_totals(bps, w, index, k, u)).sum(axis=1)
    j = int(np.searchsorted(totals, 1.0 - TOL))  # first breakpoint where G >= 1
    if j >= len(bps):
        raise ArithmeticError("cluster caps infeasible on the held assets")
    if abs(totals[j] - 1.0) <= TOL or j == 0:
        a = bps[j]
    else:  # linear between breakpoints j-1 and j
        a0, a1, g0, g1 = bps[j - 1], bps[j], totals[j - 1], totals[j]
        a = a0 + (1.0 - g0) * (a1 - a0) / (g1 - g0)
    x = np.minimum(u, a * w)
    for g in range(k):
        m = index == g
        if x[m].sum() > cap:
            x[m] = np.minimum(u, _scale_for(w[m & held], u, cap) * w[m]) if held[m].any() else 0.0
    return x


def euclidean_projection(w: np.ndarray, clusters: np.ndarray, cap: float, max_weight: float) -> np.ndarray:
    """``min ||x - w||^2`` over the same set, as a small QP (used when zero weights must be filled)."""
    import cvxpy as cp

    from tvquant_assets.core.engines.base import SOLVER_OPTIONS

    ids, index = _members(clusters)
    a = np.zeros((len(ids), len(w)))
    a[index, np.arange(len(w))] = 1.0
    x = cp.Variable(len(w))
    problem = cp.Problem(cp.Minimize(cp.sum_squares(x - w)),
                         [cp.sum(x) == 1, x >= 0, x <= max_weight, a @ x <= cap])
    problem.solve(solver="CLARABEL", **SOLVER_OPTIONS["CLARABEL"])
    if problem.status != cp.OPTIMAL or x.value is None:
        raise ArithmeticError(f"cluster-cap projection QP: {problem.status}")
    # Solver round-off: clip into the box, then spread the residual over assets with room.
    y = np.clip(np.asarray(x.value, dtype="float64"), 0.0, max_weight)
    return y + (1.0 - y.sum()) * (max_weight - y) / max(float((max_weight - y).sum()), 1e-300)


def project(w: np.ndarray, clusters: np.ndarray, cap: float, max_weight: float) -> tuple[np.ndarray, str]:
    """Weights meeting ``max_weight`` and ``cap`` together, and a note ("" when nothing moved).

    Raises ArithmeticError when no fully invested long-only portfolio meets the caps
    (:func:`feasible_cluster_cap` says how far the cluster cap would have to be loosened).
    """
    w = np.clip(np.asarray(w, dtype="float64"), 0.0, None)
    w = w / w.sum()
    ids, index = _members(clusters)
    totals = np.bincount(index, weights=w, minlength=len(ids))
    if totals.max() <= cap + 1e-9 and w.max() <= max_weight + 1e-9:
        return w, ""
    if capacity(index, len(ids), cap, max_weight) < 1.0 - TOL:
        raise ArithmeticError(f"cluster caps infeasible: {len(ids)} clusters, cap {cap:g}, max_weight "
                              f"{max_weight:g}")
    if capacity(index, len(ids), cap, max_weight, w > 0) >= 1.0 - TOL:
        x, how = entropic_projection(w, clusters, cap, max_weight), "proportional"
    else:
        x, how = euclidean_projection(w, clusters, cap, max_weight), "euclidean QP"
    moved = float(np.abs(x - w).sum()) / 2
    return x, f"projected onto cluster caps {cap:g} and max_weight {max_weight:g} ({how}, moved {moved:.4f})"
