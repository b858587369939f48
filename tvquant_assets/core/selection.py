"""Selection: momentum ranking inside correlation clusters, point in time.

Per date D (t = last panel row <= D), among the scan's eligible symbols:

1. momentum ``close[t - skip] / close[t - skip - lookback] - 1`` on as-of closes (last bar <= that row);
2. cross-sectional percentile of momentum, vetoing symbols below ``min_momentum_percentile``;
3. hierarchical clustering (:mod:`tvquant_assets.core.linkage`) of the last ``correlation_lookback``
   daily returns of the survivors;
4. the top ``top_n_per_cluster`` by percentile in each cluster, then at most ``max_symbols`` overall.

As-of closes and returns are computed once for the whole panel (both row-local or backward-looking) and
each date reads only its own rows <= t, so a long backfill stays cheap and equals a date-by-date run.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from tvquant_assets.core import linkage
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.scan import frames_by_date
from tvquant_assets.errors import LakeError
from tvquant_assets.manifest.schema import SelectionConfig

MIN_CORRELATION_FRACTION = 0.5
"""A symbol needs returns on at least this fraction of the correlation window to be clustered."""

DTYPES = {
    "symbol": "str", "sector": "str", "direction": "str", "momentum": "float64", "momentum_pct": "float64",
    "cluster": "int64", "rank_in_cluster": "int64", "selected": "bool", "reason": "str",
}


def percentile_rank(values: np.ndarray) -> np.ndarray:
    """Cross-sectional percentile in [0, 1]: ``(average_rank - 1) / (n - 1)``.

    The lowest value gets 0 and the highest 1; ties share the average of their ranks; NaN stays NaN and is
    not counted in ``n``; a single finite value gets 1.

    Parameters
    ----------
    values : 1-d ndarray of float

    Returns
    -------
    1-d ndarray of float64, same length.
    """
    values = np.asarray(values, dtype="float64")
    out = np.full(values.shape, np.nan)
    ok = np.flatnonzero(~np.isnan(values))
    n = ok.size
    if n == 1:
        out[ok] = 1.0
    elif n > 1:
        out[ok] = (_average_rank(values[ok]) - 1.0) / (n - 1)
    return out


def _average_rank(x: np.ndarray) -> np.ndarray:
    """1-based ranks, ties averaged (scipy's rankdata ``average``, without its per-call overhead)."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    first = np.r_[True, xs[1:] != xs[:-1]]
    starts = np.flatnonzero(first)
    ends = np.r_[starts[1:], x.size]
    ranks = np.empty(x.size)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]
    return ranks


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def select(
    panel: PricePanel,
    scan_by_date: Mapping[pd.Timestamp, pd.DataFrame],
    dates: Iterable[pd.Timestamp],
    cfg: SelectionConfig,
    sectors: Mapping[str, str] | None = None,
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Select symbols on each date.

    Parameters
    ----------
    panel : PricePanel
    scan_by_date : mapping date -> scan frame
        Output of :func:`tvquant_assets.core.scan.compute_scan`; must hold every requested date.
    dates : iterable of Timestamp
    cfg : SelectionConfig
    sectors : mapping symbol -> sector, optional
        Missing symbols get ``"unknown"``.

    Returns
    -------
    dict of Timestamp -> DataFrame
        One row per scan symbol (eligible or not), sorted by symbol, RangeIndex, columns ``symbol, sector,
        direction, momentum, momentum_pct, cluster, rank_in_cluster, selected, reason``. ``momentum_pct``
        is :func:`percentile_rank` over eligible symbols with momentum (NaN otherwise); ``cluster`` and
        ``rank_in_cluster`` are 0 for symbols that were not clustered; ``reason`` is ``"selected"`` or the
        first veto. Ties in percentile are broken by symbol name.
    """
    close = panel.close
    col_of = {str(c): j for j, c in enumerate(close.columns)}
    asof = close.ffill().to_numpy(dtype="float64")  # as-of close: last bar <= row
    returns = panel.returns().to_numpy(dtype="float64")
    skip, lookback, window = cfg.momentum_skip, cfg.momentum_lookback, cfg.correlation_lookback
    min_obs = max(2, math.ceil(MIN_CORRELATION_FRACTION * window))
    sectors = sectors or {}

    keys: list[pd.Timestamp] = []
    columns: dict[str, list[np.ndarray]] = {c: [] for c in DTYPES}
    for date in map(pd.Timestamp, dates):
        if date not in scan_by_date:
            raise LakeError(f"selection needs the scan for {date.date()}; materialize scan first")
        scan = scan_by_date[date]
        syms = scan["symbol"].to_numpy(dtype=object)
        order = np.argsort(syms, kind="stable")  # the scan is sorted by contract; stay correct if not
        syms = syms[order]
        eligible = scan["eligible"].to_numpy(dtype=bool)[order]
        scan_reason = scan["reason"].to_numpy(dtype=object)[order]
        n = syms.size
        js = np.fromiter((col_of.get(s, -1) for s in syms), dtype="int64", count=n)
        t = int(close.index.searchsorted(date, side="right")) - 1

        momentum = np.full(n, np.nan)
        a, b = t - skip, t - skip - lookback
        known = js >= 0
        if b >= 0 and known.any():
            with np.errstate(divide="ignore", invalid="ignore"):
                m = asof[a, js[known]] / asof[b, js[known]] - 1.0
            momentum[known] = np.where(np.isfinite(m), m, np.nan)

        ranked = eligible & ~np.isnan(momentum)
        pct = np.full(n, np.nan)
        pct[ranked] = percentile_rank(momentum[ranked])

        reason = np.full(n, "", dtype=object)
        for i in np.flatnonzero(~eligible):
            reason[i] = f"not eligible: {scan_reason[i]}"
        for i in np.flatnonzero(eligible & np.isnan(momentum)):
            reason[i] = "no momentum history"
        vetoed = ranked & (pct < cfg.min_momentum_percentile)
        for i in np.flatnonzero(vetoed):
            reason[i] = f"momentum pct {_fmt(pct[i])} < {_fmt(cfg.min_momentum_percentile)}"

        pool = np.flatnonzero(ranked & ~vetoed)
        lo = max(0, t - window + 1)
        rets = returns[lo:t + 1, js[pool]] if t >= 0 else np.zeros((0, pool.size))
        obs = (~np.isnan(rets)).sum(axis=0)
        for i, k in zip(pool[obs < min_obs], obs[obs < min_obs], strict=True):
            reason[i] = f"too few returns to cluster: {k} < {min_obs}"
        members = pool[obs >= min_obs]
        cluster = np.zeros(n, dtype="int64")
        if members.size >= 2:
            # members are in symbol order, which is the order linkage.cluster sorts to
            cluster[members] = linkage.cluster_sorted(rets[:, obs >= min_obs], cfg.linkage)
        else:
            cluster[members] = 1  # fewer than two series: nothing to correlate, one cluster

        # Rank inside clusters by percentile (desc), ties by symbol (rows are sorted by symbol).
        rank = np.zeros(n, dtype="int64")
        by_pct = members[np.lexsort((members, -pct[members]))]
        seen: dict[int, int] = {}
        picks = []
        for i in by_pct:
            c = int(cluster[i])
            seen[c] = seen.get(c, 0) + 1
            rank[i] = seen[c]
            if rank[i] <= cfg.top_n_per_cluster:
                picks.append(i)
            else:
                reason[i] = f"rank {rank[i]} > top {cfg.top_n_per_cluster} in cluster {c}"
        selected = np.zeros(n, dtype=bool)
        for overall, i in enumerate(picks, start=1):  # picks are already in (pct desc, symbol) order
            if overall <= cfg.max_symbols:
                selected[i] = True
                reason[i] = "selected"
            else:
                reason[i] = f"overall rank {overall} > max_symbols {cfg.max_symbols}"

        piece = {
            "symbol": syms,
            "sector": np.asarray([sectors.get(s, "unknown") for s in syms], dtype=object),
            "direction": np.full(n, "long", dtype=object),
            "momentum": momentum,
            "momentum_pct": pct,
            "cluster": cluster,
            "rank_in_cluster": rank,
            "selected": selected,
            "reason": reason,
        }
        keys.append(date)
        for c in DTYPES:
            columns[c].append(piece[c])
    return frames_by_date(keys, columns, DTYPES)
