"""vectorbt reference simulator: ``Portfolio.from_orders`` with target-percent sizing.

Settings that make it follow our conventions (FACTS.md): one cash-sharing group, ``call_seq='auto'`` (sells
first), orders only on trade rows (NaN elsewhere), ``update_value=False``. Without costs it equals
``vectorized`` to 1e-10; with fees it cannot pay them below zero cash, so the last buy of a rebalance is
filled short by the fee (a gap of order ``cost_rate * turnover`` in one name's weight).
"""

from __future__ import annotations

import numpy as np

from tvquant_assets.core.simulators._common import check_supported, filled_targets, synthetic_prices
from tvquant_assets.core.simulators.vectorized import SimResult


def simulate(returns: np.ndarray, targets: np.ndarray, cost_rate, *, borrow_rate: float = 0.0, band: float = 0.0,
             tradable: np.ndarray | None = None, liquidate: np.ndarray | None = None) -> SimResult:
    """Same contract as :func:`tvquant_assets.core.simulators.vectorized.simulate`."""
    import vectorbt as vbt

    check_supported("vectorbt", borrow_rate=borrow_rate, band=band, liquidate=liquidate, cost_rate=cost_rate)
    r = np.asarray(returns, dtype=float)
    T, N = r.shape
    prices = synthetic_prices(r)
    fees = np.broadcast_to(np.asarray(cost_rate, dtype=float), (N,))[None, :]
    pf = vbt.Portfolio.from_orders(
        prices, size=filled_targets(targets, tradable), size_type="targetpercent", group_by=True,
        cash_sharing=True, call_seq="auto", update_value=False, fees=fees, init_cash=1e6, freq="1D",
    )
    value = np.asarray(pf.value(), dtype=float).reshape(T)
    weights = np.asarray(pf.asset_value(group_by=False), dtype=float).reshape(T, N) / value[:, None]
    rec = pf.orders.values
    traded, fees_paid = np.zeros(T), np.zeros(T)
    np.add.at(traded, rec["idx"], np.abs(rec["size"] * rec["price"]))
    np.add.at(fees_paid, rec["idx"], rec["fees"])
    pre = value + fees_paid  # value before that close's trades
    return SimResult(np.asarray(pf.returns(), dtype=float).reshape(T), weights, traded / pre, fees_paid / pre,
                     np.zeros(T))
