"""cvxpy programs of the custom engine's mean-risk and risk-budgeting profiles for every risk measure
but variance (variance keeps its own QP paths in ``custom.py``).

Definitions are :mod:`~tvquant_assets.core.engines.risk_measures`' (skfolio's), written as convex
programs over the estimation window ``X`` (T x n daily returns, scaled by one number ``rho`` so the data
is O(1); every measure is homogeneous in the returns, so the argmin does not move). ``Xc`` is ``X`` less
its column means (semi-variance, semi-deviation and MAD are measured around the window's mean)::

    standard_deviation  ||F w||                       (F' F = cov / scale, the annualized covariance)
    semi_variance       ||v||^2 / (T - 1)              v >= -Xc w, v >= 0
    semi_deviation      ||v|| / sqrt(T - 1)            (same v)
    mean_absolute_dev.  ||Xc w||_1 / T
    cvar (beta)         a + sum(pos(-X w - a)) / (T (1 - beta))
    evar (beta)         c - z log(T (1 - beta))        sum(u) <= z, (-X w - c, z, u_i) in K_exp
    cdar (beta)         CVaR(beta) of d                d_0 = 0, d_t >= d_{t-1} - (X w)_t, d >= 0
    max_drawdown        m >= d_t                       (same d)
    worst_realization   m >= -(X w)_t

Profiles (``kappa``: L1 turnover against ``w_prev``; ``gamma``: L2; both in the measure's own units,
i.e. skfolio's ``l1``/``l2`` convention: daily-return units, annualized for standard deviation):

- ``min_variance`` (minimum risk): ``min risk(w) + kappa ||w - w_prev||_1 + gamma ||w||^2`` over the
  long-only (``sum w = 1``, ``0 <= w <= max_weight``) or long/short (``sum w = net``, ``||w||_1 <= gross``,
  ``|w| <= max_weight``) set, cluster caps ``A w <= cluster_cap``;
- ``max_sharpe`` (maximum ratio, homogenized: ``w = y / t``, ``t = sum y``, ``e = (mu - rf) / max|mu - rf|``):
  ``min risk(y) + gamma ||y||^2 + kappa ||y - t w_prev||_1`` s.t. ``e @ y = 1``, ``y >= 0``,
  ``y <= max_weight t``, ``A y <= cluster_cap t``: the largest ``(mu - rf) @ w / risk(w)`` (for
  semi-variance, the Sortino ratio ``/ sqrt``; both are degree-2, as variance gives max Sharpe);
- ``risk_parity`` (risk budgeting, equal budgets): ``min risk(y) + gamma ||y||^2 + kappa ||y - t w_prev||_1``
  s.t. ``sum(log y) >= 0``, ``y <= max_weight t``, ``w = y / t`` (skfolio's ``RiskBudgeting``): each asset
  contributes the same share of ``risk(w)`` when no cap binds.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cvxpy as cp
import numpy as np

DEGREE = {"semi_variance": 2}  # every other measure is positively homogeneous of degree 1


@dataclass
class Program:
    problem: cp.Problem
    var: cp.Variable
    params: dict[str, cp.Parameter] = field(default_factory=dict)


def _risk(measure: str, p: dict, w, t_obs: int, beta: float) -> tuple[cp.Expression, list]:
    if measure == "standard_deviation":
        return cp.norm(p["F"] @ w, 2), []
    if measure in ("semi_variance", "semi_deviation"):
        v = cp.Variable(t_obs, nonneg=True)
        cons = [v >= -(p["Xc"] @ w)]
        if measure == "semi_variance":
            return cp.sum_squares(v) / (t_obs - 1), cons
        return cp.norm(v, 2) / np.sqrt(t_obs - 1), cons
    if measure == "mean_absolute_deviation":
        return cp.norm1(p["Xc"] @ w) / t_obs, []
    losses = -(p["X"] @ w)
    if measure == "worst_realization":
        m = cp.Variable()
        return m, [losses <= m]
    if measure == "cvar":
        a = cp.Variable()
        return a + cp.sum(cp.pos(losses - a)) / (t_obs * (1.0 - beta)), []
    if measure == "evar":
        c, z, u = cp.Variable(), cp.Variable(nonneg=True), cp.Variable(t_obs)
        return (c - z * np.log(t_obs * (1.0 - beta)),
                [cp.sum(u) <= z, cp.constraints.ExpCone(losses - c, z * np.ones(t_obs), u)])
    if measure in ("cdar", "max_drawdown"):
        d = cp.Variable(t_obs + 1)
        cons = [d[0] == 0, d[1:] >= d[:-1] + losses, d[1:] >= 0]
        if measure == "max_drawdown":
            m = cp.Variable()
            return m, [*cons, d[1:] <= m]
        a = cp.Variable()
        return a + cp.sum(cp.pos(d[1:] - a)) / (t_obs * (1.0 - beta)), cons
    raise ValueError(f"no convex program for risk measure {measure!r}")


def build(profile: str, measure: str, n: int, t_obs: int, beta: float, caps: bool, penalties: bool,
          long_only: bool) -> Program:
    """The parametrized program (DPP: built once per key, re-solved per date)."""
    p: dict[str, cp.Parameter] = {"cap": cp.Parameter(nonneg=True, name="max_weight")}
    if measure == "standard_deviation":
        p["F"] = cp.Parameter((n, n), name="F")
    elif measure in ("semi_variance", "semi_deviation", "mean_absolute_deviation"):
        p["Xc"] = cp.Parameter((t_obs, n), name="centered_returns")
    else:
        p["X"] = cp.Parameter((t_obs, n), name="returns")
    if caps:
        p["A"] = cp.Parameter((n, n), name="clusters")
        p["ccap"] = cp.Parameter(nonneg=True, name="cluster_cap")
    x = cp.Variable(n, name="w" if profile == "min_variance" else "y")
    risk, cons = _risk(measure, p, x, t_obs, beta)
    if profile == "min_variance":
        size = 1.0
        if long_only:
            cons += [cp.sum(x) == 1, x >= 0, x <= p["cap"]]
        else:
            p["gross"], p["net"] = cp.Parameter(nonneg=True, name="gross"), cp.Parameter(name="net")
            cons += [cp.sum(x) == p["net"], cp.norm1(x) <= p["gross"], cp.abs(x) <= p["cap"]]
        if caps:
            cons.append(p["A"] @ x <= p["ccap"])
    else:
        size = cp.sum(x)
        cons += [x <= p["cap"] * size]
        if profile == "max_sharpe":
            p["excess"] = cp.Parameter(n, name="excess")
            cons += [p["excess"] @ x == 1, x >= 0]
            if caps:
                cons.append(p["A"] @ x <= p["ccap"] * size)
        else:
            cons.append(cp.sum(cp.log(x)) >= 0)
    objective = risk
    if penalties:
        p["prev"] = cp.Parameter(n, name="previous")
        p["kappa"], p["gamma"] = cp.Parameter(nonneg=True, name="kappa"), cp.Parameter(nonneg=True, name="gamma")
        d = cp.Variable(n, name="trade")
        cons.append(d == x - size * p["prev"])
        objective = objective + p["kappa"] * cp.norm1(d) + p["gamma"] * cp.sum_squares(x)
    return Program(cp.Problem(cp.Minimize(objective), cons), x, p)


def data_scale(measure: str, returns: np.ndarray | None, cov_scale: float) -> float:
    """What one unit of the scaled program's risk is worth in the measure's units (penalties are divided
    by it): ``rho^degree`` of the window's scale ``rho``, or ``sqrt(scale)`` of the covariance."""
    if measure == "standard_deviation":
        return float(np.sqrt(cov_scale))
    return float(_rho(returns)) ** DEGREE.get(measure, 1)


def _rho(returns: np.ndarray) -> float:
    rho = float(np.sqrt(np.mean(np.var(returns, axis=0))))
    return rho if rho > 0 else 1.0


def set_data(prog: Program, measure: str, returns: np.ndarray | None, factor: np.ndarray | None) -> None:
    """Fill the measure's data parameter (scaled window, centered window, or covariance factor)."""
    if "F" in prog.params:
        prog.params["F"].value = factor
        return
    x = np.asarray(returns, dtype="float64") / _rho(returns)
    if "Xc" in prog.params:
        prog.params["Xc"].value = x - x.mean(axis=0)
    else:
        prog.params["X"].value = x
