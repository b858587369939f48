"""Engine registry: one line per engine, with the profiles it offers, so manifests validate without
importing any optimization library; ``get_engine`` imports the engine on first use.

``profiles`` is the engine x profile matrix manifest validation enforces (docs/engines.md shows it; a test
checks it against each engine's ``profiles``); ``long_short`` lists the profiles that may run with
``constraints.long_only: false`` (market_neutral is long/short by definition).
"""

from __future__ import annotations

from dataclasses import dataclass

from tvquant_assets.registry import Entry, Registry


@dataclass(frozen=True)
class EngineEntry(Entry):
    """An engine's class and its declared profiles."""

    profiles: tuple[str, ...] = ()
    long_short: tuple[str, ...] = ()


ENGINES = Registry("engine", {
    "custom": EngineEntry("tvquant_assets.core.engines.custom:CustomEngine", profiles=(
        "min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "benchmark", "equal_weight", "barbell",
        "market_neutral"), long_short=("min_variance", "market_neutral")),
    "skfolio": EngineEntry("tvquant_assets.core.engines.skfolio_engine:SkfolioEngine", profiles=(
        "min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "equal_weight")),
    "riskfolio": EngineEntry("tvquant_assets.core.engines.riskfolio_engine:RiskfolioEngine", profiles=(
        "min_variance", "max_sharpe", "risk_parity", "hrp", "herc")),
    "cvxportfolio": EngineEntry("tvquant_assets.core.engines.cvxportfolio_engine:CvxportfolioEngine",
                                profiles=("min_variance", "market_neutral"), long_short=("market_neutral",)),
    "adaptive": EngineEntry("tvquant_assets.core.engines.adaptive:AdaptiveEngine", profiles=("adaptive",)),
})

# Tables derived from the registry: engine -> profiles; engine -> long/short profiles (engines with any)
ENGINE_PROFILES: dict[str, tuple[str, ...]] = {n: ENGINES.info(n).profiles for n in ENGINES}
LONG_SHORT_PROFILES: dict[str, tuple[str, ...]] = {
    n: ENGINES.info(n).long_short for n in ENGINES if ENGINES.info(n).long_short}


def get_engine(name: str, **params):
    """A fresh engine object; ``params`` go to its constructor (e.g. ``linkage``); an unknown name or
    parameter is a :class:`~tvquant_assets.errors.RegistryError`."""
    return ENGINES.create(name, **params)
