"""Vectorized close-to-close portfolio simulator (plain numpy).

Conventions (shared by every simulator, see FACTS.md "cash mode"):

* ``returns[t]`` is the simple return of day ``t`` over day ``t-1``; it accrues on the weights held
  after day ``t-1``'s close trades, drifted by the returns in between.
* A target row trades at day ``t``'s close. Targets are sized on the pre-trade value ``V_t``; the cost
  ``cost_rate * sum|target - drifted| * V_t`` is paid from cash, so the post-trade value is
  ``V_t (1 - c_t)`` and the stored post-trade weights are ``target / (1 - c_t)`` (cash absorbs the cost).
* Cash ``1 - sum(weights)`` earns 0; before the first target the book is all cash.

Turnover is ``sum_i |target_i - drifted_i|``: traded notional over pre-trade value, every traded dollar
counted once (buys plus sells). Moving the whole book from A to B is 2.0; the half-sum convention
("one-sided" buys-or-sells turnover) would report 1.0. Costs are ``cost_rate * turnover``.
"""

from __future__ import annotations

from dataclasses import dataclass

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
    """

    returns: np.ndarray
    weights: np.ndarray
    turnover: np.ndarray
    costs: np.ndarray


def simulate(returns: np.ndarray, targets: np.ndarray, cost_rate: float) -> SimResult:
    """Simulate close-to-close trading of target weights with drift between rebalances.

    Parameters
    ----------
    returns : ndarray (T, N)
        Simple daily returns; NaN counts as 0 (a held name without a price keeps its value).
    targets : ndarray (T, N)
        Target weights traded at that day's close. An all-NaN row means no trade; in any other row
        NaN means 0.
    cost_rate : float
        Cost per unit of traded notional (e.g. 6 bps = 0.0006).

    Returns
    -------
    SimResult
    """
    r = np.asarray(returns, dtype=float)
    tg = np.asarray(targets, dtype=float)
    if r.ndim != 2 or r.shape != tg.shape:
        raise ValueError(f"returns {r.shape} and targets {tg.shape} must be 2-D arrays of one shape")
    if not (np.isfinite(cost_rate) and cost_rate >= 0.0):
        raise ValueError(f"cost_rate {cost_rate!r} must be a finite number >= 0")
    T, N = r.shape
    out_ret = np.zeros(T)
    out_to = np.zeros(T)
    out_c = np.zeros(T)
    rebal = np.flatnonzero(~np.isnan(tg).all(axis=1))
    if rebal.size == 0:
        return SimResult(out_ret, np.zeros((T, N)), out_to, out_c)

    # Segment k covers the rows (s_k, e_k] after rebalance s_k, up to and including the next one.
    ends = np.append(rebal[1:], T - 1)
    lens = ends - rebal

    # Per-name growth since each segment's start close: one array reused for values, then weights.
    # Segments are independent of the book, so all of them advance one row per step (fancy-indexed);
    # every element is still the same sequential product as np.cumprod, so a segment cut short (a
    # shorter backtest) holds bit-identical numbers.
    w = np.empty((T, N))  # C order even when pandas hands over a Fortran-ordered block
    np.add(r, 1.0, out=w)
    gaps = np.flatnonzero(np.isnan(w.sum(axis=1)))  # a row sum is cheaper than a full NaN mask
    if gaps.size:
        rows = w[gaps]
        rows[np.isnan(rows)] = 1.0
        w[gaps] = rows
    for j in range(1, int(lens.max(initial=0))):
        active = np.flatnonzero(lens > j)
        if active.size == 1:  # one long segment left (e.g. buy and hold): finish it with a cumprod
            a, b = rebal[active[0]] + j, rebal[active[0]] + lens[active[0]] + 1
            np.cumprod(w[a:b], axis=0, out=w[a:b])
            break
        rows = rebal[active] + 1 + j
        w[rows] = w[rows - 1] * w[rows]
    w[: rebal[0]] = 0.0

    tgt = tg[rebal]
    tgt[np.isnan(tgt)] = 0.0
    totals = np.ones(T)  # value relative to the latest trade's post-trade value
    drifted = np.zeros(N)  # pre-trade weights at the current rebalance close (all cash before the first)
    for target, s, e in zip(tgt, rebal, ends):
        # Sums run over the names involved only: numpy's pairwise sums change in the last bit when
        # zero columns are added, and a symbol that lists later must not perturb earlier results.
        live = np.flatnonzero((target != 0.0) | (drifted != 0.0))
        turnover = np.abs(target[live] - drifted[live]).sum()
        cost = cost_rate * turnover
        if cost >= 1.0:
            raise ValueError(f"row {s}: cost {cost:.4g} of the portfolio value leaves nothing to invest")
        out_to[s] = turnover
        out_c[s] = cost
        held = target / (1.0 - cost)  # post-trade holdings per unit of post-trade value
        w[s] = held
        if e == s:
            continue
        values = w[s + 1 : e + 1]
        values *= held
        live = np.flatnonzero(held)
        # take() keeps the gathered block C-ordered (values[:, live] comes back F-ordered, and numpy
        # then sums in another order): row sums must see the same layout in every run.
        total = (values if live.size == N else values.take(live, axis=1)).sum(axis=1)
        total += 1.0 - held[live].sum()
        totals[s + 1 : e + 1] = total
        values *= (1.0 / total)[:, None]
        drifted = values[-1].copy()  # row e is overwritten by the next trade

    prev = np.concatenate(([1.0], totals[:-1]))
    after = rebal + 1
    prev[after[after < T]] = 1.0  # each segment starts from its post-trade value, 1
    out_ret[after[0] :] = totals[after[0] :] / prev[after[0] :] - 1.0
    # A rebalance day's market return came from the previous segment; its cost lands on the same day.
    paid = rebal[out_c[rebal] > 0.0]
    out_ret[paid] = (1.0 + out_ret[paid]) * (1.0 - out_c[paid]) - 1.0
    return SimResult(out_ret, w, out_to, out_c)
