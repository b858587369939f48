"""Engines as peers on the bundled S&P set (skfolio's offline data): custom vs skfolio and Riskfolio live,
for every risk measure, linkage method and distance of the hierarchical allocators (1e-6), the penalties
of the convex ones (1e-4), the selection's tree, and the one-line refusals of what a library cannot do."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.engines import get_engine
from tvquant_assets.core.engines.base import EngineInputs, FitSpec
from tvquant_assets.core.engines.risk_measures import MEASURES
from tvquant_assets.core.estimation import estimate, returns_window, unpack
from tvquant_assets.core.linkage import selection_distance
from tvquant_assets.errors import ManifestError
from tvquant_assets.manifest.load import parse_manifest
from tvquant_assets.manifest.schema import EstimationConfig, LinkageConfig

HIER = 1e-6
CONVEX = 1e-4
DATE = pd.Timestamp("2021-03-01")
CRISIS = pd.Timestamp("2008-10-01")


def _inputs(panel, date, covariance="ledoit_wolf", distance=None) -> EngineInputs:
    syms = list(panel.close.columns)
    e = unpack(estimate(panel, {date: syms}, [date], EstimationConfig(covariance=covariance))[date])
    return EngineInputs(e.symbols, e.mu, e.cov, returns_window(panel, e.symbols, date, 252), distance)


@pytest.fixture(scope="module")
def lw(sp500_panel):
    return _inputs(sp500_panel, DATE)


@pytest.fixture(scope="module")
def sample(sp500_panel):
    return _inputs(sp500_panel, DATE, "sample")


def _agree(inp, profile, measure, cfg, other="skfolio", atol=HIER, max_weight=1.0):
    spec = FitSpec(risk_measure=measure)
    ours = get_engine("custom", linkage=cfg).fit(inp, profile, max_weight, 0.0, spec)
    ref = get_engine(other, linkage=cfg).fit(inp, profile, max_weight, 0.0, spec)
    assert ours.status == ref.status == "optimal", (ours.fallback, ref.fallback)
    np.testing.assert_allclose(ours.weights, ref.weights, atol=atol, err_msg=f"{other} {profile} {measure} {cfg}")
    return ours.weights


@pytest.mark.parametrize("measure", MEASURES)
def test_every_risk_measure_matches_skfolio(lw, measure):
    cfg = LinkageConfig(max_clusters=5)
    for profile in ("hrp", "herc"):
        w = _agree(lw, profile, measure, cfg)
        assert abs(w.sum() - 1) < 1e-12
    _agree(lw, "hrp", measure, cfg, max_weight=0.08)  # binding cap on the split factors
    _agree(lw, "herc", measure, cfg, max_weight=0.08)  # binding cap: least relative deviation


@pytest.mark.parametrize("method", ["ward", "single", "average", "complete"])
@pytest.mark.parametrize("distance", ["pearson", "spearman", "kendall"])
def test_every_linkage_matches_skfolio(lw, method, distance):
    cfg = LinkageConfig(method=method, distance=distance, max_clusters=5)
    trees = {_agree(lw, "hrp", m, cfg).round(12).tobytes() for m in ("variance", "cvar")}
    _agree(lw, "herc", "cvar", cfg)
    assert len(trees) == 2  # the measure matters


def test_linkage_changes_the_tree(lw):
    ward, single = (get_engine("custom", linkage=LinkageConfig(method=m)).fit(lw, "hrp").weights
                    for m in ("ward", "single"))
    assert np.abs(ward - single).max() > 1e-3  # a manifest asking for single linkage is no longer Ward


def test_selection_tree_matches_skfolio(sp500_panel, lw):
    dist = selection_distance(sp500_panel, lw.symbols, DATE, [63, 126, 252])
    inp = EngineInputs(lw.symbols, lw.mu, lw.cov, lw.returns, dist)
    cfg = LinkageConfig(method="average", allocation_tree="selection", max_clusters=4)
    for profile, measure in (("hrp", "variance"), ("hrp", "semi_deviation"), ("herc", "cdar")):
        w = _agree(inp, profile, measure, cfg)
        assert np.abs(w - _agree(lw, profile, measure, cfg.model_copy(update={"allocation_tree": "estimation"}))
                      ).max() > 1e-4


def test_riskfolio_measures_and_benchmark(sample):
    for method, cases in (("ward", (("hrp", "cvar"), ("herc", "max_drawdown"), ("benchmark", None))),
                          ("single", (("hrp", "semi_deviation"), ("benchmark", None)))):
        for profile, measure in cases:
            _agree(sample, profile, measure, LinkageConfig(method=method, max_clusters=5), other="riskfolio")


def test_convex_penalties_match_skfolio_and_cvxportfolio(sp500_panel):
    inp = _inputs(sp500_panel, CRISIS)
    prev = np.full(inp.n, 1.0 / inp.n)
    custom = get_engine("custom")
    for spec, others in ((FitSpec(l2_gamma=0.05), ("skfolio", "cvxportfolio")),
                         (FitSpec(previous=prev, turnover_penalty=0.01), ("cvxportfolio",)),
                         (FitSpec(previous=prev, turnover_penalty=0.01, l2_gamma=0.05), ("cvxportfolio",))):
        ours = custom.fit(inp, "min_variance", 0.3, 0.0, spec).weights
        plain = custom.fit(inp, "min_variance", 0.3, 0.0).weights
        assert np.abs(ours - plain).max() > 1e-3  # the penalty moves the weights
        for name in others:
            np.testing.assert_allclose(get_engine(name).fit(inp, "min_variance", 0.3, 0.0, spec).weights, ours,
                                       atol=CONVEX, err_msg=f"{name} {spec}")
    spec = FitSpec(l2_gamma=0.05)
    np.testing.assert_allclose(get_engine("skfolio").fit(inp, "max_sharpe", 0.3, 0.0, spec).weights,
                               custom.fit(inp, "max_sharpe", 0.3, 0.0, spec).weights, atol=CONVEX)


BASE = """
name: peers
start: 2008-01-02
source: {kind: bundled, dataset: sp500}
"""


def _refusal(tournament: str, extra: str = "") -> list[str]:
    with pytest.raises(ManifestError) as info:
        parse_manifest(BASE + extra + "tournament:\n" + tournament, "peers.yaml")
    return str(info.value).splitlines()


@pytest.mark.parametrize("tournament,extra,expected", [
    ("  candidates: [{engine: riskfolio, profile: hrp}]\n  constraints: {turnover_penalty: 0.01}\n", "",
     "tournament.candidates[0] (riskfolio/hrp): riskfolio hrp cannot honour tournament.constraints.turnover_penalty"),
    ("  candidates: [{engine: skfolio, profile: hrp}]\n  l2_gamma: {by_regime: {CRISIS: 0.1}}\n", "",
     "tournament.candidates[0] (skfolio/hrp): skfolio hrp cannot honour tournament.l2_gamma"),
    ("  candidates: [{engine: custom, profile: hrp}]\n", "regime_presets: {CRISIS: {l2_gamma: 0.2}}\n",
     "tournament.candidates[0] (custom/hrp): custom hrp cannot honour tournament.l2_gamma"),
    ("  candidates: [{engine: skfolio, profile: herc, risk_measure: cvar, risk_beta: 0.9}]\n", "",
     "tournament.candidates[0] (skfolio/herc/cvar@0.9): skfolio herc fixes risk_beta at 0.95"),
    ("  candidates: [{engine: custom, profile: barbell, risk_measure: cvar}]\n", "",
     "tournament.candidates[0] (custom/barbell/cvar): custom barbell cannot use risk_measure 'cvar' "
     "(it takes no risk_measure)"),
    ("  candidates: [{engine: riskfolio, profile: herc, risk_measure: semi_variance}]\n", "",
     "tournament.candidates[0] (riskfolio/herc/semi_variance): riskfolio herc cannot use risk_measure"),
    ("  candidates: [{engine: riskfolio, profile: hrp}]\n",
     "selection: {linkage: {allocation_tree: selection}}\n",
     "tournament.candidates[0] (riskfolio/hrp): riskfolio hrp cannot use selection.linkage.allocation_tree"),
    ("  candidates: [{engine: adaptive, profile: adaptive}]\n  constraints: {turnover_penalty: 0.01}\n", "",
     "tournament.candidates[0] (adaptive/adaptive): custom barbell, hrp (adaptive picks) cannot honour "
     "tournament.constraints.turnover_penalty"),
])
def test_unhonoured_fields_are_refused_in_one_line(tournament, extra, expected):
    lines = _refusal(tournament, extra)
    assert len(lines) == 1 and lines[0].startswith("peers.yaml: ") and expected in lines[0], lines


def test_honoured_fields_are_accepted():
    m = parse_manifest(BASE + """
selection: {linkage: {method: average, distance: spearman, allocation_tree: selection}}
tournament:
  candidates:
    - {engine: custom, profile: hrp, risk_measure: cdar, risk_beta: 0.9}
    - {engine: skfolio, profile: herc, risk_measure: evar}
    - {engine: skfolio, profile: min_variance, risk_measure: cvar, risk_beta: 0.9}
  constraints: {cluster_cap: 0.4}
""", "ok.yaml")
    assert [c.name for c in m.tournament.candidates] == [
        "custom/hrp/cdar@0.9", "skfolio/herc/evar", "skfolio/min_variance/cvar@0.9"]
    m = parse_manifest(BASE + """
tournament:
  candidates: [{engine: custom, profile: min_variance}, {engine: cvxportfolio, profile: min_variance},
               {engine: skfolio, profile: max_sharpe}]
  constraints: {cluster_cap: 0.4}
  l2_gamma: {default: 0.05}
""", "ok.yaml")
    assert m.tournament.l2_gamma.default == 0.05
