"""Constraint sweep over 2008-2009 on the bundled S&P set: every engine x profile the registry accepts
holds the per-asset and cluster caps on every decision date, and the penalties it declares lower the
turnover; every engine x profile x field the registry refuses gives exactly one line naming both."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.engines import ENGINES
from tvquant_assets.core.estimation import estimate
from tvquant_assets.core.tournament import run_tournament
from tvquant_assets.errors import ManifestError
from tvquant_assets.manifest.load import parse_manifest
from tvquant_assets.manifest.schema import EstimationConfig, LinkageConfig, TournamentConfig

EST = EstimationConfig()
SYMS = ["AAPL", "BAC", "CVX", "GE", "HD", "JNJ", "JPM", "KO", "MSFT", "PFE", "WMT", "XOM"]
CLUSTERS = dict(zip(SYMS, [1, 2, 3, 4, 5, 1, 2, 4, 1, 5, 4, 3], strict=True))
DATES = list(pd.date_range("2008-01-01", "2009-12-31", freq="BMS")[::3])  # 8 decisions through the crisis
CAP, CLUSTER_CAP = 0.2, 0.45
CANDIDATES = [("custom", p) for p in ("min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "benchmark",
                                      "equal_weight", "barbell")] + \
    [("skfolio", p) for p in ("min_variance", "max_sharpe", "risk_parity", "hrp", "herc")] + \
    [("riskfolio", p) for p in ("min_variance", "hrp", "benchmark")] + [("cvxportfolio", "min_variance")]
PENALIZED = [(e, p) for e, p in CANDIDATES if p in ENGINES.info(e).turnover and p in ENGINES.info(e).l2]


def regimes():
    return {d: pd.DataFrame({"label": ["CRISIS"], "quadrant": ["STAGNATION"], "preset": [""],
                             "preset_max_weight": [np.nan]}) for d in DATES}


def run(panel, candidates, **constraints):
    l2 = constraints.pop("l2", 0.0)
    cfg = TournamentConfig(candidates=[{"engine": e, "profile": p} for e, p in candidates],
                           constraints={"max_weight": CAP, "cluster_cap": CLUSTER_CAP, **constraints},
                           l2_gamma={"default": l2})
    scores = pd.DataFrame({"symbol": SYMS, "cluster": [CLUSTERS[s] for s in SYMS], "momentum_pct": 0.5})
    ests = estimate(panel, {d: SYMS for d in DATES}, DATES, EST, {d: scores for d in DATES})
    return run_tournament(panel, ests, regimes(), DATES, lambda d: True, cfg, {}, EST,
                          linkage=LinkageConfig(max_clusters=4))


@pytest.fixture(scope="module")
def caps_run(sp500_panel):
    return run(sp500_panel, CANDIDATES)


def test_caps_hold_on_every_date_for_every_engine(caps_run):
    for d, frame in caps_run.items():
        for cand, g in frame.groupby("candidate"):
            w = g.set_index("symbol")["weight"]
            assert abs(w.sum() - 1) < 1e-9 and w.min() >= -1e-12, (d, cand)
            assert w.max() <= CAP + 1e-6, (d.date(), cand, w.idxmax(), w.max(), g["fallback"].iloc[0])
            by_cluster = w.groupby(pd.Series(CLUSTERS)).sum()
            assert by_cluster.max() <= CLUSTER_CAP + 1e-6, (d.date(), cand, g["fallback"].iloc[0])
            # 2009's negative means: max_sharpe has no portfolio beating cash (custom serves min_variance,
            # skfolio's solvers fail and the previous decision is kept): the caps hold on fallbacks too.
            assert g["status"].iloc[0] in ("optimal", "fallback:min_variance", "fallback:previous"), (d, cand)
    statuses = pd.concat(caps_run.values()).groupby("candidate")["status"].first()
    assert (statuses == "optimal").sum() >= len(CANDIDATES) - 2


def _turnover(out, cand):
    w = pd.DataFrame({d: f[f["candidate"] == cand].set_index("symbol")["weight"] for d, f in out.items()}).T
    return float(w.diff().abs().sum(axis=1).sum())


def test_declared_penalties_lower_turnover(sp500_panel, caps_run):
    penalized = run(sp500_panel, PENALIZED, turnover_penalty=0.02, l2=0.05)
    for e, p in PENALIZED:
        name = f"{e}/{p}"
        assert _turnover(penalized, name) < _turnover(caps_run, name), name


FIELDS = {
    "turnover_penalty": ("tournament:\n  candidates: [{{engine: {e}, profile: {p}}}]\n"
                         "  constraints: {{turnover_penalty: 0.01}}\n", "tournament.constraints.turnover_penalty"),
    "l2_gamma": ("tournament:\n  candidates: [{{engine: {e}, profile: {p}}}]\n  l2_gamma: {{default: 0.05}}\n",
                 "tournament.l2_gamma"),
    "allocation_tree": ("selection: {{linkage: {{allocation_tree: selection}}}}\n"
                        "tournament:\n  candidates: [{{engine: {e}, profile: {p}}}]\n",
                        "selection.linkage.allocation_tree"),
    "risk_measure": ("tournament:\n  candidates: [{{engine: {e}, profile: {p}, risk_measure: cdar}}]\n",
                     "risk_measure 'cdar'"),
}


def test_every_refused_combination_is_one_line():
    refused = 0
    for name, (field, (template, needle)) in itertools.product(ENGINES, FIELDS.items()):
        for profile in ENGINES.info(name).profiles:
            text = "name: sweep\nstart: 2008-01-02\n" + template.format(e=name, p=profile)
            if profile == "market_neutral":  # long/short only: refused with long_only true (manifest/rules.py)
                text = (text.replace("constraints: {", "constraints: {long_only: false, ") if "constraints:" in text
                        else text.replace("}]\n", "}]\n  constraints: {long_only: false}\n", 1))
            try:
                parse_manifest(text, "sweep.yaml")
            except ManifestError as exc:
                lines = str(exc).splitlines()
                assert len(lines) == 1 and needle in lines[0] and name in lines[0], (name, profile, field, lines)
                refused += 1
    assert refused > 20
