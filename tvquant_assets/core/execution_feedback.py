"""Execution-shortfall feedback: the slippage the vectorized simulator charges, calibrated to what the
event-driven (nautilus) run realizes.

Each fill's implementation shortfall is measured against the price the vectorized model assumed (the bar it
trades at: D's close, or the open with ``next_open``), signed so that a worse fill is positive:
``1e4 * side * (fill - reference) / reference`` bps (side +1 buy, -1 sell). Per asset class, the fills of each
day are pooled notional-weighted and move the estimate by an exponentially weighted step:
``est += alpha * (day_shortfall - est)`` with ``alpha = 1 - 0.5 ** (1 / halflife)`` (halflife in fill days),
clipped to ``[min_bps, max_bps]``. A class holds its prior (the manifest's ``slippage_bps``) until it has
``min_fills`` fills; the first step then pools all of them.

No double counting: the event-driven run pays only the commission as a fee and realizes slippage through its
fill prices; the calibrated rate of a day is ``commission + estimate`` and replaces the manifest's slippage.
Point in time: the rate a trade on day ``t`` pays uses only fills of days ``< t``; the estimate published for
``D`` uses fills ``<= D``.

The paper account (``stages/paper.py``) learns from its own fills (reference: the decision-time close) with
the same step, :func:`estimate_step`, one session at a time from the state its previous partition holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

SHORTFALL_COLUMNS = ("day", "symbol", "asset_class", "side", "quantity", "price", "reference", "notional",
                     "shortfall_bps")


@dataclass(frozen=True)
class SlippagePath:
    """Per asset class and day: the estimate after that day's fills (bps), and fill counts."""

    estimate: pd.DataFrame  # index days, columns classes: after fills <= day
    before: pd.DataFrame  # estimate in force during the day (after fills < day)
    fills: pd.DataFrame  # fills of that day
    total: pd.DataFrame  # fills <= day


def shortfall_table(fills: list[tuple], days: pd.DatetimeIndex, symbols: list[str], classes: Mapping[str, str],
                    per_day: int = 1) -> pd.DataFrame:
    """One row per fill ``(row, column, side, quantity, price, reference, commission)`` of the nautilus
    simulator, with its day (``row // per_day``) and its shortfall in bps."""
    if not fills:
        return pd.DataFrame({c: pd.Series(dtype="float64") for c in SHORTFALL_COLUMNS})
    row, col, side, qty, px, ref, _ = (np.asarray(x) for x in zip(*fills))
    sign = np.where(side == "buy", 1.0, -1.0)
    qty, px, ref = qty.astype(float), px.astype(float), ref.astype(float)
    sym = np.asarray(symbols, dtype=object)[col.astype(int)]
    return pd.DataFrame({
        "day": days[row.astype(int) // per_day], "symbol": sym,
        "asset_class": [classes.get(s, "") for s in sym], "side": side, "quantity": qty, "price": px,
        "reference": ref, "notional": qty * ref, "shortfall_bps": 1e4 * sign * (px - ref) / ref,
    })


def slippage_path(shortfalls: pd.DataFrame, prior_bps: Mapping[str, float], days: pd.DatetimeIndex, *,
                  halflife: float, min_fills: int, min_bps: float, max_bps: float) -> SlippagePath:
    """The estimate of every class in ``prior_bps`` on every day, from the fills of ``shortfalls``."""
    alpha = 1.0 - 0.5 ** (1.0 / halflife)
    names = sorted(prior_bps)
    est = np.empty((len(days), len(names)))
    before = np.empty_like(est)
    count = np.zeros_like(est)
    pos = days.get_indexer(pd.DatetimeIndex(shortfalls["day"])) if len(shortfalls) else np.zeros(0, int)
    if (pos < 0).any():
        raise ValueError("shortfall days must be simulation days")
    for j, name in enumerate(names):
        mine = (shortfalls["asset_class"].to_numpy() == name) if len(shortfalls) else np.zeros(0, bool)
        p = pos[mine]
        notional = np.bincount(p, shortfalls["notional"].to_numpy()[mine], len(days))
        weighted = np.bincount(p, (shortfalls["notional"] * shortfalls["shortfall_bps"]).to_numpy()[mine], len(days))
        n = np.bincount(p, minlength=len(days)).astype(float)
        value = float(np.clip(prior_bps[name], min_bps, max_bps))
        pool = (0.0, 0.0, 0.0)
        for t in range(len(days)):
            before[t, j] = value
            if n[t]:
                value, pool = estimate_step(value, pool, weighted[t], notional[t], n[t], alpha=alpha,
                                            min_fills=min_fills, min_bps=min_bps, max_bps=max_bps)
            est[t, j] = value
            count[t, j] = n[t]
    frame = lambda a: pd.DataFrame(a, index=days, columns=names)  # noqa: E731
    return SlippagePath(frame(est), frame(before), frame(count).astype("int64"),
                        frame(np.cumsum(count, axis=0)).astype("int64"))


def estimate_step(value: float, pool: tuple[float, float, float], weighted: float, notional: float, n: float, *,
                  alpha: float, min_fills: int, min_bps: float, max_bps: float
                  ) -> tuple[float, tuple[float, float, float]]:
    """One fill day of a class: its fills (``n``, notional, notional x shortfall) join the pool, which moves
    the estimate once ``min_fills`` fills have been seen. ``pool`` is ``(weighted, notional, fills seen)``."""
    pool_w, pool_n, seen = pool[0] + weighted, pool[1] + notional, pool[2] + n
    if seen >= min_fills and pool_n > 0.0:
        value = float(np.clip(value + alpha * (pool_w / pool_n - value), min_bps, max_bps))
        pool_w = pool_n = 0.0
    return value, (pool_w, pool_n, seen)


def calibrated_rates(path: SlippagePath, commission: pd.Series, classes: Mapping[str, str]) -> pd.DataFrame:
    """Cost per unit of traded notional for every day and symbol: commission + the class's estimate in force
    that day (after fills of earlier days)."""
    cls = [classes.get(s, "") for s in commission.index]
    slip = path.before.reindex(columns=cls).to_numpy()
    return pd.DataFrame(commission.to_numpy()[None, :] + slip / 1e4, index=path.before.index,
                        columns=commission.index)
