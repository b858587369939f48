"""Closed-form allocators in plain numpy/scipy: HRP, HERC, hierarchical equal weight, equal risk
contribution. Used by the custom engine; fast enough for N=500 (no solver, no per-call canonicalization).

The default tree is skfolio's default: correlation distance ``sqrt(0.5 (1 - rho))`` of the covariance,
Ward linkage with optimal leaf ordering, so HRP weights match skfolio's ``HierarchicalRiskParity`` on the
same covariance (tests pin it on the bundled S&P set); :func:`tree` also takes any distance and linkage
method (``LinkageConfig``), and HRP / HERC any :class:`~tvquant_assets.core.engines.risk_measures.Risk`. The ordering is
:func:`tvquant_assets.core.leaf_ordering.optimal_leaf_ordering`: scipy's result, bitwise, ~15x faster at
N=500. HERC and hierarchical equal weight cut that tree
into the manifest's shared ``LinkageConfig`` clusters.
"""

from __future__ import annotations

import numpy as np
from scipy.cluster.hierarchy import linkage
from scipy.spatial.distance import squareform

from tvquant_assets.core.engines import risk_measures
from tvquant_assets.core.engines.risk_measures import Risk
from tvquant_assets.core.leaf_ordering import SCIPY_BELOW, optimal_leaf_ordering
from tvquant_assets.core.linkage import correlation_distance, cut
from tvquant_assets.manifest.schema import LinkageConfig

CVAR_BETA = 0.95


def covariance_distance(cov: np.ndarray) -> np.ndarray:
    """Correlation distance ``sqrt(0.5 (1 - rho))`` of a covariance's correlation (square)."""
    sd = np.sqrt(np.clip(np.diag(cov), 1e-300, None))
    return correlation_distance(cov / np.outer(sd, sd))


def tree(cov: np.ndarray | None = None, optimal_ordering: bool = True, *, distance: np.ndarray | None = None,
         method: str = "ward") -> np.ndarray:
    """Linkage (``method``) of a square ``distance`` (default: the covariance's correlation distance),
    with optimal leaf ordering by default."""
    dist = covariance_distance(cov) if distance is None else np.asarray(distance, dtype="float64")
    condensed = squareform(dist, checks=False)
    z = linkage(condensed, method=method)
    return optimal_leaf_ordering(z, condensed) if optimal_ordering else z


def leaves(z: np.ndarray) -> np.ndarray:
    """Leaf order of a linkage, left child first (scipy's ``leaves_list``, without its validation)."""
    n = len(z) + 1
    out, stack = [], [2 * n - 2]
    while stack:
        node = stack.pop()
        if node < n:
            out.append(node)
        else:
            stack += [int(z[node - n, 1]), int(z[node - n, 0])]
    return np.array(out, dtype=np.intp)


def hrp(cov: np.ndarray, max_weight: float = 1.0, z: np.ndarray | None = None, risk: Risk | None = None) -> np.ndarray:
    """Hierarchical risk parity, recursive bisection of the seriated assets.

    ``z``: the optimally ordered tree (default :func:`tree` of ``cov``); ``risk``: the measure of each
    half's inverse-risk portfolio (default variance). Per-asset caps are applied to each split factor as
    skfolio does.
    """
    n = len(cov)
    if n == 1:
        return np.ones(1)
    order = leaves(tree(cov) if z is None else z)
    if risk is not None and risk.measure != "variance":
        return _hrp_measure(order, risk, max_weight)
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


def _hrp_measure(order: np.ndarray, risk: Risk, max_weight: float) -> np.ndarray:
    """HRP bisection with any :class:`Risk` (skfolio's: inverse-risk halves, split by their risk)."""
    n = len(order)
    unit = risk.assets()
    if not np.all(np.isfinite(unit)) or np.any(unit <= 0):
        raise ArithmeticError(f"HRP cannot split assets with zero or non-finite {risk.measure}")
    inv = 1.0 / unit[order]
    w = np.ones(n)
    items = [(0, n)]
    while items:
        splits = [(start, start + (stop - start) // 2, stop) for start, stop in items if stop - start >= 2]
        if not splits:
            break
        # every half of this level at once (vectorized over the level's clusters)
        ranges = [r for a, m, b in splits for r in ((a, m), (m, b))]
        halves = risk.of_ranges(order, ranges, inv, unit[order]).reshape(-1, 2)
        nxt = []
        for (start, mid, stop), risks in zip(splits, halves, strict=True):
            if not np.all(np.isfinite(risks)) or risks[0] + risks[1] == 0:
                raise ArithmeticError(f"HRP cannot split clusters with zero or non-finite {risk.measure}")
            alpha = 1.0 - risks[0] / (risks[0] + risks[1])
            alpha = min((mid - start) * max_weight / w[start], max(0.0, alpha))
            alpha = 1.0 - min((stop - mid) * max_weight / w[mid], max(0.0, 1.0 - alpha))
            w[start:mid] *= alpha
            w[mid:stop] *= 1.0 - alpha
            nxt += [(start, mid), (mid, stop)]
        items = nxt
    out = np.empty(n)
    out[order] = w
    return out


def cvar(returns: np.ndarray, beta: float = CVAR_BETA):
    """Historical CVaR (positive = loss) of a series, or of each column (:func:`risk_measures.cvar`)."""
    return risk_measures.cvar(returns, beta)


def herc(
    cov: np.ndarray, returns: np.ndarray | None, cfg: LinkageConfig, risk: str | Risk = "cvar",
    z: np.ndarray | None = None,
) -> np.ndarray:
    """Hierarchical equal risk contribution over the tree cut into ``cfg`` clusters.

    Top-down over the tree: each node splits its weight between its children in inverse proportion to
    the summed risk of the clusters under each child; inside a cluster, assets get inverse-risk weights.
    ``risk``: a :class:`Risk`, ``cvar`` (95% CVaR of the returns window), ``variance``, or ``equal``
    (hierarchical equal weight: 1/k to each of the k clusters of the cut, 1/n_c inside each, as
    Riskfolio's HERC with ``rm="equal"``). ``z``: the tree (default: Ward
    on the covariance's correlation distance, no leaf reordering).
    """
    n = len(cov)
    if n == 1:
        return np.ones(1)
    z = tree(cov, optimal_ordering=False) if z is None else z
    labels = cut(z, cfg)
    if isinstance(risk, str) and risk != "equal":
        risk = Risk(risk, cov, returns)
    asset_risk = np.ones(n) if isinstance(risk, str) else risk.assets()
    if not np.all(np.isfinite(asset_risk)) or np.any(asset_risk <= 0):
        raise ArithmeticError(f"HERC needs positive finite asset {getattr(risk, 'measure', risk)}")
    within = np.zeros(n)
    cluster_risk = {}
    for c in np.unique(labels):
        m = np.flatnonzero(labels == c)
        iv = 1.0 / asset_risk[m]
        within[m] = iv / iv.sum()
        cluster_risk[c] = 1.0 if isinstance(risk, str) else risk.of(m, within[m])
    # Leaves under every tree node; split top-down while a node spans more than one cluster.
    members = {i: np.array([i]) for i in range(n)}
    for i, row in enumerate(z):
        members[n + i] = np.concatenate([members[int(row[0])], members[int(row[1])]])
    if isinstance(risk, str):  # hierarchical equal weight: 1/k per cluster of the cut (Riskfolio's rm="equal")
        return within / len(cluster_risk)
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
