"""Simulator registry: one line per simulator.

Every simulator is a function ``simulate(returns, targets, cost_rate) -> SimResult`` with the
conventions of ``vectorized`` (close-to-close, targets on pre-trade value, costs paid from cash).
Modules are imported on first use so heavy backends cost nothing until chosen.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

# simulator name -> (module path, function name)
SIMULATORS: dict[str, tuple[str, str]] = {
    "vectorized": ("tvquant_assets.core.simulators.vectorized", "simulate"),
}


def get_simulator(name: str) -> Callable:
    """The ``simulate`` function registered under ``name``."""
    if name not in SIMULATORS:
        raise ValueError(f"unknown simulator {name!r}; registered: {', '.join(sorted(SIMULATORS))}")
    module, func = SIMULATORS[name]
    return getattr(importlib.import_module(module), func)
