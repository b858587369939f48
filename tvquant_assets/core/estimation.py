"""Expected returns and covariance of the selected symbols, point in time.

For each date D the sample is the window of the last ``lookback`` daily returns stamped <= D
(:func:`returns_window`):

1. returns are simple close-to-close returns, NaN when either bar is missing (no filling across gaps);
2. a symbol with fewer than ``MIN_COVERAGE * lookback`` returns in the window is dropped (and named in
   the ``dropped`` column), so a short or patchy history never gets a covariance row;
3. rows where any kept symbol has no return are dropped: every moment is computed on the same complete
   rows, which keeps the covariance positive semidefinite (pairwise-deletion matrices may not be).

``mu`` is the sample mean and the covariance is Ledoit-Wolf (``sklearn.covariance.LedoitWolf``) or the
unbiased sample covariance; both are annualized by ``periods_per_year``.

Frame layout (one row per kept symbol, sorted)::

    symbol | mu | shrinkage | n_obs | dropped | cov:<symbol_1> ... cov:<symbol_n>

``shrinkage``, ``n_obs`` (complete rows used) and ``dropped`` (comma-joined symbols dropped for
coverage, "" if none) repeat on every row. Row i, column ``cov:<symbol_j>`` is Sigma_ij. When every
selected symbol is dropped the frame is empty and the record is lost with it: downstream sees an empty
universe.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.covariance import LedoitWolf

from tvquant_assets.core.panel import PricePanel
from tvquant_assets.manifest.schema import EstimationConfig

MIN_COVERAGE = 0.8
COV_PREFIX = "cov:"
FIXED_COLUMNS: tuple[str, ...] = ("symbol", "mu", "shrinkage", "n_obs", "dropped")


@dataclass(frozen=True)
class Estimates:
    """Unpacked estimates of one date, aligned on ``symbols`` (sorted)."""

    symbols: list[str]
    mu: np.ndarray
    cov: np.ndarray
    shrinkage: float = 0.0
    n_obs: int = 0
    dropped: tuple[str, ...] = field(default_factory=tuple)

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
    }, index=pd.RangeIndex(n))
    body = pd.DataFrame(cov, columns=[f"{COV_PREFIX}{s}" for s in symbols], index=pd.RangeIndex(n))
    return pd.concat([head, body], axis=1)


def unpack(frame: pd.DataFrame) -> Estimates:
    """Read an estimation frame back into arrays (rows and cov columns in ``symbol`` order)."""
    symbols = [str(s) for s in frame["symbol"].tolist()]
    cov_cols = [f"{COV_PREFIX}{s}" for s in symbols]
    cov = frame[cov_cols].to_numpy(dtype="float64") if symbols else np.zeros((0, 0))
    first = frame.iloc[0] if len(frame) else None
    dropped = tuple(s for s in str(first["dropped"]).split(",") if s) if first is not None else ()
    return Estimates(
        symbols=symbols,
        mu=frame["mu"].to_numpy(dtype="float64"),
        cov=cov,
        shrinkage=float(first["shrinkage"]) if first is not None else 0.0,
        n_obs=int(first["n_obs"]) if first is not None else 0,
        dropped=dropped,
    )


def estimate_one(
    panel: PricePanel, symbols: Sequence[str], date: pd.Timestamp, cfg: EstimationConfig,
    _returns: _Returns | None = None,
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
    mu = x.mean(axis=0) * ppy
    if cfg.covariance == "ledoit_wolf":
        lw = LedoitWolf().fit(x)
        cov, shrinkage = lw.covariance_ * ppy, float(lw.shrinkage_)
    else:
        cov, shrinkage = np.atleast_2d(np.cov(x, rowvar=False, ddof=1)) * ppy, 0.0
    cov = (cov + cov.T) / 2.0  # exact symmetry so Sigma_ij and Sigma_ji hash alike
    return pack(kept, mu, cov, shrinkage=shrinkage, n_obs=len(x), dropped=dropped)


def estimate(
    panel: PricePanel,
    selected_by_date: Mapping[pd.Timestamp, Sequence[str]],
    dates: Iterable[pd.Timestamp],
    cfg: EstimationConfig,
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

    Returns
    -------
    dict Timestamp -> DataFrame
        One estimation frame per date (layout in the module docstring).
    """
    selected = {pd.Timestamp(k): v for k, v in selected_by_date.items()}
    out: dict[pd.Timestamp, pd.DataFrame] = {}
    returns = _Returns(panel.close)
    for d in dates:
        d = pd.Timestamp(d)
        if d not in selected:
            raise KeyError(f"estimate: no selection for {d.date()}; materialize selection for that date first")
        out[d] = estimate_one(panel, selected[d], d, cfg, returns)
    return out
