"""Helpers shared by the reference simulators (vectorbt, cvxportfolio, nautilus)."""

from __future__ import annotations

import numpy as np

from tvquant_assets.errors import SimulatorError


def check_supported(name: str, *, borrow_rate=0.0, band: float = 0.0, liquidate=None,
                    allow_borrow: bool = False, cost_rate=0.0) -> None:
    """One clear line when a reference simulator is asked for a feature only ``vectorized`` models."""
    asked = []
    if np.ndim(cost_rate) == 2:
        asked.append("cost rates that change over time (backtest.execution_feedback)")
    if band:
        asked.append("backtest.drift_band")
    if np.any(np.asarray(borrow_rate) != 0) and not allow_borrow:
        asked.append("backtest.borrow_bps_per_year")
    if liquidate is not None and np.asarray(liquidate).any():
        asked.append("delisting (backtest.delist_after_days)")
    if asked:
        raise SimulatorError(f"simulator {name} does not model {', '.join(asked)}; run it with those off "
                             "or use simulator vectorized")


def trade_rows(targets: np.ndarray) -> np.ndarray:
    """Rows holding a target (not all NaN)."""
    return np.flatnonzero(~np.isnan(targets).all(axis=1))


def synthetic_prices(returns: np.ndarray, base: float = 100.0) -> np.ndarray:
    """Price paths with these close-to-close returns (NaN = unchanged price), starting near ``base``."""
    return base * np.cumprod(1.0 + np.nan_to_num(np.asarray(returns, dtype=float), nan=0.0), axis=0)


def filled_targets(targets: np.ndarray, tradable: np.ndarray | None) -> np.ndarray:
    """Targets with NaN inside trade rows read as 0, and NaN (no order) where a name cannot trade."""
    tg = np.array(targets, dtype=float)
    rows = trade_rows(tg)
    block = tg[rows]
    block[np.isnan(block)] = 0.0
    if tradable is not None:
        block[~np.asarray(tradable, dtype=bool)[rows]] = np.nan
    tg[rows] = block
    return tg
