"""Selection ("natural selection"): features, scores, vetoes, clusters and books, point in time.

Per date D (t = last panel row <= D), over the scan's symbols:

1. **Features** (:mod:`tvquant_assets.core.features`) on trailing windows ending at t
   (``selection.windows``): momentum ``close[t - skip] / close[t - skip - lookback] - 1`` on as-of
   closes, volatility and stability (1/vol), permutation entropy, Kaufman efficiency, Hurst, skew,
   kurtosis, 5 % CVaR, liquidity (value traded; NaN when the source has no volume), RSI and the long
   moving-average trend of the short book. A feature needs 80 % of its window, else it is NaN.
2. **Global percentile ranks** of every scored feature over the *ranked* symbols (eligible, with
   momentum) -- :func:`percentile_rank`: ties share their average rank, NaN stays NaN and does not count.
   Each feature is oriented so that 1 is good (low entropy, kurtosis, CVaR are good).
   ``score`` = the ``score_weights``-weighted mean of the oriented percentiles a symbol has (weights
   renormalized over its non-NaN ones) ``+ sector_tilt * (sector_momentum_pct - 0.5)``; ``rank`` orders
   the score (1 = best, ties by symbol).
3. **Vetoes read the raw features** (``selection.vetoes``; the old platform compared raw thresholds with
   0..1 percentiles and vetoed everything), plus ``min_momentum_percentile`` on the momentum percentile.
   The first failed rule is the row's ``reason``.
4. **Short book** (``selection.short.enabled``): ranked symbols with RSI >= ``rsi_overbought`` whose close
   is below a falling ``trend_window`` moving average (lower than ``slope_window`` rows ago) and whose
   momentum is negative: ``direction`` "short". A scan that screens symbols for the short side (the
   scan frame's ``direction`` is "short" only, e.g. a TradingView scan with ``direction: short``) puts
   them in the short book too. Everyone else is a long candidate. The long side's momentum-percentile
   veto does not apply to short-book names.
5. **Clusters**: survivors with returns on at least half the longest correlation window are clustered
   once (:mod:`tvquant_assets.core.linkage`) on the correlation distance ``sqrt(0.5 (1 - rho))``
   averaged over ``correlation_lookbacks``.
6. **Dynamic top-N** (``dynamic_top_n``): cluster c with n_c members and implied correlations
   ``R = 1 - 2 d^2`` (d = averaged distance) keeps ``N_c = clip(floor(n_eff + 0.5), 1, top_n_per_cluster)``
   names, where ``n_eff = n_c^2 / sum(R_c)`` is the cluster's effective number of bets, i.e. the ratio
   of the mean member variance to the variance of its equal-weight portfolio on standardized returns:
   a tight cluster (rho -> 1) gives 1 name, a diversified one (rho -> 0) up to the cap.
7. **Execution ranking** inside a cluster: order by ``score + execution_weight * execution_score``,
   ``execution_score`` = mean of the in-cluster percentiles of liquidity and stability (NaN skipped):
   higher value traded and lower realized volatility win near-ties. Then ``max_per_sector`` and
   ``max_symbols`` (long book, by score) and ``short.max_symbols`` (short book: by RSI with the
   selling-rips rule, else by lowest score, the weakest first).
8. **Relaxation** (:func:`relaxation_ladder`): while fewer than ``min_symbols`` are selected, the pruning
   is relaxed one step at a time and every step walked is recorded in ``relaxation`` (joined by " > "):
   ``static_top_n`` (N_c = top_n_per_cluster), ``top_n_<k>`` (one more name per cluster per step, never
   beyond ``relax_top_n_max``), ``cluster_cap_lifted`` (no per-cluster or sector limit; only when
   ``relax_top_n_max`` is unset), ``vetoes_lifted`` (feature vetoes off at the loosest allowed limits;
   eligibility still holds).

Regime presets: ``overrides`` (from the regime asset's ``preset_top_n_per_cluster`` /
``preset_max_symbols`` for D) replace ``top_n_per_cluster`` / ``max_symbols`` on that date.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from tvquant_assets.core import features as ft
from tvquant_assets.core import linkage
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.scan import frames_by_date
from tvquant_assets.errors import LakeError
from tvquant_assets.manifest.schema import SCORED_FEATURES, SelectionConfig, SelectionVetoes

MIN_CORRELATION_FRACTION = 0.5
"""A symbol needs returns on at least this fraction of the longest correlation window to be clustered."""
MIN_FEATURE_FRACTION = 0.8
"""A feature needs this fraction of its window to be observed, else it is NaN."""
HURST_MAX_LAG = 20

ORIENTATION = {"momentum": 1.0, "stability": 1.0, "entropy": -1.0, "efficiency": 1.0, "hurst": 1.0,
               "skew": 1.0, "kurtosis": -1.0, "cvar": -1.0, "liquidity": 1.0}
"""+1: higher raw value scores higher; -1: lower scores higher."""

RELAXATION_STAGES = ("none", "static_top_n", "top_n_<k>", "cluster_cap_lifted", "vetoes_lifted")

FEATURE_COLUMNS = ("momentum", "volatility", "stability", "entropy", "efficiency", "hurst", "skew", "kurtosis",
                   "cvar", "liquidity", "rsi", "trend_gap", "trend_slope")

DTYPES = {
    "symbol": "str", "sector": "str", "direction": "str", "eligible": "bool",
    **dict.fromkeys(FEATURE_COLUMNS, "float64"),
    "sector_momentum": "float64", "momentum_pct": "float64", "score": "float64", "rank": "int64",
    "cluster": "int64", "cluster_size": "int64", "cluster_top_n": "int64", "execution_score": "float64",
    "rank_in_cluster": "int64", "selected": "bool", "relaxation": "str", "reason": "str",
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
    first = np.empty(x.size, dtype=bool)
    first[0] = True
    np.not_equal(xs[1:], xs[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    ends = np.append(starts[1:], x.size)
    ranks = np.empty(x.size)
    ranks[order] = ((starts + ends + 1) / 2.0)[np.cumsum(first) - 1]
    return ranks


def _fmt(x: float) -> str:
    return f"{x:.4g}"


VETO_RULES: tuple[tuple[str, str, str], ...] = (
    # (config field, raw feature column, comparison that FAILS)
    ("min_momentum", "momentum", "<"),
    ("max_volatility", "volatility", ">"),
    ("max_entropy", "entropy", ">"),
    ("min_efficiency", "efficiency", "<"),
    ("max_kurtosis", "kurtosis", ">"),
    ("max_cvar", "cvar", ">"),
    ("min_liquidity", "liquidity", "<"),
)


def veto_reasons(raw: Mapping[str, np.ndarray], vetoes: SelectionVetoes, volume_available: bool = True
                 ) -> np.ndarray:
    """The first failed veto rule per symbol ("" when none), read from RAW feature values.

    Parameters
    ----------
    raw : mapping feature -> 1-d array
        Raw features (``momentum``, ``volatility``, ...), never percentiles or scores.
    vetoes : SelectionVetoes
    volume_available : bool
        False skips ``min_liquidity`` (value traded is unknown, not small).

    Returns
    -------
    1-d object array of reasons, e.g. ``"veto: cvar 0.061 > max_cvar 0.05"`` or
    ``"veto: entropy unknown (max_entropy set)"`` for a NaN feature.
    """
    n = len(next(iter(raw.values())))
    reason = np.full(n, "", dtype=object)
    for field, column, fails_if in VETO_RULES:
        limit = getattr(vetoes, field)
        if limit is None or (column == "liquidity" and not volume_available):
            continue
        values = np.asarray(raw[column], dtype="float64")
        bad = values < limit if fails_if == "<" else values > limit
        for i in np.flatnonzero(reason == ""):
            if np.isnan(values[i]):
                reason[i] = f"veto: {column} unknown ({field} set)"
            elif bad[i]:
                reason[i] = f"veto: {column} {_fmt(values[i])} {fails_if} {field} {_fmt(limit)}"
    return reason


def cluster_top_n(corr: np.ndarray, cap: int) -> int:
    """Names to keep from one cluster: ``clip(floor(n^2 / sum(corr) + 0.5), 1, cap)`` (module docstring)."""
    n = corr.shape[0]
    total = float(np.sum(corr))
    n_eff = n * n / total if total > 0 else float(n)
    return int(min(max(1, math.floor(min(n_eff, n) + 0.5)), cap, n))


def _window(arr: np.ndarray, t: int, rows: int) -> np.ndarray:
    return arr[max(0, t - rows + 1):t + 1]


def _min_obs(rows: int) -> int:
    return max(2, math.ceil(MIN_FEATURE_FRACTION * rows))


def compute_features(panel_arrays: dict, t: int, js: np.ndarray, cfg: SelectionConfig) -> dict[str, np.ndarray]:
    """Raw features of the panel columns ``js`` as of row ``t`` (NaN for ``js < 0`` or ``t < 0``)."""
    n = js.size
    out = {c: np.full(n, np.nan) for c in FEATURE_COLUMNS}
    known = np.flatnonzero(js >= 0)
    if t < 0 or known.size == 0:
        return out
    cols = js[known]
    asof, rets, volume = panel_arrays["asof"], panel_arrays["returns"], panel_arrays["volume"]
    w = cfg.windows
    a, b = t - cfg.momentum_skip, t - cfg.momentum_skip - cfg.momentum_lookback
    if b >= 0:
        out["momentum"][known] = ft.momentum(asof[[b, a]][:, cols])
    r = {k: _window(rets, t, rows)[:, cols] for k, rows in
         (("vol", w.volatility), ("ent", w.entropy), ("mom", w.moments), ("cvar", w.cvar), ("rsi", w.rsi))}
    out["volatility"][known] = ft.volatility(r["vol"], _min_obs(w.volatility))
    out["stability"][known] = ft.stability(r["vol"], _min_obs(w.volatility))
    out["entropy"][known] = ft.permutation_entropy(r["ent"], 3, _min_obs(w.entropy))
    out["efficiency"][known] = ft.efficiency_ratio(_window(asof, t, w.efficiency + 1)[:, cols],
                                                   _min_obs(w.efficiency + 1))
    out["hurst"][known] = ft.hurst(_window(asof, t, w.hurst)[:, cols], HURST_MAX_LAG, _min_obs(w.hurst))
    out["skew"][known] = ft.skew(r["mom"], _min_obs(w.moments))
    out["kurtosis"][known] = ft.kurtosis(r["mom"], _min_obs(w.moments))
    out["cvar"][known] = ft.cvar(r["cvar"], 0.05, _min_obs(w.cvar))
    if volume is not None:
        out["liquidity"][known] = ft.liquidity(_window(panel_arrays["close"], t, w.liquidity)[:, cols],
                                               _window(volume, t, w.liquidity)[:, cols], _min_obs(w.liquidity))
    out["rsi"][known] = ft.rsi(r["rsi"], _min_obs(w.rsi))
    s = cfg.short
    if s.enabled:
        ma_now = _moving_average(asof, t, s.trend_window, cols)
        ma_before = _moving_average(asof, t - s.slope_window, s.trend_window, cols)
        with np.errstate(divide="ignore", invalid="ignore"):
            out["trend_gap"][known] = asof[t, cols] / ma_now - 1.0
            out["trend_slope"][known] = ma_now / ma_before - 1.0
    return out


def _moving_average(asof: np.ndarray, t: int, rows: int, cols: np.ndarray) -> np.ndarray:
    """Mean of the ``rows`` as-of closes ending at row ``t`` (NaN unless all are known); each window is
    summed on its own, so the value never depends on where the panel starts."""
    if t - rows + 1 < 0:
        return np.full(cols.size, np.nan)
    return np.mean(asof[t - rows + 1:t + 1, cols], axis=0)


def select(
    panel: PricePanel,
    scan_by_date: Mapping[pd.Timestamp, pd.DataFrame],
    dates: Iterable[pd.Timestamp],
    cfg: SelectionConfig,
    sectors: Mapping[str, str] | None = None,
    overrides: Mapping[pd.Timestamp, Mapping[str, int]] | None = None,
    sectors_by_date: Mapping[pd.Timestamp, Mapping[str, str]] | None = None,
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Select symbols on each date (module docstring).

    Parameters
    ----------
    panel : PricePanel
    scan_by_date : mapping date -> scan frame
        Output of :func:`tvquant_assets.core.scan.compute_scan`; must hold every requested date.
    dates : iterable of Timestamp
    cfg : SelectionConfig
    sectors : mapping symbol -> sector, optional
        Missing symbols get ``"unknown"``.
    overrides : mapping date -> {"top_n_per_cluster": int, "max_symbols": int}, optional
        Regime-preset overrides for that date (keys optional).
    sectors_by_date : mapping date -> {symbol: sector}, optional
        The sectors of D's catalog (point in time); wins over ``sectors`` on its dates.

    Returns
    -------
    dict of Timestamp -> DataFrame
        One row per scan symbol (eligible or not), sorted by symbol, RangeIndex, columns :data:`DTYPES`.
        Unclustered symbols have ``cluster``, ``cluster_size``, ``cluster_top_n`` and ``rank_in_cluster``
        0; unranked ones ``rank`` 0. ``reason`` is ``"selected"`` or why not.
    """
    close = panel.close
    col_of = {str(c): j for j, c in enumerate(close.columns)}
    asof = close.ffill().to_numpy(dtype="float64")
    arrays = {
        "close": close.to_numpy(dtype="float64"),
        "asof": asof,
        "returns": panel.returns().to_numpy(dtype="float64"),
        "volume": None if panel.volume is None else
        panel.volume.reindex(index=close.index, columns=close.columns).to_numpy(dtype="float64"),
    }
    volume_available = panel.volume is not None
    sectors = sectors or {}
    sectors_by_date = {pd.Timestamp(k): v for k, v in (sectors_by_date or {}).items()}
    overrides = overrides or {}

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
        js = np.fromiter((col_of.get(s, -1) for s in syms), dtype="int64", count=syms.size)
        t = int(close.index.searchsorted(date, side="right")) - 1
        day_cfg = cfg
        if overrides.get(date):
            day_cfg = cfg.model_copy(update={k: int(v) for k, v in overrides[date].items() if v is not None})
        scan_short = (scan["direction"].astype(str).to_numpy(dtype=object)[order] == "short"
                      if "direction" in scan.columns else np.zeros(syms.size, dtype=bool))
        piece = _select_one(arrays, t, syms, eligible, scan_reason, js, day_cfg, sectors_by_date.get(date, sectors),
                            volume_available, scan_short)
        keys.append(date)
        for c in DTYPES:
            columns[c].append(piece[c])
    return frames_by_date(keys, columns, DTYPES)


def _select_one(arrays, t, syms, eligible, scan_reason, js, cfg: SelectionConfig, sectors, volume_available,
                scan_short=None):
    n = syms.size
    raw = compute_features(arrays, t, js, cfg)
    sector = np.asarray([sectors.get(s, "unknown") for s in syms], dtype=object)
    ranked = eligible & ~np.isnan(raw["momentum"])

    # global percentile ranks (oriented: 1 = good) and the score
    pct = {f: np.full(n, np.nan) for f in SCORED_FEATURES}
    for f in SCORED_FEATURES:
        pct[f][ranked] = percentile_rank(ORIENTATION[f] * raw[f][ranked])
    sector_mom = np.full(n, np.nan)
    for sec in np.unique(sector[ranked]):
        members = ranked & (sector == sec)
        sector_mom[members] = float(np.mean(raw["momentum"][members]))
    weights = {f: w for f, w in cfg.score_weights.items() if w > 0}
    num, den = np.zeros(n), np.zeros(n)
    for f, w in weights.items():
        ok = ~np.isnan(pct[f])
        num[ok] += w * pct[f][ok]
        den[ok] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        score = np.where(ranked & (den > 0), num / den, np.nan)
    if cfg.sector_tilt > 0:
        sec_pct = _sector_percentile(sector, sector_mom, ranked)
        score = score + cfg.sector_tilt * (sec_pct - 0.5)
    rank = np.zeros(n, dtype="int64")
    scored = np.flatnonzero(~np.isnan(score))
    by_score = scored[np.lexsort((scored, -score[scored]))]
    rank[by_score] = np.arange(1, by_score.size + 1)

    # reasons before pruning: eligibility, momentum history, vetoes on RAW features
    reason = np.full(n, "", dtype=object)
    for i in np.flatnonzero(~eligible):
        reason[i] = f"not eligible: {scan_reason[i]}"
    for i in np.flatnonzero(eligible & np.isnan(raw["momentum"])):
        reason[i] = "no momentum history"
    veto = np.full(n, "", dtype=object)
    mom_pct = pct["momentum"]
    for i in np.flatnonzero(ranked & (mom_pct < cfg.min_momentum_percentile)):
        veto[i] = f"momentum pct {_fmt(mom_pct[i])} < {_fmt(cfg.min_momentum_percentile)}"
    feature_veto = veto_reasons(raw, cfg.vetoes, volume_available)
    veto = np.where(veto == "", feature_veto, veto)

    # short book: overbought inside a confirmed downtrend
    direction = np.full(n, "long", dtype=object)
    if cfg.short.enabled:
        with np.errstate(invalid="ignore"):
            rip = ranked & (raw["rsi"] >= cfg.short.rsi_overbought) & (raw["trend_gap"] < 0) \
                & (raw["trend_slope"] < 0) & (raw["momentum"] < 0)
        direction[rip] = "short"
        veto[rip & (feature_veto == "")] = ""  # long-side momentum vetoes do not apply to shorts
    if scan_short is not None and scan_short.any():  # screened for the short side by the scan
        direction[scan_short] = "short"
        veto[scan_short & (feature_veto == "")] = ""

    # one clustering of every ranked symbol with enough returns
    windows = cfg.correlation_windows
    longest = max(windows)
    min_obs = max(2, math.ceil(MIN_CORRELATION_FRACTION * longest))
    pool = np.flatnonzero(ranked)
    rets = _window(arrays["returns"], t, longest)[:, js[pool]] if t >= 0 else np.zeros((0, pool.size))
    obs = (~np.isnan(rets)).sum(axis=0)
    too_few = {int(i): int(k) for i, k in zip(pool[obs < min_obs], obs[obs < min_obs], strict=True)}
    members = pool[obs >= min_obs]
    cluster = np.zeros(n, dtype="int64")
    corr = np.zeros((0, 0))
    if members.size:
        cols = js[members]
        dist = linkage.average_distance([_window(arrays["returns"], t, w)[:, cols] for w in windows],
                                        cfg.linkage.distance)
        cluster[members] = linkage.cluster_distance(dist, cfg.linkage)
        corr = 1.0 - 2.0 * dist ** 2
    size = np.zeros(n, dtype="int64")
    top_n = np.zeros(n, dtype="int64")
    execution = np.full(n, np.nan)
    dynamic_n: dict[int, int] = {}
    for c in np.unique(cluster[members]):
        in_c = cluster[members] == c
        idx = members[in_c]
        size[idx] = idx.size
        dynamic_n[int(c)] = cluster_top_n(corr[np.ix_(in_c, in_c)], cfg.top_n_per_cluster)
        parts = np.vstack([percentile_rank(raw[f][idx]) for f in ("liquidity", "stability")])
        have = (~np.isnan(parts)).sum(axis=0)
        execution[idx] = np.where(have > 0, np.nansum(parts, axis=0) / np.maximum(have, 1), np.nan)
    order_key = score + cfg.execution_weight * np.nan_to_num(execution, nan=0.5)

    steps, picks, cut_reason, rank_in = [], {}, {}, np.zeros(n, dtype="int64")
    for stage, limit, sector_capped in relaxation_ladder(cfg, int(np.bincount(cluster[members]).max(initial=0))):
        candidates = members if stage == "vetoes_lifted" else members[veto[members] == ""]
        picks, cut_reason, rank_in, top_n = _prune(candidates, cluster, order_key, score, raw["rsi"], direction,
                                                   sector, dynamic_n, cfg, stage, n, limit, sector_capped)
        steps.append(stage)
        if sum(len(v) for v in picks.values()) >= cfg.min_symbols:
            break
    relaxation = " > ".join(steps[1:]) or "none"
    for c in np.unique(cluster[members]):
        top_n[members[cluster[members] == c]] = top_n[members[cluster[members] == c]].max()

    selected = np.zeros(n, dtype=bool)
    for book in picks.values():
        selected[book] = True
    for i in range(n):
        if reason[i]:
            continue
        if selected[i]:
            reason[i] = "selected"
        elif veto[i] and not (relaxation == "vetoes_lifted" and i in cut_reason):
            reason[i] = veto[i]
        elif i in too_few:
            reason[i] = f"too few returns to cluster: {too_few[i]} < {min_obs}"
        else:
            reason[i] = cut_reason.get(i, "not selected")

    return {
        "symbol": syms, "sector": sector, "direction": direction, "eligible": eligible,
        **{c: raw[c] for c in FEATURE_COLUMNS},
        "sector_momentum": sector_mom, "momentum_pct": mom_pct, "score": score, "rank": rank,
        "cluster": cluster, "cluster_size": size, "cluster_top_n": top_n, "execution_score": execution,
        "rank_in_cluster": rank_in, "selected": selected, "relaxation": np.full(n, relaxation, dtype=object),
        "reason": reason,
    }


def _sector_percentile(sector: np.ndarray, sector_mom: np.ndarray, ranked: np.ndarray) -> np.ndarray:
    """Percentile of each symbol's sector momentum among the sectors (one value per sector)."""
    out = np.full(sector.size, np.nan)
    secs = np.unique(sector[ranked])
    values = np.asarray([sector_mom[ranked & (sector == s)][0] for s in secs])
    for s, p in zip(secs, percentile_rank(values), strict=True):
        out[ranked & (sector == s)] = p
    return out


def relaxation_ladder(cfg: SelectionConfig, largest: int) -> list[tuple[str, int | None, bool]]:
    """The pruning stages in order: ``(stage, names per cluster or None, sector cap held)``.

    ``none`` (dynamic top-N), ``static_top_n`` (N = top_n_per_cluster), then one name more per cluster
    at a time (``top_n_<k>``) up to ``relax_top_n_max`` (never beyond it; unset: up to the largest
    cluster, then ``cluster_cap_lifted``, which also lifts ``max_per_sector``), then ``vetoes_lifted``
    at the loosest limits allowed. Selection stops at the first stage meeting ``min_symbols``.
    """
    n0 = cfg.top_n_per_cluster
    top = cfg.relax_top_n_max
    ladder: list[tuple[str, int | None, bool]] = [("none", None if cfg.dynamic_top_n else n0, True)]
    if cfg.dynamic_top_n:
        ladder.append(("static_top_n", n0, True))
    ceiling = largest if top is None else min(top, largest) if largest else top
    ladder += [(f"top_n_{k}", k, True) for k in range(n0 + 1, max(ceiling, n0) + 1)]
    if top is None:
        ladder.append(("cluster_cap_lifted", 0, False))
    loosest = ladder[-1]
    ladder.append(("vetoes_lifted", loosest[1], loosest[2]))
    return ladder


def _prune(candidates, cluster, order_key, score, rsi, direction, sector, dynamic_n, cfg, stage, n,
           limit_all=None, sector_capped=True):
    """Top-N per cluster (execution order), sector cap, then the book caps. Returns the picks per book,
    the reason of every candidate cut, the in-cluster ranks and the N used per cluster.

    ``limit_all``: names per cluster (None: dynamic top-N; 0: no limit)."""
    capped = sector_capped
    rank_in = np.zeros(n, dtype="int64")
    top_n = np.zeros(n, dtype="int64")
    cut: dict[int, str] = {}
    survivors = []
    for c in np.unique(cluster[candidates]):
        idx = candidates[cluster[candidates] == c]
        idx = idx[np.lexsort((idx, -order_key[idx]))]
        limit = dynamic_n[int(c)] if limit_all is None else limit_all or idx.size
        top_n[idx] = min(limit, idx.size)
        for k, i in enumerate(idx, start=1):
            rank_in[i] = k
            if k <= limit:
                survivors.append(i)
            else:
                cut[int(i)] = f"rank {k} > top {limit} in cluster {int(c)}"
    survivors = np.asarray(survivors, dtype="int64")
    picks: dict[str, list[int]] = {"long": [], "short": []}
    per_sector: dict[str, int] = {}
    short_key = -np.nan_to_num(rsi) if cfg.short.enabled else np.nan_to_num(score, nan=np.inf)
    books = (("long", -score, cfg.max_symbols), ("short", short_key, cfg.short.max_symbols))
    for book, key, cap in books:
        idx = survivors[direction[survivors] == book] if survivors.size else survivors
        idx = idx[np.lexsort((idx, key[idx]))]
        position = 0
        for i in idx:
            sec = str(sector[i])
            if capped and cfg.max_per_sector is not None and per_sector.get(sec, 0) >= cfg.max_per_sector:
                cut[int(i)] = f"sector {sec} full: max_per_sector {cfg.max_per_sector}"
                continue
            position += 1
            if position > cap:
                cut[int(i)] = f"short rank {position} > short.max_symbols {cap}" if book == "short" else \
                    f"overall rank {position} > max_symbols {cap}"
                continue
            picks[book].append(int(i))
            per_sector[sec] = per_sector.get(sec, 0) + 1
    return picks, cut, rank_in, top_n


def preset_overrides(regime_by_date: Mapping[pd.Timestamp, pd.DataFrame]) -> dict[pd.Timestamp, dict[str, int]]:
    """Selection overrides of each date from the regime asset's ``preset_top_n_per_cluster`` and
    ``preset_max_symbols`` (NaN or absent: no override)."""
    out: dict[pd.Timestamp, dict[str, int]] = {}
    for date, frame in regime_by_date.items():
        if frame is None or frame.empty:
            continue
        row = frame.iloc[0]
        found = {}
        for field in ("top_n_per_cluster", "max_symbols"):
            value = row.get(f"preset_{field}")
            if value is not None and not pd.isna(value):
                found[field] = int(value)
        if found:
            out[pd.Timestamp(date)] = found
    return out
