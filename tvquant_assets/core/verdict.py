"""The tournament's verdict: does a third-party engine's candidate beat the custom engine's?

For each candidate of another engine and its custom counterpart (same profile), over the month to D and the
trailing twelve months: both realized Sharpe ratios, the engine's stability and deflated Sharpe, and a paired
test of the Sharpe difference on the same days (Ledoit & Wolf, 2008, "Robust performance hypothesis testing
with the Sharpe ratio", J. Empirical Finance 15: the delta method on the first two moments of both series
with a heteroskedasticity- and autocorrelation-consistent covariance — Bartlett kernel,
``statsmodels.stats.sandwich_covariance.S_hac_simple``). Verdict at ``level``: "better" or "worse" when
the test rejects equal Sharpe ratios in that direction, "no difference" otherwise, "insufficient data" below
``min_days`` common days. Everything uses returns stamped <= D.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy.special import ndtr
from statsmodels.stats.sandwich_covariance import S_hac_simple

from tvquant_assets.core.frames import frame_of
from tvquant_assets.core.metrics import STABILITY_WINDOW, deflated_sharpe, rolling_sharpe

WINDOWS = ("month", "12m")
VERDICT_COLUMNS = {
    "window": "string", "engine": "string", "candidate": "string", "counterpart": "string",
    "window_start": "string", "n_days": "int64", "sharpe": "float64", "counterpart_sharpe": "float64",
    "sharpe_diff": "float64", "p_value": "float64", "stability": "float64", "deflated_sharpe": "float64",
    "verdict": "string",
}


def hac_lags(n: int) -> int:
    """Newey–West's rule of thumb for the Bartlett kernel's bandwidth: floor(4 (n/100)^(2/9))."""
    return int(math.floor(4.0 * (n / 100.0) ** (2.0 / 9.0))) if n > 0 else 0


def sharpe_difference_test(a: np.ndarray, b: np.ndarray, lags: int | None = None) -> tuple[float, float, float]:
    """Per-period Sharpe difference ``SR(a) - SR(b)`` of two paired return series, its standard error and
    the two-sided p-value of "equal Sharpe ratios" (Ledoit & Wolf 2008, HAC delta method).

    ``lags`` is the Bartlett bandwidth (default :func:`hac_lags`; 0 gives the i.i.d. version). Identical
    series give (0, 0, 1). NaN when either series has no variance or fewer than 3 days.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = a.size
    if n != b.size:
        raise ValueError(f"paired series of different lengths: {n} and {b.size}")
    if n < 3:
        return np.nan, np.nan, np.nan
    mu = np.array([a.mean(), b.mean()])
    gamma = np.array([(a * a).mean(), (b * b).mean()])
    var = gamma - mu * mu
    if not (var > 0).all():
        return np.nan, np.nan, np.nan
    diff = float(mu[0] / math.sqrt(var[0]) - mu[1] / math.sqrt(var[1]))
    if np.array_equal(a, b):
        return 0.0, 0.0, 1.0
    grad = np.array([gamma[0] / var[0] ** 1.5, -gamma[1] / var[1] ** 1.5,
                     -mu[0] / (2.0 * var[0] ** 1.5), mu[1] / (2.0 * var[1] ** 1.5)])
    moments = np.column_stack([a - mu[0], b - mu[1], a * a - gamma[0], b * b - gamma[1]])
    psi = S_hac_simple(moments, nlags=hac_lags(n) if lags is None else lags) / n  # a sum: the mean
    se2 = float(grad @ psi @ grad) / n
    if not se2 > 0:
        return diff, 0.0, 1.0 if diff == 0 else 0.0
    se = math.sqrt(se2)
    return diff, se, float(2.0 * ndtr(-abs(diff) / se))


def counterparts(candidates: pd.DataFrame) -> dict[str, str]:
    """``{candidate: custom candidate}`` for every candidate of an engine other than custom (and the
    adaptive meta-candidate) whose profile a custom candidate also runs (the first such, in manifest order)."""
    custom: dict[str, str] = {}
    for _, row in candidates.iterrows():
        if row["engine"] == "custom":
            custom.setdefault(row["profile"], row["candidate"])
    return {row["candidate"]: custom[row["profile"]] for _, row in candidates.iterrows()
            if row["engine"] not in ("custom", "adaptive") and row["profile"] in custom}


def window_start(d: pd.Timestamp, window: str) -> pd.Timestamp:
    """First day of ``window`` ending at ``d``: the calendar month of ``d``, or the twelve months to ``d``."""
    if window == "month":
        return d.replace(day=1)
    if window == "12m":
        return d - pd.DateOffset(years=1) + pd.Timedelta(days=1)
    raise ValueError(f"unknown verdict window {window!r}; choose from {', '.join(WINDOWS)}")


def verdict(returns: pd.DataFrame, pairs: dict[str, str], engines: dict[str, str], d: pd.Timestamp,
            periods_per_year: int, level: float = 0.05, min_days: int = 15) -> pd.DataFrame:
    """The verdict frame of ``d``.

    Parameters
    ----------
    returns : DataFrame
        Daily candidate returns (index trading days, columns candidates); only rows <= ``d`` are used.
    pairs : dict
        ``{candidate: custom counterpart}`` (:func:`counterparts`).
    engines : dict
        ``{candidate: engine}``.
    """
    if not isinstance(returns.index, pd.DatetimeIndex):  # an empty frame: no returns yet
        returns = returns.set_axis(pd.DatetimeIndex(returns.index), axis=0)
    past = returns.loc[returns.index <= d]
    root = math.sqrt(periods_per_year)
    rows = []
    for window in WINDOWS:
        start = window_start(d, window)
        span = past.loc[past.index >= start]
        trial = np.array([_sharpe(span[c].to_numpy(dtype=float)) for c in span.columns]) if len(span) else []
        for cand, custom in pairs.items():
            if cand not in span.columns or custom not in span.columns:
                continue
            both = span[[cand, custom]].dropna()
            a, b = both[cand].to_numpy(dtype=float), both[custom].to_numpy(dtype=float)
            n = a.size
            diff, _, p = sharpe_difference_test(a, b) if n >= 3 else (np.nan, np.nan, np.nan)
            if n < min_days or not np.isfinite(p):
                call = "insufficient data"
            elif p < level:
                call = "better" if diff > 0 else "worse"
            else:
                call = "no difference"
            rolling = rolling_sharpe(a, STABILITY_WINDOW, periods_per_year)
            ok = rolling[np.isfinite(rolling)]
            rows.append({
                "window": window, "engine": engines.get(cand, ""), "candidate": cand, "counterpart": custom,
                "window_start": str(start.date()), "n_days": n, "sharpe": _sharpe(a) * root,
                "counterpart_sharpe": _sharpe(b) * root, "sharpe_diff": diff * root if np.isfinite(diff) else np.nan,
                "p_value": p, "stability": float(ok.std(ddof=1)) if ok.size >= 2 else np.nan,
                "deflated_sharpe": deflated_sharpe(a, np.asarray(trial)), "verdict": call,
            })
    return frame_of(rows, VERDICT_COLUMNS)


def _sharpe(r: np.ndarray) -> float:
    if r.size < 2:
        return np.nan
    sd = r.std(ddof=1)
    return float(r.mean() / sd) if sd > 0 else np.nan
