"""Engine registry: one line per engine. Names and profiles are listed here without importing the
libraries, so manifests validate fast; ``get_engine`` imports the engine on first use."""

from __future__ import annotations

import importlib

# engine name -> (module path, class name)
ENGINES: dict[str, tuple[str, str]] = {
    "custom": ("tvquant_assets.core.engines.custom", "CustomEngine"),
    "skfolio": ("tvquant_assets.core.engines.skfolio_engine", "SkfolioEngine"),
}

# engine name -> profiles it supports (kept in sync with each engine's ``profiles``; a test checks it)
ENGINE_PROFILES: dict[str, tuple[str, ...]] = {
    "custom": ("min_variance", "max_sharpe", "equal_weight"),
    "skfolio": ("hrp", "min_variance"),
}


def get_engine(name: str):
    module, cls = ENGINES[name]
    return getattr(importlib.import_module(module), cls)()
