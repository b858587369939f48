"""Custom mean-risk (minimum risk, maximum ratio) and risk budgeting for every risk measure, live against
skfolio's ``MeanRisk`` (MINIMIZE_RISK / MAXIMIZE_RATIO) and ``RiskBudgeting`` and Riskfolio's
``Portfolio`` on the bundled S&P set (tight CLARABEL/SCS tolerances on both sides, weights within 1e-4);
the constraints the custom programs honour (max_weight, cluster caps, L1 turnover, L2, long/short
limits, books); EVaR's Newton root against the former Brent root."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.engines import get_engine
from tvquant_assets.core.engines.base import EngineInputs, FitSpec
from tvquant_assets.core.engines.risk_measures import MEASURES, series_risk
from tvquant_assets.core.estimation import estimate, returns_window, unpack
from tvquant_assets.errors import ManifestError
from tvquant_assets.manifest.load import parse_manifest
from tvquant_assets.manifest.schema import EstimationConfig

CONVEX = 1e-4
PROFILES = ("min_variance", "max_sharpe", "risk_parity")
OTHER = [m for m in MEASURES if m != "variance"]


def _inputs(panel, date) -> EngineInputs:
    syms = list(panel.close.columns)
    e = unpack(estimate(panel, {date: syms}, [date], EstimationConfig())[date])
    return EngineInputs(e.symbols, e.mu, e.cov, returns_window(panel, e.symbols, date, 252))


@pytest.fixture(scope="module")
def calm(sp500_panel):
    return _inputs(sp500_panel, pd.Timestamp("2021-03-01"))


@pytest.fixture(scope="module")
def crisis(sp500_panel):
    return _inputs(sp500_panel, pd.Timestamp("2008-10-01"))


def _risk(inp, measure, w):
    if measure == "standard_deviation":
        return float(np.sqrt(w @ inp.cov @ w))
    return float(series_risk(measure, inp.returns.to_numpy() @ w))


@pytest.mark.parametrize("measure", OTHER)
def test_every_measure_matches_skfolio_mean_risk_and_risk_budgeting(calm, crisis, measure):
    custom, skfolio = get_engine("custom"), get_engine("skfolio")
    spec = FitSpec(risk_measure=measure)
    for inp, cap in ((calm, 1.0), (crisis, 0.15)):  # 0.15 binds on the 2008 book
        for profile in PROFILES:
            ours, ref = custom.fit(inp, profile, cap, 0.0, spec), skfolio.fit(inp, profile, cap, 0.0, spec)
            assert ours.status == ref.status == "optimal", (ours.fallback, ref.fallback)
            np.testing.assert_allclose(ours.weights, ref.weights, atol=CONVEX, err_msg=f"{profile} {measure}")
            assert ours.weights.max() <= cap + 1e-9
        plain = custom.fit(inp, "min_variance", cap).weights  # the measure matters (std: the same minimum)
        moved = np.abs(custom.fit(inp, "min_variance", cap, 0.0, spec).weights - plain).max()
        assert measure == "standard_deviation" or moved > 1e-3
    # minimum risk is the least risk, maximum ratio the best ratio, over the other profiles' weights
    ws = {p: custom.fit(calm, p, 1.0, 0.0, spec).weights for p in PROFILES}
    risks = {p: _risk(calm, measure, w) for p, w in ws.items()}
    assert risks["min_variance"] <= min(risks.values()) + 1e-9
    power = 0.5 if measure == "semi_variance" else 1.0
    ratios = {p: (calm.mu @ w) / risks[p] ** power for p, w in ws.items()}
    assert ratios["max_sharpe"] >= max(ratios.values()) - 1e-9


def test_riskfolio_mean_risk_and_risk_budgeting_match(calm):
    """Riskfolio's Portfolio on the same estimates (MAD / semi-deviation centred on the window's mean)."""
    custom, riskfolio = get_engine("custom"), get_engine("riskfolio")
    for profile, measure in (("min_variance", "mean_absolute_deviation"), ("risk_parity", "semi_deviation"),
                             ("min_variance", "cdar"), ("max_sharpe", "cvar"), ("risk_parity", "evar")):
        spec = FitSpec(risk_measure=measure)
        ours, ref = custom.fit(calm, profile, 1.0, 0.0, spec), riskfolio.fit(calm, profile, 1.0, 0.0, spec)
        assert ref.status == "optimal", ref.fallback
        np.testing.assert_allclose(ours.weights, ref.weights, atol=CONVEX, err_msg=f"{profile} {measure}")


def test_risk_budgeting_equalizes_contributions(calm):
    w = get_engine("custom").fit(calm, "risk_parity", 1.0, 0.0, FitSpec(risk_measure="cvar")).weights
    r = calm.returns.to_numpy()
    tail = np.argsort(r @ w)[: int(0.05 * len(r))]  # CVaR contributions: each asset's mean loss in the tail
    contrib = -w * r[tail].mean(axis=0)
    assert contrib.max() / contrib.min() < 1.15  # equal up to the tail's discreteness (12 of 252 days)


def test_l2_matches_skfolio_and_turnover_pulls_to_previous(crisis):
    custom = get_engine("custom")
    spec = FitSpec(risk_measure="cvar", l2_gamma=0.02)  # in the measure's units, as skfolio's l2_coef
    ours = custom.fit(crisis, "min_variance", 0.3, 0.0, spec)
    assert np.abs(ours.weights - custom.fit(crisis, "min_variance", 0.3, 0.0, FitSpec(risk_measure="cvar")).weights
                  ).max() > 1e-3
    np.testing.assert_allclose(get_engine("skfolio").fit(crisis, "min_variance", 0.3, 0.0, spec).weights,
                               ours.weights, atol=CONVEX)
    for profile, measure in (("min_variance", "cdar"), ("max_sharpe", "evar"), ("risk_parity", "semi_deviation")):
        # previous weights reachable by the profile (max ratio: positive excess return; budgeting: all > 0)
        prev = custom.fit(crisis, profile, 1.0, 0.0, FitSpec(risk_measure="worst_realization")).weights
        turnover = []
        for kappa in (0.0, 0.002, 1.0):
            w = custom.fit(crisis, profile, 1.0, 0.0,
                           FitSpec(risk_measure=measure, previous=prev, turnover_penalty=kappa)).weights
            turnover.append(np.abs(w - prev).sum())
        assert turnover[0] > turnover[1] > turnover[2] and turnover[2] < 1e-6, (profile, measure, turnover)


def test_cluster_caps_native_and_long_short(crisis):
    custom = get_engine("custom")
    clusters = np.arange(crisis.n) % 4
    for profile in ("min_variance", "max_sharpe", "risk_parity"):
        res = custom.fit(crisis, profile, 0.2, 0.0, FitSpec(risk_measure="max_drawdown", clusters=clusters,
                                                             cluster_cap=0.3))
        by_cluster = np.bincount(clusters, res.weights)
        assert res.status == "optimal" and by_cluster.max() <= 0.3 + 1e-7 and res.weights.max() <= 0.2 + 1e-9
        if profile != "risk_parity":  # native: the optimum already meets the caps, nothing projected
            assert "projected" not in res.fallback, res.fallback
    spec = FitSpec(risk_measure="cvar", long_only=False, gross=1.6, net=1.0)
    w = custom.fit(crisis, "min_variance", 0.3, 0.0, spec).weights
    assert abs(w.sum() - 1.0) < 1e-7 and np.abs(w).sum() <= 1.6 + 1e-7 and w.min() < -1e-3


def test_books_short_mirror_and_long_short_per_book(crisis):
    from tvquant_assets.core.book_fit import fit_book, limits_ok
    from tvquant_assets.core.book_limits import BookLimits

    custom = get_engine("custom")
    spec = FitSpec(risk_measure="cdar", gross=1.6, net=1.0)
    for profile in PROFILES:  # short: the long-only program on -mu and -returns, negated
        res = fit_book(custom, crisis, profile, 0.2, 0.0, spec, "short")
        assert res.status == "optimal" and limits_ok(res.weights, 0.2, BookLimits("short")), (profile, res.fallback)
    sides = np.where(np.arange(crisis.n) < 14, 1.0, -1.0)
    res = fit_book(custom, crisis, "risk_parity", 0.4, 0.0, spec, "long_short", sides)  # per book
    assert res.status == "optimal" and limits_ok(res.weights, 0.4, BookLimits("long_short", 1.0, 1.6), sides)


BASE = "name: m\nstart: 2008-01-02\nsource: {kind: bundled, dataset: sp500}\n"


def test_measures_accepted_and_joint_long_short_refused():
    m = parse_manifest(BASE + """
tournament:
  candidates:
    - {engine: custom, profile: min_variance, risk_measure: cvar, risk_beta: 0.9}
    - {engine: custom, profile: max_sharpe, risk_measure: evar}
    - {engine: custom, profile: risk_parity, risk_measure: cdar}
  constraints: {cluster_cap: 0.4, turnover_penalty: 0.001}
  l2_gamma: {default: 0.01}
""", "ok.yaml")
    assert [c.name for c in m.tournament.candidates] == [
        "custom/min_variance/cvar@0.9", "custom/max_sharpe/evar", "custom/risk_parity/cdar"]
    with pytest.raises(ManifestError) as info:
        parse_manifest(BASE + """
selection: {short: {enabled: true}}
tournament:
  book: long_short
  candidates: [{engine: custom, profile: min_variance, risk_measure: cvar}]
  constraints: {long_only: false, gross: 1.6, net: 1.0}
""", "ls.yaml")
    refused = [x for x in str(info.value).splitlines() if "risk_measure" in x]
    assert len(refused) == 1 and "custom min_variance on tournament.book long_short cannot use risk_measure 'cvar'" \
        in refused[0], str(info.value)
    with pytest.raises(ManifestError) as info:
        parse_manifest(BASE + "tournament:\n  candidates: [{engine: riskfolio, profile: max_sharpe, "
                       "risk_measure: mean_absolute_deviation}]\n", "rf.yaml")
    lines = str(info.value).splitlines()
    assert len(lines) == 1 and "riskfolio max_sharpe cannot use risk_measure 'mean_absolute_deviation'" in lines[0]


def _evar_brentq(r: np.ndarray, beta: float) -> float:
    """The previous implementation (one Brent root per series), kept as the reference."""
    from scipy.optimize import brentq

    losses = -np.asarray(r, dtype="float64")
    top, spread = float(losses.max()), float(losses.max() - losses.min())
    x = (losses - top) / spread
    c = np.log(x.size) + np.log1p(-beta)

    def lse_mean(t):
        e = np.exp(t * x)
        return np.log(e.sum()), float(e @ x) / e.sum()

    def slope(log_t):
        t = np.exp(log_t)
        lse, m = lse_mean(t)
        return t * m - lse + c

    lower, upper = 0.5 * np.log(-2.0 * np.log1p(-beta)), 20.0
    if slope(upper) <= 0:
        return top
    t = np.exp(brentq(slope, lower, upper, xtol=1e-14, rtol=4 * np.finfo(float).eps, maxiter=500))
    return top + spread * (lse_mean(t)[0] - c) / t


def test_evar_newton_matches_the_brent_root(calm):
    """The bracketed Newton (numba, all columns in one call) = the former per-series Brent root, <= 1e-9."""
    from tvquant_assets.core.engines.risk_measures import evar

    rng = np.random.default_rng(3)
    real = calm.returns.to_numpy()
    for x in (real, np.tile(real, (1, 4)) * rng.uniform(0.5, 2.0, 80), rng.standard_t(3, (300, 70)) * 0.01,
              rng.normal(0, 0.01, (12, 3))):  # 12 x (1 - 0.95) < 1: the worst loss
        for beta in (0.5, 0.95, 0.99):
            ref = np.array([_evar_brentq(x[:, j], beta) for j in range(x.shape[1])])
            np.testing.assert_allclose(evar(x, beta), ref, rtol=1e-9, atol=0)
            np.testing.assert_allclose(evar(x[:, 0], beta), ref[0], rtol=1e-9, atol=0)
