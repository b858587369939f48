"""Selection: momentum ranking inside correlation clusters, point in time.

Per date D (t = last panel row <= D), among the scan's eligible symbols:

1. momentum ``close[t - skip] / close[t - skip - lookback] - 1`` on as-of closes (last bar <= that row);
2. cross-sectional percentile of momentum, vetoing symbols below ``min_momentum_percentile``;
3. hierarchical clustering (:mod:`tvquant_assets.core.linkage`) of the last ``correlation_lookback``
   daily returns of the survivors;
4. the top ``top_n_per_cluster`` by percentile in each cluster, then at most ``max_symbols`` overall.

Prices, as-of closes and returns are computed once for the whole panel (all backward-looking) and each
date reads rows <= t only, which keeps a date around a millisecond.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from tvquant_assets.core import linkage
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.errors import LakeError
from tvquant_assets.manifest.schema import SelectionConfig

MIN_CORRELATION_FRACTION = 0.5
"""A symbol needs returns on at least this fraction of the correlation window to be clustered."""

COLUMNS = [
    "symbol", "sector", "direction", "momentum", "momentum_pct", "cluster", "rank_in_cluster", "selected",
    "reason",
]


def percentile_rank(values: np.ndarray) -> np.ndarray:
    """Cross-sectional percentile in [0, 1]: ``(average_rank - 1) / (n - 1)``.

    The lowest value gets 0 and the highest 1; ties share the average of their ranks; NaN stays NaN and is
    not counted in ``n``; a single finite value gets 1.

    Parameters
    ----------
    values : ndarray of float

    Returns
    -------
    ndarray of float64, same shape.
    """
    values = np.asarray(values, dtype="float64")
    out = np.full(values.shape, np.nan)
    ok = ~np.isnan(values)
    n = int(ok.sum())
    if n == 1:
        out[ok] = 1.0
    elif n > 1:
        out[ok] = (rankdata(values[ok], method="average") - 1.0) / (n - 1)
    return out


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

    out: dict[pd.Timestamp, pd.DataFrame] = {}
    for date in dates:
        date = pd.Timestamp(date)
        if date not in scan_by_date:
            raise LakeError(f"selection needs the scan for {date.date()}; materialize scan first")
        scan = scan_by_date[date]
        order = np.argsort(scan["symbol"].to_numpy(dtype=object), kind="stable")
        syms = scan["symbol"].to_numpy(dtype=object)[order]
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
            frame = pd.DataFrame(rets[:, obs >= min_obs], columns=syms[members])
            cluster[members] = linkage.cluster(frame, cfg.linkage)
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

        out[date] = pd.DataFrame(
            {
                "symbol": syms,
                "sector": np.asarray([sectors.get(s, "unknown") for s in syms], dtype=object),
                "direction": np.full(n, "long", dtype=object),
                "momentum": momentum,
                "momentum_pct": pct,
                "cluster": cluster,
                "rank_in_cluster": rank,
                "selected": selected,
                "reason": reason,
            },
            columns=COLUMNS,
        )
    return out
