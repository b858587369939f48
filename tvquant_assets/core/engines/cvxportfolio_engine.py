"""cvxportfolio engine: one ``SinglePeriodOptimization`` per decision on our estimates, fully offline.

The policy is executed with ``market_data=None``: cvxportfolio then uses only what it is given (the
covariance as ``FullCovariance(Sigma)``, the expected returns as ``ReturnsForecast(r_hat)``), never its
data servers, so nothing reaches FRED or any other network source. Holdings start all in cash (1 dollar);
the target weights are the post-trade holdings of the non-cash assets.

- min_variance: minimize ``w' Sigma w`` with ``LongOnly``, ``NoCash``, ``MaxWeights(max_weight)``;
- penalties: the L2 gamma as a second ``FullCovariance(gamma I)`` risk term, the L1 turnover penalty as
  a linear ``TransactionCost(a=kappa)`` on the trades from the previous decision (held before the trade);
- market_neutral: maximize ``mu' w - risk_aversion / 2 w' Sigma w`` with ``DollarNeutral``,
  ``LeverageLimit(gross)``, ``MaxWeights`` / ``MinWeights`` at +-max_weight and the beta band
  ``|beta @ w| <= beta_band`` (betas against the equal-weight universe, as the custom engine's) as
  ``FactorMaxLimit`` / ``FactorMinLimit``;
- both books of ``tournament.book: long_short`` (:meth:`CvxportfolioEngine.fit_joint`): per-name
  ``MinWeights`` / ``MaxWeights`` fix each book's sign; min_variance ``FixedImbalance(net)`` and
  ``FixedFactorLoading(sides, gross)``; market_neutral as above.

Clarabel with the tight tolerances of every engine; a failure falls through to the base class chain.
"""

from __future__ import annotations

import warnings

import cvxportfolio as cvx
import numpy as np
import pandas as pd

from tvquant_assets.core.engines.base import (
    EIG_TOL,
    SOLVER_OPTIONS,
    Engine,
    EngineInputs,
    FitSpec,
    Status,
    universe_beta,
)

CASH = "cash"
# A fixed stamp: the policy needs a time, and with market_data=None it reads no data for it.
_T = pd.Timestamp("2000-01-03")


class CvxportfolioEngine(Engine):
    """cvxportfolio ``SinglePeriodOptimization`` on fixed forecasts."""

    name = "cvxportfolio"
    profiles = ("min_variance", "market_neutral")
    long_short_profiles = ("market_neutral",)
    joint_profiles = ("min_variance", "market_neutral")
    # ``linkage`` (base class) is only stored: no cvxportfolio profile is hierarchical.
    penalized_profiles = ("min_variance", "market_neutral")

    def _fit(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float, spec: FitSpec):
        syms = list(inputs.symbols)
        cov, scale, record = self._covariance(inputs)
        risk = cvx.FullCovariance(Sigma=pd.DataFrame(cov / scale, index=syms, columns=syms))
        if profile == "min_variance":
            objective = -risk
            constraints = [cvx.LongOnly(applies_to_cash=True), cvx.NoCash(), cvx.MaxWeights(max_weight)]
        else:
            objective = self._utility(inputs, risk_free_rate, scale, spec, risk)
            constraints = [cvx.DollarNeutral(), cvx.LeverageLimit(spec.gross), cvx.MaxWeights(max_weight),
                           cvx.MinWeights(-max_weight), *self._beta_band(cov, syms, spec.beta_band)]
        w = self._execute(syms, objective, constraints, scale, spec)
        if profile == "min_variance" and np.all(np.isfinite(w)):
            w = np.clip(w, 0.0, None)
            w = w / w.sum()
        return w, Status.OPTIMAL, "; ".join(record)

    def fit_joint(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float,
                  spec: FitSpec, sides: np.ndarray, net: float, gross: float) -> tuple[np.ndarray | None, str]:
        """Both books: ``MinWeights`` / ``MaxWeights`` per name fix each book's sign (``[0, max_weight]``
        long, ``[-max_weight, 0]`` short); min_variance ``FixedImbalance(net)`` and the gross as
        ``FixedFactorLoading(sides, gross)``; market_neutral ``DollarNeutral``, ``LeverageLimit(gross)`` and
        the beta band. The penalties as in :meth:`_fit`."""
        syms = list(inputs.symbols)
        s = np.asarray(sides, dtype="float64")
        cov, scale, record = self._covariance(inputs)
        risk = cvx.FullCovariance(Sigma=pd.DataFrame(cov / scale, index=syms, columns=syms))
        constraints = [cvx.MinWeights(pd.Series(np.where(s > 0, 0.0, -max_weight), index=syms)),
                       cvx.MaxWeights(pd.Series(np.where(s > 0, max_weight, 0.0), index=syms))]
        if profile == "min_variance":
            objective = -risk
            constraints += [cvx.FixedImbalance(net), cvx.FixedFactorLoading(pd.Series(s, index=syms), gross)]
        else:
            objective = self._utility(inputs, risk_free_rate, scale, spec, risk)
            constraints += [cvx.DollarNeutral(), cvx.LeverageLimit(gross), *self._beta_band(cov, syms, spec.beta_band)]
        return self._execute(syms, objective, constraints, scale, spec), "; ".join(record)

    @staticmethod
    def _covariance(inputs: EngineInputs) -> tuple[np.ndarray, float, list[str]]:
        """The covariance cvxportfolio factorizes (clipped to PSD when needed, recorded) and its scale."""
        cov = np.asarray(inputs.cov, dtype="float64")
        record: list[str] = []
        vals = np.linalg.eigvalsh((cov + cov.T) / 2)
        if vals[0] < -EIG_TOL * max(vals[-1], 1.0):
            v, q = np.linalg.eigh((cov + cov.T) / 2)
            cov = (q * np.clip(v, 0, None)) @ q.T
            record.append(f"cov repaired: clipped eigenvalue {vals[0]:.3g}")
        return cov, float(np.trace(cov)) / len(cov), record  # scale: O(1) problem data

    @staticmethod
    def _utility(inputs: EngineInputs, risk_free_rate: float, scale: float, spec: FitSpec, risk):
        r_hat = pd.Series((np.asarray(inputs.mu, dtype="float64") - risk_free_rate) / scale, index=list(inputs.symbols))
        return cvx.ReturnsForecast(r_hat=r_hat) - spec.risk_aversion / 2.0 * risk

    @staticmethod
    def _beta_band(cov: np.ndarray, syms: list[str], band: float) -> list:
        """``|beta @ w| <= band`` as ``FactorMaxLimit`` / ``FactorMinLimit`` on the universe betas."""
        beta = pd.Series(universe_beta(cov), index=syms)
        return [cvx.FactorMaxLimit(beta, band), cvx.FactorMinLimit(beta, -band)]

    @staticmethod
    def _execute(syms: list[str], objective, constraints: list, scale: float, spec: FitSpec) -> np.ndarray:
        """Run the policy once from the previous decision (the rest in cash); the post-trade weights."""
        if spec.l2_gamma > 0:  # gamma ||w||^2 as a second covariance term gamma I (scaled like Sigma)
            ridge = pd.DataFrame(np.eye(len(syms)) * spec.l2_gamma / scale, index=syms, columns=syms)
            objective = objective - cvx.FullCovariance(Sigma=ridge)
        # Holdings before the trade: the previous decision (the rest in cash), so a linear transaction
        # cost on the trades is the L1 turnover penalty kappa ||w - w_prev||_1.
        h = pd.Series(0.0, index=[*syms, CASH])
        prev = spec.previous if spec.previous is not None and spec.turnover_penalty > 0 else None
        if prev is not None:
            h[syms] = np.asarray(prev, dtype="float64")
        h[CASH] = 1.0 - float(h[syms].sum())
        if prev is not None:
            objective = objective - cvx.TransactionCost(a=spec.turnover_penalty / scale, b=None)
        # Our tight Clarabel tolerances (cvxportfolio's defaults leave caps ~2e-6 over on some dates).
        policy = cvx.SinglePeriodOptimization(objective, constraints, include_cash_return=False,
                                              solver="CLARABEL", **SOLVER_OPTIONS["CLARABEL"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            u, _, _ = policy.execute(h=h, market_data=None, t=_T)
        return (h + u)[syms].to_numpy(dtype="float64")
