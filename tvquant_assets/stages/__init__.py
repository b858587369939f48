"""The stage registry: one module per stage, one line each, in execution order.

A stage module (``stages/<name>.py``, named as the core module it calls) declares its identity once, at
its top, as ``SPEC`` (:class:`~tvquant_assets.stages.spec.StageSpec`: name, upstreams, the partitions it
reads, kinds; its docstring is the asset's description), and defines ``run(ctx, dates) -> StageResult``
and ``summary(frame) -> dict`` (the UI's markdown summary and plotted values). Every table the Dagster
layer needs (assets, deps, descriptions, kinds, code versions, summaries) is derived from these modules.
Adding a stage: one new file and one line in :data:`STAGE_MODULES`.
"""

from __future__ import annotations

import dataclasses
import importlib
from enum import StrEnum
from types import ModuleType

from tvquant_assets.stages.spec import StageResult, StageSpec

STAGE_MODULES: tuple[str, ...] = (
    "catalog",
    "prices",
    "scan",
    "regime",  # before selection: selection applies the regime's preset of D
    "selection",
    "estimation",
    "tournament",
    "backtest",
    "drift",
    "paper",  # opt-in (paper.enabled): D-1's drift orders filled at D's open; before audit, which seals it
    "audit",
    "regime_regret",
    "verdict",
)

Stage = StrEnum("Stage", {name.upper(): name for name in STAGE_MODULES})
"""Every stage's name (``Stage.SELECTION == "selection"``)."""


def _load() -> tuple[dict[str, ModuleType], dict[str, StageSpec]]:
    modules = {name: importlib.import_module(f"{__name__}.{name}") for name in STAGE_MODULES}
    specs: dict[str, StageSpec] = {}
    for name, module in modules.items():
        spec = module.SPEC
        if spec.name != name:
            raise ImportError(f"stages/{name}.py declares SPEC.name {spec.name!r}; it must be {name!r}")
        for attr in ("run", "summary"):
            if not callable(getattr(module, attr, None)):
                raise ImportError(f"stages/{name}.py must define {attr}()")
        unknown = [u for u in (*spec.upstream, *spec.previous) if u not in specs and u != name]
        if unknown:  # upstreams come earlier in STAGE_MODULES: the order is an execution order
            raise ImportError(f"stages/{name}.py: upstream {', '.join(unknown)} is not a stage listed before it")
        if spec.seals:
            spec = dataclasses.replace(spec, upstream=tuple(n for n, s in specs.items() if s.sealed))
        specs[name] = spec
    return modules, specs


MODULES, SPECS = _load()
"""``{name: module}`` and ``{name: StageSpec}`` of every stage, in execution order."""

ALL_STAGES: tuple[Stage, ...] = tuple(Stage(n) for n, s in SPECS.items() if s.sealed or s.seals)
"""The stages of the decision chain: sealed in the ledger (and the audit stage that seals them), opt-in ones
included."""

STAGES: tuple[Stage, ...] = tuple(s for s in ALL_STAGES if SPECS[s].enabled_by is None)
"""The decision chain every manifest has (``ALL_STAGES`` without the opt-in stages)."""

ALL_ASSETS: tuple[Stage, ...] = tuple(Stage(n) for n in SPECS)
"""Every stage, opt-in ones included, in execution order."""

ASSETS: tuple[Stage, ...] = tuple(s for s in ALL_ASSETS if SPECS[s].enabled_by is None)
"""The daily assets every manifest has: the decision chain plus advisory stages (the threshold auditor);
:func:`assets_of` adds the opt-in stages a manifest enables (the paper account)."""


def assets_of(manifest) -> tuple[Stage, ...]:
    """The daily assets of ``manifest``: every stage but the opt-in ones it does not enable."""
    return tuple(s for s in ALL_ASSETS if SPECS[s].enabled(manifest))


def sealed_specs(manifest=None) -> list[StageSpec]:
    """The specs of the stages the audit stage seals (of ``manifest``, when given), in execution order."""
    return [s for s in SPECS.values() if s.sealed and not s.seals and (manifest is None or s.enabled(manifest))]


def upstream_of(spec: StageSpec, manifest) -> tuple[str, ...]:
    """``spec``'s same-date upstreams that ``manifest`` has (the audit seals only the stages it enables)."""
    return tuple(u for u in spec.upstream if SPECS[u].enabled(manifest))


def downstream_of(name: str) -> tuple[Stage, ...]:
    """``name`` and every stage that depends on it, directly or not, in execution order."""
    reached = {str(name)}
    for n, s in SPECS.items():
        if reached & {*s.upstream, *s.previous}:
            reached.add(n)
    return tuple(Stage(n) for n in SPECS if n in reached)


__all__ = ["ALL_ASSETS", "ALL_STAGES", "ASSETS", "MODULES", "SPECS", "STAGES", "STAGE_MODULES", "Stage",
           "StageResult", "StageSpec", "assets_of", "downstream_of", "sealed_specs", "upstream_of"]
