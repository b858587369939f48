"""Books: the long book, the short book and long/short books, on top of any engine.

A strategy trades one of three books (``Manifest.book``):

- ``long``: the long book, long-only weights summing to 1 (what every engine does natively); the
  free-sign ``constraints.long_only: false`` and ``market_neutral`` stay the engine's own long/short.
- ``short``: the short book, weights ``<= 0`` summing to ``-1``, ``|w| <= max_weight``. Every profile but
  market_neutral is served by the **mirror**: a short-only portfolio ``w = -v`` on returns ``r`` earns
  ``-v @ r``, which is the long-only portfolio ``v`` on ``-r``. So the engine fits its long-only profile
  on ``-mu`` and ``-returns`` (the covariance is unchanged; the previous decision is negated) and the
  weights are negated. Exact for every engine and profile (HRP/HERC see the same covariance, HERC's
  CVaR the short side's tail, max-Sharpe the short side's excess return ``-v @ mu - rf``).
- ``long_short``: both books, long-book names ``w >= 0``, short-book names ``w <= 0``,
  ``sum(w) = net``, ``sum(|w|) <= gross``, ``|w| <= max_weight`` (``constraints.net`` / ``gross``:
  130/30 is net 1, gross 1.6; dollar-neutral is net 0). Because signs are fixed per book, gross is the
  linear ``s @ w`` (``s`` = +1 long book, -1 short book) and the custom engine solves min_variance,
  max_sharpe and market_neutral **jointly** (:func:`joint_weights`). Every other profile is fitted
  **per book**: the long book's weights scaled to ``L = (gross + net) / 2``, the short book's (by the
  mirror) to ``-S = -(gross - net) / 2``, each fitted with the cap ``max_weight / L`` (``/ S``) so the
  per-name cap holds in portfolio units. When a date has names in one book only, that book carries the
  net (none when net has the other sign) and the status is ``one_book_empty``.

:mod:`~tvquant_assets.core.book_limits` holds the table manifest validation enforces and the limits the
``tournament_weights`` check verifies per candidate (no optimization library imported).
"""

from __future__ import annotations

import time
from dataclasses import replace
from functools import partial

import cvxpy as cp
import numpy as np
import pandas as pd

from tvquant_assets.core.book_limits import BOOKS, JOINT_PROFILES, ONE_BOOK_EMPTY, BookLimits
from tvquant_assets.core.engines.base import (
    SOLVER_OPTIONS,
    Engine,
    EngineInputs,
    EngineResult,
    FitSpec,
    Status,
    psd_factor,
    short_reason,
    universe_beta,
)
from tvquant_assets.errors import EngineError

SIGN_TOL = 1e-9


def fit_book(engine: Engine, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float,
             spec: FitSpec, book: str, sides: np.ndarray | None = None) -> EngineResult:
    """Weights of ``engine/profile`` on ``book`` (module docstring); ``sides`` +1/-1 per symbol (long_short)."""
    if book == "long":
        return engine.fit(inputs, profile, max_weight, risk_free_rate, spec)
    if book == "short":
        res = engine.fit(_mirror(inputs), profile, max_weight, risk_free_rate, _mirror_spec(spec, 1.0))
        return replace(res, weights=-np.asarray(res.weights, dtype="float64"))
    if book != "long_short":
        raise ValueError(f"unknown book {book!r} (known: {', '.join(BOOKS)})")
    t0 = time.perf_counter()
    n = inputs.n
    sides = np.ones(n) if sides is None else np.sign(np.asarray(sides, dtype="float64"))
    if n == 0:
        return EngineResult(np.zeros(0), str(Status.EMPTY_UNIVERSE), 0.0)
    gross, net = float(spec.gross), 0.0 if profile == "market_neutral" else float(spec.net)
    long_idx, short_idx = np.flatnonzero(sides > 0), np.flatnonzero(sides < 0)
    if not long_idx.size or not short_idx.size:
        return _one_book(engine, inputs, profile, max_weight, risk_free_rate, spec, long_idx, short_idx, net, t0)
    size_long, size_short, reduced = book_sizes(long_idx.size, short_idx.size, max_weight, net, gross)
    if profile in JOINT_PROFILES:
        fit = joint_weights if engine.name == "custom" else partial(library_joint_weights, engine)
        w, status, note = fit(inputs, profile, max_weight, risk_free_rate, spec, sides, net, size_long + size_short)
        return EngineResult(w, status, (time.perf_counter() - t0) * 1e3, "; ".join(x for x in (reduced, note) if x))
    w = np.zeros(n)
    statuses, notes, picked = [], [reduced] if reduced else [], ""
    for idx, size, sign in ((long_idx, size_long, 1.0), (short_idx, size_short, -1.0)):
        if size <= 1e-12:  # the cap leaves this book no room (recorded in ``reduced``)
            continue
        sub = _subset(inputs, idx)
        sub_spec = _subset_spec(spec, idx, size, sign)
        cap = min(1.0, max_weight / size)
        res = engine.fit(sub if sign > 0 else _mirror(sub), profile, cap, risk_free_rate, sub_spec)
        w[idx] = sign * size * np.asarray(res.weights, dtype="float64")
        statuses.append(res.status)
        picked = picked or res.picked
        if res.fallback:
            notes.append(f"{'long' if sign > 0 else 'short'} book: {res.fallback}")
    status = next((s for s in statuses if s != str(Status.OPTIMAL)), str(Status.OPTIMAL))
    return EngineResult(w, status, (time.perf_counter() - t0) * 1e3, "; ".join(notes), picked)


def book_sizes(n_long: int, n_short: int, max_weight: float, net: float, gross: float) -> tuple[float, float, str]:
    """The long and short books' sizes ``(L, S)``, ``L - S = net``, and a note when the gross is reduced.

    ``L = (gross + net) / 2``, ``S = (gross - net) / 2`` unless a book's names cannot hold its size under
    the cap (``n * max_weight``): then the short size is the largest both books can hold with the net
    kept (the gross falls, recorded). A long book that cannot hold even the net keeps the full sizes (the
    ``tournament_weights`` check reports the cap).
    """
    full = (gross - net) / 2.0
    short = min(full, n_short * max_weight, n_long * max_weight - net)
    if short >= full - 1e-12 or short < max(0.0, -net) - 1e-12:
        return (gross + net) / 2.0, full, ""
    return (net + short, short, f"gross {gross:g} reduced to {net + 2 * short:.6g}: {n_long} long and {n_short} "
            f"short names x max_weight {max_weight:g} cannot hold it")


def _one_book(engine, inputs, profile, max_weight, rf, spec, long_idx, short_idx, net, t0) -> EngineResult:
    """Only one book has names on this date: it carries the net when the net has its sign, else cash."""
    n = inputs.n
    w = np.zeros(n)
    side = "long" if long_idx.size else "short"
    idx = long_idx if long_idx.size else short_idx
    size = net if side == "long" else -net
    note = f"no {'short' if side == 'long' else 'long'}-book names"
    if size > 0 and profile != "market_neutral":
        sub = _subset(inputs, idx)
        sign = 1.0 if side == "long" else -1.0
        res = engine.fit(sub if sign > 0 else _mirror(sub), profile, min(1.0, max_weight / size), rf,
                         _subset_spec(spec, idx, size, sign))
        w[idx] = sign * size * np.asarray(res.weights, dtype="float64")
        note += f": the {side} book holds net {net:g}" + (f"; {res.fallback}" if res.fallback else "")
    else:
        note += ": no position"
    return EngineResult(w, ONE_BOOK_EMPTY, (time.perf_counter() - t0) * 1e3, note)


def _mirror(inputs: EngineInputs) -> EngineInputs:
    returns = None if inputs.returns is None else -inputs.returns
    return EngineInputs(inputs.symbols, -np.asarray(inputs.mu, dtype="float64"), inputs.cov, returns)


def _mirror_spec(spec: FitSpec, size: float) -> FitSpec:
    prev = None if spec.previous is None else -np.asarray(spec.previous, dtype="float64") / size
    return replace(spec, previous=prev, long_only=True)


def _subset(inputs: EngineInputs, idx: np.ndarray) -> EngineInputs:
    cov = np.asarray(inputs.cov, dtype="float64")[np.ix_(idx, idx)]
    returns = None if inputs.returns is None else inputs.returns.iloc[:, idx]
    return EngineInputs([inputs.symbols[i] for i in idx], np.asarray(inputs.mu, dtype="float64")[idx], cov, returns)


def _subset_spec(spec: FitSpec, idx: np.ndarray, size: float, sign: float) -> FitSpec:
    prev = None if spec.previous is None else sign * np.asarray(spec.previous, dtype="float64")[idx] / size
    clusters = None if spec.clusters is None else np.asarray(spec.clusters)[idx]
    cap = None if spec.cluster_cap is None else min(1.0, spec.cluster_cap / size)
    return replace(spec, previous=prev, clusters=clusters, cluster_cap=cap, long_only=True)


def limits_ok(w: np.ndarray | None, max_weight: float, limits: BookLimits, sides: np.ndarray | None = None,
              tol: float = 1e-6) -> bool:
    """``w`` within ``limits`` (and, with ``sides``, each name on its book's side)."""
    if w is None or not np.all(np.isfinite(w)):
        return False
    w = np.asarray(w, dtype="float64")
    if np.abs(w).max(initial=0.0) > max_weight + tol:
        return False
    if sides is not None and (np.any(w[sides > 0] < -tol) or np.any(w[sides < 0] > tol)):
        return False
    if limits.book == "long":
        return bool(w.min(initial=0.0) >= -tol and abs(w.sum() - 1.0) <= tol)
    if limits.book == "short":
        return bool(w.max(initial=0.0) <= tol and abs(w.sum() + 1.0) <= tol)
    return bool(abs(w.sum() - limits.net) <= 1e-5 and np.abs(w).sum() <= limits.gross + 1e-5)


def joint_weights(inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float, spec: FitSpec,
                  sides: np.ndarray, net: float, gross: float) -> tuple[np.ndarray, str, str]:
    """min_variance / max_sharpe / market_neutral over both books, sign fixed per book (cvxpy).

    min_variance: ``min w' S w`` s.t. ``sum w = net``, ``s @ w = gross`` (the gross is used in full, as by
    the per-book profiles: else a dollar-neutral minimum variance is all cash), signs, caps.
    max_sharpe (homogenized, ``w = y / t``): ``min y' S y`` s.t. ``e @ y = 1``, ``sum y = net t``,
    ``s @ y <= gross t``, ``0 <= s * y <= max_weight t``; with net 0, ``t`` is the smallest the gross and
    cap allow (the Sharpe ratio does not depend on the scale). No portfolio with positive excess return:
    min_variance (``fallback:min_variance``).
    market_neutral: ``max mu @ w - risk_aversion / 2 w' Sigma w`` s.t. ``sum w = 0``, ``s @ w <= gross``,
    signs, caps, ``|beta @ w| <= beta_band`` (beta against the equal-weight universe, :func:`universe_beta`).
    Penalties: ``gamma ||w||^2 + kappa ||w - previous||_1`` (annual-variance units); max_sharpe takes them
    homogenized (``gamma ||y||^2 + kappa ||y - t previous||_1``). Solver failure: the per-book equal
    weights (``fallback:equal_weight``).
    """
    n = inputs.n
    factor, scale, note = psd_factor(np.asarray(inputs.cov, dtype="float64"))
    record = [note] if note else []
    s = np.asarray(sides, dtype="float64")
    mu = np.asarray(inputs.mu, dtype="float64")
    prev = np.zeros(n) if spec.previous is None else np.asarray(spec.previous, dtype="float64")
    turnover = spec.turnover_penalty > 0 and spec.previous is not None

    def penalties(w, t=1.0):
        terms = 0
        if spec.l2_gamma > 0:
            terms = terms + spec.l2_gamma / scale * cp.sum_squares(w)
        if turnover:
            terms = terms + spec.turnover_penalty / scale * cp.norm1(w - t * prev)
        return terms

    def min_variance():
        w = cp.Variable(n)
        cons = [cp.sum(w) == net, s @ w == gross, cp.multiply(s, w) >= 0, cp.multiply(s, w) <= max_weight]
        return w, cp.Problem(cp.Minimize(cp.sum_squares(factor @ w) + penalties(w)), cons), None

    def max_sharpe():
        excess = mu - risk_free_rate
        unit = excess / max(np.abs(excess).max(), 1e-300)
        y, t = cp.Variable(n), cp.Variable(nonneg=True)
        cons = [unit @ y == 1, cp.sum(y) == net * t, s @ y <= gross * t, cp.multiply(s, y) >= 0,
                cp.multiply(s, y) <= max_weight * t]
        return y, cp.Problem(cp.Minimize(cp.sum_squares(factor @ y) + penalties(y, t)), cons), t

    def market_neutral():
        w = cp.Variable(n)
        beta = universe_beta(factor.T @ factor * scale)
        objective = spec.risk_aversion / 2.0 * cp.sum_squares(factor @ w) - (mu - risk_free_rate) / scale @ w
        cons = [cp.sum(w) == 0, s @ w <= gross, cp.multiply(s, w) >= 0, cp.multiply(s, w) <= max_weight,
                cp.abs(beta @ w) <= spec.beta_band]
        return w, cp.Problem(cp.Minimize(objective + penalties(w)), cons), None

    builders = {"min_variance": min_variance, "max_sharpe": max_sharpe, "market_neutral": market_neutral}
    chain = [profile] if profile != "max_sharpe" else ["max_sharpe", "min_variance"]
    for name in chain:
        var, problem, t = builders[name]()
        for solver in ("CLARABEL", "SCS"):
            try:
                problem.solve(solver=solver, **SOLVER_OPTIONS.get(solver, {}))
            except (cp.error.SolverError, ArithmeticError, ValueError) as exc:
                record.append(f"{name} {solver}: {short_reason(exc)}")
                continue
            if problem.status != cp.OPTIMAL or var.value is None:
                record.append(f"{name} {solver}: {problem.status}")
                continue
            x = np.asarray(var.value, dtype="float64")
            if t is not None:
                if abs(net) > 1e-12 or turnover:
                    x = x / float(t.value) if t.value and t.value > 0 else x * np.nan
                else:
                    x = scale_to_limits(x, s, gross, max_weight)
            x = np.where(np.abs(x) < SIGN_TOL, 0.0, x)
            if limits_ok(x, max_weight, BookLimits("long_short", net, gross), s):
                status = str(Status.OPTIMAL) if name == profile else str(Status.FALLBACK_MIN_VARIANCE)
                return x, status, "; ".join(record)
            record.append(f"{name} {solver}: solution violates the book limits")
        if name == "max_sharpe":
            record.append("no long/short portfolio with positive excess return found; min_variance")
    record.append("per-book equal weight")
    return _per_book_equal(s, net, gross), str(Status.FALLBACK_EQUAL_WEIGHT), "; ".join(record)


def library_joint_weights(engine: Engine, inputs: EngineInputs, profile: str, max_weight: float,
                          risk_free_rate: float, spec: FitSpec, sides: np.ndarray, net: float,
                          gross: float) -> tuple[np.ndarray, str, str]:
    """The joint problem of :func:`joint_weights` solved by a library engine's ``fit_joint`` (skfolio,
    riskfolio, cvxportfolio: the same constraints in the library's own terms).

    max_sharpe with net 0 is rescaled like the custom engine's (the largest scale gross and cap allow);
    max_sharpe that fails falls back to the library's min_variance; a library raising, failing or breaking
    the book limits ends in the per-book equal weights (``fallback:equal_weight``), recorded.
    """
    s = np.asarray(sides, dtype="float64")
    record: list[str] = []
    chain = [profile] if profile != "max_sharpe" else ["max_sharpe", "min_variance"]
    for name in chain:
        try:
            x, note = engine.fit_joint(inputs, name, max_weight, risk_free_rate, spec, s, net, gross)
        except EngineError:
            raise
        except Exception as exc:  # a library raising is a failed decision, not a failed partition
            x, note = None, f"{engine.name} {name}: {short_reason(exc)}"
        if note:
            record.append(note)
        if x is None or not np.all(np.isfinite(x)):
            record.append(f"{engine.name} {name}: no solution")
            continue
        x = np.asarray(x, dtype="float64")
        if name == "max_sharpe" and abs(net) <= 1e-12 and not spec.turnover_penalty > 0:
            x = scale_to_limits(x, s, gross, max_weight)
        x = np.where(np.abs(x) < SIGN_TOL, 0.0, x)
        if limits_ok(x, max_weight, BookLimits("long_short", net, gross), s):
            status = str(Status.OPTIMAL) if name == profile else str(Status.FALLBACK_MIN_VARIANCE)
            return x, status, "; ".join(record)
        record.append(f"{engine.name} {name}: solution violates the book limits")
    record.append("per-book equal weight")
    return _per_book_equal(s, net, gross), str(Status.FALLBACK_EQUAL_WEIGHT), "; ".join(record)


def scale_to_limits(x: np.ndarray, sides: np.ndarray, gross: float, max_weight: float) -> np.ndarray:
    """A dollar-neutral max-Sharpe direction at the largest scale the gross and the cap allow."""
    x = np.asarray(x, dtype="float64")
    return x / max(float(sides @ x) / gross, float(np.abs(x).max()) / max_weight)


def _per_book_equal(s: np.ndarray, net: float, gross: float) -> np.ndarray:
    w = np.zeros(len(s))
    w[s > 0], w[s < 0] = (gross + net) / 2.0 / int((s > 0).sum()), -(gross - net) / 2.0 / int((s < 0).sum())
    return w


def sides_of(estimates: pd.DataFrame) -> np.ndarray:
    """+1 / -1 per estimation row from its ``direction`` column (absent: all long)."""
    if "direction" not in estimates.columns:
        return np.ones(len(estimates))
    return np.where(estimates["direction"].astype(str).to_numpy() == "short", -1.0, 1.0)
