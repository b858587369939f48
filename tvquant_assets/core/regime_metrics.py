"""Market-level regime metrics of one return series (the regime stage's market proxy), point in time.

Each function reads a 1-d array of daily returns, oldest first, ending at D, and returns one number
(NaN when the window is too short or degenerate):

- :func:`wavelet_entropy` "spectral turbulence": the DWT (PyWavelets ``wavedec``) splits the returns
  into ``levels`` detail bands plus the approximation; ``p_j`` = band energy / total energy;
  entropy ``-sum p_j ln p_j / ln(levels + 1)`` in [0, 1] (1 = energy spread evenly over scales).
- :func:`vol_clustering`: Pearson autocorrelation of ``|r|`` at lag 1 (GARCH-like clustering > 0).
- :func:`adf_pvalue`: augmented Dickey-Fuller p-value (statsmodels, constant, 1 lag, no autolag) of
  the log price ``cumsum(log1p(r))``: small = mean reverting, ~1 = trending / random walk.
- :class:`StressHMM`: a 2-state Gaussian HMM (hmmlearn) fitted on returns up to a refit day, seeded
  and initialized deterministically (no k-means), states ordered so that state 1 has the larger
  variance ("stress"); :meth:`StressHMM.stress_probability` is the *filtered* probability of the
  stress state on the last day of a window (forward algorithm: data <= D only).

Permutation entropy and Hurst come from :mod:`tvquant_assets.core.features` (same definitions as the
per-symbol features).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

SCALE = 100.0
"""Returns are fitted in percent: hmmlearn's variance floor is tuned for values of order one."""


def wavelet_entropy(returns: np.ndarray, wavelet: str = "db4", levels: int = 4) -> float:
    import pywt

    x = np.asarray(returns, dtype="float64")
    if x.size < 2 ** levels or np.isnan(x).any():
        return float("nan")
    with warnings.catch_warnings():  # a level deeper than the wavelet's filter allows is still defined
        warnings.simplefilter("ignore", UserWarning)
        bands = pywt.wavedec(x, wavelet, level=levels)
    energy = np.array([float(np.sum(b * b)) for b in bands])
    total = energy.sum()
    if not total > 0:
        return float("nan")
    p = energy[energy > 0] / total
    return float(-(p * np.log(p)).sum() / math.log(len(bands)))


def vol_clustering(returns: np.ndarray) -> float:
    a = np.abs(np.asarray(returns, dtype="float64"))
    if a.size < 3 or np.isnan(a).any():
        return float("nan")
    x, y = a[:-1] - a[:-1].mean(), a[1:] - a[1:].mean()
    den = math.sqrt(float((x * x).sum() * (y * y).sum()))
    return float((x * y).sum() / den) if den > 0 else float("nan")


def adf_pvalue(returns: np.ndarray) -> float:
    """ADF p-value with a constant and one lagged difference, as ``statsmodels.tsa.stattools.adfuller(
    level, maxlag=1, autolag=None, regression="c")`` (the regression is solved here; the p-value is
    statsmodels' MacKinnon approximation): ``adfuller`` itself costs ~10x more in its wrappers."""
    from statsmodels.tsa.adfvalues import mackinnonp

    r = np.asarray(returns, dtype="float64")
    if r.size < 20 or np.isnan(r).any() or not np.all(r > -1):
        return float("nan")
    level = np.cumsum(np.log1p(r))
    if np.ptp(level) == 0:
        return float("nan")
    dy = np.diff(level)
    y = dy[1:]  # delta y_t
    x = np.column_stack([level[1:-1], dy[:-1], np.ones(y.size)])  # y_{t-1}, delta y_{t-1}, constant
    beta, _, rank, _ = np.linalg.lstsq(x, y, rcond=None)
    if rank < 3:
        return float("nan")
    resid = y - x @ beta
    sigma2 = float(resid @ resid) / (y.size - 3)
    se = math.sqrt(sigma2 * float(np.linalg.inv(x.T @ x)[0, 0]))
    return float(mackinnonp(beta[0] / se, regression="c", N=1)) if se > 0 else float("nan")


class StressHMM:
    """2-state Gaussian HMM on daily returns, high-variance state = stress (index 1).

    Parameters
    ----------
    seed : int
        ``random_state`` handed to hmmlearn (the initialization itself is deterministic).
    n_iter : int
        EM iterations (tolerance 1e-3).
    """

    def __init__(self, seed: int = 7, n_iter: int = 30) -> None:
        self.seed = seed
        self.n_iter = n_iter

    def fit(self, returns: np.ndarray) -> StressHMM:
        from hmmlearn.hmm import GaussianHMM

        x = np.asarray(returns, dtype="float64")[:, None] * SCALE
        var = float(x.var())
        model = GaussianHMM(n_components=2, covariance_type="diag", n_iter=self.n_iter, tol=1e-3,
                            random_state=self.seed, init_params="", params="stmc")
        model.startprob_ = np.array([0.5, 0.5])
        model.transmat_ = np.array([[0.95, 0.05], [0.05, 0.95]])
        model.means_ = np.full((2, 1), float(x.mean()))
        model.covars_ = np.array([[0.5 * var], [2.0 * var]]) + 1e-6
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(x)
        order = np.argsort(model.covars_.reshape(2, -1)[:, 0], kind="stable")  # calm first, stress last
        self.startprob_ = model.startprob_[order]
        self.transmat_ = model.transmat_[np.ix_(order, order)]
        self.means_ = model.means_[order, 0]
        self.vars_ = model.covars_.reshape(2, -1)[order, 0]
        return self

    def stress_probability(self, returns: np.ndarray) -> float:
        """Filtered P(stress on the last day | the window), by the scaled forward recursion."""
        x = np.asarray(returns, dtype="float64") * SCALE
        dens = np.exp(-0.5 * (x[:, None] - self.means_) ** 2 / self.vars_) / np.sqrt(2 * np.pi * self.vars_)
        (t00, t01), (t10, t11) = self.transmat_.tolist()
        a0, a1 = (self.startprob_ * dens[0]).tolist()
        for d0, d1 in dens[1:].tolist():  # plain floats: ~20x faster than numpy for two states
            total = a0 + a1
            a0, a1 = (0.5, 0.5) if total <= 0 else (a0 / total, a1 / total)
            a0, a1 = (a0 * t00 + a1 * t10) * d0, (a0 * t01 + a1 * t11) * d1
        total = a0 + a1
        return 0.5 if total <= 0 else a1 / total
