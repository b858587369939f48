"""Every engine x profile: agreement with the reference libraries on the bundled S&P set, constraints
(long/short, cluster caps, L1 turnover, L2), the fallback chain down to previous weights, adaptive picks,
determinism."""

from __future__ import annotations

import itertools

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from skfolio.measures import cvar as sk_cvar

from tvquant_assets.core.engines import ENGINE_PROFILES, LONG_SHORT_PROFILES, get_engine
from tvquant_assets.core.engines.adaptive import pick_profile
from tvquant_assets.core.engines.base import EngineInputs, FitSpec, project_cluster_caps
from tvquant_assets.core.engines.hierarchy import cvar
from tvquant_assets.core.estimation import estimate, returns_window, unpack
from tvquant_assets.manifest.schema import EstimationConfig, LinkageConfig

AGREE = 1e-4
DATES = [pd.Timestamp("2008-10-01"), pd.Timestamp("2021-03-01")]
LINKAGE = LinkageConfig(max_clusters=5)


def _inputs(panel, date, covariance="ledoit_wolf") -> EngineInputs:
    syms = list(panel.close.columns)
    e = unpack(estimate(panel, {date: syms}, [date], EstimationConfig(covariance=covariance))[date])
    return EngineInputs(e.symbols, e.mu, e.cov, returns_window(panel, e.symbols, date, 252))


@pytest.fixture(scope="module")
def sp500(sp500_panel) -> dict[pd.Timestamp, EngineInputs]:
    return {d: _inputs(sp500_panel, d) for d in DATES}


@pytest.fixture(scope="module")
def sp500_sample(sp500_panel) -> EngineInputs:
    # Sample covariance: skfolio's HERC clusters on the Pearson distance of the window, which then equals ours.
    return _inputs(sp500_panel, DATES[1], "sample")


@pytest.fixture(scope="module")
def engines():
    return {name: get_engine(name, linkage=LINKAGE) for name in ENGINE_PROFILES}


# --- agreement with the libraries on the same estimates -------------------------------------------------------

@pytest.mark.parametrize("profile,others", [
    ("min_variance", ("skfolio", "riskfolio", "cvxportfolio")),
    ("max_sharpe", ("skfolio", "riskfolio")),
    ("risk_parity", ("skfolio", "riskfolio")),
    ("hrp", ("skfolio", "riskfolio")),
])
def test_custom_agrees_with_libraries(sp500, engines, profile, others):
    for d, inp in sp500.items():
        ours = engines["custom"].fit(inp, profile, 1.0, 0.0)
        assert ours.status == "optimal", (d, ours.fallback)
        for name in others:
            ref = engines[name].fit(inp, profile, 1.0, 0.0)
            assert ref.status == "optimal", (name, ref.fallback)
            np.testing.assert_allclose(ours.weights, ref.weights, atol=AGREE, err_msg=f"{name} {profile} {d.date()}")


def test_hrp_with_binding_cap_agrees_with_skfolio(sp500, engines):
    inp = sp500[DATES[1]]
    ours, ref = (engines[e].fit(inp, "hrp", 0.08, 0.0) for e in ("custom", "skfolio"))
    assert ours.weights.max() <= 0.08 + 1e-12
    np.testing.assert_allclose(ours.weights, ref.weights, atol=AGREE)


def test_herc_cvar_agrees_with_skfolio_and_riskfolio(sp500_sample, engines):
    ours = engines["custom"].fit(sp500_sample, "herc", 1.0, 0.0)
    assert ours.status == "optimal"
    for name in ("skfolio", "riskfolio"):
        np.testing.assert_allclose(ours.weights, engines[name].fit(sp500_sample, "herc", 1.0, 0.0).weights,
                                   atol=AGREE, err_msg=name)


def test_cvar_matches_skfolio(sp500):
    r = sp500[DATES[0]].returns.to_numpy()
    np.testing.assert_allclose(cvar(r), sk_cvar(r), rtol=1e-12)
    assert cvar(r[:, 0]) == pytest.approx(float(sk_cvar(r[:, 0])))


def test_market_neutral_custom_vs_cvxportfolio(sp500, engines):
    inp = sp500[DATES[1]]
    spec = FitSpec(beta_band=10.0, gross=1.5)  # cvxportfolio has no beta band: make ours slack
    ours, ref = (engines[e].fit(inp, "market_neutral", 0.2, 0.0, spec) for e in ("custom", "cvxportfolio"))
    assert ours.status == ref.status == "optimal"
    assert abs(ours.weights.sum()) < 1e-6 and np.abs(ours.weights).sum() <= 1.5 + 1e-6
    np.testing.assert_allclose(ours.weights, ref.weights, atol=AGREE)


# --- profiles by construction -----------------------------------------------------------------------------------

def two_blocks() -> EngineInputs:
    """Two uncorrelated blocks: 3 correlated assets and 2 correlated assets."""
    n = 5
    corr = np.eye(n)
    corr[:3, :3] = 0.8
    corr[3:, 3:] = 0.8
    np.fill_diagonal(corr, 1.0)
    vol = np.array([0.2, 0.25, 0.3, 0.15, 0.35])
    cov = corr * np.outer(vol, vol)
    syms = list("ABCDE")
    rets = pd.DataFrame(np.random.default_rng(0).multivariate_normal(np.zeros(n), cov / 252, 300), columns=syms)
    return EngineInputs(syms, np.array([0.05, 0.12, 0.08, 0.02, 0.2]), cov, rets)


def test_benchmark_is_hierarchical_equal_weight():
    engine = get_engine("custom", linkage=LinkageConfig(max_clusters=2))
    r = engine.fit(two_blocks(), "benchmark", 1.0, 0.0, FitSpec())
    np.testing.assert_allclose(r.weights, [1 / 6, 1 / 6, 1 / 6, 1 / 4, 1 / 4], atol=1e-12)


def test_risk_parity_equalizes_risk_contributions(engines):
    inp = two_blocks()
    w = engines["custom"].fit(inp, "risk_parity", 1.0, 0.0).weights
    rc = w * (inp.cov @ w)
    np.testing.assert_allclose(rc / rc.sum(), np.full(5, 0.2), atol=1e-9)


def test_barbell_blends_hrp_and_aggressor(engines):
    inp = two_blocks()
    hrp = engines["custom"].fit(inp, "hrp", 1.0, 0.0).weights
    none = engines["custom"].fit(inp, "barbell", 1.0, 0.0, FitSpec(aggressor_share=0.0)).weights
    np.testing.assert_allclose(none, hrp, atol=1e-12)
    r = engines["custom"].fit(inp, "barbell", 1.0, 0.0, FitSpec(aggressor_share=0.3, aggressor_count=2))
    aggressor = np.array([0, 0.5, 0, 0, 0.5])  # the two highest mu: B and E
    np.testing.assert_allclose(r.weights, 0.7 * hrp + 0.3 * aggressor, atol=1e-12)


def test_market_neutral_beta_band_and_books(engines):
    inp = two_blocks()
    r = engines["custom"].fit(inp, "market_neutral", 0.4, 0.0, FitSpec(beta_band=0.01, gross=1.0))
    w = r.weights
    market = inp.cov @ np.full(5, 0.2)
    beta = market / (np.full(5, 0.2) @ market)
    assert r.status == "optimal"
    assert abs(w.sum()) < 1e-6 and np.abs(w).sum() <= 1.0 + 1e-6 and abs(beta @ w) <= 0.01 + 1e-6
    assert w.max() > 0.05 and w.min() < -0.05  # both books are used


def test_long_short_min_variance(engines):
    inp = two_blocks()
    spec = FitSpec(long_only=False, gross=1.6, net=1.0)
    r = engines["custom"].fit(inp, "min_variance", 0.8, 0.0, spec)
    w = r.weights
    assert r.status == "optimal" and abs(w.sum() - 1) < 1e-6 and np.abs(w).sum() <= 1.6 + 1e-6
    assert w.min() < -1e-3  # shorting lowers variance with these correlations
    lo = engines["custom"].fit(inp, "min_variance", 0.8, 0.0)
    assert w @ inp.cov @ w < lo.weights @ inp.cov @ lo.weights


# --- cluster caps, L1 turnover, L2 -----------------------------------------------------------------------------

CLUSTERS = np.array([1, 1, 1, 2, 2])


@pytest.mark.parametrize("profile", ["min_variance", "max_sharpe", "hrp", "herc", "risk_parity", "equal_weight"])
def test_cluster_caps_hold(engines, profile):
    spec = FitSpec(clusters=CLUSTERS, cluster_cap=0.55)
    r = engines["custom"].fit(two_blocks(), profile, 1.0, 0.0, spec)
    w = r.weights
    assert r.status == "optimal" and abs(w.sum() - 1) < 1e-9 and w.min() >= -1e-9
    assert max(w[:3].sum(), w[3:].sum()) <= 0.55 + 1e-6
    if profile not in ("min_variance", "max_sharpe"):
        unc = engines["custom"].fit(two_blocks(), profile, 1.0, 0.0).weights
        if max(unc[:3].sum(), unc[3:].sum()) > 0.55:
            assert "projected onto cluster caps" in r.fallback


def test_cluster_cap_projection_and_infeasible_caps():
    w = np.array([0.3, 0.3, 0.2, 0.1, 0.1])
    x, note = project_cluster_caps(w, CLUSTERS, 0.6, 1.0)
    np.testing.assert_allclose(x, [0.225, 0.225, 0.15, 0.2, 0.2], atol=1e-12)
    assert note.startswith("projected onto cluster caps 0.6")
    same, note = project_cluster_caps(w, CLUSTERS, 0.4, 1.0)
    assert same is w and "infeasible" in note
    r = get_engine("custom").fit(two_blocks(), "hrp", 1.0, 0.0, FitSpec(clusters=CLUSTERS, cluster_cap=0.4))
    assert r.status == "optimal"
    assert "cluster_cap 0.4 infeasible (2 clusters, max_weight 1): relaxed to 0.5" in r.fallback
    assert max(r.weights[:3].sum(), r.weights[3:].sum()) <= 0.5 + 1e-12


def test_turnover_penalty_pulls_toward_previous(engines):
    inp = two_blocks()
    prev = np.full(5, 0.2)
    free = engines["custom"].fit(inp, "min_variance", 1.0, 0.0).weights
    turnovers = []
    for kappa in (0.0, 0.005, 0.02, 10.0):
        w = engines["custom"].fit(inp, "min_variance", 1.0, 0.0, FitSpec(previous=prev, turnover_penalty=kappa)).weights
        turnovers.append(np.abs(w - prev).sum())
    assert turnovers[0] == pytest.approx(np.abs(free - prev).sum(), abs=1e-6)
    assert turnovers == sorted(turnovers, reverse=True) and turnovers[-1] < 1e-6


def test_l2_gamma_spreads_weights(engines):
    inp = two_blocks()
    spread = [np.abs(engines["custom"].fit(inp, "min_variance", 1.0, 0.0, FitSpec(l2_gamma=g)).weights - 0.2).sum()
              for g in (0.0, 0.05, 0.15, 100.0)]
    assert spread == sorted(spread, reverse=True) and spread[-1] < 1e-3


PREV = np.array([0.3, 0.2, 0.2, 0.2, 0.1])


@pytest.mark.parametrize("profile", ["max_sharpe", "risk_parity"])
def test_zero_penalties_reproduce_unpenalized_weights(sp500, engines, profile):
    for inp in sp500.values():
        plain = engines["custom"].fit(inp, profile, 1.0, 0.0).weights
        spec = FitSpec(previous=np.full(inp.n, 1.0 / inp.n), turnover_penalty=0.0, l2_gamma=0.0)
        np.testing.assert_array_equal(engines["custom"].fit(inp, profile, 1.0, 0.0, spec).weights, plain)


@pytest.mark.parametrize("profile", ["max_sharpe", "risk_parity"])
def test_turnover_penalty_pulls_max_sharpe_and_risk_parity_toward_previous(engines, profile):
    inp = two_blocks()
    free = engines["custom"].fit(inp, profile, 1.0, 0.0).weights
    turnovers = []
    weights = []
    for kappa in (0.0, 0.002, 0.01, 0.05, 0.1, 10.0):
        r = engines["custom"].fit(inp, profile, 1.0, 0.0, FitSpec(previous=PREV, turnover_penalty=kappa))
        assert r.status == "optimal", r.fallback
        weights.append(r.weights)
        turnovers.append(np.abs(r.weights - PREV).sum())
    assert turnovers[0] == np.abs(free - PREV).sum() > 0.3
    assert np.abs(weights[1] - free).max() > 1e-3  # a small penalty already moves the weights
    assert all(b <= a + 1e-7 for a, b in itertools.pairwise(turnovers)), turnovers
    assert turnovers[4] < turnovers[0] - 0.3 and turnovers[-1] < 1e-6


def test_l2_gamma_moves_risk_parity_to_equal_weight_and_spreads_max_sharpe(engines):
    inp = two_blocks()
    gammas = (0.0, 0.05, 0.15, 1.0, 1e3)
    rp = [engines["custom"].fit(inp, "risk_parity", 1.0, 0.0, FitSpec(l2_gamma=g)).weights for g in gammas]
    to_equal = [np.abs(w - 0.2).sum() for w in rp]
    assert to_equal == sorted(to_equal, reverse=True) and to_equal[-1] < 1e-3
    # max_sharpe: ridge shrinks the Sharpe problem's covariance toward gamma I: weights spread out
    # (Herfindahl falls) toward the identity-covariance optimum w ~ excess return.
    ms = [engines["custom"].fit(inp, "max_sharpe", 1.0, 0.0, FitSpec(l2_gamma=g)) for g in gammas]
    assert all(r.status == "optimal" for r in ms)
    herfindahl = [float(r.weights @ r.weights) for r in ms]
    assert herfindahl == sorted(herfindahl, reverse=True) and herfindahl[0] - herfindahl[-1] > 0.05
    np.testing.assert_allclose(ms[-1].weights, inp.mu / inp.mu.sum(), atol=2e-3)


def test_penalized_risk_parity_problem_is_the_same_erc(engines):
    """The cvxpy log-barrier problem (used with a turnover penalty) has Newton's optimum at kappa -> 0."""
    inp = two_blocks()
    for gamma in (0.0, 0.1):
        newton = engines["custom"].fit(inp, "risk_parity", 1.0, 0.0, FitSpec(l2_gamma=gamma)).weights
        r = engines["custom"].fit(inp, "risk_parity", 1.0, 0.0,
                                  FitSpec(previous=PREV, turnover_penalty=1e-9, l2_gamma=gamma))
        assert "CLARABEL" in r.fallback  # the cvxpy path ran
        np.testing.assert_allclose(r.weights, newton, atol=1e-5)


def test_penalized_max_sharpe_keeps_cluster_caps(engines):
    spec = FitSpec(clusters=CLUSTERS, cluster_cap=0.55, previous=PREV, turnover_penalty=0.01, l2_gamma=0.05)
    r = engines["custom"].fit(two_blocks(), "max_sharpe", 0.4, 0.0, spec)
    w = r.weights
    assert r.status == "optimal" and abs(w.sum() - 1) < 1e-9 and w.min() >= -1e-9 and w.max() <= 0.4 + 1e-7
    assert max(w[:3].sum(), w[3:].sum()) <= 0.55 + 1e-6


# --- fallback chain ------------------------------------------------------------------------------------------------

def _fail_all(monkeypatch):
    import tvquant_assets.core.engines.custom as custom

    def solve(self, *args, **kwargs):
        raise cp.error.SolverError(f"forced failure of {kwargs.get('solver')}")
    monkeypatch.setattr(cp.Problem, "solve", solve)
    monkeypatch.setattr(custom, "_solve_direct", lambda *a, **k: solve(None, solver="QP"))


def test_forced_solver_error_falls_back_to_previous_weights(monkeypatch):
    prev = np.array([0.3, 0.2, 0.2, 0.2, 0.1])
    _fail_all(monkeypatch)
    r = get_engine("custom").fit(two_blocks(), "min_variance", 1.0, 0.0, FitSpec(previous=prev))
    assert r.status == "fallback:previous"
    assert r.fallback.split("; ")[-1] == "previous weights" and "QP: SolverError" in r.fallback
    np.testing.assert_array_equal(r.weights, prev)
    # Previous weights that break today's cap are not used.
    r = get_engine("custom").fit(two_blocks(), "min_variance", 0.25, 0.0, FitSpec(previous=prev))
    assert r.status == "fallback:equal_weight" and "previous weights not usable; equal_weight" in r.fallback


@pytest.mark.parametrize("engine,profile",
                         [("riskfolio", "hrp"), ("skfolio", "herc"), ("cvxportfolio", "min_variance")])
def test_a_library_raising_is_a_recorded_fallback(monkeypatch, engine, profile):
    import riskfolio
    import skfolio.optimization

    def boom(*args, **kwargs):
        raise RuntimeError("library exploded")
    monkeypatch.setattr(riskfolio.HCPortfolio, "optimization", boom)
    monkeypatch.setattr(skfolio.optimization.HierarchicalEqualRiskContribution, "fit", boom)
    _fail_all(monkeypatch)
    r = get_engine(engine).fit(two_blocks(), profile, 1.0, 0.0, FitSpec(previous=np.full(5, 0.2)))
    assert r.status == "fallback:previous" and r.fallback.endswith("previous weights")


def test_max_sharpe_with_all_negative_mu(engines):
    inp = two_blocks()
    neg = EngineInputs(inp.symbols, -np.abs(inp.mu) - 0.01, inp.cov, inp.returns)
    for name in ("custom", "skfolio", "riskfolio"):
        r = engines[name].fit(neg, "max_sharpe", 1.0, 0.0)
        assert r.weights.min() >= -1e-9 and abs(r.weights.sum() - 1) < 1e-6, name
        assert r.status != "optimal" or name != "custom"
    assert engines["custom"].fit(neg, "max_sharpe", 1.0, 0.0).status == "fallback:min_variance"


@pytest.mark.parametrize("engine", ["custom", "skfolio", "riskfolio", "cvxportfolio"])
def test_non_psd_and_zero_variance_never_raise(engine):
    inp = two_blocks()
    bad = inp.cov.copy()
    bad[0, 3] = bad[3, 0] = 0.9 * np.sqrt(bad[0, 0] * bad[3, 3])
    bad[1, 4] = bad[4, 1] = -0.9 * np.sqrt(bad[1, 1] * bad[4, 4])
    zero = inp.cov.copy()
    zero[2, :] = zero[:, 2] = 0.0
    for cov in (bad, zero):
        for profile in ENGINE_PROFILES[engine]:
            r = get_engine(engine, linkage=LINKAGE).fit(EngineInputs(inp.symbols, inp.mu, cov, inp.returns),
                                                         profile, 1.0, 0.0)
            assert np.all(np.isfinite(r.weights)) and r.status, (profile, r.fallback)


# --- adaptive ------------------------------------------------------------------------------------------------------

MAP = (("CRISIS", "hrp"), ("EXPANSION", "max_sharpe"), ("TURBULENT", "hrp"))


def test_adaptive_pick_label_first_then_quadrant():
    assert pick_profile(FitSpec(regime_label="TURBULENT", quadrant="EXPANSION", adaptive_map=MAP)) == \
        ("hrp", "label TURBULENT")
    assert pick_profile(FitSpec(regime_label="NORMAL", quadrant="EXPANSION", adaptive_map=MAP)) == \
        ("max_sharpe", "quadrant EXPANSION")
    assert pick_profile(FitSpec(regime_label="QUIET", quadrant="NORMAL", adaptive_map=MAP)) == \
        ("min_variance", "default")
    assert pick_profile(FitSpec(regime_label="TURBULENT", adaptive_map=MAP, preset_profile="barbell")) == \
        ("barbell", "regime preset")


def test_adaptive_fits_the_picked_profile(engines):
    inp = two_blocks()
    spec = FitSpec(regime_label="NORMAL", quadrant="EXPANSION", adaptive_map=MAP)
    r = engines["adaptive"].fit(inp, "adaptive", 1.0, 0.0, spec)
    assert r.picked == "max_sharpe" and r.fallback.startswith("adaptive: quadrant EXPANSION -> max_sharpe")
    np.testing.assert_array_equal(r.weights, engines["custom"].fit(inp, "max_sharpe", 1.0, 0.0, spec).weights)


# --- determinism ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("engine", list(ENGINE_PROFILES))
def test_same_inputs_identical_weights(sp500, engine):
    inp = sp500[DATES[1]]
    spec = FitSpec(clusters=np.arange(inp.n) % 4, cluster_cap=0.4, regime_label="CRISIS", adaptive_map=MAP,
                   long_only=engine not in LONG_SHORT_PROFILES)
    for profile in ENGINE_PROFILES[engine]:
        a = get_engine(engine, linkage=LINKAGE).fit(inp, profile, 0.3, 0.0, spec)
        b = get_engine(engine, linkage=LINKAGE).fit(inp, profile, 0.3, 0.0, spec)
        np.testing.assert_array_equal(a.weights, b.weights, err_msg=profile)
        assert a.status == b.status and a.fallback == b.fallback
