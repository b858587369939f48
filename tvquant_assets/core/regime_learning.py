"""Walk-forward learning of the regime label: turbulent/crisis thresholds by least regret, composite weights by
non-negative least squares. Pure numpy on arrays the regime core hands over (all stamped <= the fit day).

Profile proxies (what a label's profile would have earned, computed from prices alone, so the regime stage
needs nothing downstream of it): ``risk_on`` is the equal-weight proxy of D's universe; ``defensive`` holds
the same names at inverse-volatility weights, ``1 / std`` of each name's last ``window`` returns <= t,
applied to the returns of t + 1 (rebalanced daily). :data:`DEFENSIVE_PROFILES` map to ``defensive``, every
other profile to ``risk_on``.

Thresholds: decisions every ``horizon`` proxy days, the last one ``horizon + 1`` days before the fit day (so
its whole outcome is known before the fit day: nothing stamped on or after the fit day is read), back over
``learn_window`` days. For each pair of the grid the
past scores are relabelled, mapped to profiles and proxies; a decision holds its proxy for ``horizon`` days
and a change of proxy costs ``switch_cost``::

    adaptive = sum_j G_{p_j}(t_j) + n_switches * log(1 - switch_cost)     G_p(t) = sum_{s=t+1}^{t+h} log(1 + r_p(s))
    regret   = max_p sum_j G_p(t_j) - adaptive

The pair with the least regret wins (ties: nearest the manifest's turbulent threshold, then the smaller).

Weights (``regime.weights: auto``): on every day t of the same window (outcomes before the fit day), the
target is the next ``horizon`` returns' realized volatility over the long-window volatility of t (the vol ratio
the label will have to call). The composite keeps the vol score at coefficient 1, so the weights are the
NNLS fit of the centred ``target - vol_score`` on the centred signals (``hmm_stress - 0.5``,
``vol_clustering``, ``1 - wavelet_entropy``; NaN counts 0), capped at :data:`MAX_WEIGHT`: the composite is
then the least-squares forecast of the coming vol ratio the signals can improve with non-negative weights.
"""

from __future__ import annotations

import warnings

import numpy as np

DEFENSIVE_PROFILES = frozenset({"min_variance", "risk_parity", "hrp", "herc", "market_neutral"})
PROXIES = ("risk_on", "defensive")
MAX_WEIGHT = 10.0
MIN_DECISIONS = 3
MIN_SAMPLES = 42
SIGNALS = ("hmm", "clustering", "spectral")


def proxy_of(profile: str) -> int:
    """Index in :data:`PROXIES` of the proxy standing in for ``profile``."""
    return 1 if profile in DEFENSIVE_PROFILES else 0


def inverse_vol_returns(returns: np.ndarray, window: int) -> np.ndarray:
    """Daily returns of the inverse-volatility book (rows = days, columns = names; NaN = no return).

    Row t + 1 is weighted by ``1 / std`` of each name's returns over rows ``[t - window + 1, t]`` (at least
    ``max(2, window // 2)`` of them present), renormalized over the names with a return on t + 1; NaN when
    none qualifies. Each window is summed on its own (no running sums), so a row does not depend on where
    the array starts.
    """
    from numpy.lib.stride_tricks import sliding_window_view

    r = np.asarray(returns, dtype="float64")
    n, m = r.shape
    padded = np.vstack([np.full((window - 1, m), np.nan), r])
    windows = sliding_window_view(padded, window, axis=0)  # (n, m, window): rows t - window + 1 .. t
    cnt = (~np.isnan(windows)).sum(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows
        std = np.nanstd(windows, axis=2, ddof=1)
        inv = np.where((cnt >= max(2, window // 2)) & (std > 0), 1.0 / std, 0.0)
    ok = ~np.isnan(r)
    out = np.full(n, np.nan)
    w = inv[:-1] * ok[1:]  # weights of row t applied to row t + 1
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[1:] = np.where(total > 0, (w * np.where(ok, r, 0.0)[1:]).sum(axis=1) / total, np.nan)
    return out


def decision_days(fit: int, first: int, horizon: int, learn_window: int) -> np.ndarray:
    """Decision indices ``fit - horizon - 1, fit - 2 horizon - 1, ...`` not before ``max(first, fit - horizon
    - learn_window)``, ascending: every outcome ends before the fit day."""
    last = fit - horizon - 1
    lo = max(first, last - learn_window + 1)
    return np.arange(last, lo - 1, -horizon)[::-1] if last >= lo else np.zeros(0, dtype="int64")


def holding_log_returns(proxy_returns: np.ndarray, days: np.ndarray, horizon: int) -> np.ndarray:
    """``G[p, j] = sum_{s = t_j + 1}^{t_j + horizon} log(1 + r_p(s))`` (NaN returns count 0)."""
    logs = np.log1p(np.nan_to_num(np.asarray(proxy_returns, dtype="float64"), nan=0.0))
    return np.stack([logs[:, t + 1:t + horizon + 1].sum(axis=1) for t in days], axis=1) if len(days) else \
        np.zeros((logs.shape[0], 0))


def regrets(choices: np.ndarray, growth: np.ndarray, switch_cost: float) -> np.ndarray:
    """Regret of each row of ``choices`` (pairs x decisions, proxy indices) against ``growth`` (proxies x
    decisions): the best fixed proxy's total log return minus the switching book's (module docstring)."""
    best = float(growth.sum(axis=1).max())
    taken = np.take_along_axis(growth, choices.astype("int64"), 0)
    switches = (np.diff(choices, axis=1) != 0).sum(axis=1)
    return best - (taken.sum(axis=1) + switches * np.log1p(-switch_cost))


def pick(grid: list[float], regret: np.ndarray, current: float) -> int:
    """Index of the least regret (ties within 1e-12: nearest ``current``, then the smaller threshold)."""
    low = float(np.min(regret))
    tied = [i for i in range(len(grid)) if regret[i] <= low + 1e-12]
    return min(tied, key=lambda i: (abs(grid[i] - current), grid[i]))


def future_vol_ratio(x: np.ndarray, vol_long: np.ndarray, days: np.ndarray, horizon: int) -> np.ndarray:
    """Realized volatility of the ``horizon`` returns after each t over ``vol_long`` of t (annualized alike;
    NaN without a positive ``vol_long``)."""
    out = np.full(days.size, np.nan)
    for j, t in enumerate(days):
        future = x[t + 1:t + horizon + 1]
        if future.size >= 2 and np.isfinite(vol_long[j]) and vol_long[j] > 0:
            out[j] = float(np.std(future, ddof=1) * np.sqrt(252)) / vol_long[j]
    return out


def fit_weights(vol_score: np.ndarray, signals: np.ndarray, target: np.ndarray) -> tuple[np.ndarray | None, str]:
    """(weights of :data:`SIGNALS` or None, status): NNLS of the centred ``target - vol_score`` on the centred
    signals (module docstring)."""
    from scipy.optimize import nnls

    S = np.nan_to_num(np.asarray(signals, dtype="float64"), nan=0.0)
    y = np.asarray(target, dtype="float64") - np.asarray(vol_score, dtype="float64")
    ok = np.isfinite(y) & np.isfinite(S).all(axis=1)
    if ok.sum() < MIN_SAMPLES:
        return None, f"too few samples ({int(ok.sum())} < {MIN_SAMPLES})"
    S, y = S[ok], y[ok]
    beta, _ = nnls(S - S.mean(axis=0), y - y.mean())
    return np.minimum(beta, MAX_WEIGHT), "fitted"
