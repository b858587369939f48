"""Both books (``tournament.book: long_short``) solved jointly by the library engines: skfolio and Riskfolio
min-variance and max-Sharpe, cvxportfolio min-variance and market-neutral (beta band), each the custom
engine's problem (``core/book_fit.py:joint_weights``) in the library's own terms. Weights are computed live
on the bundled S&P 500 estimates with tight solver tolerances on both sides and must agree within 1e-4;
the objectives are compared too (the better side is named in the failure message)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.book_fit import fit_book
from tvquant_assets.core.engines import ENGINES, get_engine
from tvquant_assets.core.engines.base import EngineInputs, FitSpec, universe_beta
from tvquant_assets.core.estimation import estimate, returns_window, unpack
from tvquant_assets.errors import ManifestError
from tvquant_assets.manifest.load import parse_manifest
from tvquant_assets.manifest.schema import EstimationConfig

AGREE = 1e-4
DATES = [pd.Timestamp("2008-10-01"), pd.Timestamp("2021-03-01")]
CAP, RF = 0.30, 0.02
BOOKS = {"130/30": (1.0, 1.6), "dollar-neutral": (0.0, 2.0)}
PAIRS = [("skfolio", "min_variance"), ("skfolio", "max_sharpe"), ("riskfolio", "min_variance"),
         ("riskfolio", "max_sharpe"), ("cvxportfolio", "min_variance"), ("cvxportfolio", "market_neutral"),
         ("skfolio", "market_neutral"), ("riskfolio", "market_neutral")]


@pytest.fixture(scope="module")
def books(sp500_panel) -> dict[pd.Timestamp, tuple[EngineInputs, np.ndarray]]:
    """Each date's estimates on all 20 names; the upper half by expected return is the long book."""
    out = {}
    for d in DATES:
        syms = list(sp500_panel.close.columns)
        e = unpack(estimate(sp500_panel, {d: syms}, [d], EstimationConfig())[d])
        inputs = EngineInputs(e.symbols, e.mu, e.cov, returns_window(sp500_panel, e.symbols, d, 252))
        out[d] = inputs, np.where(e.mu >= np.median(e.mu), 1.0, -1.0)
    return out


def objective(profile: str, w: np.ndarray, inputs: EngineInputs, spec: FitSpec) -> float:
    """The joint problem's objective, larger is better (minus the variance for min_variance)."""
    cov, mu = np.asarray(inputs.cov), np.asarray(inputs.mu)
    var = float(w @ cov @ w) + spec.l2_gamma * float(w @ w)
    if spec.turnover_penalty > 0 and spec.previous is not None:
        var += spec.turnover_penalty * float(np.abs(w - spec.previous).sum())
    if profile == "min_variance":
        return -var
    if profile == "max_sharpe":
        return float((mu - RF) @ w) / np.sqrt(var)
    return float((mu - RF) @ w) - spec.risk_aversion / 2.0 * var


def assert_same_problem(engine: str, profile: str, inputs, sides, spec: FitSpec, net: float, gross: float,
                        what: str) -> tuple[np.ndarray, np.ndarray]:
    ours = fit_book(get_engine("custom"), inputs, profile, CAP, RF, spec, "long_short", sides)
    ref = fit_book(get_engine(engine), inputs, profile, CAP, RF, spec, "long_short", sides)
    assert ours.status == ref.status == "optimal", (what, ours.fallback, ref.fallback)
    for w in (ours.weights, ref.weights):  # signs per book, net, gross, cap
        assert (w * sides >= -1e-9).all() and np.abs(w).max() <= CAP + 1e-7, what
        assert abs(w.sum() - net) < 1e-7 and np.abs(w).sum() <= gross + 1e-7, what
        if profile == "min_variance":
            assert abs(np.abs(w).sum() - gross) < 1e-7, what  # the gross in full
    a, b = objective(profile, ours.weights, inputs, spec), objective(profile, ref.weights, inputs, spec)
    better = "custom" if a > b else engine
    np.testing.assert_allclose(ref.weights, ours.weights, atol=AGREE,
                               err_msg=f"{what}: objective custom {a:.12g} vs {engine} {b:.12g} ({better} better)")
    assert abs(a - b) <= 1e-6 * max(1.0, abs(a)), f"{what}: custom {a:.12g} vs {engine} {b:.12g} ({better} better)"
    return ours.weights, ref.weights


@pytest.mark.parametrize("engine,profile", PAIRS)
@pytest.mark.parametrize("book", list(BOOKS))
def test_library_solves_the_custom_joint_problem(books, engine, profile, book):
    net, gross = BOOKS[book]
    if profile == "market_neutral":
        net = 0.0  # market_neutral is dollar-neutral on any long_short book
    spec = FitSpec(net=net, gross=gross, beta_band=0.05)
    for d, (inputs, sides) in books.items():
        what = f"{engine} {profile} {book} {d.date()}"
        ours, _ = assert_same_problem(engine, profile, inputs, sides, spec, net, gross, what)
        if profile == "market_neutral":
            assert abs(universe_beta(inputs.cov) @ ours) <= 0.05 + 1e-7


@pytest.mark.parametrize("engine,profile,spec", [
    ("skfolio", "min_variance", FitSpec(net=1.0, gross=1.6, l2_gamma=0.05)),
    ("skfolio", "max_sharpe", FitSpec(net=1.0, gross=1.6, l2_gamma=0.05)),
    ("skfolio", "market_neutral", FitSpec(net=0.0, gross=1.6, l2_gamma=0.05)),
    ("cvxportfolio", "min_variance", FitSpec(net=1.0, gross=1.6, l2_gamma=0.05, turnover_penalty=0.01)),
    ("cvxportfolio", "market_neutral", FitSpec(net=0.0, gross=1.6, l2_gamma=0.05, turnover_penalty=0.01)),
])
def test_penalized_joint_problems_agree(books, engine, profile, spec):
    inputs, sides = books[DATES[1]]
    if spec.turnover_penalty > 0:  # yesterday: the per-book equal weights
        net, gross = spec.net, spec.gross
        prev = np.where(sides > 0, (gross + net) / 2 / (sides > 0).sum(), -(gross - net) / 2 / (sides < 0).sum())
        spec = FitSpec(**{**spec.__dict__, "previous": prev})
    plain = fit_book(get_engine("custom"), inputs, profile, CAP, RF, FitSpec(net=spec.net, gross=spec.gross),
                     "long_short", sides).weights
    ours, _ = assert_same_problem(engine, profile, inputs, sides, spec, spec.net, spec.gross, f"{engine} {profile}")
    assert np.abs(ours - plain).max() > 1e-3  # the penalties move the weights


@pytest.mark.parametrize("engine", ["cvxportfolio", "skfolio", "riskfolio"])
def test_market_neutral_keeps_a_binding_beta_band_on_the_long_book(books, engine):
    """Free signs on the long book (``book: long``): the library's market_neutral is the custom one."""
    inputs, _ = books[DATES[1]]
    loose, tight = FitSpec(gross=1.5, beta_band=10.0), FitSpec(gross=1.5, beta_band=0.01)
    beta = universe_beta(inputs.cov)
    assert abs(beta @ get_engine("custom").fit(inputs, "market_neutral", 0.2, 0.0, loose).weights) > 0.05
    ours, ref = (get_engine(e).fit(inputs, "market_neutral", 0.2, 0.0, tight) for e in ("custom", engine))
    assert ours.status == ref.status == "optimal"
    assert abs(beta @ ref.weights) <= 0.01 + 1e-7
    np.testing.assert_allclose(ref.weights, ours.weights, atol=AGREE)


@pytest.mark.parametrize("measure", ["cvar", "mean_absolute_deviation"])
def test_joint_risk_measures_in_skfolio_and_riskfolio(books, measure):
    """A risk measure other than variance: both libraries reach the same risk on the same window."""
    from tvquant_assets.core.engines.risk_measures import Risk

    inputs, sides = books[DATES[1]]
    spec = FitSpec(net=1.0, gross=1.6, risk_measure=measure)
    risk = Risk(measure, np.asarray(inputs.cov), inputs.returns.to_numpy(), 0.95)
    values = {}
    for engine in ("skfolio", "riskfolio"):
        res = fit_book(get_engine(engine), inputs, "min_variance", CAP, RF, spec, "long_short", sides)
        w = res.weights
        assert res.status == "optimal" and (w * sides >= -1e-9).all(), (engine, res.fallback)
        assert abs(w.sum() - 1.0) < 1e-6 and abs(np.abs(w).sum() - 1.6) < 1e-6 and np.abs(w).max() <= CAP + 1e-7
        values[engine] = risk.of(np.arange(len(w)), w)
    assert values["skfolio"] == pytest.approx(values["riskfolio"], rel=1e-5)


def test_a_library_failure_is_a_recorded_per_book_fallback(books, monkeypatch):
    from skfolio.optimization import MeanRisk

    def boom(self, *args, **kwargs):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(MeanRisk, "fit", boom)
    inputs, sides = books[DATES[1]]
    res = fit_book(get_engine("skfolio"), inputs, "max_sharpe", CAP, RF, FitSpec(net=1.0, gross=1.6), "long_short",
                   sides)
    assert res.status == "fallback:equal_weight"
    assert "skfolio max_sharpe: RuntimeError: solver exploded" in res.fallback
    assert res.fallback.endswith("per-book equal weight")
    np.testing.assert_allclose(res.weights[sides > 0], 1.3 / (sides > 0).sum())
    np.testing.assert_allclose(res.weights[sides < 0], -0.3 / (sides < 0).sum())


BASE = """
name: x
start: 2020-01-02
selection: {short: {enabled: true}}
"""


def test_validation_accepts_library_joint_profiles_and_refuses_the_rest_in_one_line():
    joint = [(e, p) for e in ENGINES if e not in ("custom", "adaptive") for p in ENGINES.info(e).joint]
    assert sorted(joint) == sorted(PAIRS)
    cands = ", ".join(f"{{engine: {e}, profile: {p}}}" for e, p in joint)
    m = parse_manifest(BASE + f"tournament: {{book: long_short, candidates: [{cands}]}}")
    assert [c.name for c in m.tournament.candidates] == [f"{e}/{p}" for e, p in joint]
    with pytest.raises(ManifestError) as err:
        parse_manifest(BASE + "tournament: {book: long_short, constraints: {turnover_penalty: 0.01},"
                              " candidates: [{engine: skfolio, profile: max_sharpe}, {engine: riskfolio, profile: "
                              "min_variance}, {engine: cvxportfolio, profile: min_variance}]}")
    lines = str(err.value).splitlines()
    assert len(lines) == 2, lines
    assert "tournament.candidates[0] (skfolio/max_sharpe): skfolio max_sharpe cannot honour " \
           "tournament.constraints.turnover_penalty" in lines[0]
    assert "tournament.candidates[1] (riskfolio/min_variance): riskfolio min_variance cannot honour " \
           "tournament.constraints.turnover_penalty" in lines[1]


@pytest.mark.parametrize("engine,profile", [("custom", "hrp"), ("custom", "herc"), ("skfolio", "hrp"),
                                            ("riskfolio", "hrp"), ("custom", "risk_parity")])
def test_a_book_of_one_name_holds_it_in_full(books, engine, profile):
    """Per-book profiles on a date whose short book has one name (HRP's tree needs two): no fallback."""
    inputs, sides = books[DATES[1]]
    one = np.where(np.arange(len(sides)) == int(np.flatnonzero(sides < 0)[0]), -1.0, 1.0)
    res = fit_book(get_engine(engine), inputs, profile, CAP, RF, FitSpec(net=1.0, gross=1.6), "long_short", one)
    assert res.status == "optimal", res.fallback
    assert res.weights[one < 0] == pytest.approx([-0.3]) and res.weights[one > 0].sum() == pytest.approx(1.3)


def test_cluster_caps_are_refused_for_joint_profiles_not_per_book_ones():
    with pytest.raises(ManifestError) as err:
        parse_manifest(BASE + "tournament: {book: long_short, constraints: {cluster_cap: 0.5}, candidates: ["
                              "{engine: skfolio, profile: min_variance}, {engine: custom, profile: hrp}]}")
    lines = str(err.value).splitlines()
    assert len(lines) == 1 and "tournament.candidates[0]: skfolio/min_variance over both books cannot honour " \
        "tournament.constraints.cluster_cap" in lines[0], lines


@pytest.mark.parametrize("engine,profile", [("custom", "min_variance"), ("skfolio", "max_sharpe"),
                                            ("riskfolio", "min_variance"), ("custom", "hrp"),
                                            ("cvxportfolio", "min_variance")])
def test_a_long_book_too_small_for_its_size_keeps_net_and_cap_with_less_gross(books, engine, profile):
    """4 long names x cap 0.3 hold 1.2 < 1.3 (130/30): the short book shrinks to 0.2, net 1 and the cap hold
    (found on 2019-02-01 by the 2019-2022 scenario, where the blocking check stopped the run)."""
    inputs, _ = books[DATES[1]]
    sides = np.where(np.arange(len(inputs.symbols)) < 4, 1.0, -1.0)
    res = fit_book(get_engine(engine), inputs, profile, CAP, RF, FitSpec(net=1.0, gross=1.6), "long_short", sides)
    w = res.weights
    assert res.status == "optimal" and "gross 1.6 reduced to 1.4" in res.fallback, res.fallback
    assert np.abs(w).max() <= CAP + 1e-7 and abs(w.sum() - 1.0) < 1e-6 and (w * sides >= -1e-9).all()
    assert w[sides > 0].sum() == pytest.approx(1.2, abs=1e-6) and w[sides < 0].sum() == pytest.approx(-0.2, abs=1e-6)
