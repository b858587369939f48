"""Engines: hand-checked small cases, every fallback path, skfolio agreement, determinism."""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pandas as pd
import pytest
from skfolio.measures import RiskMeasure
from skfolio.optimization import MeanRisk, ObjectiveFunction

from tvquant_assets.core.engines import ENGINE_PROFILES, ENGINES, LONG_SHORT_PROFILES, get_engine
from tvquant_assets.core.engines.base import EngineInputs, max_excess_under_cap
from tvquant_assets.core.engines.custom import CustomEngine
from tvquant_assets.core.engines.skfolio_engine import SkfolioEngine, fixed_prior
from tvquant_assets.core.estimation import estimate, returns_window, unpack
from tvquant_assets.errors import EngineError, RegistryError
from tvquant_assets.manifest.schema import EstimationConfig, LinkageConfig

TOL = 1e-6


def inputs(mu, cov, seed: int = 0) -> EngineInputs:
    """Inputs with a synthetic return window (only skfolio needs one; its moments are forced anyway)."""
    mu, cov = np.asarray(mu, float), np.asarray(cov, float)
    symbols = [f"S{i}" for i in range(len(mu))]
    rng = np.random.default_rng(seed)
    rets = pd.DataFrame(rng.normal(0, 0.01, (60, len(mu))), columns=symbols,
                        index=pd.bdate_range("2020-01-01", periods=60))
    return EngineInputs(symbols, mu, cov, rets)


DIAG = inputs([0.10, 0.20, 0.15], np.diag([0.04, 0.09, 0.16]))


@pytest.fixture(params=["custom", "skfolio"])
def minvar_engine(request):
    return get_engine(request.param)


# --- registry ------------------------------------------------------------------------------------------


def test_registry_profiles_match_engines():
    for name in ENGINES:
        engine = get_engine(name)
        assert engine.name == name
        assert tuple(engine.profiles) == ENGINE_PROFILES[name]
        assert tuple(engine.long_short_profiles) == LONG_SHORT_PROFILES.get(name, ())
        assert tuple(engine.joint_profiles) == ENGINES.info(name).joint  # long/short books, jointly


def test_every_engine_takes_the_linkage_and_nothing_unknown():
    linkage = LinkageConfig(max_clusters=3)
    for name in ENGINES:  # the tournament passes the manifest's linkage to every engine
        assert get_engine(name, linkage=linkage).linkage is linkage
    with pytest.raises(RegistryError, match=r"^engine 'cvxportfolio' takes no parameter 'foo' \(accepted: linkage\)$"):
        get_engine("cvxportfolio", foo=1)
    with pytest.raises(RegistryError, match=r"^unknown engine 'nope'; registered: adaptive, custom, cvxportfolio, "):
        get_engine("nope")


# --- hand-checked small cases -----------------------------------------------------------------------------


def test_min_variance_diagonal_is_inverse_variance(minvar_engine):
    r = minvar_engine.fit(DIAG, "min_variance", 1.0, 0.0)
    inv = 1 / np.array([0.04, 0.09, 0.16])
    assert r.status == "optimal" and r.fallback == ""
    np.testing.assert_allclose(r.weights, inv / inv.sum(), atol=TOL)


def test_min_variance_cap_binds(minvar_engine):
    # Uncapped the first asset gets 0.59; capped at 0.5 the rest splits in proportion to 1/var.
    r = minvar_engine.fit(DIAG, "min_variance", 0.5, 0.0)
    rest = 1 / np.array([0.09, 0.16])
    np.testing.assert_allclose(r.weights, [0.5, *(0.5 * rest / rest.sum())], atol=TOL)


def test_min_variance_two_assets_closed_form(minvar_engine):
    s1, s2, rho = 0.2, 0.3, 0.4
    cov = np.array([[s1**2, rho * s1 * s2], [rho * s1 * s2, s2**2]])
    w1 = (cov[1, 1] - cov[0, 1]) / (cov[0, 0] + cov[1, 1] - 2 * cov[0, 1])
    r = minvar_engine.fit(inputs([0.1, 0.1], cov), "min_variance", 1.0, 0.0)
    np.testing.assert_allclose(r.weights, [w1, 1 - w1], atol=TOL)


def test_max_sharpe_diagonal_is_inverse_variance_times_excess():
    r = CustomEngine().fit(DIAG, "max_sharpe", 1.0, 0.02)
    raw = (np.array([0.10, 0.20, 0.15]) - 0.02) / np.array([0.04, 0.09, 0.16])
    assert r.status == "optimal"
    np.testing.assert_allclose(r.weights, raw / raw.sum(), atol=TOL)


def test_max_sharpe_cap_binds():
    r = CustomEngine().fit(DIAG, "max_sharpe", 0.4, 0.02)
    assert r.weights.max() <= 0.4 + TOL
    np.testing.assert_allclose(r.weights[:2], [0.4, 0.4], atol=TOL)


def test_equal_weight():
    r = CustomEngine().fit(DIAG, "equal_weight", 0.5, 0.0)
    assert r.status == "optimal"
    np.testing.assert_array_equal(r.weights, np.full(3, 1 / 3))


@pytest.mark.parametrize("engine,profile", [(e, p) for e in ENGINE_PROFILES for p in ENGINE_PROFILES[e]
                                            if p != "market_neutral"])
def test_cap_infeasible_uses_one_over_n(engine, profile):
    r = get_engine(engine).fit(DIAG, profile, 0.3, 0.0)  # 3 x 0.3 < 1
    assert r.status == "cap_infeasible"
    assert "cap infeasible" in r.fallback
    np.testing.assert_array_equal(r.weights, np.full(3, 1 / 3))


@pytest.mark.parametrize("engine,profile", [(e, p) for e in ENGINE_PROFILES for p in ENGINE_PROFILES[e]])
def test_empty_universe(engine, profile):
    r = get_engine(engine).fit(EngineInputs([], np.zeros(0), np.zeros((0, 0)), None), profile, 0.3, 0.0)
    assert r.status == "empty_universe" and r.weights.shape == (0,)


def test_max_excess_under_cap():
    assert max_excess_under_cap(np.array([0.1, -0.2, -0.3]), 0.5) == pytest.approx(0.5 * 0.1 - 0.5 * 0.2)
    assert max_excess_under_cap(np.array([0.1, -0.2, -0.3]), 1.0) == pytest.approx(0.1)


# --- fallbacks -----------------------------------------------------------------------------------------------


def test_max_sharpe_without_positive_excess_falls_back_to_min_variance():
    e = CustomEngine()
    r = e.fit(DIAG, "max_sharpe", 1.0, 0.5)  # rf above every mu
    mv = e.fit(DIAG, "min_variance", 1.0, 0.5)
    assert r.status == "fallback:min_variance"
    assert "mu > risk-free" in r.fallback
    np.testing.assert_allclose(r.weights, mv.weights, atol=1e-9)


def test_max_sharpe_positive_excess_but_not_under_cap_falls_back():
    # One asset beats rf, but with the cap at 0.5 every portfolio has negative excess.
    r = CustomEngine().fit(inputs([0.03, -0.5, -0.5], np.diag([0.04, 0.09, 0.16])), "max_sharpe", 0.5, 0.0)
    assert r.status == "fallback:min_variance"


def _fail_direct_qp(monkeypatch):
    """Make the custom engine's compiled QP fail too, so the cvxpy alternates are exercised."""
    import tvquant_assets.core.engines.custom as custom

    def boom(*args, **kwargs):
        raise cp.error.SolverError("forced failure of QP")
    monkeypatch.setattr(custom, "_solve_direct", boom)


def _failing_solve(fail: set[str]):
    real = cp.Problem.solve

    def solve(self, *args, **kwargs):
        if kwargs.get("solver") in fail:
            raise cp.error.SolverError(f"forced failure of {kwargs.get('solver')}")
        return real(self, *args, **kwargs)

    return solve


@pytest.mark.parametrize("engine,profile", [("custom", "min_variance"), ("custom", "max_sharpe"),
                                            ("skfolio", "min_variance")])
def test_primary_solver_error_uses_alternate(monkeypatch, engine, profile):
    expected = get_engine(engine).fit(DIAG, profile, 1.0, 0.02).weights
    monkeypatch.setattr(cp.Problem, "solve", _failing_solve({"CLARABEL"}))
    _fail_direct_qp(monkeypatch)
    r = get_engine(engine).fit(DIAG, profile, 1.0, 0.02)
    assert r.status == "optimal"
    # skfolio rewords the solver error; ours keeps it.
    if engine == "custom":
        assert r.fallback.startswith("QP: SolverError: forced failure of QP; CLARABEL: ")
    assert "CLARABEL: " in r.fallback and ("forced failure" in r.fallback or engine == "skfolio")
    assert r.fallback.endswith("solved by OSQP" if engine == "custom" else "solved by SCS")
    np.testing.assert_allclose(r.weights, expected, atol=1e-5)


@pytest.mark.parametrize("engine,profile", [("custom", "min_variance"), ("custom", "max_sharpe"),
                                            ("skfolio", "min_variance")])
def test_all_solvers_fail_gives_equal_weight(monkeypatch, engine, profile):
    monkeypatch.setattr(cp.Problem, "solve", _failing_solve({"CLARABEL", "OSQP", "SCS"}))
    _fail_direct_qp(monkeypatch)
    r = get_engine(engine).fit(DIAG, profile, 1.0, 0.02)
    assert r.status == "fallback:equal_weight"
    chain = ["QP", "CLARABEL", "OSQP", "SCS"] if engine == "custom" else ["CLARABEL", "SCS"]
    assert [step.split(":")[0] for step in r.fallback.split("; ")] == [*chain, "equal_weight"]
    np.testing.assert_array_equal(r.weights, np.full(3, 1 / 3))


def test_direct_qp_matches_cvxpy_problem():
    cvxpy_only = CustomEngine(solvers=("CLARABEL",))
    for profile, cap in (("min_variance", 1.0), ("min_variance", 0.4), ("max_sharpe", 1.0), ("max_sharpe", 0.4)):
        a = CustomEngine().fit(DIAG, profile, cap, 0.02)
        b = cvxpy_only.fit(DIAG, profile, cap, 0.02)
        assert a.fallback == b.fallback == ""
        np.testing.assert_allclose(a.weights, b.weights, atol=1e-7)


def test_nan_solution_is_a_failure(monkeypatch):
    def nan_solve(self, *args, **kwargs):
        for v in self.variables():
            v.save_value(np.full(v.shape, np.nan))  # as cvxpy stores a solver's output, unvalidated
        self._status = cp.OPTIMAL
        return np.nan

    monkeypatch.setattr(cp.Problem, "solve", nan_solve)
    r = CustomEngine(solvers=("CLARABEL", "OSQP", "SCS")).fit(DIAG, "min_variance", 1.0, 0.0)
    assert r.status == "fallback:equal_weight"
    steps = [f"{s}: non-finite solution" for s in ("CLARABEL", "OSQP", "SCS")]
    assert r.fallback == "; ".join([*steps, "equal_weight"])


def test_non_finite_inputs_give_equal_weight():
    bad = inputs([0.1, np.nan, 0.1], np.diag([0.04, 0.09, 0.16]))
    for engine, profile in [("custom", "max_sharpe"), ("skfolio", "hrp")]:
        r = get_engine(engine).fit(bad, profile, 1.0, 0.0)
        assert r.status == "fallback:equal_weight" and r.fallback == "non-finite mu or cov; equal_weight"


NON_PSD = np.array([[1.0, 0.9, 0.9], [0.9, 1.0, -0.9], [0.9, -0.9, 1.0]]) * 0.04


@pytest.mark.parametrize("engine,profile", [("custom", "min_variance"), ("custom", "max_sharpe"),
                                            ("skfolio", "min_variance"), ("skfolio", "hrp")])
def test_non_psd_covariance_is_repaired_and_recorded(engine, profile):
    assert np.linalg.eigvalsh(NON_PSD)[0] < 0
    r = get_engine(engine).fit(inputs([0.1, 0.12, 0.08], NON_PSD), profile, 1.0, 0.0)
    assert "cov repaired" in r.fallback
    assert r.status in ("optimal", "fallback:equal_weight")
    assert abs(r.weights.sum() - 1) < TOL and r.weights.min() >= 0


def test_zero_variance_asset():
    cov = np.diag([0.0, 0.09, 0.16])
    zero = inputs([0.1, 0.2, 0.15], cov)
    mv = CustomEngine().fit(zero, "min_variance", 0.4, 0.0)
    assert mv.status == "optimal"
    assert mv.weights[0] == pytest.approx(0.4, abs=TOL)  # riskless asset takes the cap
    for engine in ("custom", "skfolio"):
        hrp = get_engine(engine).fit(zero, "hrp", 0.4, 0.0)
        assert hrp.status == "fallback:equal_weight"
        assert "variance" in hrp.fallback and hrp.fallback.endswith("equal_weight")
    all_zero = CustomEngine().fit(inputs([0.1, 0.2], np.zeros((2, 2))), "min_variance", 1.0, 0.0)
    assert all_zero.status == "fallback:equal_weight" and "zero covariance" in all_zero.fallback


def test_programming_errors_raise():
    with pytest.raises(EngineError, match="no profile 'adaptive'"):
        CustomEngine().fit(DIAG, "adaptive", 1.0, 0.0)
    with pytest.raises(EngineError, match="misaligned"):
        CustomEngine().fit(EngineInputs(["A", "B"], np.zeros(3), np.eye(3)), "min_variance", 1.0, 0.0)
    with pytest.raises(EngineError, match="needs the returns window"):
        SkfolioEngine().fit(EngineInputs(DIAG.symbols, DIAG.mu, DIAG.cov), "hrp", 1.0, 0.0)
    with pytest.raises(EngineError, match="max_weight"):
        CustomEngine().fit(DIAG, "min_variance", 0.0, 0.0)


# --- real data: agreement with skfolio, determinism ---------------------------------------------------------

AGREE_DATES = [pd.Timestamp(d) for d in ("2008-10-01", "2016-06-01", "2021-03-01")]


@pytest.fixture(scope="module")
def sp500_inputs(sp500_panel) -> dict[pd.Timestamp, EngineInputs]:
    cfg = EstimationConfig()
    syms = list(sp500_panel.close.columns)
    frames = estimate(sp500_panel, {d: syms for d in AGREE_DATES}, AGREE_DATES, cfg)
    out = {}
    for d, f in frames.items():
        e = unpack(f)
        out[d] = EngineInputs(e.symbols, e.mu, e.cov, returns_window(sp500_panel, e.symbols, d, cfg.lookback))
    return out


@pytest.mark.parametrize("max_weight", [1.0, 0.15])
def test_custom_min_variance_agrees_with_skfolio(sp500_inputs, max_weight):
    custom, sk = CustomEngine(), SkfolioEngine()
    for d, inp in sp500_inputs.items():
        a = custom.fit(inp, "min_variance", max_weight, 0.0)
        b = sk.fit(inp, "min_variance", max_weight, 0.0)
        assert a.status == b.status == "optimal", d
        assert np.abs(a.weights - b.weights).max() < 1e-4, d


@pytest.mark.parametrize("max_weight,rf", [(1.0, 0.0), (0.15, 0.02)])
def test_custom_max_sharpe_agrees_with_skfolio_max_ratio(sp500_inputs, max_weight, rf):
    custom = CustomEngine()
    for d, inp in sp500_inputs.items():
        a = custom.fit(inp, "max_sharpe", max_weight, rf)
        # Same annualized mu, covariance and rf on both sides.
        ref = MeanRisk(objective_function=ObjectiveFunction.MAXIMIZE_RATIO, risk_measure=RiskMeasure.VARIANCE,
                       prior_estimator=fixed_prior(inp.mu, inp.cov), min_weights=0.0, max_weights=max_weight,
                       risk_free_rate=rf).fit(inp.returns)
        assert a.status == "optimal", d
        assert np.abs(a.weights - ref.weights_).max() < 1e-4, d

        def sharpe(w, inp=inp):
            return (w @ inp.mu - rf) / np.sqrt(w @ inp.cov @ w)

        # What difference remains is skfolio's looser default tolerance: ours is never the worse optimum.
        assert sharpe(a.weights) >= sharpe(ref.weights_) - 1e-10, d


def test_hrp_on_real_data(sp500_inputs):
    for inp in sp500_inputs.values():
        r = SkfolioEngine().fit(inp, "hrp", 0.15, 0.0)
        assert r.status == "optimal" and r.fallback == ""
        assert abs(r.weights.sum() - 1) < 1e-12 and r.weights.max() <= 0.15 + 1e-9 and r.weights.min() > 0


@pytest.mark.parametrize("engine,profile", [(e, p) for e in ENGINE_PROFILES for p in ENGINE_PROFILES[e]])
def test_determinism(sp500_inputs, engine, profile):
    inp = sp500_inputs[AGREE_DATES[1]]
    cached = get_engine(engine)
    first = cached.fit(inp, profile, 0.2, 0.01).weights
    cached.fit(sp500_inputs[AGREE_DATES[0]], profile, 0.2, 0.01)  # re-solve another date in between
    again = cached.fit(inp, profile, 0.2, 0.01).weights
    fresh = get_engine(engine).fit(inp, profile, 0.2, 0.01).weights
    np.testing.assert_array_equal(first, again)
    np.testing.assert_array_equal(first, fresh)
