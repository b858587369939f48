"""Drift monitor: the book a candidate holds after D's close (drifted since its last trade) against its
latest targets, and the orders that bring it back when the drift exceeds the threshold.

Drift is ``sum_i |held_i - target_i|`` (the turnover a full rebalance would need). Above ``threshold`` the
monitor emits orders: ``full`` trades every name to its target; ``partial`` only names off by more than
``band`` (the manifest's drift band). Quantities are in units of the instrument at D's close on a book worth
``notional x equity`` (fractional: lot rounding belongs to the broker). Point in time: everything for D comes
from closes and decisions dated <= D.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

COLUMNS: dict[str, str] = {
    "candidate": "str",
    "symbol": "str",
    "weight": "float64",
    "target": "float64",
    "price": "float64",
    "side": "str",
    "quantity": "float64",
    "notional": "float64",
    "reason": "str",
    "drift": "float64",
    "threshold": "float64",
    "book_value": "float64",
}
SIDES = ("buy", "sell", "none")


def drift_orders(candidate: str, held: pd.Series, target: pd.Series, prices: pd.Series, book_value: float,
                 threshold: float, band: float = 0.0, mode: str = "partial") -> pd.DataFrame:
    """One row per name held or targeted: drifted weight, target, and the order (side ``none`` when no trade).

    Parameters
    ----------
    candidate : str
    held, target : Series
        Weights by symbol after D's close (drifted) and of the latest decision (absent = 0).
    prices : Series
        Last close <= D by symbol (NaN: no price yet, the name cannot be ordered).
    book_value : float
        Portfolio value the quantities are sized on.
    threshold : float
        Drift above which orders are emitted.
    band : float
        ``partial`` mode: names within the band are left alone.
    mode : {"partial", "full"}
    """
    if mode not in ("partial", "full"):
        raise ValueError(f"drift mode {mode!r} must be partial or full")
    names = sorted(set(held.index[held.fillna(0.0) != 0.0]) | set(target.index[target.fillna(0.0) != 0.0]))
    w = held.reindex(names).fillna(0.0).to_numpy(dtype=float)
    t = target.reindex(names).fillna(0.0).to_numpy(dtype=float)
    px = prices.reindex(names).to_numpy(dtype=float)
    gap = t - w
    drift = float(np.abs(gap).sum())
    over = drift > threshold
    trade = over & (np.abs(gap) > (band if mode == "partial" else 0.0)) & (np.abs(gap) > 1e-12)
    priced = np.isfinite(px) & (px > 0)
    notional = np.where(trade & priced, np.abs(gap) * book_value, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        quantity = np.where(notional > 0, notional / px, 0.0)
    side = np.where(notional > 0, np.where(gap > 0, "buy", "sell"), "none")
    reasons = []
    for i in range(len(names)):
        if not over:
            reasons.append(f"drift {drift:.4f} <= threshold {threshold:.4f}")
        elif trade[i] and not priced[i]:
            reasons.append("no price: cannot size an order")
        elif trade[i]:
            reasons.append(f"drift {drift:.4f} > {threshold:.4f}: weight {w[i]:.4f} -> target {t[i]:.4f}"
                           + (" (entry)" if w[i] == 0 else " (exit)" if t[i] == 0 else ""))
        else:
            reasons.append(f"within band {band:.4f}" if mode == "partial" else "on target")
    frame = pd.DataFrame({
        "candidate": candidate, "symbol": names, "weight": w, "target": t, "price": px, "side": side,
        "quantity": quantity, "notional": notional, "reason": reasons, "drift": drift, "threshold": threshold,
        "book_value": book_value,
    })
    return frame.astype(COLUMNS)[list(COLUMNS)]
