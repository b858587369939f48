"""skfolio engine: min-variance, max-Sharpe, risk parity, HRP, HERC (CVaR), equal weight and market-neutral
(``MeanRisk`` utility with budget 0 and the beta band) from skfolio's own estimators, on our estimates.

skfolio fits on the estimation return window, but its prior is forced to the estimation stage's ``mu``
and covariance (:class:`FixedMu`, :class:`FixedCovariance` inside an ``EmpiricalPrior``), so every engine
of the tournament optimizes the same estimates. HRP also clusters on that covariance
(``CovarianceDistance(covariance_estimator="precomputed")``), not on a second correlation estimate of
its own; the manifest's linkage method builds the tree (``HierarchicalSeriation`` with optimal leaf
ordering), a ``spearman`` / ``kendall`` distance uses skfolio's ``SpearmanDistance`` / ``KendallDistance``
of the window, and the selection's tree (``allocation_tree: selection``) is handed over as
:class:`FixedDistance`. The candidate's risk measure maps to skfolio's ``RiskMeasure`` of the same name.

Failures use skfolio's fallback chain (``fallback=[...]``): convex profiles CLARABEL -> SCS, then our
base class (previous weights, equal weight); the chain is read back from ``fallback_chain_``. HERC cuts
its tree with ``max_clusters`` of the manifest's linkage config; its distance is fitted on returns only,
so the covariance's correlation distance is handed to it as :class:`FixedDistance`. OSQP is not in skfolio's chain
because skfolio writes variance as a second-order cone, which OSQP cannot solve.
"""

from __future__ import annotations

import warnings

import numpy as np
import sklearn.utils.validation as skv
from skfolio.cluster import HierarchicalClustering, LinkageMethod
from skfolio.distance import BaseDistance, CovarianceDistance, KendallDistance, SpearmanDistance
from skfolio.measures import RiskMeasure
from skfolio.moments import BaseCovariance, BaseMu
from skfolio.optimization import (
    EqualWeighted,
    HierarchicalEqualRiskContribution,
    HierarchicalRiskParity,
    MeanRisk,
    ObjectiveFunction,
    RiskBudgeting,
)
from skfolio.prior import EmpiricalPrior
from skfolio.seriation import HierarchicalSeriation

from tvquant_assets.core.engines.base import (
    EIG_TOL,
    SOLVER_OPTIONS,
    Engine,
    EngineInputs,
    FitSpec,
    Status,
    clean_weights,
    short_reason,
    universe_beta,
)
from tvquant_assets.core.engines.hierarchy import covariance_distance
from tvquant_assets.core.engines.risk_measures import SKFOLIO_NAMES
from tvquant_assets.manifest.schema import LinkageConfig


class FixedCovariance(BaseCovariance):
    """A covariance "estimator" that returns the matrix it was given.

    Parameters
    ----------
    covariance : ndarray of shape (n_assets, n_assets)
    nearest : bool
        Let skfolio repair a non positive definite matrix (``cov_nearest``), as its own estimators do.
    """

    def __init__(self, covariance: np.ndarray | None = None, nearest: bool = True) -> None:
        super().__init__(nearest=nearest)
        self.covariance = covariance

    def fit(self, X, y=None, **fit_params) -> FixedCovariance:
        X = skv.validate_data(self, X)
        cov = np.asarray(self.covariance, dtype="float64")
        if cov.shape != (X.shape[1], X.shape[1]):
            raise ValueError(f"covariance shape {cov.shape} does not match {X.shape[1]} assets")
        self._set_covariance(cov.copy())
        self.location_ = np.asarray(X.mean(axis=0), dtype="float64")
        return self


class FixedMu(BaseMu):
    """An expected-returns "estimator" that returns the vector it was given."""

    def __init__(self, mu: np.ndarray | None = None) -> None:
        self.mu = mu

    def fit(self, X, y=None) -> FixedMu:
        X = skv.validate_data(self, X)
        mu = np.asarray(self.mu, dtype="float64")
        if mu.shape != (X.shape[1],):
            raise ValueError(f"mu shape {mu.shape} does not match {X.shape[1]} assets")
        self.mu_ = mu.copy()
        return self


class FixedDistance(BaseDistance):
    """A distance "estimator" that returns the square distance it was given (codependence
    ``1 - 2 d^2``, the correlation it implies)."""

    def __init__(self, distance: np.ndarray | None = None) -> None:
        self.distance = distance

    def fit(self, X, y=None, **fit_params) -> FixedDistance:
        d = np.asarray(self.distance, dtype="float64")
        self.distance_ = d.copy()
        self.codependence_ = 1.0 - 2.0 * d**2
        return self


def fixed_prior(mu: np.ndarray, cov: np.ndarray) -> EmpiricalPrior:
    """skfolio prior whose moments are exactly ``mu`` and ``cov`` (scenarios = the fitted returns)."""
    return EmpiricalPrior(mu_estimator=FixedMu(mu), covariance_estimator=FixedCovariance(cov))


def _chain_record(chain: list[tuple[str, str]] | None, labels: list[str]) -> tuple[list[str], str | None]:
    """Short fallback record from skfolio's ``fallback_chain_`` and the label of the step that won."""
    if not chain:
        return [], None
    record, winner = [], None
    for label, (_, outcome) in zip(labels, chain, strict=False):
        if outcome == "success":
            winner = label
        else:
            record.append(f"{label}: {short_reason(outcome)}")
    return record, winner


class SkfolioEngine(Engine):
    """skfolio MeanRisk (min variance, max Sharpe), RiskBudgeting, HRP, HERC and EqualWeighted.

    Parameters
    ----------
    solver : str
        Primary solver for the convex profiles; SCS is the alternate.
    linkage : LinkageConfig
        ``max_clusters`` for HERC.
    """

    name = "skfolio"
    profiles = ("min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "equal_weight", "market_neutral")
    long_short_profiles = ("market_neutral",)
    joint_profiles = ("min_variance", "max_sharpe", "market_neutral")
    needs_returns = True

    def __init__(self, solver: str = "CLARABEL", linkage: LinkageConfig | None = None) -> None:
        super().__init__(linkage)
        self.solver = solver

    def _distance(self, inputs: EngineInputs, cov: np.ndarray, herc: bool):
        """skfolio's distance estimator for the manifest's linkage distance (ours when it has none)."""
        cfg = self.linkage or LinkageConfig()
        if inputs.distance is not None:  # the selection's tree
            return FixedDistance(inputs.distance)
        if cfg.distance == "spearman":
            return SpearmanDistance()
        if cfg.distance == "kendall":
            return KendallDistance()
        if herc:  # skfolio's HERC fits its distance on returns only: hand it the covariance's distance
            return FixedDistance(covariance_distance(cov))
        return CovarianceDistance(covariance_estimator="precomputed")

    def _estimator(self, profile: str, prior: EmpiricalPrior, max_weight: float, risk_free_rate: float,
                   inputs: EngineInputs, spec: FitSpec):
        cfg = self.linkage or LinkageConfig()
        method = LinkageMethod[cfg.method.upper()]
        measure = RiskMeasure[SKFOLIO_NAMES[spec.risk_measure or ("cvar" if profile == "herc" else "variance")]]
        cov = np.asarray(inputs.cov, dtype="float64")
        if profile == "equal_weight":
            return EqualWeighted(), ["equal_weight"]
        if profile == "hrp":
            seriation = HierarchicalSeriation(
                hierarchical_clustering_estimator=HierarchicalClustering(linkage_method=method),
                optimal_ordering=True)
            return HierarchicalRiskParity(
                risk_measure=measure, prior_estimator=prior, min_weights=0.0, max_weights=max_weight,
                distance_estimator=self._distance(inputs, cov, False), seriation_estimator=seriation), ["hrp"]
        if profile == "herc":
            return HierarchicalEqualRiskContribution(
                risk_measure=measure, prior_estimator=prior, min_weights=0.0, max_weights=max_weight,
                distance_estimator=self._distance(inputs, cov, True),
                hierarchical_clustering_estimator=HierarchicalClustering(
                    max_clusters=cfg.max_clusters, linkage_method=method)), ["herc"]
        common = dict(risk_measure=measure, prior_estimator=prior, min_weights=0.0, max_weights=max_weight,
                      cvar_beta=spec.risk_beta, evar_beta=spec.risk_beta, cdar_beta=spec.risk_beta)
        if spec.risk_measure in ("semi_variance", "semi_deviation", "mean_absolute_deviation"):
            # Around the window's mean (skfolio's default is the prior's annualized mu); a tuple because
            # skfolio caches its expressions on hashable arguments.
            window_mean = inputs.returns.to_numpy(dtype="float64").mean(axis=0)
            common["min_acceptable_return"] = tuple(window_mean.tolist())
        if profile != "risk_parity" and spec.l2_gamma > 0:
            common["l2_coef"] = spec.l2_gamma  # same units as the (annualized) variance objective
        if profile == "risk_parity":
            cls = RiskBudgeting
        else:
            cls = MeanRisk
            common["objective_function"] = (ObjectiveFunction.MINIMIZE_RISK if profile == "min_variance"
                                            else ObjectiveFunction.MAXIMIZE_RATIO)
            if profile == "max_sharpe":
                common["risk_free_rate"] = risk_free_rate
        alt = cls(solver="SCS", solver_params=dict(SOLVER_OPTIONS["SCS"]), **common)
        primary = cls(solver=self.solver, solver_params=dict(SOLVER_OPTIONS.get(self.solver, {})),
                      fallback=[alt], raise_on_failure=False, **common)
        return primary, [self.solver, "SCS"]

    def fit_joint(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float,
                  spec: FitSpec, sides: np.ndarray, net: float, gross: float) -> tuple[np.ndarray | None, str]:
        """``MeanRisk`` over both books: per-name ``min_weights`` / ``max_weights`` fix the sign of each book
        (``[0, max_weight]`` long, ``[-max_weight, 0]`` short), ``budget = net``, the gross as
        ``left_inequality`` rows (``sides @ w <= gross`` and, for min_variance, ``>= gross``), ``l2_coef``.
        max_sharpe maximizes the ratio on ``mu - rf`` with ``risk_free_rate = 0``: skfolio's ratio takes
        ``mu @ w - rf * budget``, which is the custom engine's excess ``(mu - rf) @ w`` only when net is 1."""
        s = np.asarray(sides, dtype="float64")
        if profile == "market_neutral":
            return self._market_neutral(inputs, max_weight, risk_free_rate, spec, gross, s)
        cov = np.asarray(inputs.cov, dtype="float64")
        mu = np.asarray(inputs.mu, dtype="float64") - (risk_free_rate if profile == "max_sharpe" else 0.0)
        measure = RiskMeasure[SKFOLIO_NAMES[spec.risk_measure or "variance"]]
        rows, rhs = ([s, -s], [gross, -gross]) if profile == "min_variance" else ([s], [gross])
        common = dict(
            risk_measure=measure, prior_estimator=fixed_prior(mu, cov), budget=net,
            min_weights=np.where(s > 0, 0.0, -max_weight), max_weights=np.where(s > 0, max_weight, 0.0),
            left_inequality=np.array(rows), right_inequality=np.array(rhs, dtype="float64"),
            cvar_beta=spec.risk_beta, evar_beta=spec.risk_beta, cdar_beta=spec.risk_beta,
            objective_function=(ObjectiveFunction.MINIMIZE_RISK if profile == "min_variance"
                                else ObjectiveFunction.MAXIMIZE_RATIO))
        return self._mean_risk(inputs, common, spec)

    def _market_neutral(self, inputs: EngineInputs, max_weight: float, risk_free_rate: float, spec: FitSpec,
                        gross: float, sides: np.ndarray | None) -> tuple[np.ndarray | None, str]:
        """``MeanRisk`` maximizing the utility ``(mu - rf) @ w - risk_aversion / 2 w' Sigma w`` (skfolio's
        ``risk_aversion`` multiplies the variance: ours halved), ``budget = 0``, the beta band as two
        ``left_inequality`` rows on the universe betas. Free signs (``sides`` None): ``|w| <= max_weight``
        and the gross as ``max_long = max_short = gross / 2`` (with budget 0 the same limit); both books:
        each name's sign by its bounds and ``sides @ w <= gross``."""
        cov = np.asarray(inputs.cov, dtype="float64")
        beta = universe_beta(cov)
        band = spec.beta_band
        common = dict(
            risk_measure=RiskMeasure.VARIANCE, prior_estimator=fixed_prior(np.asarray(inputs.mu) - risk_free_rate, cov),
            budget=0.0, objective_function=ObjectiveFunction.MAXIMIZE_UTILITY, risk_aversion=spec.risk_aversion / 2)
        if sides is None:
            common.update(min_weights=-max_weight, max_weights=max_weight, max_long=gross / 2, max_short=gross / 2,
                          left_inequality=np.array([beta, -beta]), right_inequality=np.array([band, band]))
        else:
            common.update(min_weights=np.where(sides > 0, 0.0, -max_weight),
                          max_weights=np.where(sides > 0, max_weight, 0.0),
                          left_inequality=np.array([sides, beta, -beta]),
                          right_inequality=np.array([gross, band, band]))
        return self._mean_risk(inputs, common, spec)

    def _mean_risk(self, inputs: EngineInputs, common: dict, spec: FitSpec) -> tuple[np.ndarray | None, str]:
        if spec.l2_gamma > 0:
            common["l2_coef"] = spec.l2_gamma
        alt = MeanRisk(solver="SCS", solver_params=dict(SOLVER_OPTIONS["SCS"]), **common)
        est = MeanRisk(solver=self.solver, solver_params=dict(SOLVER_OPTIONS.get(self.solver, {})),
                       fallback=[alt], raise_on_failure=False, **common)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(inputs.returns)
        record, winner = _chain_record(getattr(est, "fallback_chain_", None), [self.solver, "SCS"])
        if winner is not None and winner != self.solver:
            record.append(f"solved by {winner}")
        w = est.weights_
        ok = w is not None and np.all(np.isfinite(w))
        return (np.asarray(w, dtype="float64") if ok else None), "; ".join(record)

    def _fit(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float, spec: FitSpec):
        cov = np.asarray(inputs.cov, dtype="float64")
        record: list[str] = []
        vals = np.linalg.eigvalsh((cov + cov.T) / 2)
        if vals[0] < -EIG_TOL * max(vals[-1], 1.0):
            record.append(f"cov repaired by skfolio cov_nearest: min eigenvalue {vals[0]:.3g}")
        if profile == "market_neutral":
            w, note = self._market_neutral(inputs, max_weight, risk_free_rate, spec, spec.gross, None)
            record += [note] if note else []
            status = Status.OPTIMAL if w is not None else Status.FALLBACK_EQUAL_WEIGHT
            return w, status, "; ".join(record)
        prior = fixed_prior(np.asarray(inputs.mu, dtype="float64"), cov)
        est, labels = self._estimator(profile, prior, max_weight, risk_free_rate, inputs, spec)
        with warnings.catch_warnings():
            # skfolio warns on repairs and suppressed failures; both are recorded in the result instead.
            warnings.simplefilter("ignore")
            est.fit(inputs.returns)
        chain, winner = _chain_record(getattr(est, "fallback_chain_", None), labels)
        record += chain
        w = est.weights_
        if w is None or not np.all(np.isfinite(w)):
            if not chain:
                record.append(f"{profile}: no weights")
            return None, Status.FALLBACK_EQUAL_WEIGHT, "; ".join(record)
        if winner is not None and winner != labels[0]:
            record.append(f"solved by {winner}")
        return clean_weights(np.asarray(w, dtype="float64")), Status.OPTIMAL, "; ".join(record)
