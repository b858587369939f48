"""Vectorized close-to-close portfolio simulator (one numba kernel, cached on disk; numpy at the boundary).

Conventions (shared by every simulator, see FACTS.md "cash mode"):

* ``returns[t]`` is the simple return of day ``t`` over day ``t-1``; it accrues on the weights held
  after day ``t-1``'s close trades, drifted by the returns in between.
* A target row trades at day ``t``'s close. Targets are sized on the pre-trade value ``V_t``; the cost
  ``cost_rate * sum|target - drifted| * V_t`` is paid from cash, so the post-trade value is
  ``V_t (1 - c_t)`` and the stored post-trade weights are ``target / (1 - c_t)`` (cash absorbs the cost).
* Cash ``1 - sum(weights)`` earns 0; before the first target the book is all cash.

* Partial rebalancing: with ``band > 0`` a name whose ``|target - drifted|`` is within the band keeps
  its drifted weight (no trade); the difference stays in cash. ``band = 0`` is a full rebalance.
* A name that is not ``tradable`` on a trade day (no price that day) keeps its drifted weight.
* Drift-triggered trading (``threshold > 0``, ours only): a target row trades only when
  ``sum_i |target_i - drifted_i|`` exceeds the threshold; ``SimResult.triggered`` marks those rows and
  ``pre_trade`` holds the book before each close's trade (the drift monitor's view).
* ``liquidate[t, i]`` marks a name that is gone (delisted / stale) on day ``t``: held, it is sold to cash at
  that close (valued at its last price, costs charged) and recorded in ``liquidations``; targets on it
  are forced to 0 while the mask stays set.
* Shorts are negative weights: their proceeds sit in cash; ``borrow_rate`` (per period) is charged on
  the short notional held over each period, paid from cash.

Turnover is ``sum_i |target_i - drifted_i|``: traded notional over pre-trade value, every traded dollar
counted once (buys plus sells). Moving the whole book from A to B is 2.0; the half-sum convention
("one-sided" buys-or-sells turnover) would report 1.0. Costs are ``cost_rate * turnover``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np


@dataclass(frozen=True)
class SimResult:
    """Per-day output of a simulation; all fractions are of the portfolio value.

    Attributes
    ----------
    returns : ndarray (T,)
        Net daily portfolio return (after costs paid at that day's close).
    weights : ndarray (T, N)
        Weights after that day's close trades (drifted weights on days without a trade).
    turnover : ndarray (T,)
        ``sum |target - drifted|`` on rebalance days, 0 elsewhere.
    costs : ndarray (T,)
        Cost paid at that day's close as a fraction of the pre-trade value.
    borrow : ndarray (T,) or None
        Borrow cost of shorts accrued over that day, as a fraction of the previous day's value.
    liquidations : tuple of (row, column, weight)
        Forced sales of names marked in ``liquidate``: the day, the name and the weight sold.
    triggered : ndarray (T,) of bool or None
        With a drift ``threshold``: the target rows whose drift exceeded it (the rows that traded).
    pre_trade : ndarray (T, N) or None
        With a drift ``threshold``: the drifted weights at each day's close before its trade.
    """

    returns: np.ndarray
    weights: np.ndarray
    turnover: np.ndarray
    costs: np.ndarray
    borrow: np.ndarray | None = None
    liquidations: tuple[tuple[int, int, float], ...] = field(default=())
    triggered: np.ndarray | None = None
    pre_trade: np.ndarray | None = None


def simulate(
    returns: np.ndarray,
    targets: np.ndarray,
    cost_rate: float | np.ndarray,
    *,
    borrow_rate: float | np.ndarray = 0.0,
    band: float = 0.0,
    tradable: np.ndarray | None = None,
    liquidate: np.ndarray | None = None,
    threshold: float = 0.0,
) -> SimResult:
    """Simulate close-to-close trading of target weights with drift between rebalances.

    Parameters
    ----------
    returns : ndarray (T, N)
        Simple daily returns; NaN counts as 0 (a held name without a price keeps its value).
    targets : ndarray (T, N)
        Target weights traded at that day's close (negative = short). An all-NaN row means no trade;
        in any other row NaN means 0.
    cost_rate : float or ndarray (N,) or (T, N)
        Cost per unit of traded notional (e.g. 6 bps = 0.0006): one rate, one per name, or one per row and
        name (a rate that changes over time, e.g. calibrated by the execution feedback).
    borrow_rate : float or ndarray (N,)
        Cost per period per unit of short notional: one rate, or one per name (e.g. per asset class).
    band : float
        Drift band of partial rebalancing (0: trade every name to its target).
    tradable : ndarray (T, N) of bool, optional
        False where a name has no price that day (it cannot trade then).
    liquidate : ndarray (T, N) of bool, optional
        True while a name is gone; held names are sold at the close of the first such day.
    threshold : float
        Drift-triggered trading (0: every target row trades): a target row trades only when its drift
        ``sum_i |target_i - drifted_i|`` (NaN = 0, before the band and the tradable mask) exceeds it; other
        rows keep the drifted book. Path dependent: the drift is measured on the book the earlier trades left.

    Returns
    -------
    SimResult
    """
    r = np.asarray(returns, dtype=float)
    tg = np.asarray(targets, dtype=float)
    if r.ndim != 2 or r.shape != tg.shape:
        raise ValueError(f"returns {r.shape} and targets {tg.shape} must be 2-D arrays of one shape")
    T, N = r.shape
    rates = np.asarray(cost_rate, dtype=float)
    if rates.ndim > 2 or (rates.ndim >= 1 and rates.shape != (T, N)[2 - rates.ndim:]) \
            or not (np.isfinite(rates).all() and (rates >= 0.0).all()):
        raise ValueError(f"cost_rate must be finite numbers >= 0: one, one per name ({N}) or one per row and name "
                         f"({T}, {N}), got shape {rates.shape}")
    borrow = np.asarray(borrow_rate, dtype=float)
    if borrow.ndim > 1 or (borrow.ndim == 1 and borrow.shape != (N,)) \
            or not (np.isfinite(borrow).all() and (borrow >= 0.0).all()):
        raise ValueError(f"borrow_rate {borrow_rate!r} must be finite numbers >= 0: one, or one per name ({N})")
    per_name_borrow = borrow.ndim == 1
    borrow_names = np.ascontiguousarray(borrow if per_name_borrow else np.ones(N))
    if not (np.isfinite(band) and band >= 0.0):
        raise ValueError(f"band {band!r} must be a finite number >= 0")
    if not (np.isfinite(threshold) and threshold >= 0.0):
        raise ValueError(f"threshold {threshold!r} must be a finite number >= 0")
    for label, mask in (("tradable", tradable), ("liquidate", liquidate)):
        if mask is not None and np.shape(mask) != (T, N):
            raise ValueError(f"{label} mask {np.shape(mask)} must have the shape of returns {(T, N)}")
    tg = np.ascontiguousarray(tg)
    has_target = _rows_with_target(tg)
    if not has_target.any():
        none = (np.zeros(T, np.bool_), np.zeros((T, N))) if threshold > 0.0 else (None, None)
        return SimResult(np.zeros(T), np.zeros((T, N)), np.zeros(T), np.zeros(T), np.zeros(T), (), *none)
    no_mask = np.zeros((0, 0), dtype=np.bool_)
    dead = no_mask
    trade_rows = has_target
    if liquidate is not None:
        dead = np.ascontiguousarray(liquidate, dtype=np.bool_)
        onset = dead.copy()
        onset[1:] &= ~dead[:-1]
        trade_rows = has_target | onset.any(axis=1)
    rebal = np.flatnonzero(trade_rows)
    can = no_mask if tradable is None else np.ascontiguousarray(tradable, dtype=np.bool_)
    per_name = rates.ndim >= 1
    rate_grid = np.ascontiguousarray(rates.reshape(-1, N) if per_name else np.zeros((1, N)))
    out_ret, out_to, out_c, out_b = np.zeros(T), np.zeros(T), np.zeros(T), np.zeros(T)
    w = np.empty((T, N))
    n_liq = int(dead[rebal].sum()) if dead.size else 0
    liq_rows, liq_cols, liq_weights = np.zeros(n_liq, np.int64), np.zeros(n_liq, np.int64), np.zeros(n_liq)
    gated = threshold > 0.0
    fired = np.zeros(T if gated else 0, np.bool_)
    before = np.empty((len(rebal), N) if gated else (0, 0))
    k, bad_row, bad_cost = _kernel(
        np.ascontiguousarray(r), tg, has_target, rebal, rate_grid, per_name,
        float(rates) if not per_name else 0.0, 1.0 if per_name_borrow else float(borrow),
        borrow_names, per_name_borrow and bool(borrow.any()), float(band), can, dead,
        out_ret, w, out_to, out_c, out_b, liq_rows, liq_cols, liq_weights, float(threshold), fired, before)
    if bad_row >= 0:
        raise ValueError(f"row {bad_row}: cost {bad_cost:.4g} of the portfolio value leaves nothing to invest")
    liquidations = tuple((int(a), int(b), float(c)) for a, b, c in zip(liq_rows[:k], liq_cols[:k], liq_weights[:k]))
    if not gated:
        return SimResult(out_ret, w, out_to, out_c, out_b, liquidations)
    pre = w.copy()
    pre[rebal] = before
    return SimResult(out_ret, w, out_to, out_c, out_b, liquidations, fired, pre)


@numba.njit(cache=True)
def _rows_with_target(tg):  # pragma: no cover - compiled
    """Rows that are not all NaN (stops at a row's first number; no (T, N) mask allocated)."""
    out = np.zeros(tg.shape[0], np.bool_)
    for t in range(tg.shape[0]):
        for i in range(tg.shape[1]):
            if not np.isnan(tg[t, i]):
                out[t] = True
                break
    return out


@numba.njit(cache=True)
def _block_sum(a, lo, n):  # pragma: no cover - compiled
    """numpy's sum of a contiguous run of at most 128 numbers: 8 accumulators, then the rest in turn."""
    if n < 8:
        res = 0.0
        for i in range(lo, lo + n):
            res += a[i]
        return res
    r0, r1, r2, r3 = a[lo], a[lo + 1], a[lo + 2], a[lo + 3]
    r4, r5, r6, r7 = a[lo + 4], a[lo + 5], a[lo + 6], a[lo + 7]
    i = 8
    m = n - n % 8
    while i < m:
        j = lo + i
        r0 += a[j]
        r1 += a[j + 1]
        r2 += a[j + 2]
        r3 += a[j + 3]
        r4 += a[j + 4]
        r5 += a[j + 5]
        r6 += a[j + 6]
        r7 += a[j + 7]
        i += 8
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        res += a[lo + i]
        i += 1
    return res


@numba.njit(cache=True)
def _pairwise_sum(a, n, stack):  # pragma: no cover - compiled
    """``a[:n].sum()`` exactly as numpy sums a contiguous run (blocks of <= 128 halved pairwise, split at
    a multiple of 8), so the kernel is bit-identical to the numpy formulation it replaced. Iterative:
    numba cannot load a self-recursive function from its cache. ``stack`` is a (64, 4) float scratch."""
    if n <= 128:
        return _block_sum(a, 0, n)
    # frames: (lo, n, left sum, 0 while the left half is pending / 1 while the right one is)
    sp = 0
    stack[0, 0], stack[0, 1], stack[0, 3] = 0.0, n, 0.0
    result = 0.0
    descend = True
    while True:
        lo, m = int(stack[sp, 0]), int(stack[sp, 1])
        if descend and m > 128:
            half = m // 2
            half -= half % 8
            sp += 1
            stack[sp, 0], stack[sp, 1], stack[sp, 3] = lo, half, 0.0
            continue
        if descend:
            result = _block_sum(a, lo, m)
        sp -= 1  # hand ``result`` to the parent frame
        if sp < 0:
            return result
        if stack[sp, 3] == 0.0:
            lo, m = int(stack[sp, 0]), int(stack[sp, 1])
            half = m // 2
            half -= half % 8
            stack[sp, 2], stack[sp, 3] = result, 1.0
            sp += 1
            stack[sp, 0], stack[sp, 1], stack[sp, 3] = lo + half, m - half, 0.0
            descend = True
        else:
            result = stack[sp, 2] + result
            descend = False


@numba.njit(cache=True)
def _kernel(r, tg, has_target, rebal, rates, per_name, rate, borrow_rate, borrow_names, borrow_each, band, can, dead,
            out_ret, w, out_to, out_c, out_b, liq_rows, liq_cols, liq_weights,
            threshold, fired, before):  # pragma: no cover - compiled
    """One pass over the days: trades at the rows in ``rebal``, drift in between. Returns (liquidations
    written, row whose cost is >= 1 or -1, that cost). With ``threshold > 0`` a target row whose drift is
    within it keeps the drifted book (a segment restart without trade); ``fired`` marks the rows that traded
    and ``before`` (one row per rebal row) receives the pre-trade drifted weights."""
    T, N = r.shape
    totals = np.ones(T)  # value relative to the latest trade's post-trade value
    drifted = np.zeros(N)  # pre-trade weights at the current rebalance close (all cash before the first)
    target = np.empty(N)
    held = np.empty(N)
    growth = np.empty(N)
    values = np.empty(N)
    buf = np.empty(N)
    live = np.empty(N, np.int64)
    shorts = np.empty(N, np.int64)
    stack = np.empty((64, 4))
    n_liq = 0
    w[: rebal[0]] = 0.0
    n_rebal = rebal.shape[0]
    for k in range(n_rebal):
        s = rebal[k]
        e = rebal[k + 1] if k + 1 < n_rebal else T - 1
        go = has_target[s]
        if threshold > 0.0:
            m = 0
            for i in range(N):
                before[k, i] = drifted[i]
                x = tg[s, i]
                x = 0.0 if np.isnan(x) else x
                if x != 0.0 or drifted[i] != 0.0:
                    buf[m] = abs(x - drifted[i])
                    m += 1
            go = go and _pairwise_sum(buf, m, stack) > threshold
            fired[s] = go
        for i in range(N):
            if go:
                x = tg[s, i]
                x = 0.0 if np.isnan(x) else x
                if band > 0.0 and abs(x - drifted[i]) <= band:
                    x = drifted[i]
            else:
                x = drifted[i]  # a forced sale only
            if can.shape[0] and not can[s, i]:
                x = drifted[i]
            if dead.shape[0] and dead[s, i]:
                if drifted[i] != 0.0:
                    liq_rows[n_liq], liq_cols[n_liq], liq_weights[n_liq] = s, i, drifted[i]
                    n_liq += 1
                x = 0.0
            target[i] = x
        # Sums run over the names involved only (pairwise sums change in the last bit when zeros are
        # added, and a symbol that lists later must not perturb earlier results).
        m = 0
        for i in range(N):
            if target[i] != 0.0 or drifted[i] != 0.0:
                buf[m] = abs(target[i] - drifted[i])
                live[m] = i
                m += 1
        turnover = _pairwise_sum(buf, m, stack)
        if per_name:
            row = s if rates.shape[0] > 1 else 0
            for j in range(m):
                buf[j] = rates[row, live[j]] * buf[j]
            cost = _pairwise_sum(buf, m, stack)
        else:
            cost = rate * turnover
        if cost >= 1.0:
            return n_liq, s, cost
        out_to[s] = turnover
        out_c[s] = cost
        m = 0
        n_short = 0
        for i in range(N):
            held[i] = target[i] / (1.0 - cost)  # post-trade holdings per unit of post-trade value
            w[s, i] = held[i]
            growth[i] = 1.0
            if held[i] != 0.0:
                buf[m] = held[i]
                live[m] = i
                m += 1
                if held[i] < 0.0:
                    shorts[n_short] = i
                    n_short += 1
        if e == s:
            continue
        cash = 1.0 - _pairwise_sum(buf, m, stack)
        charge_borrow = (borrow_rate > 0.0 if not borrow_each else True) and n_short > 0
        carried = 0.0
        charged = 0.0
        if charge_borrow:
            for j in range(n_short):  # weighted by the name's rate (1.0: exact) when rates differ per name
                buf[j] = held[shorts[j]] * borrow_names[shorts[j]]
            carried = -_pairwise_sum(buf, n_short, stack)
        prev_total = 1.0
        for t in range(s + 1, e + 1):
            for i in range(N):
                g = r[t, i] + 1.0
                if np.isnan(g):
                    g = 1.0
                growth[i] *= g  # 1.0 * g is g exactly: the same products as a cumprod from s + 1
                values[i] = growth[i] * held[i]
            if m == N:
                total = _pairwise_sum(values, N, stack) + cash
            else:
                for j in range(m):
                    buf[j] = values[live[j]]
                total = _pairwise_sum(buf, m, stack) + cash
            if charge_borrow:
                charge = borrow_rate * carried
                charged += charge
                total -= charged
                out_b[t] = charge / prev_total
                for j in range(n_short):
                    buf[j] = values[shorts[j]] * borrow_names[shorts[j]]
                carried = -_pairwise_sum(buf, n_short, stack)  # short notional held over the next period
            totals[t] = total
            prev_total = total
            inv = 1.0 / total
            for i in range(N):
                w[t, i] = values[i] * inv
        for i in range(N):
            drifted[i] = w[e, i]  # row e is overwritten by the next trade

    fresh = np.zeros(T, np.bool_)  # rows right after a trade start from the post-trade value, 1
    for k in range(n_rebal):
        if rebal[k] + 1 < T:
            fresh[rebal[k] + 1] = True
    for t in range(rebal[0] + 1, T):
        prev = 1.0 if fresh[t] else totals[t - 1]
        out_ret[t] = totals[t] / prev - 1.0
    # A rebalance day's market return came from the previous segment; its cost lands on the same day.
    for k in range(n_rebal):
        s = rebal[k]
        if out_c[s] > 0.0:
            out_ret[s] = (1.0 + out_ret[s]) * (1.0 - out_c[s]) - 1.0
    return n_liq, -1, 0.0
