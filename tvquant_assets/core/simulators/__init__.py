"""Simulator registry: one line per simulator.

Every simulator is a function ``simulate(returns, targets, cost_rate, *, borrow_rate, band, tradable,
liquidate) -> SimResult`` with the conventions of ``vectorized`` (close-to-close, targets on pre-trade
value, costs paid from cash). The reference simulators raise ``SimulatorError`` for what they do not model.
Modules are imported on first use so heavy backends cost nothing until chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

# simulator name -> (module path, function name)
SIMULATORS: dict[str, tuple[str, str]] = {
    "vectorized": ("tvquant_assets.core.simulators.vectorized", "simulate"),
    "vectorbt": ("tvquant_assets.core.simulators.vectorbt_sim", "simulate"),
    "cvxportfolio": ("tvquant_assets.core.simulators.cvxportfolio_sim", "simulate"),
    "nautilus": ("tvquant_assets.core.simulators.nautilus_sim", "simulate"),
}


def get_simulator(name: str) -> Callable:
    """The ``simulate`` function registered under ``name``."""
    if name not in SIMULATORS:
        raise ValueError(f"unknown simulator {name!r}; registered: {', '.join(sorted(SIMULATORS))}")
    module, func = SIMULATORS[name]
    return getattr(importlib.import_module(module), func)
