"""adaptive engine: picks the profile from the date's regime: the active regime preset's ``profile``
when it sets one, else the manifest's mapping (``tournament.adaptive.mapping``; the regime label is looked
up first, then the quadrant, then ``default``) and fits it with the custom engine. The pick is in
``EngineResult.picked`` and the record.
"""

from __future__ import annotations

from tvquant_assets.core.engines.base import Engine, EngineInputs, FitSpec
from tvquant_assets.core.engines.custom import CustomEngine


def pick_profile(spec: FitSpec) -> tuple[str, str]:
    """The profile and why (``"regime preset"``, ``"label TURBULENT"``, ``"quadrant EXPANSION"``, ``"default"``)."""
    if spec.preset_profile and spec.preset_profile != "adaptive":
        return spec.preset_profile, "regime preset"
    mapping = dict(spec.adaptive_map)
    for kind, key in (("label", spec.regime_label), ("quadrant", spec.quadrant)):
        if key and key in mapping:
            return mapping[key], f"{kind} {key}"
    return spec.adaptive_default, "default"


class AdaptiveEngine(Engine):
    """Regime-driven profile choice on top of :class:`CustomEngine`.

    Parameters
    ----------
    linkage : LinkageConfig
        Passed to the custom engine (HERC / hierarchical equal weight cut).
    """

    name = "adaptive"
    profiles = ("adaptive",)
    returns_profiles = ("adaptive",)
    # The inner engine applies cluster caps (natively or by projection) and walks its own fallback chain.
    cluster_cap_profiles = ("adaptive",)

    def _inner(self) -> CustomEngine:
        return self.__dict__.setdefault("engine_", CustomEngine(linkage=self.linkage))

    def is_long_short(self, profile: str, spec: FitSpec) -> bool:
        return self._inner().is_long_short(pick_profile(spec)[0], spec)

    def _fit(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float, spec: FitSpec):
        chosen, why = pick_profile(spec)
        result = self._inner().fit(inputs, chosen, max_weight, risk_free_rate, spec)
        self.picked_ = chosen
        note = "; ".join(x for x in (f"adaptive: {why} -> {chosen}", result.fallback) if x)
        return result.weights, result.status, note
