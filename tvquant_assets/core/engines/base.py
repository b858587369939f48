"""What every optimization engine takes, returns and promises.

An engine is a small sklearn-style object: ``__init__`` stores parameters only, :meth:`Engine.fit`
returns an :class:`EngineResult` and also keeps it as ``result_`` / ``weights_``. Engines never raise for
numerical trouble (solver error, infeasible problem, NaN inputs or outputs): they walk a fallback chain
down to equal weight and record every step in ``EngineResult.fallback``. :class:`EngineError` is kept for
programming errors (unknown profile, misaligned inputs).

Statuses (``EngineResult.status``):

- ``optimal``: the profile's own weights (an optimizer optimum, or the closed form of equal weight / HRP);
  ``fallback`` may still name failed solvers or a covariance repair on the way;
- ``fallback:min_variance`` / ``fallback:equal_weight``: the profile could not be served, the named
  profile was used instead;
- ``cap_infeasible``: ``n * max_weight < 1``, no long-only fully invested portfolio respects the cap, so
  1/n is used;
- ``empty_universe``: no symbols, no weights.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import StrEnum
from typing import ClassVar

import numpy as np
import pandas as pd

from tvquant_assets.errors import EngineError

# Tolerances when checking an engine's weights: solvers stop at ~1e-8, so anything looser than that is
# a real violation, not rounding.
WEIGHT_TOL = 1e-6
# Relative size of a negative eigenvalue that is mere rounding (silently clipped) vs a real repair.
EIG_TOL = 1e-10
# Tight tolerances so engines agree to ~1e-6 in weights; warm starts off so a re-solve never depends
# on the previous date (determinism).
SOLVER_OPTIONS: dict[str, dict] = {
    "CLARABEL": {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10, "warm_start": False},
    "OSQP": {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iter": 200_000, "polishing": True, "warm_start": False},
    "SCS": {"eps_abs": 1e-9, "eps_rel": 1e-9, "max_iters": 200_000, "warm_start": False},
}


class Status(StrEnum):
    OPTIMAL = "optimal"
    FALLBACK_MIN_VARIANCE = "fallback:min_variance"
    FALLBACK_EQUAL_WEIGHT = "fallback:equal_weight"
    CAP_INFEASIBLE = "cap_infeasible"
    EMPTY_UNIVERSE = "empty_universe"


@dataclass(frozen=True)
class EngineInputs:
    """One date's estimates, aligned on ``symbols``.

    ``returns`` is the estimation return window (:func:`tvquant_assets.core.estimation.returns_window`),
    needed only by engines with ``needs_returns``; annualized ``mu``/``cov`` are what they optimize.
    """

    symbols: list[str]
    mu: np.ndarray
    cov: np.ndarray
    returns: pd.DataFrame | None = None

    @property
    def n(self) -> int:
        return len(self.symbols)

    def check(self) -> None:
        """Raise :class:`EngineError` when the arrays do not line up with ``symbols``."""
        n = self.n
        if np.shape(self.mu) != (n,) or np.shape(self.cov) != (n, n):
            raise EngineError(
                f"engine inputs misaligned: {n} symbols, mu {np.shape(self.mu)}, cov {np.shape(self.cov)}"
            )
        if self.returns is not None and list(self.returns.columns) != list(self.symbols):
            raise EngineError("engine inputs misaligned: returns columns differ from symbols")


@dataclass(frozen=True)
class EngineResult:
    """Weights (aligned on the inputs' symbols) and how they were obtained."""

    weights: np.ndarray
    status: str
    solve_ms: float
    fallback: str = ""


def equal_weights(n: int) -> np.ndarray:
    return np.full(n, 1.0 / n) if n else np.zeros(0)


def short_reason(exc: BaseException | str, limit: int = 100) -> str:
    """One short line for the fallback record (solver messages can be long and multi-line)."""
    text = exc if isinstance(exc, str) else f"{type(exc).__name__}: {exc}"
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def weights_ok(w: np.ndarray | None, max_weight: float) -> bool:
    """Finite, long-only, fully invested and within the cap (up to solver tolerance)."""
    if w is None or not np.all(np.isfinite(w)):
        return False
    return bool(w.min() >= -WEIGHT_TOL and w.max() <= max_weight + WEIGHT_TOL and abs(w.sum() - 1) <= WEIGHT_TOL)


def clean_weights(w: np.ndarray) -> np.ndarray:
    """Clip solver round-off below zero and renormalize to sum 1."""
    w = np.clip(np.asarray(w, dtype="float64"), 0.0, None)
    return w / w.sum()


def max_excess_under_cap(excess: np.ndarray, max_weight: float) -> float:
    """Largest ``excess @ w`` over long-only fully invested ``w`` with ``w <= max_weight``.

    Greedy fill in descending order is exact for this LP; max-Sharpe has a solution only when it is > 0.
    """
    left, total = 1.0, 0.0
    for e in np.sort(excess)[::-1]:
        take = min(max_weight, left)
        total += take * e
        left -= take
        if left <= 0:
            break
    return float(total)


def psd_factor(cov: np.ndarray) -> tuple[np.ndarray, float, str]:
    """A square factor ``F`` with ``F.T @ F = cov / scale`` and the repair note.

    Scaling by the mean variance keeps the problem data O(1) (unscaled covariances cost precision);
    eigenvalues below zero are clipped, and recorded when they are more than rounding.
    """
    sym = (np.asarray(cov, dtype="float64") + np.asarray(cov, dtype="float64").T) / 2.0
    scale = float(np.trace(sym)) / len(sym)
    if not scale > 0:
        scale = 1.0
    vals, vecs = np.linalg.eigh(sym / scale)
    note = ""
    top = max(float(vals.max()), 0.0)
    if vals.min() < -EIG_TOL * max(top, 1.0):
        note = f"cov repaired: clipped eigenvalue {vals.min() * scale:.3g}"
    factor = (vecs * np.sqrt(np.clip(vals, 0.0, None))).T
    return factor, scale, note


class Engine(ABC):
    """Base of every engine: input checks, trivial cases, timing; subclasses implement :meth:`_fit`."""

    name: ClassVar[str] = ""
    profiles: ClassVar[tuple[str, ...]] = ()
    # True when fit needs EngineInputs.returns (the estimation window), e.g. to build a prior.
    needs_returns: ClassVar[bool] = False

    def fit(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float = 0.0) -> EngineResult:
        """Compute weights for ``profile``.

        Parameters
        ----------
        inputs : EngineInputs
        profile : str
            One of ``self.profiles``.
        max_weight : float
            Per-asset cap in (0, 1].
        risk_free_rate : float
            Annual, same units as ``inputs.mu``.

        Returns
        -------
        EngineResult
        """
        profile = str(profile)  # Profile is a StrEnum: str() is its value
        if profile not in self.profiles:
            raise EngineError(f"engine {self.name!r} has no profile {profile!r}; it offers {', '.join(self.profiles)}")
        if not 0.0 < max_weight <= 1.0:
            raise EngineError(f"max_weight {max_weight!r} must be in (0, 1]")
        inputs.check()
        if self.needs_returns and inputs.returns is None and inputs.n:
            raise EngineError(f"engine {self.name!r} needs the returns window in EngineInputs.returns")
        t0 = time.perf_counter()
        n = inputs.n
        if n == 0:
            w, status, fallback = np.zeros(0), Status.EMPTY_UNIVERSE, ""
        elif n * max_weight < 1.0 - 1e-12:
            w, status = equal_weights(n), Status.CAP_INFEASIBLE
            fallback = f"cap infeasible: {n} assets x max_weight {max_weight:g} < 1, using 1/n"
        elif not (np.all(np.isfinite(inputs.mu)) and np.all(np.isfinite(inputs.cov))):
            w, status, fallback = equal_weights(n), Status.FALLBACK_EQUAL_WEIGHT, "non-finite mu or cov"
        else:
            w, status, fallback = self._fit(inputs, profile, float(max_weight), float(risk_free_rate))
            if not weights_ok(w, max_weight):
                # A solver that reported success but broke a constraint is a numerical failure too.
                fallback = "; ".join(x for x in (fallback, "weights violate constraints", "equal_weight") if x)
                w, status = equal_weights(n), Status.FALLBACK_EQUAL_WEIGHT
        result = EngineResult(
            weights=np.asarray(w, dtype="float64"),
            status=str(status),
            solve_ms=(time.perf_counter() - t0) * 1e3,
            fallback=fallback,
        )
        self.result_ = result
        self.weights_ = result.weights
        return result

    @abstractmethod
    def _fit(
        self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float
    ) -> tuple[np.ndarray, str, str]:
        """Weights, status and fallback record for a non-trivial, finite, cap-feasible problem."""
