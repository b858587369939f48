"""What every optimization engine takes, returns and promises.

An engine is a small sklearn-style object: ``__init__`` stores parameters only, :meth:`Engine.fit`
returns an :class:`EngineResult` and also keeps it as ``result_`` / ``weights_``. Engines never raise for
numerical trouble (solver error, infeasible problem, NaN inputs or outputs, a library raising): they walk
a fallback chain -- solver, alternate solver, the previous decision's weights (``FitSpec.previous``), equal
weight -- and record every step in ``EngineResult.fallback``. :class:`EngineError` is kept for
programming errors (unknown profile, misaligned inputs).

Constraints beyond the per-asset cap travel in :class:`FitSpec`: long/short gross and net limits, cluster
caps (profiles that cannot take them natively are projected onto them afterwards, and the projection is
recorded), the L1 turnover penalty against the previous decision and the L2 gamma.

Statuses (``EngineResult.status``):

- ``optimal``: the profile's own weights (an optimizer optimum, or the closed form of equal weight / HRP);
  ``fallback`` may still name failed solvers or a covariance repair on the way;
- ``fallback:min_variance`` / ``fallback:previous`` / ``fallback:equal_weight``: the profile could not be
  served, the named profile (or the previous decision) was used instead;
- ``cap_infeasible``: ``n * max_weight < 1``, no long-only fully invested portfolio respects the cap, so
  1/n is used;
- ``empty_universe``: no symbols, no weights.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

import numpy as np
import pandas as pd

from tvquant_assets.errors import EngineError

if TYPE_CHECKING:
    from tvquant_assets.manifest.schema import LinkageConfig

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
    FALLBACK_PREVIOUS = "fallback:previous"
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
    # The hierarchical allocators' square distance when the manifest asks for the selection's tree
    # (``selection.linkage.allocation_tree: selection``); None: each engine builds its own.
    distance: np.ndarray | None = None

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
class FitSpec:
    """Constraints and context of one decision beyond the per-asset cap and the risk-free rate.

    Attributes
    ----------
    long_only : bool
        False: weights in [-max_weight, max_weight], ``sum(w) == net``, ``sum(|w|) <= gross`` (profiles
        in the engine's ``long_short_profiles`` only).
    clusters : ndarray of int, optional
        Cluster id per symbol (the selection's); used by cluster caps.
    cluster_cap : float, optional
        Largest total weight of one cluster.
    cluster_cap_max : float
        Loosest cluster cap an infeasible ``cluster_cap`` may be relaxed to (:func:`relax_cluster_cap`).
    previous : ndarray, optional
        The candidate's previous decision aligned on the symbols (0 for symbols it did not hold).
    turnover_penalty : float
        L1 penalty ``kappa * ||w - previous||_1`` (annual-variance units) for profiles in ``penalized_profiles``.
    l2_gamma : float
        L2 penalty ``gamma * ||w||^2`` (annual-variance units), already scaled for the regime.
    beta_band : float
        market_neutral: ``|beta @ w| <= beta_band`` with betas against the equal-weight universe.
    risk_aversion : float
        market_neutral: maximize ``mu @ w - risk_aversion / 2 * w' Sigma w``.
    aggressor_share : float
        barbell: weight of the aggressor sleeve (already resolved for the regime).
    aggressor_count : int
        barbell: number of highest-mu symbols in the aggressor sleeve.
    regime_label, quadrant : str
        The date's regime, for engines that choose by regime (adaptive).
    adaptive_map : tuple of (key, profile)
        adaptive: regime label or quadrant -> profile, looked up label first.
    adaptive_default : str
        adaptive: profile when neither the label nor the quadrant is mapped.
    preset_profile : str
        adaptive: the active regime preset's ``profile`` (wins over the mapping when set).
    risk_measure : str
        The candidate's risk measure (:data:`~tvquant_assets.core.engines.risk_measures.MEASURES`); ""
        is the profile's own (variance; HERC 95% CVaR).
    risk_beta : float
        Confidence of CVaR, EVaR and CDaR.
    """

    long_only: bool = True
    gross: float = 2.0
    net: float = 0.0
    clusters: np.ndarray | None = None
    cluster_cap: float | None = None
    cluster_cap_max: float = 1.0
    previous: np.ndarray | None = None
    turnover_penalty: float = 0.0
    l2_gamma: float = 0.0
    beta_band: float = 0.05
    risk_aversion: float = 5.0
    aggressor_share: float = 0.2
    aggressor_count: int = 3
    regime_label: str = ""
    quadrant: str = ""
    adaptive_map: tuple[tuple[str, str], ...] = ()
    adaptive_default: str = "min_variance"
    preset_profile: str = ""
    risk_measure: str = ""
    risk_beta: float = 0.95


DEFAULT_SPEC = FitSpec()


@dataclass(frozen=True)
class EngineResult:
    """Weights (aligned on the inputs' symbols) and how they were obtained."""

    weights: np.ndarray
    status: str
    solve_ms: float
    fallback: str = ""
    picked: str = ""  # the profile actually fitted when the engine chooses one (adaptive)


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


def long_short_ok(w: np.ndarray | None, max_weight: float, gross: float, net: float) -> bool:
    """Finite, ``|w| <= max_weight``, ``sum(w) == net`` and ``sum(|w|) <= gross`` (solver tolerance)."""
    if w is None or not np.all(np.isfinite(w)):
        return False
    return bool(np.abs(w).max() <= max_weight + WEIGHT_TOL and abs(w.sum() - net) <= 1e-5
                and np.abs(w).sum() <= gross + 1e-5)


def universe_beta(cov: np.ndarray) -> np.ndarray:
    """Each name's beta against the equal-weight portfolio of the names (market_neutral's beta band)."""
    cov = np.asarray(cov, dtype="float64")
    eq = np.full(len(cov), 1.0 / len(cov))
    market = cov @ eq
    return market / float(eq @ market)


def cluster_members(clusters: np.ndarray) -> list[np.ndarray]:
    """Indices of each cluster, clusters in ascending id order."""
    return [np.flatnonzero(clusters == c) for c in np.unique(clusters)]


def project_cluster_caps(
    w: np.ndarray, clusters: np.ndarray, cluster_cap: float, max_weight: float
) -> tuple[np.ndarray, str]:
    """Weights meeting the per-asset and per-cluster caps together
    (:func:`tvquant_assets.core.engines.projection.project`, exact) and a note ("" when nothing moved).

    When no fully invested long-only portfolio meets the caps the weights are returned unchanged with a
    note saying so (callers relax the cap first: :func:`relax_cluster_cap`).
    """
    from tvquant_assets.core.engines.projection import project

    try:
        return project(w, clusters, cluster_cap, max_weight)
    except ArithmeticError as exc:
        return w, f"{exc}; not applied"


def relax_cluster_cap(spec: FitSpec, max_weight: float) -> tuple[FitSpec, str, bool]:
    """The spec with the cluster cap this date can meet, the note, and whether the manifest's limit held.

    A cap no fully invested portfolio can meet (too few clusters, or too little room under
    ``max_weight``) is loosened to the tightest feasible cap, recorded, but never beyond
    ``spec.cluster_cap_max``; past it the cap is dropped and the third value is False (status
    ``cap_infeasible``).
    """
    from tvquant_assets.core.engines.projection import feasible_cluster_cap

    if spec.cluster_cap is None or spec.clusters is None or len(spec.clusters) == 0:
        return spec, "", True
    need = feasible_cluster_cap(spec.clusters, max_weight)
    cap = spec.cluster_cap
    if cap >= need - 1e-12:
        return spec, "", True
    k = len(np.unique(spec.clusters))
    why = f"cluster_cap {cap:g} infeasible ({k} clusters, max_weight {max_weight:g})"
    if need <= spec.cluster_cap_max + 1e-12:
        return replace(spec, cluster_cap=float(need)), f"{why}: relaxed to {need:.6g}", True
    return (replace(spec, cluster_cap=None),
            f"{why}: tightest feasible {need:.6g} > cluster_cap_max {spec.cluster_cap_max:g}; not applied", False)


def clean_weights(w: np.ndarray) -> np.ndarray:
    """Clip solver round-off below zero and renormalize to sum 1."""
    w = np.clip(np.asarray(w, dtype="float64"), 0.0, None)
    return w / w.sum()


CAP_ROUND_OFF = 1e-9


def within_cap(w: np.ndarray, cap: float) -> np.ndarray:
    """Long-only weights summing to 1 with a solver's round-off above ``cap`` (more than
    :data:`CAP_ROUND_OFF`, which ``weights_ok`` accepts: SCS's accuracy) clipped to it, the excess spread
    over the names with room; other weights as they are."""
    if cap >= 1.0 or not w.max() > cap + CAP_ROUND_OFF:
        return w
    w = np.minimum(w, cap)
    room = cap - w
    return w + (1.0 - w.sum()) * room / max(float(room.sum()), 1e-300)


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


def psd_covariance(cov: np.ndarray) -> tuple[np.ndarray, np.ndarray | None, float, str]:
    """The covariance the closed forms use: ``(psd, factor, scale, note)``.

    A positive definite covariance (Cholesky succeeds, a few ms at N=500) is used as given (symmetrized),
    with ``factor = None``; otherwise the :func:`psd_factor` repair (an eigendecomposition, ~10x dearer),
    ``psd = F.T @ F * scale``.
    """
    sym = (np.asarray(cov, dtype="float64") + np.asarray(cov, dtype="float64").T) / 2.0
    try:
        np.linalg.cholesky(sym)
    except np.linalg.LinAlgError:
        factor, scale, note = psd_factor(sym)
        return factor.T @ factor * scale, factor, scale, note
    return sym, None, 1.0, ""


class Engine(ABC):
    """Base of every engine: input checks, trivial cases, timing; subclasses implement :meth:`_fit`."""

    name: ClassVar[str] = ""
    profiles: ClassVar[tuple[str, ...]] = ()
    # True when fit needs EngineInputs.returns (the estimation window), e.g. to build a prior.
    needs_returns: ClassVar[bool] = False

    # Profiles whose optimizer takes cluster caps / long-short / L1-L2 penalties natively.
    cluster_cap_profiles: ClassVar[tuple[str, ...]] = ()
    long_short_profiles: ClassVar[tuple[str, ...]] = ()
    penalized_profiles: ClassVar[tuple[str, ...]] = ()
    # Profiles that read EngineInputs.returns even when ``needs_returns`` is False.
    returns_profiles: ClassVar[tuple[str, ...]] = ()
    # Profiles solved over both books of tournament.book long_short (``fit_joint``; core/book_fit.py).
    joint_profiles: ClassVar[tuple[str, ...]] = ()

    def __init__(self, linkage: LinkageConfig | None = None) -> None:
        # Every engine takes the manifest's ``selection.linkage`` (the tournament passes it to all).
        self.linkage = linkage

    def fit(
        self, inputs: EngineInputs, profile: str, max_weight: float = 1.0, risk_free_rate: float = 0.0,
        spec: FitSpec | None = None,
    ) -> EngineResult:
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
        spec : FitSpec, optional
            Further constraints and context (default: long-only, no cluster caps, no penalties).

        Returns
        -------
        EngineResult
        """
        profile = str(profile)  # Profile is a StrEnum: str() is its value
        spec = DEFAULT_SPEC if spec is None else spec
        if profile not in self.profiles:
            raise EngineError(f"engine {self.name!r} has no profile {profile!r}; it offers {', '.join(self.profiles)}")
        if not 0.0 < max_weight <= 1.0:
            raise EngineError(f"max_weight {max_weight!r} must be in (0, 1]")
        inputs.check()
        if self.uses_returns(profile, spec) and inputs.returns is None and inputs.n:
            raise EngineError(f"engine {self.name!r} needs the returns window in EngineInputs.returns")
        t0 = time.perf_counter()
        n = inputs.n
        picked = ""
        long_short = self.is_long_short(profile, spec)
        if n == 0:
            w, status, fallback = np.zeros(0), Status.EMPTY_UNIVERSE, ""
        elif not long_short and n * max_weight < 1.0 - 1e-12:
            w, status = equal_weights(n), Status.CAP_INFEASIBLE
            fallback = f"cap infeasible: {n} assets x max_weight {max_weight:g} < 1, using 1/n"
        elif n == 1 and not long_short:  # one name holds the book (HRP's tree needs two; every profile agrees)
            w, status, fallback = np.ones(1), Status.OPTIMAL, ""
        elif not (np.all(np.isfinite(inputs.mu)) and np.all(np.isfinite(inputs.cov))):
            w, status, fallback = self._last_resort(n, max_weight, spec, ["non-finite mu or cov"])
        else:
            caps_held, relaxed = True, ""
            if not long_short:
                spec, relaxed, caps_held = relax_cluster_cap(spec, max_weight)
            try:
                w, status, fallback = self._fit(inputs, profile, float(max_weight), float(risk_free_rate), spec)
            except EngineError:
                raise
            except Exception as exc:  # a library raising is a failed decision, not a failed partition
                w, status, fallback = None, Status.FALLBACK_EQUAL_WEIGHT, f"{self.name}: {short_reason(exc)}"
            picked = self.__dict__.pop("picked_", "")
            ok = (long_short_ok(w, max_weight, spec.gross, spec.net) if long_short
                  else weights_ok(w, max_weight))
            if not ok:
                # A solver that reported success but broke a constraint is a numerical failure too.
                record = [x for x in (fallback, "weights violate constraints" if w is not None else "") if x]
                if status == Status.FALLBACK_EQUAL_WEIGHT and record and record[-1] == "equal_weight":
                    record.pop()
                w, status, fallback = self._last_resort(n, max_weight, spec, record)
            if (not long_short and spec.cluster_cap is not None and spec.clusters is not None
                    and (profile not in self.cluster_cap_profiles or status != Status.OPTIMAL)):
                # Closed forms, libraries without native caps, and every fallback (previous, 1/n).
                w, note = project_cluster_caps(np.asarray(w, dtype="float64"), spec.clusters, spec.cluster_cap,
                                               max_weight)
                fallback = "; ".join(x for x in (fallback, note) if x)
            if not long_short and relaxed:
                fallback = "; ".join(x for x in (relaxed, fallback) if x)
                if not caps_held and status == Status.OPTIMAL:
                    status = Status.CAP_INFEASIBLE
        result = EngineResult(
            weights=np.asarray(w, dtype="float64"),
            status=str(status),
            solve_ms=(time.perf_counter() - t0) * 1e3,
            fallback=fallback,
            picked=picked,
        )
        self.result_ = result
        self.weights_ = result.weights
        return result

    def fit_joint(self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float,
                  spec: FitSpec, sides: np.ndarray, net: float, gross: float) -> tuple[np.ndarray | None, str]:
        """Weights over both books (``sides`` +1 long book / -1 short book, fixed signs) and a record.

        The problem is :func:`tvquant_assets.core.book_fit.joint_weights`'s, in the library's terms:
        ``sum w = net``, ``0 <= sides * w <= max_weight``; min_variance ``sides @ w = gross``; max_sharpe
        ``sides @ w <= gross``; market_neutral ``sum w = 0``, ``sides @ w <= gross``, the beta band. None
        when the library found no solution; :func:`~tvquant_assets.core.book_fit.library_joint_weights`
        checks the limits and walks the fallbacks.
        """
        raise EngineError(f"engine {self.name!r} does not solve {profile!r} over both books")

    def uses_returns(self, profile: str, spec: FitSpec | None = None) -> bool:
        """Whether fitting ``profile`` (under ``spec``) reads ``EngineInputs.returns``."""
        return self.needs_returns or profile in self.returns_profiles

    def is_long_short(self, profile: str, spec: FitSpec) -> bool:
        """Whether ``profile`` runs long/short under ``spec`` (market_neutral always does)."""
        return profile == "market_neutral" or (not spec.long_only and profile in self.long_short_profiles)

    @staticmethod
    def _last_resort(n: int, max_weight: float, spec: FitSpec, record: list[str]) -> tuple[np.ndarray, str, str]:
        """Previous decision's weights when they are still valid long-only weights, else equal weight."""
        prev = spec.previous
        if prev is not None and len(prev) == n and weights_ok(np.asarray(prev, dtype="float64"), max_weight):
            return np.asarray(prev, dtype="float64"), Status.FALLBACK_PREVIOUS, "; ".join([*record, "previous weights"])
        if prev is not None:
            record = [*record, "previous weights not usable"]
        return equal_weights(n), Status.FALLBACK_EQUAL_WEIGHT, "; ".join([*record, "equal_weight"])

    @abstractmethod
    def _fit(
        self, inputs: EngineInputs, profile: str, max_weight: float, risk_free_rate: float, spec: FitSpec
    ) -> tuple[np.ndarray | None, str, str]:
        """Weights (None when every solver failed), status and fallback record for a non-trivial, finite,
        cap-feasible problem. The base class walks the rest of the chain (previous weights, equal weight)."""
