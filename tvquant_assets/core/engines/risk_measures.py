"""Risk measures of the custom engine's hierarchical allocators, and their names in skfolio and Riskfolio.

Definitions (``r`` = the portfolio's daily returns over the estimation window, ``L = -r``, ``T`` rows;
variance and standard deviation use the estimation covariance, as skfolio's allocators use their prior's):

- ``variance`` ``w' Sigma w``; ``standard_deviation`` its square root;
- ``semi_variance`` ``mean(max(0, mean(r) - r)^2) T / (T - 1)``; ``semi_deviation`` its square root;
- ``mean_absolute_deviation`` ``mean(|r - mean(r)|)``;
- ``cvar`` (beta) the mean of the worst ``1 - beta`` mass of ``r`` (fractional last observation), as a loss;
- ``evar`` (beta) ``inf_{z>0} z log(E[exp(L / z)] / (1 - beta))``, the tightest Chernoff bound of VaR,
  solved on losses scaled to [-1, 0] by a bracketed Newton root of the derivative in ``log(1/z)``,
  for every column at once (every asset, or every cluster of a bisection level, in one call);
- ``cdar`` (beta) the CVaR of the drawdowns of the uncompounded cumulative return (peak floored at 0);
- ``max_drawdown`` the largest such drawdown; ``worst_realization`` ``max(L)``.

These are skfolio's definitions (its ``Portfolio`` measures with the default ``beta = 0.95``), so custom
and skfolio HRP/HERC agree to rounding (tests).
"""

from __future__ import annotations

import numpy as np

MEASURES: tuple[str, ...] = (
    "variance", "standard_deviation", "semi_variance", "semi_deviation", "mean_absolute_deviation", "cvar",
    "evar", "cdar", "max_drawdown", "worst_realization")
BETA_MEASURES: tuple[str, ...] = ("cvar", "evar", "cdar")
COVARIANCE_MEASURES: tuple[str, ...] = ("variance", "standard_deviation")
DEFAULT_BETA = 0.95

# skfolio RiskMeasure member names; Riskfolio ``rm`` codes (HCPortfolio / Portfolio).
SKFOLIO_NAMES = {
    "variance": "VARIANCE", "standard_deviation": "STANDARD_DEVIATION", "semi_variance": "SEMI_VARIANCE",
    "semi_deviation": "SEMI_DEVIATION", "mean_absolute_deviation": "MEAN_ABSOLUTE_DEVIATION", "cvar": "CVAR",
    "evar": "EVAR", "cdar": "CDAR", "max_drawdown": "MAX_DRAWDOWN", "worst_realization": "WORST_REALIZATION"}
RISKFOLIO_CODES = {
    "variance": "MV", "standard_deviation": "MV", "semi_deviation": "MSV", "mean_absolute_deviation": "MAD",
    "cvar": "CVaR", "evar": "EVaR", "cdar": "CDaR", "max_drawdown": "MDD", "worst_realization": "WR"}


def cvar(returns: np.ndarray, beta: float = DEFAULT_BETA):
    """Historical CVaR (a positive loss) of a series, or of each column."""
    r = np.asarray(returns, dtype="float64")
    k = (1.0 - beta) * len(r)
    whole = int(np.floor(k))
    if whole < len(r):  # the whole + 1 smallest, the (whole + 1)-th in place: no full sort
        r = np.partition(r, whole, axis=0)
    tail = np.sort(r[:whole], axis=0).sum(axis=0)  # sorted: the same sum, bit for bit, as a full sort
    if whole < len(r) and k > whole:
        tail = tail + (k - whole) * r[whole]
    return -tail / k


def drawdowns(returns: np.ndarray) -> np.ndarray:
    """Drawdowns (<= 0) of the uncompounded cumulative returns, the running peak floored at 0."""
    cum = np.cumsum(np.asarray(returns, dtype="float64"), axis=0)
    return cum - np.maximum(np.maximum.accumulate(cum, axis=0), 0.0)


def _evar_columns(losses: np.ndarray, beta: float, tol: float = 1e-14, max_iter: int = 200) -> np.ndarray:
    """EVaR of each column of ``losses`` (T x k), all columns at once.

    Per column, on losses scaled to ``x`` in [-1, 0] (max 0): with ``t = 1/z``, minimize
    ``(log sum exp(t x) - c) / t`` (``c = log T + log(1 - beta)``); its derivative in ``t`` has the sign of
    ``h = t m(t) - lse(t) + c`` (``m`` the exponentially tilted mean), increasing in ``t`` since
    ``dh/dt = t Var_t(x)``. The root in ``s = log t`` is found by Newton (``dh/ds = t^2 Var_t(x)``) kept
    inside a bracket that every step tightens (false position, or a bisection, when Newton leaves it:
    ``h`` is S-shaped in ``s``, flat on both sides), started from the Gaussian value
    ``t = sqrt(-2 log(1 - beta)) / std(x)``; ~5 evaluations per column, each one pass over the column in
    numba (``_evar_numba``: numpy's vectorized form paid ~15 array calls per step, and at 500 columns
    streamed every column through memory five times per step). The value is read at the last evaluated
    point (within ``tol`` of the root; the objective is stationary there). When ``h < 0`` at ``t = e^20``
    the infimum is the limit ``z -> 0``: the worst loss.
    """
    losses = np.asarray(losses, dtype="float64")
    top = losses.max(axis=0)
    spread = top - losses.min(axis=0)
    out = top.copy()
    live = np.flatnonzero(spread > 0)
    if not live.size:
        return out
    x = (losses[:, live] - top[live]) / spread[live]
    c = float(np.log(x.shape[0]) + np.log1p(-beta))
    lower, upper = 0.5 * np.log(-2.0 * np.log1p(-beta)), 20.0
    s0 = np.clip(np.log(np.sqrt(-2.0 * np.log1p(-beta)) / np.maximum(x.std(axis=0), 1e-300)), lower, upper)
    from tvquant_assets.core.engines._evar_numba import roots

    root, lse, state = roots(np.ascontiguousarray(x.T), c, lower, upper, s0, tol, max_iter)
    if np.any(state == 2):
        raise ArithmeticError("EVaR root did not converge")
    solved = state == 0
    cols = live[solved]
    out[cols] = top[cols] + spread[cols] * (lse[solved] - c) / np.exp(root[solved])
    return out


def evar(returns: np.ndarray, beta: float = DEFAULT_BETA):
    """Entropic VaR (a positive loss) of a series, or of each column (:func:`_evar_columns`)."""
    r = np.asarray(returns, dtype="float64")
    if r.ndim == 1:
        return float(_evar_columns(-r[:, None], beta)[0])
    return _evar_columns(-r, beta)


def series_risk(measure: str, r: np.ndarray, beta: float = DEFAULT_BETA):
    """A returns-based measure of a series (or of each column of a 2-D array)."""
    r = np.asarray(r, dtype="float64")
    if measure in ("semi_variance", "semi_deviation"):
        t = r.shape[0]
        semi = np.mean(np.maximum(0.0, r.mean(axis=0) - r) ** 2, axis=0) * t / (t - 1)
        return semi if measure == "semi_variance" else np.sqrt(semi)
    if measure == "mean_absolute_deviation":
        return np.mean(np.abs(r - r.mean(axis=0)), axis=0)
    if measure == "cvar":
        return cvar(r, beta)
    if measure == "evar":
        return evar(r, beta)
    if measure == "cdar":
        return cvar(drawdowns(r), beta)
    if measure == "max_drawdown":
        return -np.min(drawdowns(r), axis=0)
    if measure == "worst_realization":
        return -np.min(r, axis=0)
    raise ValueError(f"unknown risk measure {measure!r} (known: {', '.join(MEASURES)})")


class Risk:
    """One measure on one date's estimates: the risk of each asset alone and of weights on a subset.

    Parameters
    ----------
    measure : str
        One of :data:`MEASURES`.
    cov : ndarray (n, n)
        Estimation covariance (variance, standard deviation).
    returns : ndarray (T, n), optional
        Estimation return window (every other measure).
    beta : float
        Confidence of CVaR, EVaR and CDaR.
    """

    def __init__(self, measure: str, cov: np.ndarray, returns: np.ndarray | None, beta: float = DEFAULT_BETA):
        if measure not in MEASURES:
            raise ValueError(f"unknown risk measure {measure!r} (known: {', '.join(MEASURES)})")
        if measure not in COVARIANCE_MEASURES and returns is None:
            raise ValueError(f"risk measure {measure!r} needs the returns window")
        self.measure, self.cov, self.returns, self.beta = measure, cov, returns, beta

    def assets(self) -> np.ndarray:
        if self.measure == "variance":
            return np.diag(self.cov).copy()
        if self.measure == "standard_deviation":
            return np.sqrt(np.diag(self.cov))
        return np.asarray(series_risk(self.measure, self.returns, self.beta), dtype="float64")

    def of_ranges(self, order: np.ndarray, ranges: list[tuple[int, int]], inv: np.ndarray,
                  single: np.ndarray | None = None) -> np.ndarray:
        """Risk of each range's inverse-risk portfolio, in one vectorized pass: range ``(lo, hi)`` holds
        ``order[lo:hi]`` with weights ``inv[lo:hi] / inv[lo:hi].sum()`` (``inv`` in ``order``'s order).
        Ranges are disjoint and ascending (one level of HRP's bisection). ``single``: each seriated
        asset's own risk (:meth:`assets`), used for one-asset ranges instead of measuring them again."""
        if single is not None:
            out = np.empty(len(ranges))
            one = np.array([hi - lo == 1 for lo, hi in ranges], dtype=bool)
            out[one] = single[[lo for (lo, hi), o in zip(ranges, one, strict=True) if o]]
            many = [r for r, o in zip(ranges, one, strict=True) if not o]
            if many:
                out[~one] = self.of_ranges(order, many, inv)
            return out
        n = len(order)
        starts = np.array([lo for lo, _ in ranges])
        bounds = np.unique(np.concatenate([starts, [hi for _, hi in ranges]]))
        seg = np.searchsorted(bounds[bounds < n], starts)  # each range's segment between two bounds
        cuts = bounds[bounds < n]
        total = np.add.reduceat(inv, cuts)[seg]
        v = np.zeros(n)
        for (lo, hi), t in zip(ranges, total, strict=True):
            v[lo:hi] = inv[lo:hi] / t
        key = order.tobytes()
        if getattr(self, "_seriated_key", None) != key:  # one reordering per tree, not per level
            if self.measure in COVARIANCE_MEASURES:
                self._seriated = self.cov[np.ix_(order, order)]
            else:  # assets as rows: the segment sums below run over contiguous rows
                self._seriated = np.ascontiguousarray(self.returns[:, order].T)
            self._seriated_key = key
        if self.measure in COVARIANCE_MEASURES:
            c = self._seriated * np.outer(v, v)
            block = np.add.reduceat(np.add.reduceat(c, cuts, axis=0), cuts, axis=1)
            var = block[seg, seg]
            return var if self.measure == "variance" else np.sqrt(var)
        portfolios = np.add.reduceat(self._seriated * v[:, None], cuts, axis=0)[seg]  # (ranges, T)
        return np.asarray(series_risk(self.measure, portfolios.T, self.beta), dtype="float64")

    def of(self, ids: np.ndarray, w: np.ndarray) -> float:
        """Risk of the portfolio holding ``w`` in assets ``ids`` (and nothing else)."""
        if self.measure in COVARIANCE_MEASURES:
            var = float(w @ self.cov[np.ix_(ids, ids)] @ w)
            return var if self.measure == "variance" else float(np.sqrt(var))
        return float(series_risk(self.measure, self.returns[:, ids] @ w, self.beta))
