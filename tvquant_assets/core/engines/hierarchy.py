"""Closed-form allocators in plain numpy/scipy: HRP, HERC, hierarchical equal weight, equal risk
contribution. Used by the custom engine; fast enough for N=500 (no solver, no per-call canonicalization).

The tree is skfolio's default: correlation distance ``sqrt(0.5 (1 - rho))`` of the covariance, Ward linkage
with optimal leaf ordering, so HRP weights match skfolio's ``HierarchicalRiskParity`` on the same
covariance (tests pin it to 1e-4 on the bundled S&P set). The ordering is
:func:`tvquant_assets.core.leaf_ordering.optimal_leaf_ordering`: scipy's result, bitwise, ~15x faster at
N=500. HERC and hierarchical equal weight cut that tree
into the manifest's shared ``LinkageConfig`` clusters.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.spatial.distance import squareform

from tvquant_assets.core.leaf_ordering import SCIPY_BELOW, optimal_leaf_ordering
from tvquant_assets.core.linkage import correlation_distance, cut
from tvquant_assets.manifest.schema import LinkageConfig

CVAR_BETA = 0.95


def tree(cov: np.ndarray, optimal_ordering: bool = True) -> np.ndarray:
    """Ward linkage of the covariance's correlation distance (optimal leaf ordering by default)."""
    sd = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    corr = cov / np.outer(sd, sd)
    condensed = squareform(correlation_distance(corr), checks=False)
    z = linkage(condensed, method="ward")
    return optimal_leaf_ordering(z, condensed) if optimal_ordering else z


def hrp(cov: np.ndarray, max_weight: float = 1.0) -> np.ndarray:
    """Hierarchical risk parity (variance), recursive bisection of the seriated assets.

    Per-asset caps are applied to each split factor as skfolio does.
    """
    n = len(cov)
    if n == 1:
        return np.ones(1)
    order = leaves_list(tree(cov))
    var = np.diag(cov)
    if not np.all(var > 0):
        raise ArithmeticError("HRP cannot split assets with zero variance")
    # In seriated order every cluster is a range: its covariance block is a view, no copy per split.
    seriated = np.ascontiguousarray(cov[np.ix_(order, order)])
    inv_var = 1.0 / var[order]
    out = np.empty(n)
    if n >= SCIPY_BELOW:  # numba is loaded for the leaf ordering anyway: ~500 Python-level splits -> 1 ms
        from tvquant_assets.core.engines._hrp_numba import bisection

        out[order] = bisection(seriated, inv_var, float(max_weight))
        return out
    w = np.ones(n)
    items = [(0, n)]
    while items:
        nxt = []
        for start, stop in items:
            if stop - start < 2:
                continue
            mid = start + (stop - start) // 2
            risks = []
            for lo, hi in ((start, mid), (mid, stop)):
                iv = inv_var[lo:hi] / inv_var[lo:hi].sum()
                risks.append(float(iv @ seriated[lo:hi, lo:hi] @ iv))
            alpha = 1.0 - risks[0] / (risks[0] + risks[1])
            # skfolio's _apply_weight_constraints_to_split_factor with min 0 and a uniform cap.
            alpha = min((mid - start) * max_weight / w[start], max(0.0, alpha))
            alpha = 1.0 - min((stop - mid) * max_weight / w[mid], max(0.0, 1.0 - alpha))
            w[start:mid] *= alpha
            w[mid:stop] *= 1.0 - alpha
            nxt += [(start, mid), (mid, stop)]
        items = nxt
    out[order] = w
    return out


def cvar(returns: np.ndarray, beta: float = CVAR_BETA):
    """Historical CVaR (positive = loss) of a series, or of each column: the mean of the worst ``1 - beta``
    mass (a float for 1-D input, an array for 2-D)."""
    r = np.sort(np.asarray(returns, dtype="float64"), axis=0)
    k = (1.0 - beta) * len(r)
    whole = int(np.floor(k))
    tail = r[:whole].sum(axis=0)
    if whole < len(r) and k > whole:
        tail = tail + (k - whole) * r[whole]
    return -tail / k


def herc(
    cov: np.ndarray, returns: np.ndarray | None, cfg: LinkageConfig, risk: str = "cvar"
) -> np.ndarray:
    """Hierarchical equal risk contribution over the tree cut into ``cfg`` clusters.

    Top-down over the tree: each node splits its weight between its children in inverse proportion to
    the summed risk of the clusters under each child; inside a cluster, assets get inverse-risk weights.
    ``risk``: ``cvar`` (historical CVaR of the returns window), ``variance``, or ``equal`` (every asset and
    cluster the same risk: hierarchical equal weight).
    """
    n = len(cov)
    if n == 1:
        return np.ones(1)
    z = tree(cov, optimal_ordering=False)
    labels = cut(z, cfg)
    if risk == "cvar":
        asset_risk = cvar(returns)
    elif risk == "variance":
        asset_risk = np.diag(cov).copy()
    else:
        asset_risk = np.ones(n)
    if not np.all(np.isfinite(asset_risk)) or np.any(asset_risk <= 0):
        raise ArithmeticError(f"HERC needs positive finite asset {risk}")
    within = np.zeros(n)
    cluster_risk = {}
    for c in np.unique(labels):
        m = np.flatnonzero(labels == c)
        iv = 1.0 / asset_risk[m]
        within[m] = iv / iv.sum()
        if risk == "cvar":
            cluster_risk[c] = float(cvar(returns[:, m] @ within[m]))
        elif risk == "variance":
            cluster_risk[c] = float(within[m] @ cov[np.ix_(m, m)] @ within[m])
        else:
            cluster_risk[c] = 1.0
    # Leaves under every tree node; split top-down while a node spans more than one cluster.
    members = {i: np.array([i]) for i in range(n)}
    for i, row in enumerate(z):
        members[n + i] = np.concatenate([members[int(row[0])], members[int(row[1])]])
    cluster_weight = {c: 1.0 for c in cluster_risk}
    stack = [(2 * n - 2, 1.0)]
    while stack:
        node, weight = stack.pop()
        spanned = np.unique(labels[members[node]])
        if len(spanned) == 1:
            cluster_weight[int(spanned[0])] = weight
            continue
        left, right = int(z[node - n, 0]), int(z[node - n, 1])
        rl = sum(cluster_risk[c] for c in np.unique(labels[members[left]]))
        rr = sum(cluster_risk[c] for c in np.unique(labels[members[right]]))
        alpha = 1.0 - rl / (rl + rr)
        stack += [(left, weight * alpha), (right, weight * (1.0 - alpha))]
    return within * np.array([cluster_weight[int(c)] for c in labels])


def equal_risk_contribution(cov: np.ndarray, budget: np.ndarray | None = None, tol: float = 1e-12,
                            max_iter: int = 100) -> np.ndarray:
    """Long-only risk budgeting (ERC by default) by Newton's method on
    ``0.5 y' S y - b' log y`` (S = cov / mean variance), ``w = y / sum(y)``.

    The problem is strictly convex for a PSD covariance with positive diagonal; Newton with a
    positivity-keeping step converges in a few iterations.
    """
    n = len(cov)
    b = np.full(n, 1.0 / n) if budget is None else np.asarray(budget, dtype="float64") / np.sum(budget)
    s = cov / (np.trace(cov) / n)
    y = b / np.sqrt(np.diag(s))
    y *= np.sqrt(1.0 / max(float(y @ s @ y), 1e-300))
    for _ in range(max_iter):
        grad = s @ y - b / y
        hess = s + np.diag(b / y**2)
        step = np.linalg.solve(hess, grad)
        if float(grad @ step) < tol:
            break
        t = 1.0
        while np.any(y - t * step <= 0):
            t *= 0.5
        y = y - t * step
    else:
        raise ArithmeticError("risk parity Newton iteration did not converge")
    return y / y.sum()
