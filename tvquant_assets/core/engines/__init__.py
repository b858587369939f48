"""Engine registry: one line per engine. Names and profiles are listed here without importing the
libraries, so manifests validate fast; ``get_engine`` imports the engine on first use.

The engine x profile matrix (``ENGINE_PROFILES``) is what manifest validation enforces; docs/engines.md
shows it. ``LONG_SHORT_PROFILES`` lists the profiles that may run with ``constraints.long_only: false``.
"""

from __future__ import annotations

import importlib
import inspect

# engine name -> (module path, class name)
ENGINES: dict[str, tuple[str, str]] = {
    "custom": ("tvquant_assets.core.engines.custom", "CustomEngine"),
    "skfolio": ("tvquant_assets.core.engines.skfolio_engine", "SkfolioEngine"),
    "riskfolio": ("tvquant_assets.core.engines.riskfolio_engine", "RiskfolioEngine"),
    "cvxportfolio": ("tvquant_assets.core.engines.cvxportfolio_engine", "CvxportfolioEngine"),
    "adaptive": ("tvquant_assets.core.engines.adaptive", "AdaptiveEngine"),
}

# engine name -> profiles it supports (kept in sync with each engine's ``profiles``; a test checks it)
ENGINE_PROFILES: dict[str, tuple[str, ...]] = {
    "custom": ("min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "benchmark", "equal_weight",
               "barbell", "market_neutral"),
    "skfolio": ("min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "equal_weight"),
    "riskfolio": ("min_variance", "max_sharpe", "risk_parity", "hrp", "herc"),
    "cvxportfolio": ("min_variance", "market_neutral"),
    "adaptive": ("adaptive",),
}

# engine name -> profiles that honour long_only: false (market_neutral is long/short by definition)
LONG_SHORT_PROFILES: dict[str, tuple[str, ...]] = {
    "custom": ("min_variance", "market_neutral"),
    "cvxportfolio": ("market_neutral",),
}


def get_engine(name: str, **params):
    """A fresh engine object; ``params`` go to its constructor (e.g. ``linkage``)."""
    module, cls = ENGINES[name]
    klass = getattr(importlib.import_module(module), cls)
    accepted = inspect.signature(klass).parameters
    params = {k: v for k, v in params.items() if k in accepted}
    return klass(**params)
