"""Simulator registry: one line per simulator.

Every simulator is a function ``simulate(returns, targets, cost_rate, *, borrow_rate, band, tradable,
liquidate) -> SimResult`` with the conventions of ``vectorized`` (close-to-close, targets on pre-trade
value, costs paid from cash). The reference simulators raise ``SimulatorError`` for what they do not model.
Modules are imported on first use so heavy backends cost nothing until chosen.
"""

from __future__ import annotations

from collections.abc import Callable

from tvquant_assets.registry import Registry

SIMULATORS = Registry("simulator", {
    "vectorized": "tvquant_assets.core.simulators.vectorized:simulate",
    "vectorbt": "tvquant_assets.core.simulators.vectorbt_sim:simulate",
    "cvxportfolio": "tvquant_assets.core.simulators.cvxportfolio_sim:simulate",
    "nautilus": "tvquant_assets.core.simulators.nautilus_sim:simulate",
})


def get_simulator(name: str) -> Callable:
    """The ``simulate`` function registered under ``name`` (an unknown name is a ``RegistryError``)."""
    return SIMULATORS.load(name)
