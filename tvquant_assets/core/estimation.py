"""Expected returns and covariance of the selected symbols, point in time.

For each date D the sample is the window of the last ``lookback`` daily returns stamped <= D
(:func:`returns_window`):

1. returns are simple close-to-close returns, NaN when either bar is missing (no filling across gaps);
2. a symbol with fewer than ``MIN_COVERAGE * lookback`` returns in the window is dropped (and named in
   the ``dropped`` column), so a short or patchy history never gets a covariance row;
3. rows where any kept symbol has no return are dropped: every moment is computed on the same complete
   rows, which keeps the covariance positive semidefinite (pairwise-deletion matrices may not be).

Covariance: ``sample`` (unbiased), ``ledoit_wolf`` or ``oas`` (sklearn's intensities). With
``regime_shrinkage.enabled`` the intensity becomes ``clip(base * stress_score, min, max)`` toward the
same scaled-identity target, so a turbulent regime shrinks harder. Eigenvalues below
``psd_floor x mean variance`` (non-PSD or near-singular input) are raised to it and the repair is
recorded in ``psd_repair``.

Expected returns: ``historical`` (mean), ``ewma`` (exponentially weighted mean, ``ewma_halflife``),
``shrunk`` (James-Stein toward the grand mean) or ``black_litterman`` (posterior mean and covariance;
views from the selection's momentum percentiles scaled by the regime, see
:class:`~tvquant_assets.manifest.schema.BlackLittermanConfig`). Everything is annualized by
``periods_per_year``.

Frame layout (one row per kept symbol, sorted)::

    symbol | mu | shrinkage | n_obs | dropped | cluster | view | psd_repair | cov:<symbol_1> ... cov:<symbol_n>

``shrinkage``, ``n_obs``, ``dropped`` (comma-joined symbols dropped for coverage, "" if none) and
``psd_repair`` ("" if none) repeat on every row; ``cluster`` is the selection's cluster id (0 when
unknown), ``view`` the Black-Litterman view (NaN without one). Row i, column ``cov:<symbol_j>`` is
Sigma_ij. When every selected symbol is dropped the frame is empty and the record is lost with it:
downstream sees an empty universe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.covariance import OAS, LedoitWolf

from tvquant_assets.core.panel import PricePanel
from tvquant_assets.manifest.schema import BlackLittermanConfig, EstimationConfig

MIN_COVERAGE = 0.8
COV_PREFIX = "cov:"
FIXED_COLUMNS: tuple[str, ...] = ("symbol", "mu", "shrinkage", "n_obs", "dropped", "cluster", "view", "psd_repair")


@dataclass(frozen=True)
class Estimates:
    """Unpacked estimates of one date, aligned on ``symbols`` (sorted)."""

    symbols: list[str]
    mu: np.ndarray
    cov: np.ndarray
    shrinkage: float = 0.0
    n_obs: int = 0
    dropped: tuple[str, ...] = field(default_factory=tuple)
    clusters: np.ndarray | None = None
    views: np.ndarray | None = None
    psd_repair: str = ""

    @property
    def n(self) -> int:
        return len(self.symbols)


def returns_window(panel: PricePanel, symbols: Sequence[str], date: pd.Timestamp, lookback: int) -> pd.DataFrame:
    """The complete-row return sample used for estimation on ``date``.

    Parameters
    ----------
    panel : PricePanel
    symbols : sequence of str
        Candidate symbols; symbols absent from the panel count as having no observations.
    date : Timestamp
        As-of date; only rows stamped <= date are read.
    lookback : int
        Number of return rows in the window (fewer at the start of the data).

    Returns
    -------
    DataFrame
        Index = dates of the complete rows, columns = kept symbols (sorted), no NaN.
    """
    return _window(_Returns(panel.close), symbols, date, lookback)


class _Returns:
    """Simple returns of a whole close panel, computed once (NaN across gaps, inf -> NaN)."""

    def __init__(self, close: pd.DataFrame) -> None:
        values = close.to_numpy(dtype="float64")
        with np.errstate(divide="ignore", invalid="ignore"):
            r = np.full_like(values, np.nan)
            r[1:] = values[1:] / values[:-1] - 1.0
        r[~np.isfinite(r)] = np.nan
        self.values, self.index = r, close.index
        self.position = {s: i for i, s in enumerate(close.columns)}


def _window(rets: _Returns, symbols: Sequence[str], date: pd.Timestamp, lookback: int) -> pd.DataFrame:
    end = int(rets.index.searchsorted(pd.Timestamp(date), side="right"))
    # lookback + 1 closes give lookback returns; the panel's first row has no predecessor.
    lo = max(1, end - lookback)
    wanted = sorted(set(symbols))
    block = np.full((max(0, end - lo), len(wanted)), np.nan)
    for j, s in enumerate(wanted):
        if s in rets.position:
            block[:, j] = rets.values[lo:end, rets.position[s]]
    counts = (~np.isnan(block)).sum(axis=0)
    # Denominator is the requested lookback, not the rows available: early dates must not pass on a
    # handful of observations.
    keep = counts >= MIN_COVERAGE * lookback
    sub = block[:, keep]
    complete = ~np.isnan(sub).any(axis=1)
    if complete.sum() < 2 or not keep.any():
        # Fewer than two complete rows cannot give a covariance: nothing is estimable.
        return pd.DataFrame(index=pd.DatetimeIndex([], name=rets.index.name))
    return pd.DataFrame(sub[complete], index=rets.index[lo:end][complete],
                        columns=[s for s, k in zip(wanted, keep, strict=True) if k])


def pack(
    symbols: Sequence[str],
    mu: np.ndarray,
    cov: np.ndarray,
    *,
    shrinkage: float = 0.0,
    n_obs: int = 0,
    dropped: Iterable[str] = (),
    clusters: Sequence[int] | None = None,
    views: Sequence[float] | None = None,
    psd_repair: str = "",
) -> pd.DataFrame:
    """Lay estimates out as the estimation frame (see the module docstring)."""
    symbols = [str(s) for s in symbols]
    n = len(symbols)
    mu = np.asarray(mu, dtype="float64").reshape(n)
    cov = np.asarray(cov, dtype="float64").reshape(n, n)
    head = pd.DataFrame({
        "symbol": pd.array(symbols, dtype="str"),
        "mu": mu,
        "shrinkage": np.full(n, float(shrinkage)),
        "n_obs": np.full(n, int(n_obs), dtype="int64"),
        "dropped": pd.array([",".join(sorted(dropped))] * n, dtype="str"),
        "cluster": np.zeros(n, dtype="int64") if clusters is None else np.asarray(clusters, dtype="int64"),
        "view": np.full(n, np.nan) if views is None else np.asarray(views, dtype="float64"),
        "psd_repair": pd.array([psd_repair] * n, dtype="str"),
    }, index=pd.RangeIndex(n))
    body = pd.DataFrame(cov, columns=[f"{COV_PREFIX}{s}" for s in symbols], index=pd.RangeIndex(n))
    return pd.concat([head, body], axis=1)


def unpack(frame: pd.DataFrame) -> Estimates:
    """Read an estimation frame back into arrays (rows and cov columns in ``symbol`` order).

    Frames written before the ``cluster``/``view``/``psd_repair`` columns existed read with defaults.
    """
    symbols = [str(s) for s in frame["symbol"].tolist()]
    cov_cols = [f"{COV_PREFIX}{s}" for s in symbols]
    cov = frame[cov_cols].to_numpy(dtype="float64") if symbols else np.zeros((0, 0))
    first = frame.iloc[0] if len(frame) else None
    dropped = tuple(s for s in str(first["dropped"]).split(",") if s) if first is not None else ()
    n = len(symbols)
    return Estimates(
        symbols=symbols,
        mu=frame["mu"].to_numpy(dtype="float64"),
        cov=cov,
        shrinkage=float(first["shrinkage"]) if first is not None else 0.0,
        n_obs=int(first["n_obs"]) if first is not None else 0,
        dropped=dropped,
        clusters=frame["cluster"].to_numpy(dtype="int64") if "cluster" in frame else np.zeros(n, dtype="int64"),
        views=frame["view"].to_numpy(dtype="float64") if "view" in frame else np.full(n, np.nan),
        psd_repair=str(first["psd_repair"]) if first is not None and "psd_repair" in frame else "",
    )


# --- moments ---------------------------------------------------------------------------------------------


def ewma_mean(x: np.ndarray, halflife: float) -> np.ndarray:
    """Exponentially weighted mean of the rows of ``x`` (last row weight 1, decay ``0.5 ** (1 / halflife)``)."""
    decay = 0.5 ** (1.0 / halflife)
    w = decay ** np.arange(len(x) - 1, -1, -1, dtype="float64")
    return (w / w.sum()) @ x


def james_stein_mean(x: np.ndarray, cov: np.ndarray) -> tuple[np.ndarray, float]:
    """James-Stein mean toward the grand mean and its intensity in [0, 1] (``cov`` in the units of ``x``)."""
    mu = x.mean(axis=0)
    target = np.full_like(mu, mu.mean())
    gap = float(np.sum((mu - target) ** 2))
    if len(mu) < 3 or gap <= 0:
        return mu, 0.0
    vals = np.linalg.eigvalsh(cov)
    beta = float(np.clip((vals.sum() - 2 * vals.max()) / gap / len(x), 0.0, 1.0))
    return (1 - beta) * mu + beta * target, beta


def nearest_psd(cov: np.ndarray, floor: float) -> tuple[np.ndarray, str]:
    """Raise eigenvalues below ``floor x mean variance`` to it; the matrix and a note ("" when untouched)."""
    sym = (cov + cov.T) / 2.0
    scale = float(np.trace(sym)) / len(sym)
    if not scale > 0:
        return sym, ""
    vals, vecs = np.linalg.eigh(sym)
    low = vals < floor * scale
    if not low.any():
        return sym, ""
    note = f"nearest PSD: {int(low.sum())} eigenvalue(s) < {floor:g} x mean variance raised (min {vals.min():.3g})"
    fixed = (vecs * np.maximum(vals, floor * scale)) @ vecs.T
    return (fixed + fixed.T) / 2.0, note


def regime_stress(regime: pd.DataFrame | None) -> float:
    """The regime's turbulence score (``stress_score``, else ``vol_ratio``); 1 when unknown or in warm-up."""
    if regime is None or regime.empty:
        return 1.0
    for col in ("stress_score", "vol_ratio"):
        if col in regime.columns:
            v = regime[col].iloc[0]
            return 1.0 if pd.isna(v) else float(v)
    return 1.0


def _regime_keys(regime: pd.DataFrame | None) -> list[str]:
    if regime is None or regime.empty:
        return []
    return [str(regime[c].iloc[0]) for c in ("label", "quadrant") if c in regime.columns]


def black_litterman(
    cov: np.ndarray, pct: np.ndarray, cfg: BlackLittermanConfig, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Posterior mean, posterior covariance and views (NaN where a symbol has no momentum percentile).

    Parameters
    ----------
    cov : ndarray (n, n)
        Annualized prior covariance.
    pct : ndarray (n,)
        Momentum percentiles in [0, 1] from selection (NaN: no view).
    cfg : BlackLittermanConfig
    scale : float
        The regime's view multiplier.
    """
    n = len(cov)
    pi = cfg.risk_aversion * cov @ np.full(n, 1.0 / n)
    has = np.isfinite(pct)
    views = np.full(n, np.nan)
    if not has.any():
        return pi, cov.copy(), views
    p = np.eye(n)[has]
    q = pi[has] + cfg.view_spread * (2.0 * pct[has] - 1.0) * scale
    views[has] = q
    tau_cov = cfg.tau * cov
    omega = np.diag(np.diag(p @ tau_cov @ p.T)) * (1.0 - cfg.confidence) / cfg.confidence
    a = p @ tau_cov @ p.T + omega
    gain = np.linalg.solve(a, p @ tau_cov).T  # tau Sigma P' A^-1
    mu = pi + gain @ (q - p @ pi)
    post = cov + tau_cov - gain @ p @ tau_cov
    return mu, (post + post.T) / 2.0, views


def estimate_one(
    panel: PricePanel, symbols: Sequence[str], date: pd.Timestamp, cfg: EstimationConfig,
    _returns: _Returns | None = None,
    scores: pd.DataFrame | None = None,
    regime: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Estimation frame of one date (see :func:`estimate`)."""
    wanted = sorted(set(symbols))
    rets = _window(_returns or _Returns(panel.close), wanted, date, cfg.lookback)
    kept = list(rets.columns)
    dropped = [s for s in wanted if s not in set(kept)]
    if not kept:
        return pack([], np.zeros(0), np.zeros((0, 0)), dropped=dropped)
    x = rets.to_numpy(dtype="float64")
    ppy = cfg.periods_per_year
    if cfg.covariance == "sample":
        cov, shrinkage = np.atleast_2d(np.cov(x, rowvar=False, ddof=1)), 0.0
    else:
        fitted = (LedoitWolf() if cfg.covariance == "ledoit_wolf" else OAS()).fit(x)
        cov, shrinkage = fitted.covariance_, float(fitted.shrinkage_)
    rs = cfg.regime_shrinkage
    if rs.enabled:
        # Same target as Ledoit-Wolf/OAS (mean variance x I), applied to the biased empirical covariance.
        emp = np.atleast_2d(np.cov(x, rowvar=False, ddof=0))
        shrinkage = float(np.clip(shrinkage * regime_stress(regime), rs.min, rs.max))
        target = np.trace(emp) / len(emp)
        cov = (1.0 - shrinkage) * emp + shrinkage * target * np.eye(len(emp))
    cov = (cov + cov.T) / 2.0  # exact symmetry so Sigma_ij and Sigma_ji hash alike
    cov, repair = nearest_psd(cov, cfg.psd_floor)
    cov = cov * ppy
    by_symbol = scores.set_index("symbol") if scores is not None and len(scores) else None
    clusters = None
    if by_symbol is not None and "cluster" in by_symbol.columns:
        clusters = by_symbol["cluster"].reindex(kept).fillna(0).to_numpy(dtype="int64")
    views = None
    if cfg.expected_returns == "historical":
        mu = x.mean(axis=0) * ppy
    elif cfg.expected_returns == "ewma":
        mu = ewma_mean(x, cfg.ewma_halflife) * ppy
    elif cfg.expected_returns == "shrunk":
        mu = james_stein_mean(x, cov / ppy)[0] * ppy
    else:
        pct = np.full(len(kept), np.nan)
        if by_symbol is not None and "momentum_pct" in by_symbol.columns:
            pct = by_symbol["momentum_pct"].reindex(kept).to_numpy(dtype="float64")
        keys = _regime_keys(regime)
        scale_map = {str(k): v for k, v in cfg.black_litterman.regime_view_scale.items()}
        scale = next((scale_map[k] for k in keys if k in scale_map), 1.0)
        mu, cov, views = black_litterman(cov, pct, cfg.black_litterman, float(scale))
    return pack(kept, mu, cov, shrinkage=shrinkage, n_obs=len(x), dropped=dropped, clusters=clusters,
                views=views, psd_repair=repair)


def estimate(
    panel: PricePanel,
    selected_by_date: Mapping[pd.Timestamp, Sequence[str]],
    dates: Iterable[pd.Timestamp],
    cfg: EstimationConfig,
    scores_by_date: Mapping[pd.Timestamp, pd.DataFrame] | None = None,
    regime_by_date: Mapping[pd.Timestamp, pd.DataFrame] | None = None,
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Estimate mu and covariance of each date's selected symbols.

    Parameters
    ----------
    panel : PricePanel
    selected_by_date : mapping date -> list of symbols
        Must hold every date in ``dates``.
    dates : iterable of Timestamp
        Dates to compute; a non-trading date gives the result as of the last bar <= date.
    cfg : EstimationConfig
    scores_by_date : mapping date -> selection frame, optional
        ``symbol``, ``cluster`` and ``momentum_pct`` (Black-Litterman views, cluster ids downstream).
    regime_by_date : mapping date -> one-row regime frame, optional
        ``stress_score``, ``label``, ``quadrant`` (regime-aware shrinkage, view scale).

    Returns
    -------
    dict Timestamp -> DataFrame
        One estimation frame per date (layout in the module docstring).
    """
    selected = {pd.Timestamp(k): v for k, v in selected_by_date.items()}
    scores = {pd.Timestamp(k): v for k, v in (scores_by_date or {}).items()}
    regimes = {pd.Timestamp(k): v for k, v in (regime_by_date or {}).items()}
    out: dict[pd.Timestamp, pd.DataFrame] = {}
    returns = _Returns(panel.close)
    for d in dates:
        d = pd.Timestamp(d)
        if d not in selected:
            raise KeyError(f"estimate: no selection for {d.date()}; materialize selection for that date first")
        out[d] = estimate_one(panel, selected[d], d, cfg, returns, scores.get(d), regimes.get(d))
    return out
