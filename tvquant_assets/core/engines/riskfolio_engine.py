"""Riskfolio-Lib engine: its own optimizers on our estimates (market_neutral: ``obj="Utility"`` with
``sht=True``, budget 0 and the beta band as ``A w <= b`` rows).

``Portfolio`` (min variance, max Sharpe, risk parity) gets the estimation stage's ``mu`` and covariance
set directly (``port.mu`` / ``port.cov``, ``hist=True``); ``HCPortfolio`` (HRP, HERC with CVaR, benchmark as HERC with
``rm="equal"``) clusters on our covariance (``codependence="custom_cov"``, ``method_cov="custom_cov"``) or
on the window's ``spearman`` / ``kendall`` correlation, with the manifest's linkage method and optimal
leaf order, HERC cut into the manifest's ``max_clusters``. Risk measures map to Riskfolio's ``rm`` codes
(``alpha = 1 - beta``); which ones it takes is declared in the engine registry. Riskfolio centres MAD and
semi-deviation on ``port.mu``: for those measures it is the window's mean (min_variance, risk_parity),
as in the other engines; max_sharpe with them is refused (it would maximize that mean).
The per-asset cap is ``A w <= b`` for ``Portfolio`` and ``w_max`` for ``HCPortfolio``.
Riskfolio tries its ``solvers`` list in order without saying which one worked; when none does, the base
class falls back to previous weights / equal weight.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
import riskfolio as rp

from tvquant_assets.core.engines.base import (
    EIG_TOL,
    SOLVER_OPTIONS,
    Engine,
    EngineInputs,
    FitSpec,
    Status,
    clean_weights,
    universe_beta,
)
from tvquant_assets.core.engines.risk_measures import RISKFOLIO_CODES
from tvquant_assets.manifest.schema import LinkageConfig

SOLVERS = ["CLARABEL", "SCS"]
WINDOW_MEAN_MEASURES = ("mean_absolute_deviation", "semi_deviation")
# HCPortfolio names standard deviation "vol" (Portfolio optimizes it as "MV": the same optimum).
HC_CODES = {**RISKFOLIO_CODES, "standard_deviation": "vol"}


class RiskfolioEngine(Engine):
    """Riskfolio-Lib ``Portfolio`` and ``HCPortfolio``.

    Parameters
    ----------
    linkage : LinkageConfig
        ``max_clusters`` for HERC.
    """

    name = "riskfolio"
    profiles = ("min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "benchmark", "market_neutral")
    long_short_profiles = ("market_neutral",)
    joint_profiles = ("min_variance", "max_sharpe", "market_neutral")
    needs_returns = True

    def fit_joint(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float,
                  spec: FitSpec, sides: np.ndarray, net: float, gross: float) -> tuple[np.ndarray | None, str]:
        """``Portfolio(sht=True)`` over both books: ``budget = net``, ``budgetsht`` the short book's size
        ``(gross - net) / 2`` (with ``budget`` it bounds the long book by ``(gross + net) / 2``),
        ``upperlng = uppersht = max_weight``, each name's sign as an ``A w <= b`` row and, for min_variance,
        the short book held at its full size (``sum_short w <= -(gross - net) / 2``). max_sharpe on
        ``mu - rf`` with ``rf = 0`` (Riskfolio's ratio takes ``mu @ w - rf * k``, the custom engine's excess
        ``(mu - rf) @ w`` only when net is 1)."""
        s = np.asarray(sides, dtype="float64")
        if profile == "market_neutral":
            return self._market_neutral(inputs, max_weight, risk_free_rate, spec, gross, s)
        size_short = (gross - net) / 2.0
        mu = np.asarray(inputs.mu, dtype="float64") - (risk_free_rate if profile == "max_sharpe" else 0.0)
        a, b = -np.diag(s), np.zeros(len(s))  # -s_i w_i <= 0
        if profile == "min_variance":
            a, b = np.vstack([a, (s < 0).astype("float64")]), np.append(b, -size_short)
        return self._long_short(inputs, mu, max_weight, spec, net, size_short, a, b,
                                "MinRisk" if profile == "min_variance" else "Sharpe",
                                RISKFOLIO_CODES[spec.risk_measure or "variance"])

    def _market_neutral(self, inputs: EngineInputs, max_weight: float, risk_free_rate: float, spec: FitSpec,
                        gross: float, sides: np.ndarray | None) -> tuple[np.ndarray | None, str]:
        """``obj="Utility"`` on ``mu - rf`` with ``l = risk_aversion / 2`` (Riskfolio's MV utility subtracts
        ``l`` times the variance), ``budget = 0``, ``budgetsht = gross / 2`` (with budget 0: ``sum |w| <=
        gross``), the beta band as two ``A w <= b`` rows; both books: each name's sign as a row too."""
        beta = universe_beta(np.asarray(inputs.cov, dtype="float64"))
        a, b = np.vstack([beta, -beta]), np.full(2, spec.beta_band)
        if sides is not None:
            a, b = np.vstack([a, -np.diag(sides)]), np.append(b, np.zeros(len(sides)))
        mu = np.asarray(inputs.mu, dtype="float64") - risk_free_rate
        return self._long_short(inputs, mu, max_weight, spec, 0.0, gross / 2.0, a, b, "Utility", "MV",
                                spec.risk_aversion / 2.0)

    @staticmethod
    def _long_short(inputs: EngineInputs, mu: np.ndarray, max_weight: float, spec: FitSpec, budget: float,
                    budgetsht: float, a: np.ndarray, b: np.ndarray, obj: str, rm: str,
                    aversion: float = 0.0) -> tuple[np.ndarray | None, str]:
        """One ``Portfolio(sht=True)`` optimization with ``A w <= b`` rows; the weights or None."""
        syms = list(inputs.symbols)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            port = rp.Portfolio(returns=inputs.returns, sht=True, budget=budget, budgetsht=budgetsht,
                                uppersht=max_weight, upperlng=max_weight)
            port.mu = pd.DataFrame([mu], columns=syms)
            port.cov = pd.DataFrame(np.asarray(inputs.cov, dtype="float64"), index=syms, columns=syms)
            port.solvers = SOLVERS
            port.sol_params = {x: dict(SOLVER_OPTIONS[x]) for x in SOLVERS}
            port.ainequality, port.binequality = a, b.reshape(-1, 1)
            port.alpha = 1.0 - spec.risk_beta
            w = port.optimization(model="Classic", rm=rm, rf=0.0, l=aversion, hist=True, obj=obj)
        if w is None or len(w) != len(syms):
            return None, f"riskfolio {obj}: no solution from {', '.join(SOLVERS)}"
        return w.reindex(syms).iloc[:, 0].to_numpy(dtype="float64"), ""

    def _fit(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float, spec: FitSpec):
        if profile == "market_neutral":
            w, note = self._market_neutral(inputs, max_weight, risk_free_rate, spec, spec.gross, None)
            return w, Status.OPTIMAL if w is not None else Status.FALLBACK_EQUAL_WEIGHT, note
        syms = list(inputs.symbols)
        cov = pd.DataFrame(np.asarray(inputs.cov, dtype="float64"), index=syms, columns=syms)
        record: list[str] = []
        vals = np.linalg.eigvalsh(cov.to_numpy())
        if vals[0] < -EIG_TOL * max(vals[-1], 1.0):
            record.append(f"cov not PSD (min eigenvalue {vals[0]:.3g}); passed to riskfolio as is")
        returns = inputs.returns
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            if profile in ("hrp", "herc", "benchmark"):
                cfg = self.linkage or LinkageConfig()
                port = rp.HCPortfolio(returns=returns, w_max=max_weight, w_min=0.0, solvers=SOLVERS,
                                      alpha=1.0 - spec.risk_beta)
                codependence = "custom_cov" if cfg.distance == "pearson" else cfg.distance
                w = port.optimization(
                    model="HRP" if profile == "hrp" else "HERC",
                    codependence=codependence, custom_cov=cov, method_cov="custom_cov",
                    rm="equal" if profile == "benchmark" else HC_CODES[spec.risk_measure or
                                                                        ("cvar" if profile == "herc" else "variance")],
                    rf=risk_free_rate, linkage=cfg.method, leaf_order=True,
                    k=None if profile == "hrp" else cfg.max_clusters,
                )
            else:
                port = rp.Portfolio(returns=returns)
                mu = np.asarray(inputs.mu, dtype="float64")
                if spec.risk_measure in WINDOW_MEAN_MEASURES:
                    # Riskfolio centres MAD / semi-deviation on port.mu: the window's mean, as in the other
                    # engines (max_sharpe, which would maximize that mean, is refused in the registry).
                    mu = returns.to_numpy(dtype="float64").mean(axis=0)
                port.mu = pd.DataFrame([mu], columns=syms)
                port.cov = cov
                port.solvers = SOLVERS
                port.sol_params = {s: dict(SOLVER_OPTIONS[s]) for s in SOLVERS}
                port.ainequality = np.eye(len(syms))
                port.binequality = np.full((len(syms), 1), max_weight)
                port.alpha = 1.0 - spec.risk_beta
                rm = RISKFOLIO_CODES[spec.risk_measure or "variance"]
                if profile == "risk_parity":
                    w = port.rp_optimization(model="Classic", rm=rm, rf=risk_free_rate, hist=True)
                else:
                    w = port.optimization(model="Classic", rm=rm, rf=risk_free_rate, l=0, hist=True,
                                          obj="MinRisk" if profile == "min_variance" else "Sharpe")
        if w is None or len(w) != len(syms):
            record.append(f"riskfolio {profile}: no solution from {', '.join(SOLVERS)}")
            return None, Status.FALLBACK_EQUAL_WEIGHT, "; ".join(record)
        x = w.reindex(syms).iloc[:, 0].to_numpy(dtype="float64")
        if not np.all(np.isfinite(x)) or not x.sum() > 0:
            record.append(f"riskfolio {profile}: non-finite solution")
            return None, Status.FALLBACK_EQUAL_WEIGHT, "; ".join(record)
        return clean_weights(x), Status.OPTIMAL, "; ".join(record)
