"""Our own cvxpy engine: long-only min-variance, max-Sharpe and equal weight.

Problems are built once per (profile, n) with cvxpy Parameters (DPP) and re-solved across dates, so a
backfill pays the canonicalization once per universe size. The covariance enters as a square factor
``F`` (``F.T @ F = cov / scale``, scale = mean variance) so the objective is ``||F w||^2``: DPP-compliant,
well conditioned and tolerant of a singular (PSD) covariance.

min_variance::

    min ||F w||^2  s.t.  sum(w) = 1, 0 <= w <= max_weight

max_sharpe (homogenized; w = y / sum(y))::

    min ||F y||^2  s.t.  (mu - rf) @ y = 1, y >= 0, y <= max_weight * sum(y)

It has a solution only when some capped long-only portfolio beats the risk-free rate; otherwise the
engine records the reason and serves min_variance.

Solver chain on numerical failure: ``solvers`` in order (CLARABEL, OSQP, SCS), then equal weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import cvxpy as cp
import numpy as np

from tvquant_assets.core.engines.base import (
    SOLVER_OPTIONS,
    Engine,
    EngineInputs,
    Status,
    clean_weights,
    equal_weights,
    max_excess_under_cap,
    psd_factor,
    short_reason,
    weights_ok,
)

SOLVERS: tuple[str, ...] = ("CLARABEL", "OSQP", "SCS")

# Errors a solver call can raise on bad numerics; anything else is a bug and propagates.
_NUMERICAL_ERRORS = (cp.error.SolverError, ArithmeticError, ValueError, np.linalg.LinAlgError)


@dataclass
class _Compiled:
    problem: cp.Problem
    var: cp.Variable
    factor: cp.Parameter
    cap: cp.Parameter
    excess: cp.Parameter | None = None


def _build(profile: str, n: int) -> _Compiled:
    factor = cp.Parameter((n, n), name="F")
    cap = cp.Parameter(nonneg=True, name="max_weight")
    if profile == "min_variance":
        w = cp.Variable(n, name="w")
        problem = cp.Problem(cp.Minimize(cp.sum_squares(factor @ w)), [cp.sum(w) == 1, w >= 0, w <= cap])
        return _Compiled(problem, w, factor, cap)
    excess = cp.Parameter(n, name="excess")
    y = cp.Variable(n, name="y")
    problem = cp.Problem(
        cp.Minimize(cp.sum_squares(factor @ y)), [excess @ y == 1, y >= 0, y <= cap * cp.sum(y)]
    )
    return _Compiled(problem, y, factor, cap, excess)


class CustomEngine(Engine):
    """cvxpy engine with cached parametrized problems.

    Parameters
    ----------
    solvers : tuple of str
        Solvers tried in order before falling back to equal weight.
    """

    name = "custom"
    profiles = ("min_variance", "max_sharpe", "equal_weight")

    def __init__(self, solvers: tuple[str, ...] = SOLVERS) -> None:
        self.solvers = solvers

    def _problem(self, profile: str, n: int) -> _Compiled:
        # Cache of compiled problems, created on first use so __init__ only stores parameters.
        cache: dict[tuple[str, int], _Compiled] = self.__dict__.setdefault("problems_", {})
        if (profile, n) not in cache:
            cache[(profile, n)] = _build(profile, n)
        return cache[(profile, n)]

    def _solve(self, compiled: _Compiled, max_weight: float, record: list[str]) -> np.ndarray | None:
        """Walk the solver chain; weights or None, failures appended to ``record``."""
        for i, solver in enumerate(self.solvers):
            try:
                compiled.problem.solve(solver=solver, **SOLVER_OPTIONS.get(solver, {}))
            except _NUMERICAL_ERRORS as exc:
                record.append(f"{solver}: {short_reason(exc)}")
                continue
            status, x = compiled.problem.status, compiled.var.value
            if status != cp.OPTIMAL:
                record.append(f"{solver}: {status}")
                continue
            if x is None or not np.all(np.isfinite(x)) or not x.sum() > 0:
                record.append(f"{solver}: non-finite solution")
                continue
            w = clean_weights(x)
            if not weights_ok(w, max_weight):
                record.append(f"{solver}: solution violates constraints")
                continue
            if i > 0:
                record.append(f"solved by {solver}")
            return w
        return None

    def _min_variance(self, factor: np.ndarray, max_weight: float, record: list[str]) -> np.ndarray | None:
        c = self._problem("min_variance", len(factor))
        c.factor.value, c.cap.value = factor, max_weight
        return self._solve(c, max_weight, record)

    def _fit(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float):
        n = inputs.n
        if profile == "equal_weight":
            return equal_weights(n), Status.OPTIMAL, ""
        if not np.trace(inputs.cov) > 0:
            return equal_weights(n), Status.FALLBACK_EQUAL_WEIGHT, "zero covariance; equal_weight"
        factor, _, note = psd_factor(inputs.cov)
        record = [note] if note else []
        status = Status.OPTIMAL
        if profile == "min_variance":
            w = self._min_variance(factor, max_weight, record)
        else:
            excess = np.asarray(inputs.mu, dtype="float64") - risk_free_rate
            if max_excess_under_cap(excess, max_weight) <= 0:
                record.append("no capped portfolio has mu > risk-free rate; min_variance")
                status = Status.FALLBACK_MIN_VARIANCE
                w = self._min_variance(factor, max_weight, record)
            else:
                c = self._problem("max_sharpe", n)
                # Scaling excess to max 1 changes only the size of y, not w = y / sum(y).
                c.factor.value, c.cap.value = factor, max_weight
                c.excess.value = excess / np.abs(excess).max()
                w = self._solve(c, max_weight, record)
        if w is None:
            record.append("equal_weight")
            return equal_weights(n), Status.FALLBACK_EQUAL_WEIGHT, "; ".join(record)
        return w, status, "; ".join(record)
