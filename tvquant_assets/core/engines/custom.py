"""Our own engine: cvxpy for the convex profiles, plain numpy for the closed-form ones.

Convex problems are built once per (profile, n, features) with cvxpy Parameters (DPP) and re-solved
across dates, so a backfill pays the canonicalization once per universe size. The covariance enters as a
square factor ``F`` (``F.T @ F = cov / scale``, scale = mean variance) so the objective is ``||F w||^2``:
DPP-compliant, well conditioned and tolerant of a singular (PSD) covariance. Penalties are given in
annual-variance units and divided by ``scale`` like the covariance.

min_variance (long-only; long/short with ``sum(w) = net``, ``||w||_1 <= gross``, ``|w| <= max_weight``)::

    min ||F w||^2 + kappa ||w - w_prev||_1 + gamma ||w||^2  s.t.  sum(w) = 1, 0 <= w <= max_weight,
                                                               A w <= cluster_cap

max_sharpe (homogenized; w = y / sum(y), t = sum(y); e = (mu - rf) / max|mu - rf|)::

    min ||F y||^2 + gamma ||y||^2 + kappa ||y - t w_prev||_1
        s.t.  e @ y = 1, y >= 0, y <= max_weight * t, A y <= cluster_cap * t

Since t = 1 / (e @ w), this is, in w: ``min (w' S w + gamma ||w||^2) / (e @ w)^2 + kappa ||w - w_prev||_1 /
(e @ w)`` (S = cov / scale): the inverse squared Sharpe ratio of a ridge-shrunk covariance plus the turnover
per unit of (normalized) excess return. With kappa = gamma = 0 it is the plain max-Sharpe problem.
It has a solution only when some capped long-only portfolio beats the risk-free rate; otherwise the
engine records the reason and serves min_variance.

risk_parity (ERC): Newton on ``0.5 y' S y - sum(log y) / n`` (closed form, see hierarchy; with an L2
penalty alone, Newton on ``S + gamma I``); with a turnover penalty, the same strictly convex problem
through cvxpy (exponential cone: CLARABEL, SCS), w = y / sum(y)::

    min 0.5 y' (S + gamma I) y - sum(log y) / n + kappa ||y - sum(y) w_prev||_1

The L2 term is ERC on the ridge covariance ``S + gamma I`` (gamma -> inf: equal weight); the L1 term is
the turnover scaled to y's size. The cap is applied afterwards as for the unpenalized ERC.

market_neutral (long/short books)::

    max mu @ w - risk_aversion / 2 w' Sigma w - penalties  s.t.  sum(w) = 0, ||w||_1 <= gross,
        |w| <= max_weight, |beta @ w| <= beta_band     (beta against the equal-weight universe)

Any risk measure other than variance (``FitSpec.risk_measure``) turns min_variance, max_sharpe and
risk_parity into minimum risk, maximum ratio and risk budgeting with that measure: the cvxpy programs of
:mod:`~tvquant_assets.core.engines.risk_programs` (CLARABEL, then SCS), cached like the ones above.

Closed forms (:mod:`~tvquant_assets.core.engines.hierarchy`): risk_parity (ERC, Newton), hrp, herc (CVaR),
benchmark (hierarchical equal weight), barbell (``(1 - a) HRP + a`` equal weight on the ``aggressor_count``
highest-mu symbols, ``a`` = the regime's aggressor share). Cluster caps are native for the cvxpy
profiles and projected (and recorded) for the others by the base class.

Solver chain on numerical failure: ``solvers`` in order (QP, CLARABEL, OSQP, SCS), then the base class's
previous weights and equal weight. ``QP`` is the hot path for the plain long-only min_variance and
max_sharpe problems (no cluster caps, no penalties): the same problem as the cvxpy one, compiled once per
size straight into Clarabel's conic form (constraint matrix and cones cached; only the covariance block and
right-hand sides change per date), which skips cvxpy's per-solve parameter stuffing (~3/4 of a re-solve
at N=20). The cvxpy problems stay as the alternates and serve every constrained variant.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import clarabel
import cvxpy as cp
import numpy as np
import scipy.sparse as sp

from tvquant_assets.core.engines import hierarchy, risk_programs
from tvquant_assets.core.engines.base import (
    SOLVER_OPTIONS,
    Engine,
    EngineInputs,
    FitSpec,
    Status,
    clean_weights,
    cluster_members,
    equal_weights,
    long_short_ok,
    max_excess_under_cap,
    psd_covariance,
    psd_factor,
    short_reason,
    weights_ok,
    within_cap,
)
from tvquant_assets.core.engines.risk_measures import COVARIANCE_MEASURES, Risk
from tvquant_assets.core.linkage import returns_distance
from tvquant_assets.manifest.schema import LinkageConfig

SOLVERS: tuple[str, ...] = ("QP", "CLARABEL", "OSQP", "SCS")
# Profiles that take any risk measure (variance: their own paths; others: risk_programs)
MEASURE_PROFILES: tuple[str, ...] = ("min_variance", "max_sharpe", "risk_parity")
DIRECT = "QP"

# Errors a solver call can raise on bad numerics; anything else is a bug and propagates.
_NUMERICAL_ERRORS = (cp.error.SolverError, ArithmeticError, ValueError, np.linalg.LinAlgError)


@dataclass
class _Compiled:
    problem: cp.Problem
    var: cp.Variable
    params: dict[str, cp.Parameter] = field(default_factory=dict)
    long_only: bool = True


def _build(profile: str, n: int, caps: bool, penalties: bool, long_only: bool) -> _Compiled:
    p = {"F": cp.Parameter((n, n), name="F"), "cap": cp.Parameter(nonneg=True, name="max_weight")}
    if caps:
        p["A"] = cp.Parameter((n, n), name="clusters")
        p["ccap"] = cp.Parameter(nonneg=True, name="cluster_cap")
    if profile in ("max_sharpe", "risk_parity"):
        # Homogenized: w = y / sum(y). The L1 term compares y with the previous decision scaled to y's size.
        y = cp.Variable(n, name="y")
        if profile == "max_sharpe":
            p["excess"] = cp.Parameter(n, name="excess")
            objective = cp.sum_squares(p["F"] @ y)
            cons = [p["excess"] @ y == 1, y >= 0, y <= p["cap"] * cp.sum(y)]
            if caps:
                cons.append(p["A"] @ y <= p["ccap"] * cp.sum(y))
        else:  # equal risk contribution as the strictly convex log-barrier problem (its own scale)
            objective = 0.5 * cp.sum_squares(p["F"] @ y) - cp.sum(cp.log(y)) / n
            cons = []
        if penalties:
            p["prev"] = cp.Parameter(n, name="previous")
            p["kappa"], p["gamma"] = cp.Parameter(nonneg=True, name="kappa"), cp.Parameter(nonneg=True, name="gamma")
            d = cp.Variable(n, name="trade")
            cons.append(d == y - cp.sum(y) * p["prev"])
            ridge = cp.sum_squares(y) if profile == "max_sharpe" else 0.5 * cp.sum_squares(y)
            objective = objective + p["kappa"] * cp.norm1(d) + p["gamma"] * ridge
        return _Compiled(cp.Problem(cp.Minimize(objective), cons), y, p)
    w = cp.Variable(n, name="w")
    objective = cp.sum_squares(p["F"] @ w)
    if profile == "market_neutral":
        p["mu"], p["beta"] = cp.Parameter(n, name="mu"), cp.Parameter(n, name="beta")
        p["gross"], p["band"] = cp.Parameter(nonneg=True, name="gross"), cp.Parameter(nonneg=True, name="band")
        objective = objective - p["mu"] @ w
        cons = [cp.sum(w) == 0, cp.norm1(w) <= p["gross"], cp.abs(w) <= p["cap"],
                cp.abs(p["beta"] @ w) <= p["band"]]
        long_only = False
    elif long_only:
        cons = [cp.sum(w) == 1, w >= 0, w <= p["cap"]]
    else:
        p["gross"], p["net"] = cp.Parameter(nonneg=True, name="gross"), cp.Parameter(name="net")
        cons = [cp.sum(w) == p["net"], cp.norm1(w) <= p["gross"], cp.abs(w) <= p["cap"]]
    if caps:
        cons.append(p["A"] @ w <= p["ccap"])
    if penalties:
        p["prev"] = cp.Parameter(n, name="previous")
        p["kappa"], p["gamma"] = cp.Parameter(nonneg=True, name="kappa"), cp.Parameter(nonneg=True, name="gamma")
        d = cp.Variable(n, name="trade")
        cons.append(d == w - p["prev"])
        objective = objective + p["kappa"] * cp.norm1(d) + p["gamma"] * cp.sum_squares(w)
    return _Compiled(cp.Problem(cp.Minimize(objective), cons), w, p, long_only)


def membership(clusters: np.ndarray) -> np.ndarray:
    """Square cluster-membership matrix: row k marks the members of the k-th cluster (zero rows pad)."""
    a = np.zeros((len(clusters), len(clusters)))
    for k, m in enumerate(cluster_members(clusters)):
        a[k, m] = 1.0
    return a


@dataclass
class _DirectQP:
    """Clarabel conic data of a long-only QP over ``n`` weights, all but the varying parts built once."""

    n: int
    cones: list
    settings: clarabel.DefaultSettings
    triu: tuple[np.ndarray, np.ndarray]
    min_variance_a: sp.csc_matrix | None = None  # min_variance's constraint matrix, fixed per size


def _direct(n: int) -> _DirectQP:
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    opts = SOLVER_OPTIONS["CLARABEL"]
    settings.tol_gap_abs, settings.tol_gap_rel, settings.tol_feas = (
        opts["tol_gap_abs"], opts["tol_gap_rel"], opts["tol_feas"])
    return _DirectQP(n, [clarabel.ZeroConeT(1), clarabel.NonnegativeConeT(2 * n)], settings,
                     np.triu_indices(n))


def _solve_direct(qp: _DirectQP, s: np.ndarray, first_row: np.ndarray | None, upper: np.ndarray | None,
                  cap: float) -> np.ndarray | None:
    """``min x' S x`` s.t. ``first_row @ x = 1``, ``x >= 0``, ``upper @ x <= cap`` (rows of the cap block);
    ``upper=None`` is min_variance (``first_row`` = ones, ``upper`` = I, constraint matrix cached).

    Returns x, or None when Clarabel does not report Solved.
    """
    n = qp.n
    rows, cols = qp.triu
    p = sp.csc_matrix(((2.0 * s)[rows, cols], (rows, cols)), shape=(n, n))
    b = np.concatenate([[1.0], np.zeros(n), np.full(n, cap)])
    if upper is None:  # min_variance: sum(x) = 1, x <= cap
        if qp.min_variance_a is None:
            qp.min_variance_a = sp.csc_matrix(np.vstack([np.ones((1, n)), -np.eye(n), np.eye(n)]))
        a = qp.min_variance_a
    else:
        a = sp.csc_matrix(np.vstack([first_row[None, :], -np.eye(n), upper]))
    # A fresh solver object every time: Clarabel's in-place update() can differ from a fresh solve in the
    # last bit, and a decision must not depend on which dates were solved before it in the same run.
    solver = clarabel.DefaultSolver(p, np.zeros(n), a, b, qp.cones, qp.settings)
    sol = solver.solve()
    if sol.status != clarabel.SolverStatus.Solved:
        raise cp.error.SolverError(f"Clarabel status {sol.status}")
    return np.asarray(sol.x, dtype="float64")


class CustomEngine(Engine):
    """cvxpy engine with cached parametrized problems and numpy closed forms.

    Parameters
    ----------
    solvers : tuple of str
        Solvers tried in order before the base class falls back to previous weights / equal weight.
    linkage : LinkageConfig
        Cluster cut for HERC and hierarchical equal weight (the manifest's ``selection.linkage``).
    """

    name = "custom"
    profiles = ("min_variance", "max_sharpe", "risk_parity", "hrp", "herc", "benchmark", "equal_weight",
                "barbell", "market_neutral")
    cluster_cap_profiles = ("min_variance", "max_sharpe", "market_neutral")
    long_short_profiles = ("min_variance", "market_neutral")
    joint_profiles = ("min_variance", "max_sharpe", "market_neutral")  # core/book_fit.py:joint_weights
    penalized_profiles = ("min_variance", "max_sharpe", "risk_parity", "market_neutral")
    returns_profiles = ("herc",)

    def __init__(self, solvers: tuple[str, ...] = SOLVERS, linkage: LinkageConfig | None = None) -> None:
        super().__init__(linkage)
        self.solvers = solvers

    def uses_returns(self, profile: str, spec: FitSpec | None = None) -> bool:
        """HERC always; HRP and benchmark for a rank-correlation tree or a returns-based risk measure;
        the convex profiles for a returns-based risk measure."""
        if profile in MEASURE_PROFILES and spec is not None and spec.risk_measure:
            return spec.risk_measure not in COVARIANCE_MEASURES
        if profile in ("hrp", "herc", "benchmark", "barbell"):
            rank_tree = self.linkage is not None and self.linkage.distance != "pearson"
            measure = spec.risk_measure if spec is not None else ""
            return profile == "herc" or rank_tree or bool(measure and measure not in COVARIANCE_MEASURES)
        return super().uses_returns(profile, spec)

    def _problem(self, profile: str, n: int, caps: bool, penalties: bool, long_only: bool) -> _Compiled:
        # Cache of compiled problems, created on first use so __init__ only stores parameters.
        cache: dict[tuple, _Compiled] = self.__dict__.setdefault("problems_", {})
        key = (profile, n, caps, penalties, long_only)
        if key not in cache:
            cache[key] = _build(profile, n, caps, penalties, long_only)
        return cache[key]

    def _solve(self, compiled: _Compiled, ok, record: list[str], normalize: bool,
               exclude: tuple[str, ...] = (), primary: str | None = None) -> np.ndarray | None:
        """Walk the solver chain (less ``exclude``: solvers without the problem's cones); weights or None,
        failures appended to ``record`` (and the winner when it is not ``primary``, default the first
        of ``solvers``)."""
        primary = self.solvers[0] if primary is None else primary
        for solver in (x for x in self._cvxpy_solvers() if x not in exclude):
            try:
                compiled.problem.solve(solver=solver, **SOLVER_OPTIONS.get(solver, {}))
            except _NUMERICAL_ERRORS as exc:
                record.append(f"{solver}: {short_reason(exc)}")
                continue
            status, x = compiled.problem.status, compiled.var.value
            if status != cp.OPTIMAL:
                record.append(f"{solver}: {status}")
                continue
            if x is None or not np.all(np.isfinite(x)) or (normalize and not x.sum() > 0):
                record.append(f"{solver}: non-finite solution")
                continue
            w = clean_weights(x) if normalize else np.asarray(x, dtype="float64")
            if not ok(w):
                record.append(f"{solver}: solution violates constraints")
                continue
            if solver != primary:
                record.append(f"solved by {solver}")
            return w
        return None

    def _set_common(self, c: _Compiled, factor, max_weight: float, spec: FitSpec, scale: float) -> None:
        if factor is not None:
            c.params["F"].value = factor
        c.params["cap"].value = max_weight
        if "A" in c.params:
            c.params["A"].value, c.params["ccap"].value = membership(spec.clusters), spec.cluster_cap
        if "prev" in c.params:
            prev = spec.previous if spec.previous is not None else np.zeros(c.var.shape[0])
            c.params["prev"].value = np.asarray(prev, dtype="float64")
            c.params["kappa"].value = spec.turnover_penalty / scale
            c.params["gamma"].value = spec.l2_gamma / scale
        if "gross" in c.params:
            c.params["gross"].value = spec.gross
        if "net" in c.params:
            c.params["net"].value = spec.net

    @staticmethod
    def _features(spec: FitSpec) -> tuple[bool, bool]:
        caps = spec.cluster_cap is not None and spec.clusters is not None
        if caps and len(np.unique(spec.clusters)) * spec.cluster_cap < 1.0 - 1e-12:
            caps = False  # infeasible caps: the base projection records it
        penalties = spec.turnover_penalty > 0 or spec.l2_gamma > 0
        return caps, penalties

    def _direct_chain(self, profile: str, factor: np.ndarray, max_weight: float, excess: np.ndarray | None,
                      record: list[str]) -> np.ndarray | None:
        """The compiled QP (first in ``solvers``); None (failure recorded) hands over to cvxpy."""
        n = len(factor)
        cache: dict[int, _DirectQP] = self.__dict__.setdefault("direct_", {})
        qp = cache.setdefault(n, _direct(n))
        s = factor.T @ factor
        try:
            if profile == "min_variance":
                x = _solve_direct(qp, s, None, None, max_weight)
            else:
                # y <= max_weight * sum(y)  <=>  (I - max_weight 11') y <= 0, written with cap 0
                x = _solve_direct(qp, s, excess, np.eye(n) - max_weight * np.ones((n, n)), 0.0)
        except (cp.error.SolverError, ArithmeticError, ValueError, np.linalg.LinAlgError) as exc:
            record.append(f"{DIRECT}: {short_reason(exc)}")
            return None
        if not np.all(np.isfinite(x)) or not x.sum() > 0:
            record.append(f"{DIRECT}: non-finite solution")
            return None
        w = clean_weights(x)
        if not weights_ok(w, max_weight):
            record.append(f"{DIRECT}: solution violates constraints")
            return None
        return w

    def _cvxpy_solvers(self) -> tuple[str, ...]:
        return tuple(x for x in self.solvers if x != DIRECT)

    def _plain(self, spec: FitSpec) -> bool:
        return self.solvers[:1] == (DIRECT,) and self._features(spec) == (False, False)

    def _min_variance(self, factor, scale, max_weight, spec, record, long_short=False) -> np.ndarray | None:
        if not long_short and self._plain(spec):
            w = self._direct_chain("min_variance", factor, max_weight, None, record)
            if w is not None:
                return w
        caps, penalties = self._features(spec)
        c = self._problem("min_variance", len(factor), caps, penalties, not long_short)
        self._set_common(c, factor, max_weight, spec, scale)
        if long_short:
            return self._solve(c, lambda w: long_short_ok(w, max_weight, spec.gross, spec.net), record, False)
        return self._solve(c, lambda w: weights_ok(w, max_weight), record, True)

    def _fit(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float, spec: FitSpec):
        n = inputs.n
        cov = np.asarray(inputs.cov, dtype="float64")
        if profile == "equal_weight":
            return equal_weights(n), Status.OPTIMAL, ""
        if not np.trace(cov) > 0:
            return None, Status.FALLBACK_EQUAL_WEIGHT, "zero covariance"
        status = Status.OPTIMAL
        if profile in MEASURE_PROFILES and spec.risk_measure not in ("", "variance"):
            return self._measure_fit(inputs, profile, max_weight, risk_free_rate, spec)
        linkage = self.linkage or LinkageConfig()
        if profile in ("hrp", "herc", "benchmark", "risk_parity", "barbell"):
            psd, factor, scale, note = psd_covariance(cov)
            record = [note] if note else []
            try:
                if profile in ("hrp", "herc", "benchmark"):
                    dist = allocation_distance(inputs, psd, linkage)
                    z = hierarchy.tree(distance=dist, method=linkage.method, optimal_ordering=profile == "hrp")
                    returns = None if inputs.returns is None else inputs.returns.to_numpy(dtype="float64")
                    measure = spec.risk_measure or ("cvar" if profile == "herc" else "variance")
                    risk = None if profile == "benchmark" else Risk(measure, psd, returns, spec.risk_beta)
                if profile == "hrp":
                    w = hierarchy.hrp(psd, max_weight, z, risk)
                elif profile == "herc":
                    w = hierarchy.herc(psd, returns, linkage, risk, z)
                elif profile == "benchmark":
                    w = hierarchy.herc(psd, None, linkage, "equal", z)
                elif profile == "risk_parity":
                    w = self._risk_parity(factor, psd, scale, spec, record)
                else:
                    z = hierarchy.tree(distance=allocation_distance(inputs, psd, linkage), method=linkage.method)
                    w = self._barbell(inputs.mu, psd, max_weight, spec, z)
            except (ArithmeticError, np.linalg.LinAlgError) as exc:
                record.append(f"{profile}: {short_reason(exc)}")
                return None, Status.FALLBACK_EQUAL_WEIGHT, "; ".join(record)
            if w is None:  # every solver of the penalized risk parity failed (recorded)
                return None, Status.FALLBACK_EQUAL_WEIGHT, "; ".join(record)
            if profile != "hrp" and w.max() > max_weight + 1e-12:
                # HERC / benchmark: skfolio's rule (least relative deviation); the others pro rata.
                w = relative_cap(w, max_weight) if profile in ("herc", "benchmark") else cap_weights(w, max_weight)
                record.append(f"capped at max_weight {max_weight:g}")
            return w, status, "; ".join(record)
        factor, scale, note = psd_factor(cov)
        record = [note] if note else []
        psd = factor.T @ factor * scale
        if profile == "market_neutral":
            caps, penalties = self._features(spec)
            c = self._problem("market_neutral", n, caps, penalties, False)
            # maximize mu w - ra/2 w'Sigma w  ==  minimize ||sqrt(ra/2) F w||^2 - (mu / scale) w, in scaled units
            self._set_common(c, factor * np.sqrt(spec.risk_aversion / 2.0), max_weight, spec, scale)
            c.params["mu"].value = (np.asarray(inputs.mu, dtype="float64") - risk_free_rate) / scale
            market = psd @ np.full(n, 1.0 / n)
            c.params["beta"].value = market / float(np.full(n, 1.0 / n) @ market)
            c.params["band"].value = spec.beta_band
            w = self._solve(c, lambda x: long_short_ok(x, max_weight, spec.gross, 0.0), record, False)
        elif profile == "min_variance":
            w = self._min_variance(factor, scale, max_weight, spec, record, self.is_long_short(profile, spec))
        else:
            excess = np.asarray(inputs.mu, dtype="float64") - risk_free_rate
            if max_excess_under_cap(excess, max_weight) <= 0:
                record.append("no capped portfolio has mu > risk-free rate; min_variance")
                status = Status.FALLBACK_MIN_VARIANCE
                w = self._min_variance(factor, scale, max_weight, spec, record)
            else:
                # Scaling excess to max 1 changes only the size of y, not w = y / sum(y).
                unit = excess / np.abs(excess).max()
                w = self._direct_chain("max_sharpe", factor, max_weight, unit, record) if self._plain(spec) else None
                if w is None:
                    caps, penalties = self._features(spec)
                    c = self._problem("max_sharpe", n, caps, penalties, True)
                    self._set_common(c, factor, max_weight, spec, scale)
                    c.params["excess"].value = unit
                    w = self._solve(c, lambda x: weights_ok(x, max_weight), record, True)
        return w, status, "; ".join(record)

    def _measure_fit(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float,
                     spec: FitSpec):
        """Minimum risk, maximum ratio or risk budgeting with a measure other than variance
        (:mod:`~tvquant_assets.core.engines.risk_programs`)."""
        measure, n = spec.risk_measure, inputs.n
        factor, scale, note = psd_factor(np.asarray(inputs.cov, dtype="float64"))
        record = [note] if note else []
        returns = None if inputs.returns is None else inputs.returns.to_numpy(dtype="float64")
        status = Status.OPTIMAL
        excess = np.asarray(inputs.mu, dtype="float64") - risk_free_rate
        long_short = profile == "min_variance" and self.is_long_short(profile, spec)
        if profile == "max_sharpe" and max_excess_under_cap(excess, max_weight) <= 0:
            record.append(f"no capped portfolio has mu > risk-free rate; minimum {measure}")
            status, profile = Status.FALLBACK_MIN_VARIANCE, "min_variance"
        caps, penalties = self._features(spec)
        caps = caps and profile != "risk_parity"  # risk budgeting: projected by the base class
        t_obs = 0 if returns is None else len(returns)
        key = ("measure", profile, measure, n, t_obs, spec.risk_beta, caps, penalties, not long_short)
        cache: dict[tuple, risk_programs.Program] = self.__dict__.setdefault("problems_", {})
        if key not in cache:
            cache[key] = risk_programs.build(profile, measure, n, t_obs, spec.risk_beta, caps, penalties,
                                             not long_short)
        prog = cache[key]
        risk_programs.set_data(prog, measure, returns, factor)
        unit = risk_programs.data_scale(measure, returns, scale)
        compiled = _Compiled(prog.problem, prog.var, prog.params)
        self._set_common(compiled, None, max_weight, spec, unit)
        if profile == "max_sharpe":
            prog.params["excess"].value = excess / np.abs(excess).max()
        if long_short:
            ok = lambda w: long_short_ok(w, max_weight, spec.gross, spec.net)  # noqa: E731
        else:
            ok = lambda w: weights_ok(w, max_weight)  # noqa: E731
        chain = tuple(x for x in self._cvxpy_solvers() if x != "OSQP")  # OSQP: no cones
        with warnings.catch_warnings():  # "solution may be inaccurate": recorded by _solve as the status
            warnings.simplefilter("ignore", UserWarning)
            w = self._solve(compiled, ok, record, not long_short, exclude=("OSQP",),
                            primary=chain[0] if chain else None)
        if w is not None and not long_short:  # SCS, the fallback, can sit ~1e-9 above a binding cap
            w = within_cap(w, max_weight)
        return w, status, "; ".join(record)

    def _risk_parity(self, factor, psd, scale, spec: FitSpec, record: list[str]) -> np.ndarray | None:
        """ERC by Newton, on ``cov + gamma I`` for an L2 penalty alone (the same optimum); with a turnover
        penalty, the penalized log-barrier problem through cvxpy (exponential-cone solvers only)."""
        if not spec.turnover_penalty > 0 or spec.previous is None:
            return hierarchy.equal_risk_contribution(psd + spec.l2_gamma * np.eye(len(psd)) if spec.l2_gamma > 0
                                                     else psd)
        if factor is None:
            factor, scale, _ = psd_factor(psd)
        c = self._problem("risk_parity", len(psd), False, True, True)
        self._set_common(c, factor, 1.0, spec, scale)
        return self._solve(c, lambda w: weights_ok(w, 1.0), record, True, exclude=("OSQP",))

    @staticmethod
    def _barbell(mu: np.ndarray, cov: np.ndarray, max_weight: float, spec: FitSpec,
                 z: np.ndarray | None = None) -> np.ndarray:
        core = hierarchy.hrp(cov, max_weight, z)
        k = max(1, min(spec.aggressor_count, len(mu)))
        order = np.lexsort((np.arange(len(mu)), -np.asarray(mu)))  # highest mu first, ties by position
        aggressor = np.zeros(len(mu))
        aggressor[order[:k]] = 1.0 / k
        share = float(np.clip(spec.aggressor_share, 0.0, 1.0))
        return (1.0 - share) * core + share * aggressor


def allocation_distance(inputs: EngineInputs, psd: np.ndarray, cfg: LinkageConfig) -> np.ndarray:
    """The hierarchical allocators' square distance: the selection's (``inputs.distance``) when given,
    else the covariance's correlation distance (``pearson``) or the window's rank-correlation distance."""
    if inputs.distance is not None:
        return np.asarray(inputs.distance, dtype="float64")
    if cfg.distance == "pearson":
        return hierarchy.covariance_distance(psd)
    return returns_distance(inputs.returns.to_numpy(dtype="float64"), cfg.distance)


def relative_cap(w0: np.ndarray, max_weight: float) -> np.ndarray:
    """``argmin sum(((w - w0) / w0)^2)`` over ``sum(w) = 1``, ``0 <= w <= max_weight`` (positive ``w0``),
    exactly: ``w_i = min(max_weight, w0_i + c w0_i^2)`` with ``c`` solved on its breakpoints (skfolio
    caps its HERC with this problem, solved numerically)."""
    w0 = np.asarray(w0, dtype="float64")
    u = float(max_weight)
    order = np.argsort((u - w0) / w0**2)  # assets reach the cap in this order as c grows
    sq = w0**2
    free_w, free_sq = float(w0.sum()), float(sq.sum())
    for k, i in enumerate(order):  # the first k assets sit at u
        c = (1.0 - k * u - free_w) / free_sq
        if w0[i] + c * sq[i] <= u:
            break
        free_w -= w0[i]
        free_sq -= sq[i]
    else:
        return np.full(len(w0), u)
    rest = np.ones(len(w0), dtype=bool)
    rest[order[:k]] = False
    c = (1.0 - k * u - float(w0[rest].sum())) / float(sq[rest].sum())  # fresh sums: no drift
    return np.where(rest, w0 + c * sq, u)


def cap_weights(w: np.ndarray, max_weight: float) -> np.ndarray:
    """Clip long-only weights at ``max_weight`` and hand the excess to the uncapped ones pro rata."""
    w = np.asarray(w, dtype="float64").copy()
    for _ in range(len(w)):
        over = w > max_weight
        excess = float((w[over] - max_weight).sum())
        if excess <= 1e-15:
            break
        w[over] = max_weight
        free = w < max_weight - 1e-15
        w[free] += excess * w[free] / w[free].sum()
    return w
