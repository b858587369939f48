"""Performance metrics of a daily return series, whole-sample and expanding (every prefix in one pass).

Conventions
-----------
* Equity starts at 1 before the first return; ``total_return = equity - 1``.
* ``ann_return`` is geometric: ``equity ** (ppy / n) - 1`` (-1 once equity reaches 0 or below).
* ``ann_vol`` uses the sample standard deviation (ddof=1, as skfolio); NaN for fewer than 2 days.
* ``sharpe`` is ``mean / std * sqrt(ppy)`` with a zero risk-free rate; NaN when std is 0 or undefined.
* ``max_drawdown`` is a negative number (or 0): the worst ``equity / running_peak - 1``, where the
  running peak includes the starting equity of 1, so a loss on the first day is a drawdown.
"""

from __future__ import annotations

import numpy as np

METRICS = ("n_days", "equity", "total_return", "ann_return", "ann_vol", "sharpe", "max_drawdown")


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
    }


def _ann_return(equity: np.ndarray, n: np.ndarray, periods_per_year: int) -> np.ndarray:
    # A wiped-out book annualizes to -100%; a fractional power of a negative number would be NaN.
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.power(np.maximum(equity, 0.0), periods_per_year / n) - 1.0
    return np.where(equity > 0, out, -1.0)
