"""numba kernel of the EVaR root (imported lazily, on the first EVaR: see
:func:`tvquant_assets.core.engines.risk_measures._evar_columns` for the method). One pass over a column
per step: the exponentials and the three sums the Newton step needs."""

from __future__ import annotations

import math

import numba
import numpy as np


@numba.njit(cache=True, nogil=True)
def _parts(x, s, c):
    t = math.exp(s)
    total = 0.0
    sx = 0.0
    sxx = 0.0
    for v in x:
        a = t * v
        if a < -700.0:
            a = -700.0
        e = math.exp(a)
        total += e
        sx += e * v
        sxx += e * v * v
    m = sx / total
    var = max(sxx / total - m * m, 0.0)
    lse = math.log(total)
    return t * m - lse + c, t * t * var, lse


@numba.njit(cache=True, nogil=True)
def roots(xt, c, lower, upper, s0, tol, max_iter):
    """Per row of ``xt`` (k x T, scaled losses in [-1, 0]): the last evaluated ``s`` (within ``tol`` of the
    root) and ``log sum exp(e^s x)`` there; ``state`` 0 solved, 1 infimum at z -> 0 (worst loss), 2 not
    converged."""
    k = xt.shape[0]
    out_s = np.empty(k)
    out_lse = np.empty(k)
    state = np.full(k, 2, dtype=np.int64)
    for j in range(k):
        x = xt[j]
        lo, hi, h_lo, h_hi = lower, upper, np.nan, np.nan
        s = s0[j]
        for _ in range(max_iter):
            h, dh, lse = _parts(x, s, c)
            out_s[j], out_lse[j] = s, lse
            if h == 0.0:
                state[j] = 0
                break
            if h < 0.0:
                if s >= upper:
                    state[j] = 1
                    break
                lo, h_lo = s, h
            else:
                hi, h_hi = s, h
            width = hi - lo
            newton = s - h / dh if dh > 0.0 else np.nan
            scale = tol * max(1.0, abs(s))
            if (math.isfinite(newton) and abs(newton - s) <= scale) or width <= scale:
                state[j] = 0
                break
            if math.isfinite(newton) and lo < newton < hi:
                nxt = newton
            elif math.isnan(h_hi) and not newton < hi:
                nxt = upper  # probe the top of the bracket
            else:
                secant = lo - h_lo * width / (h_hi - h_lo)  # false position (NaN until both ends are known)
                margin = 1e-2 * width
                nxt = secant if (math.isfinite(secant) and lo + margin < secant < hi - margin) else lo + 0.5 * width
            s = nxt
    return out_s, out_lse, state
