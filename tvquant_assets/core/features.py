"""Per-symbol features on trailing windows, vectorized over columns (symbols).

Every function takes 2-d arrays ``(rows = time oldest first, columns = symbols)`` holding one date's
trailing window and returns one value per column. NaN policy, the same everywhere: a NaN bar or return
is skipped (never filled with a number that did not trade); a column with fewer than ``min_obs`` usable
observations gets NaN. Closes passed here are as-of closes (last bar <= row), so a gap does not create
a return of its own.

Definitions (``r`` = simple daily returns, ``p`` = as-of closes, ``n`` = usable observations):

- momentum: ``p[-1] / p[0] - 1`` (the caller picks the window and the skip).
- volatility: ``std(r, ddof=1) * sqrt(252)``; stability = ``1 / volatility``.
- permutation entropy (Bandt-Pompe, order ``m``, delay 1) of ``r``: Shannon entropy of the ordinal
  patterns of ``m`` consecutive returns (windows holding a NaN are skipped; ties ranked by position),
  divided by ``log(m!)``: 0 = one pattern only (perfectly regular), 1 = all patterns equally likely.
- Kaufman efficiency ratio: ``|p[-1] - p[0]| / sum |p[i] - p[i-1]|``: 1 = straight line, ~0 = noise;
  NaN when the price never moved.
- Hurst exponent (scaling of lagged differences): ``std(log p[i+k] - log p[i])`` grows like ``k^H``;
  ``H`` = least-squares slope of ``log std`` on ``log k`` for ``k = 1..max_lag``. 0.5 random walk,
  > 0.5 trending, < 0.5 mean reverting.
- skew, kurtosis: population (biased) moments of ``r``: ``m3 / m2^1.5`` and excess ``m4 / m2^2 - 3``,
  as ``scipy.stats.skew`` / ``kurtosis`` with their defaults.
- CVaR 5 %: the mean of the worst ``ceil(0.05 * n)`` returns, sign flipped (a positive loss).
- liquidity: mean of ``close * volume`` (value traded); NaN when the source has no volume.
- RSI (Cutler, SMA form, so it depends only on the window, not on where history starts):
  ``100 - 100 / (1 + mean(gains) / mean(losses))`` over the last ``n`` returns; 100 when nothing fell.
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np

ANNUALIZATION = 252


def _quiet(fn):
    """All-NaN columns are expected here (they become NaN): silence numpy's nan-function warnings."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)
            return fn(*args, **kwargs)

    return wrapper


def _std(x: np.ndarray, ddof: int) -> np.ndarray:
    """Column std skipping NaN (the plain numpy path when there is none: 5x faster)."""
    return np.std(x, axis=0, ddof=ddof) if not np.isnan(x).any() else np.nanstd(x, axis=0, ddof=ddof)


def _mean(x: np.ndarray) -> np.ndarray:
    return np.mean(x, axis=0) if not np.isnan(x).any() else np.nanmean(x, axis=0)


def _count(x: np.ndarray) -> np.ndarray:
    return (~np.isnan(x)).sum(axis=0)


def _mask(values: np.ndarray, ok: np.ndarray) -> np.ndarray:
    return np.where(ok, values, np.nan)


def momentum(closes: np.ndarray) -> np.ndarray:
    """``closes[-1] / closes[0] - 1`` per column (NaN when either end is NaN or not positive)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        m = closes[-1] / closes[0] - 1.0
    return np.where(np.isfinite(m), m, np.nan)


@_quiet
def volatility(returns: np.ndarray, min_obs: int = 2) -> np.ndarray:
    """Annualized standard deviation (ddof 1) of the non-NaN returns of each column."""
    n = _count(returns)
    with np.errstate(invalid="ignore", divide="ignore"):
        vol = _std(returns, 1) * math.sqrt(ANNUALIZATION) if returns.size else \
            np.full(returns.shape[1], np.nan)
    return _mask(vol, n >= max(2, min_obs))


def stability(returns: np.ndarray, min_obs: int = 2) -> np.ndarray:
    """``1 / volatility`` (NaN for a zero or unknown volatility)."""
    vol = volatility(returns, min_obs)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(vol > 0, 1.0 / vol, np.nan)


def permutation_entropy(returns: np.ndarray, order: int = 3, min_obs: int = 2) -> np.ndarray:
    """Normalized permutation entropy of each column (module docstring)."""
    rows, cols = returns.shape
    out = np.full(cols, np.nan)
    if rows < order:
        return out
    windows = np.stack([returns[i:rows - order + 1 + i] for i in range(order)], axis=-1)  # (w, cols, m)
    valid = ~np.isnan(windows).any(axis=-1)
    ranks = np.argsort(np.argsort(np.where(np.isnan(windows), 0.0, windows), axis=-1, kind="stable"),
                       axis=-1, kind="stable")
    code = (ranks * order ** np.arange(order)).sum(axis=-1)  # one integer per ordinal pattern
    n_codes = order ** order
    norm = math.log(math.factorial(order))
    for j in range(cols):
        c = code[valid[:, j], j]
        if c.size < max(1, min_obs - order + 1):
            continue
        p = np.bincount(c, minlength=n_codes)
        p = p[p > 0] / c.size
        out[j] = float(-(p * np.log(p)).sum() / norm)
    return out


def efficiency_ratio(closes: np.ndarray, min_obs: int = 2) -> np.ndarray:
    """Kaufman efficiency ratio of each column of as-of closes (NaN rows skipped)."""
    out = np.full(closes.shape[1], np.nan)
    if closes.shape[0] >= max(2, min_obs) and not np.isnan(closes).any():  # the usual case, vectorized
        path = np.abs(np.diff(closes, axis=0)).sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(path > 0, np.abs(closes[-1] - closes[0]) / path, np.nan)
    for j in range(closes.shape[1]):
        p = closes[~np.isnan(closes[:, j]), j]
        if p.size < max(2, min_obs):
            continue
        path = np.abs(np.diff(p)).sum()
        if path > 0:
            out[j] = abs(p[-1] - p[0]) / path
    return out


@_quiet
def hurst(closes: np.ndarray, max_lag: int = 20, min_obs: int = 2) -> np.ndarray:
    """Hurst exponent from the scaling of lagged log-price differences (module docstring)."""
    rows, cols = closes.shape
    out = np.full(cols, np.nan)
    lags = np.arange(1, min(max_lag, rows // 2) + 1)
    if lags.size < 2:
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        logp = np.log(np.where(closes > 0, closes, np.nan))
        spread = np.stack([_std(logp[k:] - logp[:-k], 0) for k in lags])  # (lags, cols)
        y = np.log(spread)
    x = np.log(lags.astype("float64"))
    ok = np.isfinite(y).all(axis=0) & (_count(closes) >= max(min_obs, 2 * lags[-1]))
    if ok.any():
        xc = x - x.mean()
        out[ok] = (xc[:, None] * (y[:, ok] - y[:, ok].mean(axis=0))).sum(axis=0) / (xc ** 2).sum()
    return out


@_quiet
def _central_moments(returns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore"):
        d = returns - _mean(returns)
        d2 = d * d
        return _mean(d2), _mean(d2 * d), _mean(d2 * d2)


@_quiet
def skew(returns: np.ndarray, min_obs: int = 3) -> np.ndarray:
    """Population skewness ``m3 / m2^1.5`` (NaN for a constant column)."""
    if not returns.size:
        return np.full(returns.shape[1], np.nan)
    m2, m3, _ = _central_moments(returns)
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(m2 > 0, m3 / m2 ** 1.5, np.nan)
    return _mask(s, _count(returns) >= max(3, min_obs))


@_quiet
def kurtosis(returns: np.ndarray, min_obs: int = 4) -> np.ndarray:
    """Population excess kurtosis ``m4 / m2^2 - 3`` (NaN for a constant column)."""
    if not returns.size:
        return np.full(returns.shape[1], np.nan)
    m2, _, m4 = _central_moments(returns)
    with np.errstate(divide="ignore", invalid="ignore"):
        k = np.where(m2 > 0, m4 / m2 ** 2 - 3.0, np.nan)
    return _mask(k, _count(returns) >= max(4, min_obs))


def cvar(returns: np.ndarray, alpha: float = 0.05, min_obs: int = 1) -> np.ndarray:
    """Expected shortfall at ``alpha`` as a positive loss: ``-mean`` of the worst ``ceil(alpha * n)``."""
    n = _count(returns)
    srt = np.sort(returns, axis=0)  # NaN sorts last
    k = np.maximum(1, np.ceil(alpha * n - 1e-9)).astype("int64")
    csum = np.cumsum(np.nan_to_num(srt), axis=0)
    out = np.full(returns.shape[1], np.nan)
    ok = n >= max(1, min_obs)
    if ok.any() and returns.shape[0]:
        cols = np.flatnonzero(ok)
        out[cols] = -csum[k[cols] - 1, cols] / k[cols]
    return out


@_quiet
def liquidity(closes: np.ndarray, volumes: np.ndarray | None, min_obs: int = 1) -> np.ndarray:
    """Mean value traded ``close * volume`` over the window (NaN without volume)."""
    if volumes is None:
        return np.full(closes.shape[1], np.nan)
    value = closes * volumes
    with np.errstate(invalid="ignore"):
        mean = np.nanmean(value, axis=0) if value.size else np.full(closes.shape[1], np.nan)
    return _mask(mean, _count(value) >= max(1, min_obs))


@_quiet
def rsi(returns: np.ndarray, min_obs: int = 2) -> np.ndarray:
    """Cutler's RSI in [0, 100] of the non-NaN returns of each column (module docstring)."""
    if not returns.size:
        return np.full(returns.shape[1], np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.nanmean(np.where(returns > 0, returns, np.where(np.isnan(returns), np.nan, 0.0)), axis=0)
        loss = np.nanmean(np.where(returns < 0, -returns, np.where(np.isnan(returns), np.nan, 0.0)), axis=0)
        value = np.where(loss > 0, 100.0 - 100.0 / (1.0 + gain / loss), np.where(gain > 0, 100.0, 50.0))
    return _mask(value, _count(returns) >= max(2, min_obs))
