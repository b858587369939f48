"""Risk measures of the custom engine's hierarchical allocators, and their names in skfolio and Riskfolio.

Definitions (``r`` = the portfolio's daily returns over the estimation window, ``L = -r``, ``T`` rows;
variance and standard deviation use the estimation covariance, as skfolio's allocators use their prior's):

- ``variance`` ``w' Sigma w``; ``standard_deviation`` its square root;
- ``semi_variance`` ``mean(max(0, mean(r) - r)^2) T / (T - 1)``; ``semi_deviation`` its square root;
- ``mean_absolute_deviation`` ``mean(|r - mean(r)|)``;
- ``cvar`` (beta) the mean of the worst ``1 - beta`` mass of ``r`` (fractional last observation), as a loss;
- ``evar`` (beta) ``inf_{z>0} z log(E[exp(L / z)] / (1 - beta))``, the tightest Chernoff bound of VaR,
  solved on losses scaled to [-1, 0] by a bracketed root of the derivative in ``log(1/z)``;
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
    r = np.sort(np.asarray(returns, dtype="float64"), axis=0)
    k = (1.0 - beta) * len(r)
    whole = int(np.floor(k))
    tail = r[:whole].sum(axis=0)
    if whole < len(r) and k > whole:
        tail = tail + (k - whole) * r[whole]
    return -tail / k


def drawdowns(returns: np.ndarray) -> np.ndarray:
    """Drawdowns (<= 0) of the uncompounded cumulative returns, the running peak floored at 0."""
    cum = np.cumsum(np.asarray(returns, dtype="float64"), axis=0)
    return cum - np.maximum(np.maximum.accumulate(cum, axis=0), 0.0)


def _evar_1d(losses: np.ndarray, beta: float) -> float:
    from scipy.optimize import brentq

    top, spread = float(losses.max()), float(losses.max() - losses.min())
    if spread == 0.0:
        return top
    x = (losses - top) / spread  # in [-1, 0], max 0
    c = np.log(x.size) + np.log1p(-beta)

    def log_mgf(t: float) -> tuple[float, float]:
        e = np.exp(t * x)
        total = float(e.sum())
        return np.log(total), float(e @ x) / total

    def slope_sign(log_t: float) -> float:  # sign of d/dt of (log sum e^{tx} - c) / t
        t = np.exp(log_t)
        lse, tilted_mean = log_mgf(t)
        return t * tilted_mean - lse + c

    lower, upper = 0.5 * np.log(-2.0 * np.log1p(-beta)), 20.0
    if slope_sign(upper) <= 0:
        return top  # infimum as z -> 0: the worst loss
    t = np.exp(brentq(slope_sign, lower, upper, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500))
    return top + spread * (log_mgf(t)[0] - c) / t


def evar(returns: np.ndarray, beta: float = DEFAULT_BETA):
    """Entropic VaR (a positive loss) of a series, or of each column."""
    r = np.asarray(returns, dtype="float64")
    if r.ndim == 1:
        return _evar_1d(-r, beta)
    return np.array([_evar_1d(-r[:, j], beta) for j in range(r.shape[1])])


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

    def of(self, ids: np.ndarray, w: np.ndarray) -> float:
        """Risk of the portfolio holding ``w`` in assets ``ids`` (and nothing else)."""
        if self.measure in COVARIANCE_MEASURES:
            var = float(w @ self.cov[np.ix_(ids, ids)] @ w)
            return var if self.measure == "variance" else float(np.sqrt(var))
        return float(series_risk(self.measure, self.returns[:, ids] @ w, self.beta))
