"""Vectorized close-to-close portfolio simulator (plain numpy).

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
    """

    returns: np.ndarray
    weights: np.ndarray
    turnover: np.ndarray
    costs: np.ndarray
    borrow: np.ndarray | None = None
    liquidations: tuple[tuple[int, int, float], ...] = field(default=())


def simulate(
    returns: np.ndarray,
    targets: np.ndarray,
    cost_rate: float | np.ndarray,
    *,
    borrow_rate: float = 0.0,
    band: float = 0.0,
    tradable: np.ndarray | None = None,
    liquidate: np.ndarray | None = None,
) -> SimResult:
    """Simulate close-to-close trading of target weights with drift between rebalances.

    Parameters
    ----------
    returns : ndarray (T, N)
        Simple daily returns; NaN counts as 0 (a held name without a price keeps its value).
    targets : ndarray (T, N)
        Target weights traded at that day's close (negative = short). An all-NaN row means no trade;
        in any other row NaN means 0.
    cost_rate : float or ndarray (N,)
        Cost per unit of traded notional (e.g. 6 bps = 0.0006), one rate or one per name.
    borrow_rate : float
        Cost per period per unit of short notional.
    band : float
        Drift band of partial rebalancing (0: trade every name to its target).
    tradable : ndarray (T, N) of bool, optional
        False where a name has no price that day (it cannot trade then).
    liquidate : ndarray (T, N) of bool, optional
        True while a name is gone; held names are sold at the close of the first such day.

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
    if rates.ndim not in (0, 1) or (rates.ndim == 1 and rates.shape != (N,)) \
            or not (np.isfinite(rates).all() and (rates >= 0.0).all()):
        raise ValueError(f"cost_rate must be a finite number >= 0 or one per name ({N}), got {cost_rate!r}")
    if not (np.isfinite(borrow_rate) and borrow_rate >= 0.0):
        raise ValueError(f"borrow_rate {borrow_rate!r} must be a finite number >= 0")
    if not (np.isfinite(band) and band >= 0.0):
        raise ValueError(f"band {band!r} must be a finite number >= 0")
    for label, mask in (("tradable", tradable), ("liquidate", liquidate)):
        if mask is not None and np.shape(mask) != (T, N):
            raise ValueError(f"{label} mask {np.shape(mask)} must have the shape of returns {(T, N)}")
    out_ret = np.zeros(T)
    out_to = np.zeros(T)
    out_c = np.zeros(T)
    out_b = np.zeros(T)
    has_target = ~np.isnan(tg).all(axis=1)
    dead = None
    if liquidate is not None:
        dead = np.asarray(liquidate, dtype=bool)
        onset = dead.copy()
        onset[1:] &= ~dead[:-1]
        trade_rows = has_target | onset.any(axis=1)
    else:
        trade_rows = has_target
    rebal = np.flatnonzero(trade_rows)
    if not has_target.any():
        return SimResult(out_ret, np.zeros((T, N)), out_to, out_c, out_b)

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

    totals = np.ones(T)  # value relative to the latest trade's post-trade value
    drifted = np.zeros(N)  # pre-trade weights at the current rebalance close (all cash before the first)
    liquidations: list[tuple[int, int, float]] = []
    per_name = rates.ndim == 1
    for s, e in zip(rebal, ends):
        if has_target[s]:
            target = tg[s].copy()
            target[np.isnan(target)] = 0.0
            if band > 0.0:
                target = np.where(np.abs(target - drifted) <= band, drifted, target)
        else:
            target = drifted.copy()  # a forced sale only
        if tradable is not None:
            target = np.where(tradable[s], target, drifted)
        if dead is not None and dead[s].any():
            for i in np.flatnonzero(dead[s] & (drifted != 0.0)):
                liquidations.append((int(s), int(i), float(drifted[i])))
            target[dead[s]] = 0.0
        # Sums run over the names involved only: numpy's pairwise sums change in the last bit when
        # zero columns are added, and a symbol that lists later must not perturb earlier results.
        live = np.flatnonzero((target != 0.0) | (drifted != 0.0))
        traded = np.abs(target[live] - drifted[live])
        turnover = traded.sum()
        cost = (rates[live] * traded).sum() if per_name else float(rates) * turnover
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
        if borrow_rate > 0.0 and (held < 0.0).any():
            shorts = np.flatnonzero(held < 0.0)
            short = -values.take(shorts, axis=1).sum(axis=1)  # short notional at each close of the segment
            carried = np.concatenate(([-held[shorts].sum()], short[:-1]))  # held over each period
            charge = borrow_rate * carried
            total -= np.cumsum(charge)
            out_b[s + 1 : e + 1] = charge / np.concatenate(([1.0], total[:-1]))
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
    return SimResult(out_ret, w, out_to, out_c, out_b, tuple(liquidations))
