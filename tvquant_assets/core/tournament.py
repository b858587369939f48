"""The tournament: target weights of every engine/profile candidate, point in time.

On a rebalance date D each candidate is fitted on the estimation frame of D (and, for engines that need
it, the same return window the estimates came from). The per-asset cap is the regime's
``preset_max_weight`` when the regime stage set one, else the manifest's ``constraints.max_weight``.
On any other date the previous decision is carried forward unchanged with ``rebalanced`` False, so the
weights of D always say which date decided them (``decision_date``).

Every candidate gets a :class:`~tvquant_assets.core.engines.base.FitSpec` built from the manifest and the
date's regime: cluster ids from the estimation frame with ``constraints.cluster_cap``, the candidate's
previous decision (for the L1 turnover penalty and as the fallback before equal weight), the L2 gamma,
barbell share resolved for the regime (label first, then quadrant), and the adaptive mapping.

Output: one long frame per date, sorted by candidate then symbol, columns :data:`COLUMNS`. A candidate
with an empty universe still gets one row (symbol "", weight 0.0, status ``empty_universe``). ``picked``
is the profile the adaptive engine chose ("" for the other candidates).
``solve_ms`` is wall time and differs run to run: hash :data:`DECISION_COLUMNS` for determinism and
point-in-time checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

import numpy as np
import pandas as pd

from tvquant_assets.core.book_fit import fit_book, sides_of
from tvquant_assets.core.engines import get_engine
from tvquant_assets.core.engines.base import Engine, EngineInputs, FitSpec, Status
from tvquant_assets.core.estimation import Estimates, returns_window, unpack
from tvquant_assets.core.frames import typed
from tvquant_assets.core.linkage import selection_distance
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.errors import EngineError
from tvquant_assets.manifest.schema import (
    EstimationConfig,
    LinkageConfig,
    RegimePreset,
    TournamentConfig,
)

COLUMNS: list[str] = [
    "candidate", "engine", "profile", "symbol", "weight", "status", "solve_ms", "fallback", "max_weight",
    "decision_date", "rebalanced", "picked",
]
DECISION_COLUMNS: list[str] = [c for c in COLUMNS if c != "solve_ms"]

_DTYPES = {
    "candidate": "str", "engine": "str", "profile": "str", "symbol": "str", "weight": "float64",
    "status": "str", "solve_ms": "float64", "fallback": "str", "max_weight": "float64",
    "decision_date": "datetime64[ns]", "rebalanced": "bool", "picked": "str",
}


def resolve_max_weight(
    regime: pd.DataFrame | None, cfg: TournamentConfig, presets: Mapping[str, RegimePreset]
) -> float:
    """Per-asset cap for a date: the regime's ``preset_max_weight`` if set, else the manifest's cap.

    The regime stage resolves which preset is active (label vs quadrant); its ``preset_max_weight`` is
    authoritative. ``presets`` is consulted only for a regime frame without that column (by its
    ``preset`` key).
    """
    default = float(cfg.constraints.max_weight)
    if regime is None or regime.empty:
        return default
    row = regime.iloc[0]
    if "preset_max_weight" in regime.columns:
        value = row["preset_max_weight"]
        return default if pd.isna(value) else float(value)
    key = str(row["preset"]) if "preset" in regime.columns and not pd.isna(row["preset"]) else ""
    preset = presets.get(key)
    return float(preset.max_weight) if preset is not None and preset.max_weight is not None else default


def resolve_cluster_cap(
    regime: pd.DataFrame | None, cfg: TournamentConfig, presets: Mapping[str, RegimePreset]
) -> float | None:
    """Cluster cap for a date: the active regime preset's ``cluster_cap`` (the regime frame's
    ``preset_cluster_cap`` when published, else the preset named in ``preset``), else the manifest's."""
    default = cfg.constraints.cluster_cap
    value = _preset(regime, "preset_cluster_cap")
    if value is not None:
        return float(value)
    key = _preset(regime, "preset")
    preset = presets.get(str(key)) if key is not None else None
    return float(preset.cluster_cap) if preset is not None and preset.cluster_cap is not None else default


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=COLUMNS)
    frame = typed(frame, _DTYPES)
    frame = frame.sort_values(["candidate", "symbol"], kind="stable").reset_index(drop=True)
    return frame


def merge_frames(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Frames of disjoint candidate groups for one date as the one frame of every candidate."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return _frame([])
    return pd.concat(frames, ignore_index=True).sort_values(["candidate", "symbol"], kind="stable") \
        .reset_index(drop=True)


def merge_groups(groups: list[dict]) -> dict:
    """Each date's frames of disjoint candidate groups (``[{date: frame}, ...]``, the same dates) merged as
    ``merge_frames`` merges them, sorted once for the whole range (one per-date concat and sort costs ~3 ms).
    Falls back to ``merge_frames`` per date when the frames' columns or dtypes differ or a key is missing."""
    dates = list(groups[0])
    frames = [[g[d] for d in dates] for g in groups]
    layout = (tuple(frames[0][0].columns), tuple(frames[0][0].dtypes))
    if any((tuple(f.columns), tuple(f.dtypes)) != layout for fs in frames for f in fs):
        return {d: merge_frames([fs[i] for fs in frames]) for i, d in enumerate(dates)}
    big = pd.concat([f for fs in frames for f in fs], ignore_index=True)
    date_id = np.concatenate([np.repeat(np.arange(len(dates)), [len(f) for f in fs]) for fs in frames])
    cand, _ = pd.factorize(big["candidate"], sort=True)
    sym, _ = pd.factorize(big["symbol"], sort=True)
    if (cand < 0).any() or (sym < 0).any():  # a missing key sorts last in merge_frames, first here
        return {d: merge_frames([fs[i] for fs in frames]) for i, d in enumerate(dates)}
    order = np.lexsort((sym, cand, date_id))
    big, date_id = big.take(order), date_id[order]
    bounds = np.searchsorted(date_id, np.arange(len(dates) + 1))
    return {d: big.iloc[bounds[i]:bounds[i + 1]].reset_index(drop=True) if bounds[i + 1] > bounds[i]
            else _frame([]) for i, d in enumerate(dates)}


def _regime_keys(regime: pd.DataFrame | None) -> tuple[str, str]:
    if regime is None or regime.empty:
        return "", ""
    row = regime.iloc[0]
    return tuple(str(row[c]) if c in regime.columns and not pd.isna(row[c]) else "" for c in ("label", "quadrant"))


def previous_weights(previous: pd.DataFrame | None, candidate: str, symbols: list[str]) -> np.ndarray | None:
    """The candidate's previous decision aligned on ``symbols`` (0 for symbols it did not hold)."""
    if previous is None or previous.empty:
        return None
    # Plain lists: a boolean mask over arrow strings costs ~2 ms for a few dozen rows, for every candidate.
    weights = previous["weight"].to_numpy(dtype="float64").tolist()
    held = {s: w for c, s, w in zip(previous["candidate"].tolist(), previous["symbol"].tolist(), weights, strict=True)
            if c == candidate and s != ""}
    if not held:
        return None
    return np.array([held.get(s, 0.0) for s in symbols], dtype="float64")


def _preset(regime: pd.DataFrame | None, column: str):
    """A published regime-preset value (``preset_<field>``), None when absent, NaN or ""."""
    if regime is None or regime.empty or column not in regime.columns:
        return None
    v = regime[column].iloc[0]
    return None if pd.isna(v) or v == "" else v


def fit_spec(
    cfg: TournamentConfig, est: Estimates, regime: pd.DataFrame | None, previous: np.ndarray | None,
    presets: Mapping[str, RegimePreset] | None = None,
) -> FitSpec:
    """Constraints and context of one candidate's decision (see the module docstring).

    The regime stage's ``preset_l2_gamma`` and ``preset_profile`` (the active regime preset) win over
    ``tournament.l2_gamma`` and ``tournament.adaptive``, as ``preset_max_weight`` wins over the cap and
    the preset's ``cluster_cap`` over ``constraints.cluster_cap``.
    """
    label, quadrant = _regime_keys(regime)
    c = cfg.constraints
    gamma = _preset(regime, "preset_l2_gamma")
    cluster_cap = resolve_cluster_cap(regime, cfg, presets or {})
    return FitSpec(
        long_only=c.long_only, gross=c.gross, net=c.net,
        clusters=est.clusters if cluster_cap is not None else None, cluster_cap=cluster_cap,
        cluster_cap_max=c.cluster_cap_max,
        previous=previous, turnover_penalty=c.turnover_penalty if previous is not None else 0.0,
        l2_gamma=float(gamma) if gamma is not None else cfg.l2_gamma.resolve(label, quadrant),
        beta_band=c.beta_band, risk_aversion=c.risk_aversion,
        aggressor_share=cfg.barbell.aggressor_share.resolve(label, quadrant),
        aggressor_count=cfg.barbell.aggressor_count, regime_label=label, quadrant=quadrant,
        adaptive_map=tuple(sorted((str(k), str(v)) for k, v in cfg.adaptive.mapping.items())),
        adaptive_default=str(cfg.adaptive.default), preset_profile=str(_preset(regime, "preset_profile") or ""),
    )


def _risk_spec(c, spec: FitSpec) -> FitSpec:
    """``spec`` with the candidate's risk measure and beta."""
    return replace(spec, risk_measure=c.risk_measure or "", risk_beta=c.beta)


def decide(
    panel: PricePanel,
    estimates: pd.DataFrame,
    regime: pd.DataFrame | None,
    date: pd.Timestamp,
    cfg: TournamentConfig,
    presets: Mapping[str, RegimePreset],
    est_cfg: EstimationConfig,
    engines: dict[str, Engine] | None = None,
    previous: pd.DataFrame | None = None,
    linkage: LinkageConfig | None = None,
    selection_windows: list[int] | None = None,
    book: str = "long",
) -> pd.DataFrame:
    """Fit every candidate on one date's estimates (a rebalance decision).

    ``engines`` caches engine objects (and so their compiled problems) across dates; ``previous`` is the
    tournament frame of the last decision (turnover penalty, fallback); ``linkage`` the selection's
    linkage config (distance, method, HERC cut, allocation tree); ``selection_windows`` the selection's
    correlation windows (the selection's tree, ``allocation_tree: selection``); ``book`` the books traded
    (``core/book_fit.py``: long, short, long_short; the estimation frame's ``direction`` says each symbol's book).
    """
    engines = {} if engines is None else engines
    date = pd.Timestamp(date)
    est = unpack(estimates)
    max_weight = resolve_max_weight(regime, cfg, presets)
    needs_returns = False
    for c in cfg.candidates:
        if c.engine not in engines:
            engines[c.engine] = get_engine(c.engine, linkage=linkage)
        needs_returns |= engines[c.engine].uses_returns(c.profile.value, _risk_spec(c, FitSpec()))
    returns = None
    if needs_returns and est.n:
        returns = returns_window(panel, est.symbols, date, est_cfg.lookback)
        if list(returns.columns) != est.symbols or len(returns) != est.n_obs:
            raise EngineError(
                f"tournament {date.date()}: estimates do not match the return window; "
                "re-materialize estimation with the current manifest"
            )
    distance = None
    if linkage is not None and linkage.allocation_tree == "selection" and est.n > 1:
        distance = selection_distance(panel, est.symbols, date, list(selection_windows or [est_cfg.lookback]),
                                      linkage.distance)
    inputs = EngineInputs(est.symbols, est.mu, est.cov, returns, distance)
    sides = sides_of(estimates)
    rows = []
    for c in cfg.candidates:
        spec = _risk_spec(c, fit_spec(cfg, est, regime, previous_weights(previous, c.name, est.symbols), presets))
        result = fit_book(engines[c.engine], inputs, c.profile.value, max_weight, cfg.risk_free_rate, spec, book,
                          sides)
        base = {
            "candidate": c.name, "engine": c.engine, "profile": c.profile.value, "status": result.status,
            "solve_ms": float(result.solve_ms), "fallback": result.fallback, "max_weight": max_weight,
            "decision_date": date, "rebalanced": True, "picked": result.picked,
        }
        if est.n == 0:
            rows.append({**base, "symbol": "", "weight": 0.0, "status": str(Status.EMPTY_UNIVERSE)})
            continue
        for s, w in zip(est.symbols, np.asarray(result.weights, dtype="float64"), strict=True):
            rows.append({**base, "symbol": s, "weight": float(w)})
    return _frame(rows)


def _retyped(frame: pd.DataFrame) -> pd.DataFrame:
    """A tournament frame read back from the lake with the current schema (older frames lack ``picked``)."""
    if "picked" not in frame.columns:
        frame = frame.assign(picked="")
    return typed(frame[COLUMNS], _DTYPES).reset_index(drop=True)


def run_tournament(
    panel: PricePanel,
    estimates_by_date: Mapping[pd.Timestamp, pd.DataFrame],
    regime_by_date: Mapping[pd.Timestamp, pd.DataFrame],
    dates: Iterable[pd.Timestamp],
    is_rebalance: Callable[[pd.Timestamp], bool],
    cfg: TournamentConfig,
    presets: Mapping[str, RegimePreset],
    est_cfg: EstimationConfig,
    previous: pd.DataFrame | None = None,
    linkage: LinkageConfig | None = None,
    selection_windows: list[int] | None = None,
    book: str = "long",
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Run the tournament over ``dates`` (ascending; a backfill range is one call).

    Parameters
    ----------
    panel : PricePanel
    estimates_by_date : mapping date -> estimation frame
        Needed on rebalance dates.
    regime_by_date : mapping date -> one-row regime frame (``preset_max_weight``, ``label``, ``quadrant``)
        Needed on rebalance dates.
    dates : iterable of Timestamp
    is_rebalance : callable date -> bool
    cfg : TournamentConfig
    presets : mapping preset key -> RegimePreset
    est_cfg : EstimationConfig
        The estimation config the estimates were made with (its lookback gives the return window).
    previous : DataFrame, optional
        Tournament frame of the date before the first of ``dates``; required when that first date is
        not a rebalance date (else it feeds the turnover penalty and the fallback of the first decision).
    linkage : LinkageConfig, optional
        The selection's linkage config (trees of HRP, HERC and hierarchical equal weight, their cut).
    selection_windows : list of int, optional
        The selection's correlation windows (``linkage.allocation_tree: selection``).
    book : str
        The books traded: long, short or long_short (``core/book_fit.py``).

    Returns
    -------
    dict Timestamp -> DataFrame
        Columns :data:`COLUMNS`.

    Raises
    ------
    EngineError
        A non-rebalance date with nothing to carry forward, or missing inputs on a rebalance date.
    """
    estimates = {pd.Timestamp(k): v for k, v in estimates_by_date.items()}
    regimes = {pd.Timestamp(k): v for k, v in regime_by_date.items()}
    engines: dict[str, Engine] = {}
    out: dict[pd.Timestamp, pd.DataFrame] = {}
    prev = _retyped(previous) if previous is not None else None
    for d in sorted({pd.Timestamp(x) for x in dates}):
        if is_rebalance(d):
            if d not in estimates or d not in regimes:
                missing = "estimation" if d not in estimates else "regime"
                raise EngineError(f"tournament {d.date()}: no {missing} frame for this rebalance date")
            frame = decide(panel, estimates[d], regimes[d], d, cfg, presets, est_cfg, engines, prev, linkage,
                           selection_windows, book)
        else:
            if prev is None:
                raise EngineError(
                    f"tournament {d.date()}: not a rebalance date and no previous decision to carry forward"
                )
            frame = prev.copy()
            frame["rebalanced"] = False
        out[d] = frame
        prev = frame
    return out
