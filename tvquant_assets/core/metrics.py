"""Performance metrics of a daily return series, whole-sample and expanding (every prefix in one pass).

Conventions
-----------
* Equity starts at 1 before the first return; ``total_return = equity - 1``.
* ``ann_return`` is geometric: ``equity ** (ppy / n) - 1`` (-1 once equity reaches 0 or below).
* ``ann_vol`` uses the sample standard deviation (ddof=1, as skfolio); NaN for fewer than 2 days.
* ``sharpe`` is ``mean / std * sqrt(ppy)`` with a zero risk-free rate; NaN when std is 0 or undefined.
* ``max_drawdown`` is a negative number (or 0): the worst ``equity / running_peak - 1``, where the
  running peak includes the starting equity of 1, so a loss on the first day is a drawdown.
* ``sortino`` is ``mean / downside deviation * sqrt(ppy)``, the downside deviation being
  ``sqrt(mean(min(r, 0)^2))`` (target 0); ``calmar`` is ``ann_return / |max_drawdown|``.
* ``hit_rate`` is the share of positive days among days with a non-zero return (days in cash do not count).
* ``stability`` is the standard deviation of the rolling ``window``-day annualized Sharpe ratio: low means
  the performance did not come from one lucky stretch. NaN until two full windows.
* ``var_95`` / ``cvar_95`` are historical, reported as positive losses: ``-quantile(r, 5%)`` and minus the
  mean of the returns at or below that quantile.
* Against a benchmark (``relative``, both series on the same days, the benchmark's return of a day the
  portfolio trades): ``excess_return`` = total return - the benchmark's; ``beta`` = cov(r, b) / var(b)
  (ddof=1); ``alpha`` = (mean(r) - beta mean(b)) ppy, Jensen's with a zero risk-free rate; ``tracking_error``
  = std(r - b) sqrt(ppy); ``information_ratio`` = mean(r - b) / std(r - b) sqrt(ppy); ``up_capture`` /
  ``down_capture`` = mean(r) / mean(b) over the days the benchmark rose / fell (1 = moves with it).
* Across candidates: the deflated Sharpe ratio (Bailey & Lopez de Prado, 2014) and the probability of
  backtest overfitting by combinatorially symmetric cross-validation (Bailey et al., 2017).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.special import ndtr, ndtri  # scipy.stats.norm costs ~100 us a call in the demo's backtest

METRICS = ("n_days", "equity", "total_return", "ann_return", "ann_vol", "sharpe", "max_drawdown")
EXTRA_METRICS = ("sortino", "calmar", "hit_rate", "stability")
STABILITY_WINDOW = 63
_EULER_GAMMA = 0.5772156649015329


def summary(returns: np.ndarray, periods_per_year: int) -> dict[str, float]:
    """Metrics over the whole series, computed directly (the reference for ``expanding_metrics``).

    Parameters
    ----------
    returns : ndarray (T,)
        Simple periodic returns.
    periods_per_year : int
        Periods in a year (252 for trading days).

    Returns
    -------
    dict
        The keys of ``METRICS``.
    """
    r = np.asarray(returns, dtype=float)
    n = r.size
    if n == 0:
        return {"n_days": 0, "equity": 1.0, "total_return": 0.0, "ann_return": np.nan, "ann_vol": np.nan,
                "sharpe": np.nan, "max_drawdown": 0.0}
    equity_path = np.cumprod(1.0 + r)
    equity = float(equity_path[-1])
    peak = np.maximum(np.maximum.accumulate(equity_path), 1.0)
    std = float(np.std(r, ddof=1)) if n > 1 else np.nan
    return {
        "n_days": n,
        "equity": equity,
        "total_return": equity - 1.0,
        "ann_return": float(_ann_return(np.array([equity]), np.array([n]), periods_per_year)[0]),
        "ann_vol": std * np.sqrt(periods_per_year),
        "sharpe": float(np.mean(r)) / std * np.sqrt(periods_per_year) if std > 0 else np.nan,
        "max_drawdown": float(min((equity_path / peak - 1.0).min(), 0.0)),
    }


def expanding_metrics(returns: np.ndarray, turnover: np.ndarray, periods_per_year: int) -> dict[str, np.ndarray]:
    """Metrics over ``returns[0 : t + 1]`` for every ``t``, in one vectorized pass.

    Every output at ``t`` depends only on ``returns[: t + 1]`` and is bit-identical to the last
    element of the same call on that prefix (cumulative sums, products and extrema are sequential),
    which keeps a range backtest equal to per-date backtests.

    Parameters
    ----------
    returns : ndarray (T,)
        Simple periodic returns.
    turnover : ndarray (T,)
        Per-period turnover; reported as its running sum.
    periods_per_year : int
        Periods in a year.

    Returns
    -------
    dict of ndarray (T,)
        ``METRICS`` plus ``turnover`` (cumulative).
    """
    r = np.asarray(returns, dtype=float)
    n = np.arange(1, r.size + 1)
    equity = np.cumprod(1.0 + r)
    peak = np.maximum(np.maximum.accumulate(equity), 1.0)
    max_dd = np.minimum(np.minimum.accumulate(equity / peak - 1.0), 0.0)

    # Shift by the first value before summing squares: a constant series gets exactly zero variance
    # instead of rounding noise (which would make Sharpe explode), and the shift uses no future data.
    x = r - r[0] if r.size else r
    s1 = np.cumsum(x)
    s2 = np.cumsum(x * x)
    with np.errstate(invalid="ignore", divide="ignore"):
        var = np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)
        var[n < 2] = np.nan
        std = np.sqrt(var)
        mean = s1 / n + (r[0] if r.size else 0.0)
        sharpe = np.where(std > 0, mean / std, np.nan) * np.sqrt(periods_per_year)
    return {
        "n_days": n,
        "equity": equity,
        "total_return": equity - 1.0,
        "ann_return": _ann_return(equity, n, periods_per_year),
        "ann_vol": std * np.sqrt(periods_per_year),
        "sharpe": sharpe,
        "max_drawdown": max_dd,
        "turnover": np.cumsum(np.asarray(turnover, dtype=float)),
        **_expanding_extras(r, n, mean, _ann_return(equity, n, periods_per_year), max_dd, periods_per_year),
    }


def _expanding_extras(r: np.ndarray, n: np.ndarray, mean: np.ndarray, ann: np.ndarray, max_dd: np.ndarray,
                      periods_per_year: int, window: int = STABILITY_WINDOW) -> dict[str, np.ndarray]:
    root = np.sqrt(periods_per_year)
    with np.errstate(invalid="ignore", divide="ignore"):
        down = np.sqrt(np.cumsum(np.minimum(r, 0.0) ** 2) / n)
        sortino = np.where(down > 0, mean / down, np.nan) * root
        calmar = np.where(max_dd < 0, ann / -max_dd, np.nan)
        active = np.cumsum(r != 0.0)
        hit = np.where(active > 0, np.cumsum(r > 0.0) / np.maximum(active, 1), np.nan)
        rolling = rolling_sharpe(r, window, periods_per_year)
        ok = ~np.isnan(rolling)
        k = np.cumsum(ok)
        x = np.where(ok, rolling, 0.0)
        first = rolling[ok][0] if ok.any() else 0.0  # shifted sums, as for the volatility above
        x = np.where(ok, x - first, 0.0)
        s1, s2 = np.cumsum(x), np.cumsum(x * x)
        var = np.maximum(s2 - s1 * s1 / np.maximum(k, 1), 0.0) / (k - 1)
        stability = np.where(k >= 2, np.sqrt(var), np.nan)
    return {"sortino": sortino, "calmar": calmar, "hit_rate": hit, "stability": stability}


def rolling_sharpe(returns: np.ndarray, window: int, periods_per_year: int) -> np.ndarray:
    """Annualized Sharpe ratio of each trailing ``window`` of returns (NaN before a full window, or when
    the window's volatility is 0). Element ``t`` uses ``returns[t - window + 1 : t + 1]`` only."""
    r = np.asarray(returns, dtype=float)
    out = np.full(r.size, np.nan)
    if r.size < window or window < 2:
        return out
    view = np.lib.stride_tricks.sliding_window_view(r, window)
    mu = view.mean(axis=1)
    sd = view.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[window - 1 :] = np.where(sd > 1e-15, mu / sd, np.nan) * np.sqrt(periods_per_year)
    return out


RELATIVE_METRICS = ("bench_total_return", "excess_return", "alpha", "beta", "tracking_error", "information_ratio",
                    "up_capture", "down_capture")


def relative(returns: np.ndarray, bench: np.ndarray, periods_per_year: int) -> dict[str, float]:
    """``RELATIVE_METRICS`` of ``returns`` against ``bench`` (same length, same days; module docstring)."""
    r, b = np.asarray(returns, dtype=float), np.asarray(bench, dtype=float)
    nan = float("nan")
    out = dict.fromkeys(RELATIVE_METRICS, nan)
    if r.size == 0:
        return {**out, "bench_total_return": 0.0, "excess_return": 0.0}
    bench_total = float(np.prod(1.0 + b) - 1.0)
    out["bench_total_return"] = bench_total
    out["excess_return"] = float(np.prod(1.0 + r) - 1.0) - bench_total
    if r.size > 1:
        var_b = float(np.var(b, ddof=1))
        if var_b > 0:
            beta = float(np.cov(r, b, ddof=1)[0, 1]) / var_b
            out["beta"] = beta
            out["alpha"] = (float(np.mean(r)) - beta * float(np.mean(b))) * periods_per_year
        active = r - b
        te = float(np.std(active, ddof=1))
        out["tracking_error"] = te * math.sqrt(periods_per_year)
        if te > 0:
            out["information_ratio"] = float(np.mean(active)) / te * math.sqrt(periods_per_year)
    for key, days in (("up_capture", b > 0), ("down_capture", b < 0)):
        if days.any():
            out[key] = float(np.mean(r[days])) / float(np.mean(b[days]))
    return out


def tail_risk(returns: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """Historical VaR and CVaR at ``level`` as positive losses (NaN for an empty series)."""
    r = np.asarray(returns, dtype=float)
    if r.size == 0:
        return np.nan, np.nan
    q = float(np.quantile(r, 1.0 - level))
    return -q, -float(r[r <= q].mean())


def probabilistic_sharpe(sr: float, n_obs: int, skew: float, kurtosis: float, benchmark: float = 0.0) -> float:
    """Probability that the true per-period Sharpe ratio exceeds ``benchmark`` given the estimate ``sr``
    from ``n_obs`` returns with that skewness and (non-excess) kurtosis."""
    if n_obs < 2 or not np.isfinite(sr):
        return np.nan
    denom = 1.0 - skew * sr + (kurtosis - 1.0) / 4.0 * sr * sr
    if not denom > 0:
        return np.nan
    return float(ndtr((sr - benchmark) * math.sqrt(n_obs - 1) / math.sqrt(denom)))


def expected_max_sharpe(trials_variance: float, n_trials: int) -> float:
    """Expected maximum of ``n_trials`` per-period Sharpe ratios under the null (all true Sharpes 0)."""
    if n_trials < 2 or not trials_variance > 0:
        return 0.0
    z1 = ndtri(1.0 - 1.0 / n_trials)
    z2 = ndtri(1.0 - 1.0 / (n_trials * math.e))
    return math.sqrt(trials_variance) * ((1.0 - _EULER_GAMMA) * z1 + _EULER_GAMMA * z2)


def deflated_sharpe(returns: np.ndarray, trial_sharpes: np.ndarray) -> float:
    """Deflated Sharpe ratio of one return series among the per-period Sharpe ratios of all trials.

    The benchmark is the expected maximum Sharpe of that many unskilled trials with the trials'
    observed variance; with one trial it is the probabilistic Sharpe ratio against 0.
    """
    r = np.asarray(returns, dtype=float)
    trials = np.asarray(trial_sharpes, dtype=float)
    trials = trials[np.isfinite(trials)]
    if r.size < 3:
        return np.nan
    sd = r.std(ddof=1)
    if not sd > 0:
        return np.nan
    sr = r.mean() / sd
    z = (r - r.mean()) / r.std(ddof=0)
    skew, kurt = float((z**3).mean()), float((z**4).mean())
    var = float(trials.var(ddof=1)) if trials.size > 1 else 0.0
    return probabilistic_sharpe(sr, r.size, skew, kurt, expected_max_sharpe(var, trials.size))


def pbo_cscv(returns: np.ndarray, blocks: int = 8) -> float:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    ``returns`` is (T, N): one column per candidate. The rows are cut into ``blocks`` contiguous groups
    (the last ``T mod blocks`` rows dropped); for every half of the groups as in-sample, the candidate with
    the best in-sample Sharpe ratio is ranked out-of-sample; PBO is the share of splits where it ranks at or
    below the median (logit <= 0). NaN with fewer than 2 candidates or 2 rows per group.
    """
    m = np.asarray(returns, dtype=float)
    if m.ndim != 2 or blocks < 2 or blocks % 2:
        raise ValueError(f"pbo_cscv needs a (T, N) matrix and an even number of blocks >= 2, got {blocks}")
    T, N = m.shape
    size = T // blocks
    if N < 2 or size < 2:
        return np.nan
    g = m[: size * blocks].reshape(blocks, size, N)
    s1, s2 = g.sum(axis=1), (g * g).sum(axis=1)  # per block and candidate
    combos = np.array(list(itertools.combinations(range(blocks), blocks // 2)))
    is_mask = np.zeros((len(combos), blocks))
    np.put_along_axis(is_mask, combos, 1.0, axis=1)

    def sharpe(mask: np.ndarray) -> np.ndarray:
        n = size * blocks // 2
        a, b = mask @ s1, mask @ s2
        var = np.maximum(b - a * a / n, 0.0) / (n - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(var > 0, (a / n) / np.sqrt(var), 0.0)

    ins, oos = sharpe(is_mask), sharpe(1.0 - is_mask)
    best = ins.argmax(axis=1)
    chosen = oos[np.arange(len(combos)), best]
    rank = (oos < chosen[:, None]).sum(axis=1) + 0.5 * ((oos == chosen[:, None]).sum(axis=1) - 1) + 1.0
    omega = rank / (N + 1)
    logit = np.log(omega / (1.0 - omega))
    return float((logit <= 0).mean())


def _ann_return(equity: np.ndarray, n: np.ndarray, periods_per_year: int) -> np.ndarray:
    # A wiped-out book annualizes to -100%; a fractional power of a negative number would be NaN.
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.power(np.maximum(equity, 0.0), periods_per_year / n) - 1.0
    return np.where(equity > 0, out, -1.0)
