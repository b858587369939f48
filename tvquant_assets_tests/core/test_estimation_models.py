"""Estimation models: OAS, EWMA, James-Stein, regime-aware shrinkage, Black-Litterman, PSD repair.

Reference values come from sklearn and skfolio on the bundled S&P 500 set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from skfolio.moments import EWMu, ShrunkMu, ShrunkMuMethods
from skfolio.prior import BlackLitterman
from sklearn.covariance import OAS, LedoitWolf

from tvquant_assets.core.engines.skfolio_engine import fixed_prior
from tvquant_assets.core.estimation import estimate, nearest_psd, returns_window, unpack
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.hashing import df_hash
from tvquant_assets.manifest.schema import EstimationConfig

D = pd.Timestamp("2020-03-02")
SYMS = ["AAPL", "JNJ", "JPM", "KO", "MSFT", "XOM"]


def one(panel, cfg, scores=None, regime=None, symbols=SYMS, date=D):
    return unpack(estimate(panel, {date: symbols}, [date], cfg,
                           {date: scores} if scores is not None else None,
                           {date: regime} if regime is not None else None)[date])


def regime_frame(stress: float, label: str = "NORMAL", quadrant: str = "NORMAL") -> pd.DataFrame:
    return pd.DataFrame({"stress_score": [stress], "label": [label], "quadrant": [quadrant]})


@pytest.fixture(scope="module")
def window(sp500_panel):
    return returns_window(sp500_panel, SYMS, D, 252).to_numpy()


def test_oas_matches_sklearn(sp500_panel, window):
    e = one(sp500_panel, EstimationConfig(covariance="oas"))
    ref = OAS().fit(window)
    np.testing.assert_allclose(e.cov, ref.covariance_ * 252, rtol=1e-10)
    assert e.shrinkage == pytest.approx(ref.shrinkage_)
    assert e.psd_repair == ""


def test_ewma_matches_skfolio(sp500_panel, window):
    e = one(sp500_panel, EstimationConfig(expected_returns="ewma", ewma_halflife=40))
    ref = EWMu(half_life=40).fit(window).mu_
    np.testing.assert_allclose(e.mu, ref * 252, rtol=1e-8)
    assert not np.allclose(e.mu, window.mean(axis=0) * 252, rtol=1e-3)


def test_james_stein_matches_skfolio(sp500_panel, sp500_close):
    syms = list(sp500_close.columns)  # 20 assets: the James-Stein intensity is positive here
    e = one(sp500_panel, EstimationConfig(expected_returns="shrunk", covariance="sample"), symbols=syms)
    ref = ShrunkMu(method=ShrunkMuMethods.JAMES_STEIN).fit(returns_window(sp500_panel, syms, D, 252).to_numpy())
    assert 0 < ref.beta_ < 1  # the reference case is inside the clip
    np.testing.assert_allclose(e.mu, ref.mu_ * 252, rtol=1e-8)


def test_regime_shrinkage_scales_with_turbulence_within_bounds(sp500_panel, window):
    base = LedoitWolf().fit(window).shrinkage_
    cfg = EstimationConfig(regime_shrinkage={"enabled": True, "min": 0.0, "max": 0.6})
    calm, stressed, warm = (one(sp500_panel, cfg, regime=regime_frame(s)) for s in (0.5, 2.0, np.nan))
    assert calm.shrinkage == pytest.approx(0.5 * base)
    assert stressed.shrinkage == pytest.approx(min(2.0 * base, 0.6))
    assert warm.shrinkage == pytest.approx(base)  # warm-up: unknown turbulence leaves the base
    # Ledoit-Wolf at stress 1 is reproduced exactly.
    np.testing.assert_allclose(one(sp500_panel, cfg, regime=regime_frame(1.0)).cov,
                               LedoitWolf().fit(window).covariance_ * 252, rtol=1e-10)
    # Higher intensity pulls correlations toward zero.
    corr = [c.cov[0, 1] / np.sqrt(c.cov[0, 0] * c.cov[1, 1]) for c in (calm, stressed)]
    assert abs(corr[1]) < abs(corr[0])
    capped = one(sp500_panel, cfg.model_copy(update={"regime_shrinkage": cfg.regime_shrinkage.model_copy(
        update={"max": 0.01}, deep=True)}), regime=regime_frame(5.0))
    assert capped.shrinkage == pytest.approx(0.01)


def scores_frame(pct: dict[str, float]) -> pd.DataFrame:
    syms = sorted(pct)
    return pd.DataFrame({"symbol": syms, "cluster": [i % 3 + 1 for i in range(len(syms))],
                         "momentum_pct": [pct[s] for s in syms]})


PCT = {"AAPL": 1.0, "JNJ": 0.2, "JPM": 0.6, "KO": 0.0, "MSFT": 0.8, "XOM": np.nan}


def test_black_litterman_matches_skfolio(sp500_panel):
    bl = {"tau": 0.05, "confidence": 0.7, "risk_aversion": 2.5, "view_spread": 0.1}
    e = one(sp500_panel, EstimationConfig(expected_returns="black_litterman", black_litterman=bl),
            scores=scores_frame(PCT))
    prior = one(sp500_panel, EstimationConfig())
    pi = 2.5 * prior.cov @ np.full(6, 1 / 6)
    views = [f"{s} == {float(pi[i] + 0.1 * (2 * PCT[s] - 1))!r}" for i, s in enumerate(SYMS) if np.isfinite(PCT[s])]
    window = returns_window(sp500_panel, SYMS, D, 252)
    ref = BlackLitterman(views=views, tau=0.05, view_confidences=[0.7] * len(views),
                         prior_estimator=fixed_prior(pi, prior.cov)).fit(window)
    np.testing.assert_allclose(e.mu, ref.return_distribution_.mu, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(e.cov, ref.return_distribution_.covariance, rtol=1e-9)
    assert np.isnan(e.views[SYMS.index("XOM")]) and np.isfinite(e.views[SYMS.index("AAPL")])
    assert e.clusters.tolist() == [1, 2, 3, 1, 2, 3]
    # The top-momentum symbol's posterior beats the bottom one's beyond what the prior says.
    assert e.mu[0] - e.mu[3] > pi[0] - pi[3]


def test_black_litterman_regime_scale_turns_views_off(sp500_panel):
    cfg = EstimationConfig(expected_returns="black_litterman",
                           black_litterman={"regime_view_scale": {"CRISIS": 0.0}})
    crisis = one(sp500_panel, cfg, scores=scores_frame(PCT), regime=regime_frame(2.0, "CRISIS", "CRISIS"))
    normal = one(sp500_panel, cfg, scores=scores_frame(PCT), regime=regime_frame(1.0))
    prior = one(sp500_panel, EstimationConfig())
    pi = 2.5 * prior.cov @ np.full(6, 1 / 6)
    np.testing.assert_allclose(crisis.mu, pi, rtol=1e-9)  # views equal to the prior move nothing
    assert not np.allclose(normal.mu, pi, rtol=1e-3)


def test_nearest_psd_repairs_and_records():
    bad = np.array([[1.0, 0.9, -0.6], [0.9, 1.0, 0.9], [-0.6, 0.9, 1.0]])
    assert np.linalg.eigvalsh(bad)[0] < 0
    fixed, note = nearest_psd(bad, 1e-10)
    assert "nearest PSD: 1 eigenvalue" in note
    assert np.linalg.eigvalsh(fixed)[0] >= 1e-10 - 1e-15
    ok, note_ok = nearest_psd(np.eye(3), 1e-10)
    assert note_ok == "" and np.array_equal(ok, np.eye(3))


def test_singular_sample_covariance_is_repaired_in_the_frame():
    # 25 symbols, 20 returns: the sample covariance is singular.
    rng = np.random.default_rng(3)
    idx = pd.bdate_range("2021-01-04", periods=21)
    cols = [f"S{i:02d}" for i in range(25)]
    close = pd.DataFrame(100 * np.cumprod(1 + rng.normal(0, 0.01, (21, 25)), axis=0), index=idx, columns=cols)
    e = one(PricePanel(close), EstimationConfig(lookback=20, covariance="sample"), symbols=cols, date=idx[-1])
    assert e.psd_repair.startswith("nearest PSD")
    assert np.linalg.eigvalsh(e.cov)[0] > 0


@pytest.mark.parametrize("cfg", [
    EstimationConfig(expected_returns="black_litterman", covariance="oas",
                     regime_shrinkage={"enabled": True}),
    EstimationConfig(expected_returns="ewma"),
])
def test_point_in_time(sp500_close, perturbed_after, cfg):
    scores, regime = scores_frame(PCT), regime_frame(1.4)
    base = estimate(PricePanel(sp500_close), {D: SYMS}, [D], cfg, {D: scores}, {D: regime})[D]
    after = estimate(PricePanel(perturbed_after(sp500_close, D, 1)), {D: SYMS}, [D], cfg, {D: scores},
                     {D: regime})[D]
    assert df_hash(after) == df_hash(base)
