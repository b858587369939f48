"""Engine registry: one line per engine, with the profiles it offers, so manifests validate without
importing any optimization library; ``get_engine`` imports the engine on first use.

``profiles`` is the engine x profile matrix manifest validation enforces (docs/engines.md shows it; a test
checks it against each engine's ``profiles``); ``long_short`` lists the profiles that may run with
``constraints.long_only: false`` (market_neutral is long/short by definition).
"""

from __future__ import annotations

from dataclasses import dataclass

from tvquant_assets.registry import Entry, Registry

ALL_MEASURES = ("variance", "standard_deviation", "semi_variance", "semi_deviation", "mean_absolute_deviation",
                "cvar", "evar", "cdar", "max_drawdown", "worst_realization")  # = risk_measures.MEASURES
HIERARCHICAL = ("hrp", "herc", "benchmark")


@dataclass(frozen=True)
class EngineEntry(Entry):
    """An engine's class and what it declares: profiles, long/short profiles, and per profile the risk
    measures, penalties and trees it honours (manifest validation refuses anything else, one line each).

    ``measures``: ``(profiles, measures)`` pairs (a profile in none takes no ``risk_measure``);
    ``turnover`` / ``l2``: profiles honouring ``constraints.turnover_penalty`` / ``l2_gamma``;
    ``selection_tree``: profiles that can use the selection's tree; ``fixed_beta``: profiles whose
    library fixes beta at 0.95; ``joint``: profiles the engine solves over both books of
    ``tournament.book: long_short`` (a sign per book; ``Engine.fit_joint``), refused there otherwise.
    ``fit_ms``: a fit's typical wall time (the demo's 2019 rebalances, ``solve_ms``), which balances the
    tournament's candidate groups over worker processes; no output depends on it.
    """

    profiles: tuple[str, ...] = ()
    long_short: tuple[str, ...] = ()
    measures: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()
    turnover: tuple[str, ...] = ()
    l2: tuple[str, ...] = ()
    selection_tree: tuple[str, ...] = ()
    fixed_beta: tuple[str, ...] = ()
    joint: tuple[str, ...] = ()
    fit_ms: float = 3.0

    def risk_measures(self, profile: str) -> tuple[str, ...]:
        return next((m for ps, m in self.measures if profile in ps), ())


_CONVEX = ("min_variance", "max_sharpe")
ENGINES = Registry("engine", {
    "custom": EngineEntry("tvquant_assets.core.engines.custom:CustomEngine", profiles=(
        "min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "benchmark", "equal_weight", "barbell",
        "market_neutral"), long_short=("min_variance", "market_neutral"),
        measures=((("hrp", "herc", "min_variance", "max_sharpe", "risk_parity"), ALL_MEASURES),),
        turnover=("min_variance", "max_sharpe", "risk_parity", "market_neutral"),
        l2=("min_variance", "max_sharpe", "risk_parity", "market_neutral"),
        selection_tree=(*HIERARCHICAL, "barbell"), joint=(*_CONVEX, "market_neutral")),
    "skfolio": EngineEntry("tvquant_assets.core.engines.skfolio_engine:SkfolioEngine", profiles=(
        "min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "equal_weight", "market_neutral"),
        long_short=("market_neutral",), measures=((("hrp", "herc", *_CONVEX, "risk_parity"), ALL_MEASURES),),
        l2=(*_CONVEX, "market_neutral"), selection_tree=("hrp", "herc"), fixed_beta=("hrp", "herc"),
        joint=(*_CONVEX, "market_neutral"), fit_ms=25.0),
    "riskfolio": EngineEntry("tvquant_assets.core.engines.riskfolio_engine:RiskfolioEngine", profiles=(
        "min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "benchmark", "market_neutral"),
        long_short=("market_neutral",),
        measures=((("hrp", "herc", "min_variance"), tuple(m for m in ALL_MEASURES if m != "semi_variance")),
                  # max_sharpe: Riskfolio centres MAD / semi-deviation on the mu it maximizes
                  (("max_sharpe",), tuple(m for m in ALL_MEASURES if m not in (
                      "semi_variance", "semi_deviation", "mean_absolute_deviation"))),
                  (("risk_parity",), ("variance", "standard_deviation", "semi_deviation", "mean_absolute_deviation",
                                      "cvar", "evar", "cdar"))), joint=(*_CONVEX, "market_neutral"), fit_ms=70.0),
    "cvxportfolio": EngineEntry("tvquant_assets.core.engines.cvxportfolio_engine:CvxportfolioEngine",
                                profiles=("min_variance", "market_neutral"), long_short=("market_neutral",),
                                measures=((("min_variance",), ("variance",)),),
                                turnover=("min_variance", "market_neutral"), l2=("min_variance", "market_neutral"),
                                joint=("min_variance", "market_neutral"), fit_ms=30.0),
    "adaptive": EngineEntry("tvquant_assets.core.engines.adaptive:AdaptiveEngine", profiles=("adaptive",)),
})


def refusals(manifest) -> list[str]:
    """One line per candidate x field the candidate's engine cannot honour (manifest validation).

    Each line is ``tournament.candidates[i] (<name>): <engine> <profile> ... <field>``; an unknown engine
    or profile is reported by the caller, not here.
    """
    t = manifest.tournament
    c = t.constraints
    linkage = manifest.selection.linkage
    presets = manifest.regime_presets.values()
    l2_used = t.l2_gamma.default > 0 or any(v > 0 for v in t.l2_gamma.by_regime.values()) \
        or any((p.l2_gamma or 0) > 0 for p in presets)
    lines = []
    for i, cand in enumerate(t.candidates):
        if cand.engine not in ENGINES or cand.profile.value not in ENGINES.info(cand.engine).profiles:
            continue
        e, p = ENGINES.info(cand.engine), cand.profile.value
        where = f"tournament.candidates[{i}] ({cand.name})"
        if cand.engine == "adaptive":  # the custom engine fits every profile it may pick
            picks = {str(x.value) for x in (*t.adaptive.mapping.values(), t.adaptive.default)}
            picks |= {p.profile.value for p in presets if p.profile is not None and p.profile.value != "adaptive"}
            custom = ENGINES.info("custom")
            for field, honoured, used in (("tournament.constraints.turnover_penalty", custom.turnover,
                                           c.turnover_penalty > 0), ("tournament.l2_gamma", custom.l2, l2_used)):
                bad = sorted(x for x in picks if x not in honoured)
                if used and bad:
                    lines.append(f"{where}: custom {', '.join(bad)} (adaptive picks) cannot honour {field}")
            if cand.risk_measure is not None:
                lines.append(f"{where}: adaptive cannot use risk_measure {cand.risk_measure!r} (it takes none)")
            continue
        if cand.risk_measure is not None and cand.risk_measure not in e.risk_measures(p):
            have = e.risk_measures(p)
            lines.append(f"{where}: {cand.engine} {p} cannot use risk_measure {cand.risk_measure!r} "
                         f"({'allowed: ' + ', '.join(have) if have else 'it takes no risk_measure'})")
        if (cand.engine == "custom" and manifest.book == "long_short" and p in ("min_variance", "max_sharpe")
                and cand.risk_measure not in (None, "variance")):
            lines.append(f"{where}: custom {p} on tournament.book long_short cannot use risk_measure "
                         f"{cand.risk_measure!r} (its joint long/short fit is variance only)")
        if cand.risk_beta is not None and p in e.fixed_beta and cand.risk_beta != 0.95:
            lines.append(f"{where}: {cand.engine} {p} fixes risk_beta at 0.95 (its library's allocators)")
        if c.turnover_penalty > 0 and p not in e.turnover:
            lines.append(f"{where}: {cand.engine} {p} cannot honour tournament.constraints.turnover_penalty")
        if l2_used and p not in e.l2:
            lines.append(f"{where}: {cand.engine} {p} cannot honour tournament.l2_gamma (or a preset's l2_gamma)")
        if linkage.allocation_tree == "selection" and p in (*HIERARCHICAL, "barbell") and p not in e.selection_tree:
            lines.append(f"{where}: {cand.engine} {p} cannot use selection.linkage.allocation_tree 'selection'")
    return lines

# Tables derived from the registry: engine -> profiles; engine -> long/short profiles (engines with any)
ENGINE_PROFILES: dict[str, tuple[str, ...]] = {n: ENGINES.info(n).profiles for n in ENGINES}
LONG_SHORT_PROFILES: dict[str, tuple[str, ...]] = {
    n: ENGINES.info(n).long_short for n in ENGINES if ENGINES.info(n).long_short}


def get_engine(name: str, **params):
    """A fresh engine object; ``params`` go to its constructor (e.g. ``linkage``); an unknown name or
    parameter is a :class:`~tvquant_assets.errors.RegistryError`."""
    return ENGINES.create(name, **params)
