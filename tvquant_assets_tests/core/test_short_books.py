"""The short side by hand: two-asset short books (borrow, costs, drift of a short), the sign convention of
every simulator, short-only and long/short weights per engine, the per-book weight check, validation."""

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.book_fit import fit_book, joint_weights
from tvquant_assets.core.book_limits import BookLimits, book_refusal, candidate_limits
from tvquant_assets.core.drift import drift_orders
from tvquant_assets.core.engines import get_engine
from tvquant_assets.core.engines.base import EngineInputs, FitSpec
from tvquant_assets.core.simulators import get_simulator
from tvquant_assets.errors import ManifestError
from tvquant_assets.manifest.load import parse_manifest
from tvquant_assets.manifest.schema import Constraints, QualityConfig
from tvquant_assets.quality import check_weights

# two assets: A rises 1 % then 2 %, B falls 2 % then rises 1 %; decision [1.3, -0.3] at day 0's close
R = np.array([[0.0, 0.0], [0.01, -0.02], [0.02, 0.01]])
TG = np.full((3, 2), np.nan)
TG[0] = [1.3, -0.3]


def _hand(rate: float, borrow: float) -> np.ndarray:
    """Cash mode: trade 1.6 of notional at day 0 (cost from cash); shorts' proceeds sit in cash; borrow on
    the short notional held over each day, paid from cash; returns on the previous day's value."""
    v = 1.0 - rate * 1.6
    pos, cash = np.array([1.3, -0.3]), 1.0 - 1.3 + 0.3 - rate * 1.6
    out = [v - 1.0]
    for r in R[1:]:
        fee = borrow * float(np.maximum(-pos, 0).sum())
        pos = pos * (1.0 + r)
        cash -= fee
        new = float(pos.sum() + cash)
        out.append(new / v - 1.0)
        v = new
    return np.array(out)


@pytest.mark.parametrize("rate,borrow", [(0.0, 0.0), (0.001, 0.0), (0.001, 0.0002)])
def test_vectorized_two_asset_short_matches_the_hand_computation(rate, borrow):
    res = get_simulator("vectorized")(R, TG, rate, borrow_rate=borrow)
    np.testing.assert_allclose(res.returns, _hand(rate, borrow), atol=1e-15)
    assert res.weights[-1][1] < 0  # the short stays a negative weight after drift
    if borrow:
        np.testing.assert_allclose(res.borrow[1], borrow * 0.3 / (1 - rate * 1.6), rtol=1e-12)


@pytest.mark.parametrize("name,rate,tol", [("cvxportfolio", 0.001, 1e-14), ("cvxportfolio", 0.0, 1e-14),
                                           ("vectorbt", 0.0, 1e-12), ("vectorbt", 0.001, 1e-4)])
def test_reference_simulators_share_the_short_sign_convention(name, rate, tol):
    """cvxportfolio exact; vectorbt exact without fees (with fees its last order is filled short by the fee)."""
    ref = get_simulator("vectorized")(R, TG, rate)
    res = get_simulator(name)(R, TG, rate)
    np.testing.assert_allclose(res.returns, ref.returns, atol=tol)
    np.testing.assert_allclose(res.weights, ref.weights, atol=1e-12 if tol < 1e-6 else 3 * rate * 1.6)


def test_cvxportfolio_charges_the_same_borrow_on_shorts():
    ref = get_simulator("vectorized")(R, TG, 0.001, borrow_rate=0.0002)
    res = get_simulator("cvxportfolio")(R, TG, 0.001, borrow_rate=0.0002)
    np.testing.assert_allclose(res.returns, ref.returns, atol=1e-12)
    np.testing.assert_allclose(res.borrow, ref.borrow, atol=1e-12)


def test_nautilus_refuses_shorts_with_one_line():
    from tvquant_assets.errors import SimulatorError

    with pytest.raises(SimulatorError, match="cannot short"):
        get_simulator("nautilus")(R, TG, 0.001)


def test_drift_of_a_short_orders_sell_short_and_buy_to_cover():
    # after day 1 (hand): A 1.3 * 1.01, B -0.3 * 0.98 over the value 1.019: B's short shrank to -0.2885
    v = 1.0 + 1.3 * 0.01 + 0.3 * 0.02
    held = pd.Series({"A": 1.3 * 1.01 / v, "B": -0.3 * 0.98 / v})
    prices = pd.Series({"A": 101.0, "B": 98.0})
    o = drift_orders("c", held, pd.Series({"A": 1.3, "B": -0.3}), prices, 1e6, 0.001).set_index("symbol")
    assert o.loc["B", "side"] == "sell_short" and o.loc["A", "side"] == "buy"  # A lagged B's gain: buy
    np.testing.assert_allclose(o.loc["B", "notional"], (0.3 - 0.3 * 0.98 / v) * 1e6)
    np.testing.assert_allclose(o.loc["B", "quantity"], (0.3 - 0.3 * 0.98 / v) * 1e6 / 98.0)
    cover = drift_orders("c", pd.Series({"A": 1.0, "B": -0.4}), pd.Series({"A": 1.0, "B": -0.2}), prices, 1e6,
                         0.01).set_index("symbol")
    assert cover.loc["B", "side"] == "buy_to_cover" and cover.loc["B", "notional"] == pytest.approx(2e5)
    cross = drift_orders("c", pd.Series({"B": 0.2}), pd.Series({"B": -0.2}), prices, 1e6, 0.01)
    assert cross["side"].iloc[0] == "sell_short" and "crosses zero" in cross["reason"].iloc[0]


COV = np.array([[0.04, 0.006], [0.006, 0.09]])
MU = np.array([-0.10, -0.05])
RET = pd.DataFrame(np.random.default_rng(3).multivariate_normal(MU / 252, COV / 252, 300), columns=["A", "B"])


def test_short_only_minimum_variance_is_minus_the_long_one_closed_form():
    w1 = (0.09 - 0.006) / (0.04 + 0.09 - 0.012)  # two-asset minimum variance, by hand
    for engine in ("custom", "skfolio", "riskfolio", "cvxportfolio"):
        res = fit_book(get_engine(engine), EngineInputs(["A", "B"], MU, COV, RET), "min_variance", 1.0, 0.0,
                       FitSpec(), "short")
        np.testing.assert_allclose(res.weights, [-w1, -(1 - w1)], atol=2e-5, err_msg=engine)


def test_short_only_max_sharpe_is_the_tangency_of_the_falling_assets():
    t = np.linalg.solve(COV, -MU)  # shorts earn -mu: tangency of -mu, negated
    res = fit_book(get_engine("custom"), EngineInputs(["A", "B"], MU, COV), "max_sharpe", 1.0, 0.0, FitSpec(), "short")
    np.testing.assert_allclose(res.weights, -t / t.sum(), atol=1e-6)


@pytest.mark.parametrize("profile", ["equal_weight", "hrp", "risk_parity", "min_variance", "max_sharpe"])
def test_130_30_and_dollar_neutral_two_assets(profile):
    mu = np.array([0.10, -0.05])
    inputs = EngineInputs(["A", "B"], mu, COV, RET)
    for net, gross, want in ((1.0, 1.6, [1.3, -0.3]), (0.0, 2.0, [1.0, -1.0])):
        res = fit_book(get_engine("custom"), inputs, profile, 1.5, 0.0, FitSpec(net=net, gross=gross), "long_short",
                       np.array([1.0, -1.0]))
        np.testing.assert_allclose(res.weights, want, atol=1e-6, err_msg=f"{profile} {net}")


def test_joint_long_short_min_variance_respects_books_gross_net_and_cap():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T / 6 * 0.04 + np.eye(6) * 0.01
    sides = np.array([1, 1, 1, -1, -1, -1.0])
    w, status, _ = joint_weights(EngineInputs(list("abcdef"), np.zeros(6), cov), "min_variance", 0.5, 0.0,
                                 FitSpec(), sides, 1.0, 1.6)
    assert status == "optimal"
    assert (w[:3] >= -1e-9).all() and (w[3:] <= 1e-9).all() and np.abs(w).max() <= 0.5 + 1e-7
    assert w.sum() == pytest.approx(1.0, abs=1e-7) and np.abs(w).sum() == pytest.approx(1.6, abs=1e-7)
    # better (lower variance) than the per-book equal weights with the same gross and net
    ew = np.where(sides > 0, 1.3 / 3, -0.3 / 3)
    assert w @ cov @ w < ew @ cov @ ew


def test_market_neutral_on_both_books_is_dollar_and_beta_neutral():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(6, 6))
    cov = a @ a.T / 6 * 0.04 + np.eye(6) * 0.01
    mu = np.array([0.1, 0.05, 0.08, -0.06, -0.02, -0.1])
    sides = np.sign(mu)
    res = fit_book(get_engine("custom"), EngineInputs(list("abcdef"), mu, cov), "market_neutral", 0.5, 0.0,
                   FitSpec(gross=1.6, beta_band=0.01), "long_short", sides)
    w = res.weights
    market = cov @ np.full(6, 1 / 6)
    assert abs(w.sum()) < 1e-7 and abs((market / (np.full(6, 1 / 6) @ market)) @ w) <= 0.01 + 1e-7
    assert (w * sides >= -1e-9).all() and np.abs(w).sum() <= 1.6 + 1e-7


def test_tournament_weights_check_verifies_each_candidate_against_its_book():
    frame = pd.DataFrame({
        "candidate": ["s"] * 2 + ["ls"] * 2 + ["bad_s"] * 2 + ["bad_ls"] * 2 + ["long"] * 2,
        "symbol": list("AB") * 5, "status": "optimal", "max_weight": 1.5,
        "weight": [-0.6, -0.4, 1.3, -0.3, 0.2, -1.2, 1.5, -0.5, 0.7, 0.3]})
    limits = {"s": BookLimits("short", -1, 1), "ls": BookLimits("long_short", 1.0, 1.6),
              "bad_s": BookLimits("short", -1, 1), "bad_ls": BookLimits("long_short", 1.0, 1.6)}
    report = check_weights({pd.Timestamp("2024-01-02"): frame}, QualityConfig(), limits)
    found = {f.symbol: f.problem for f in report.findings}
    assert set(found) == {"bad_s", "bad_ls"}
    assert "positive weight" in found["bad_s"] and "gross 2" in found["bad_ls"]
    # without limits the old long-only rule flags every short
    plain = check_weights({pd.Timestamp("2024-01-02"): frame}, QualityConfig())
    assert {f.symbol for f in plain.findings} >= {"s", "ls"}


def test_candidate_limits_and_refusals():
    c = Constraints(gross=1.6, net=1.0)
    assert candidate_limits("long", "custom", "market_neutral", c) == BookLimits("long_short", 0.0, 1.6)
    assert candidate_limits("long_short", "custom", "hrp", c) == BookLimits("long_short", 1.0, 1.6)
    assert candidate_limits("short", "skfolio", "hrp", c).book == "short"
    assert candidate_limits("long", "custom", "hrp", c).book == "long"
    assert book_refusal("skfolio", "min_variance", "long_short") == ""  # solved jointly by skfolio too
    assert book_refusal("adaptive", "adaptive", "long_short").startswith("adaptive switches profiles")
    assert book_refusal("skfolio", "hrp", "long_short") == "" and book_refusal("riskfolio", "herc", "short") == ""


BASE = """
name: x
start: 2020-01-02
selection: {short: {enabled: true}}
"""


@pytest.mark.parametrize("extra,needle", [
    ("tournament: {book: long_short, candidates: [{engine: adaptive, profile: adaptive}]}",
     "adaptive/adaptive cannot run on tournament.book long_short"),
    ("tournament: {book: short, candidates: [{engine: custom, profile: market_neutral}]}",
     "custom/market_neutral cannot run on tournament.book short"),
    ("tournament: {book: short}\nbacktest: {simulators: [vectorized, nautilus]}",
     "backtest.simulators.1. nautilus runs a cash account and cannot short"),
    ("tournament: {book: long_short, constraints: {gross: 1.0, net: 1.0}}", "needs -gross < net < gross"),
])
def test_validation_refuses_what_a_book_cannot_run(extra, needle):
    with pytest.raises(ManifestError, match=needle.replace("/", ".").replace("(", ".")):
        parse_manifest(BASE + extra)


def test_short_book_needs_a_short_side():
    with pytest.raises(ManifestError, match="needs a short book"):
        parse_manifest("name: x\nstart: 2020-01-02\ntournament: {book: short}\n")
    assert parse_manifest(BASE + "tournament: {book: long_short}").book == "long_short"


def test_borrow_per_name_is_charged_on_each_short_at_its_rate():
    r = np.array([[0.0, 0.0, 0.0], [0.01, -0.02, 0.03], [0.02, 0.01, -0.01]])
    tg = np.full((3, 3), np.nan)
    tg[0] = [1.4, -0.3, -0.1]
    rates = np.array([0.0, 0.0002, 0.001])
    res = get_simulator("vectorized")(r, tg, 0.0, borrow_rate=rates)
    np.testing.assert_allclose(res.borrow[1], 0.3 * 0.0002 + 0.1 * 0.001, rtol=1e-12)  # by hand
    held = np.array([1.4 * 1.01, -0.3 * 0.98, -0.1 * 1.03])
    v1 = held.sum() - (0.3 * 0.0002 + 0.1 * 0.001)  # no cash left after the trade (1.4 - 0.3 - 0.1 = 1)
    np.testing.assert_allclose(res.borrow[2], (0.3 * 0.98 * 0.0002 + 0.1 * 1.03 * 0.001) / v1, rtol=1e-12)
    one = get_simulator("vectorized")(r, tg, 0.0, borrow_rate=0.0002)
    same = get_simulator("vectorized")(r, tg, 0.0, borrow_rate=np.full(3, 0.0002))
    np.testing.assert_allclose(same.returns, one.returns, atol=1e-16)
    cvx = get_simulator("cvxportfolio")(r, tg, 0.0, borrow_rate=rates)
    np.testing.assert_allclose(cvx.returns, res.returns, atol=1e-12)


def test_borrow_refused_for_simulators_that_do_not_charge_it():
    with pytest.raises(ManifestError, match="vectorbt does not model backtest.borrow_bps"):
        parse_manifest(BASE + "backtest: {simulators: [vectorized, vectorbt], borrow_bps_by_class: {crypto: 900}}")


@pytest.mark.parametrize("book", ["short", "long_short"])
def test_future_data_never_changes_short_book_weights(sp500_close, book):
    """No look-ahead for the short profiles: the chain (scan, regime, selection with its short book,
    estimation of the traded books, tournament on that book) for D is hash-identical when every price after
    D is scaled at random."""
    from tvquant_assets.core.estimation import estimate
    from tvquant_assets.core.tournament import DECISION_COLUMNS, run_tournament
    from tvquant_assets.hashing import df_hash
    from tvquant_assets.manifest.schema import Candidate
    from tvquant_assets_tests.stages.test_no_lookahead import _disturb, _inputs, _manifest, _presets

    d = pd.Timestamp("2019-01-15")  # the demo's selling-rips book holds GE and XOM on D
    m = _manifest()
    wanted = ("short",) if book == "short" else ("long", "short")
    candidates = [Candidate(engine="custom", profile=p) for p in ("min_variance", "max_sharpe", "hrp", "equal_weight")]
    cfg = m.tournament.model_copy(update={"candidates": candidates, "book": book,
                                          # 4 long names under the regime preset's cap 0.25 hold 1.0
                                          "constraints": Constraints(max_weight=0.6, gross=1.4, net=0.6)})

    def chain(close):
        up = _inputs(close, d)
        sel = up["selection"][d]
        chosen = {d: sorted(sel.loc[sel["selected"] & sel["direction"].isin(wanted), "symbol"])}
        est = estimate(up["panel"], chosen, [d], m.estimation, up["selection"], up["regime"])
        side = dict(zip(sel["symbol"], sel["direction"]))
        est[d]["direction"] = pd.array([side[s] for s in est[d]["symbol"]], dtype="str")
        t = run_tournament(up["panel"], est, up["regime"], [d], lambda _: True, cfg, _presets(m), m.estimation,
                           book=book)[d]
        return sel, est[d], t[DECISION_COLUMNS]

    sel, est, clean = chain(sp500_close)
    assert (est["direction"] == "short").any()  # the demo's selling-rips book has names on D
    held = clean[clean["symbol"] != ""]
    assert (held["weight"] < 0).any() and (held["weight"] <= 1e-9).all() == (book == "short")
    shocked = chain(_disturb(sp500_close, d, "scale", 3))
    assert [df_hash(x) for x in (sel, est, clean)] == [df_hash(x) for x in shocked]
