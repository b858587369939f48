"""Market regime and growth/stress quadrant, point in time.

Market proxy: the equal-weight mean of the available daily returns of the scan's eligible symbols on D
(all symbols with a bar <= D when none is eligible), over every row <= D; days where none of them has a
return are skipped. Windows count proxy returns, not calendar days.

Metrics of D (all on proxy returns <= D; :mod:`tvquant_assets.core.regime_metrics`): realized vol short
and long and their ratio; over the last ``metrics_window`` returns the DWT wavelet-energy entropy
("spectral turbulence"), volatility clustering (lag-1 autocorrelation of |r|), permutation entropy,
Hurst exponent and ADF p-value; ``hmm_stress`` = the filtered probability of the high-variance state of
a seeded 2-state Gaussian HMM. The HMM is fitted on the ``hmm_window`` returns up to the first proxy
day of D's month (``hmm_refit: monthly``) or ISO week (``weekly``) and carried until the next refit
day (``hmm_fit_date``): one fit per period keeps a daily backfill cheap, and the refit day depends
only on the calendar, never on where a range starts.

Label (a composite stress score; the volatility part keeps a long high-vol episode from being
relabelled NORMAL once the long window has caught up with it)::

    vol_score = max(vol_short / vol_long, vol_short / stress_vol)
    score     = vol_score + weights.hmm * (hmm_stress - 0.5)
                          + weights.clustering * vol_clustering
                          + weights.spectral * (1 - wavelet_entropy)      (NaN terms count 0)
    CRISIS    if score >= thresholds.crisis
    TURBULENT if score >= thresholds.turbulent
    QUIET     if score <  thresholds.quiet
    NORMAL    otherwise

Quadrant (All-Weather axes: growth = compound proxy return over ``growth_window``; stress is high when
``vol_short >= stress_vol`` or the label is TURBULENT/CRISIS)::

    growth >  +neutral_growth: EXPANSION (low stress) | INFLATIONARY_TREND (high stress)
    growth <  -neutral_growth: STAGNATION (low stress) | CRISIS (high stress)
    otherwise NORMAL

With fewer than ``long_window`` proxy returns the row is ``warmup``: label and quadrant NORMAL, ratio and
score NaN.

Preset: the active ``regime_presets`` entry (:func:`active_preset`) is published as ``preset`` and one
``preset_<field>`` column per override (:func:`preset_columns`) for downstream stages to apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from tvquant_assets.core import features as ft
from tvquant_assets.core import regime_metrics as rm
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.scan import frames_by_date
from tvquant_assets.enums import Quadrant, RegimeLabel
from tvquant_assets.errors import LakeError
from tvquant_assets.manifest.schema import RegimeConfig, RegimePreset

ANNUALIZATION = 252

DTYPES = {
    "date": "datetime64[ns]", "n_symbols": "int64", "vol_short": "float64", "vol_long": "float64",
    "vol_ratio": "float64", "vol_score": "float64", "wavelet_entropy": "float64", "vol_clustering": "float64",
    "permutation_entropy": "float64", "hurst": "float64", "adf_pvalue": "float64", "hmm_stress": "float64",
    "hmm_fit_date": "datetime64[ns]", "stress_score": "float64", "growth": "float64", "label": "str",
    "quadrant": "str",
    "preset": "str", "preset_max_weight": "float64", "preset_top_n_per_cluster": "float64",
    "preset_max_symbols": "float64", "preset_l2_gamma": "float64", "preset_profile": "str", "warmup": "bool",
}


def _vol(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1) * np.sqrt(ANNUALIZATION))


def label_of(score: float, cfg: RegimeConfig) -> RegimeLabel:
    """Regime label of a stress score (NaN -> NORMAL)."""
    th = cfg.thresholds
    if np.isnan(score):
        return RegimeLabel.NORMAL
    if score >= th.crisis:
        return RegimeLabel.CRISIS
    if score >= th.turbulent:
        return RegimeLabel.TURBULENT
    if score < th.quiet:
        return RegimeLabel.QUIET
    return RegimeLabel.NORMAL


def quadrant_of(growth: float, vol_short: float, label: RegimeLabel, cfg: RegimeConfig) -> Quadrant:
    """Growth/stress quadrant (NaN growth -> NORMAL)."""
    stress = bool(vol_short >= cfg.stress_vol) or label in (RegimeLabel.TURBULENT, RegimeLabel.CRISIS)
    if growth > cfg.neutral_growth:
        return Quadrant.INFLATIONARY_TREND if stress else Quadrant.EXPANSION
    if growth < -cfg.neutral_growth:
        return Quadrant.CRISIS if stress else Quadrant.STAGNATION
    return Quadrant.NORMAL


def active_preset(label: str, quadrant: str, presets: Mapping[str, RegimePreset]) -> str:
    """Key of the active preset, "" when none.

    A non-NORMAL label wins over a non-NORMAL quadrant, which wins over NORMAL (so a ``NORMAL`` preset
    does not shadow quadrant presets on ordinary days).
    """
    normal = RegimeLabel.NORMAL.value
    for key in (label, quadrant):
        if key != normal and key in presets:
            return key
    return normal if normal in presets else ""


def composite_score(vol_score: float, hmm_stress: float, clustering: float, wavelet_entropy: float,
                    cfg: RegimeConfig) -> float:
    """The documented composite (module docstring); NaN metric terms count 0."""
    w = cfg.weights
    terms = (w.hmm * (hmm_stress - 0.5), w.clustering * clustering, w.spectral * (1.0 - wavelet_entropy))
    return float(vol_score + sum(t for t in terms if not np.isnan(t)))


def _metrics(x: np.ndarray, cfg: RegimeConfig) -> dict[str, float]:
    """Window metrics of the proxy returns ``x`` (all <= D); NaN until the window is full."""
    names = ("wavelet_entropy", "vol_clustering", "permutation_entropy", "hurst", "adf_pvalue")
    if x.size < cfg.metrics_window:
        return dict.fromkeys(names, np.nan)
    w = x[-cfg.metrics_window:]
    level = np.r_[1.0, np.cumprod(1.0 + w)][:, None]
    return {
        "wavelet_entropy": rm.wavelet_entropy(w, cfg.wavelet, cfg.wavelet_levels),
        "vol_clustering": rm.vol_clustering(w),
        "permutation_entropy": float(ft.permutation_entropy(w[:, None], 3)[0]),
        "hurst": float(ft.hurst(level, 20)[0]),
        "adf_pvalue": rm.adf_pvalue(w),
    }


def _hmm_stress(x: np.ndarray, dates: pd.DatetimeIndex, cfg: RegimeConfig, fits: dict, key: tuple
                ) -> tuple[np.datetime64, float]:
    """(refit day, filtered stress probability on the last day of ``x``); fits are cached per refit day."""
    if x.size < cfg.hmm_window // 2 + 1:
        return np.datetime64("NaT", "ns"), np.nan
    last = dates[-1]
    period = (last.year, last.month) if cfg.hmm_refit == "monthly" else tuple(last.isocalendar())[:2]
    # the first proxy day of the period: search back while the period is unchanged
    a = x.size - 1
    while a > 0:
        d = dates[a - 1]
        if ((d.year, d.month) if cfg.hmm_refit == "monthly" else tuple(d.isocalendar())[:2]) != period:
            break
        a -= 1
    cache_key = (key, a)
    if cache_key not in fits:
        if len(fits) >= 64:
            fits.clear()
        train = x[max(0, a + 1 - cfg.hmm_window):a + 1]
        fits[cache_key] = rm.StressHMM(cfg.hmm_seed, cfg.hmm_iterations).fit(train) \
            if train.size >= cfg.hmm_window // 2 else None
    model = fits[cache_key]
    if model is None:
        return np.datetime64("NaT", "ns"), np.nan
    return pd.Timestamp(dates[a]).to_datetime64(), model.stress_probability(x[-cfg.hmm_window:])


def preset_columns(preset: RegimePreset | None) -> dict[str, object]:
    """The published ``preset_<field>`` columns of a preset (NaN / "" when unset or no preset)."""

    def num(value) -> float:
        return np.nan if value is None else float(value)

    p = preset or RegimePreset()
    return {
        "preset_max_weight": num(p.max_weight),
        "preset_top_n_per_cluster": num(p.top_n_per_cluster),
        "preset_max_symbols": num(p.max_symbols),
        "preset_l2_gamma": num(p.l2_gamma),
        "preset_profile": "" if p.profile is None else p.profile.value,
    }


def detect(
    panel: PricePanel,
    scan_by_date: Mapping[pd.Timestamp, pd.DataFrame],
    dates: Iterable[pd.Timestamp],
    cfg: RegimeConfig,
    presets: Mapping[str, RegimePreset] | None = None,
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Detect the regime on each date.

    Parameters
    ----------
    panel : PricePanel
    scan_by_date : mapping date -> scan frame
        Output of :func:`tvquant_assets.core.scan.compute_scan`; must hold every requested date.
    dates : iterable of Timestamp
    cfg : RegimeConfig
    presets : mapping RegimeLabel/Quadrant -> RegimePreset, optional

    Returns
    -------
    dict of Timestamp -> DataFrame
        One row, columns ``date, n_symbols, vol_short, vol_long, vol_ratio, stress_score, growth, label,
        quadrant, preset, preset_max_weight, warmup`` (see the module docstring).
    """
    close = panel.close
    col_of = {str(c): j for j, c in enumerate(close.columns)}
    returns = panel.returns().to_numpy(dtype="float64")
    has_bar = np.cumsum(~np.isnan(close.to_numpy(dtype="float64")), axis=0) > 0
    presets = {str(k): v for k, v in (presets or {}).items()}
    # The proxy of a symbol set is row-local (a cross-sectional mean), so it is computed once over the
    # panel and reused while the set is unchanged; each date then reads its rows <= t.
    proxies: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, pd.DatetimeIndex]] = {}
    fits: dict[tuple, rm.StressHMM | None] = {}

    keys: list[pd.Timestamp] = []
    rows: dict[str, list] = {c: [] for c in DTYPES}
    for date in map(pd.Timestamp, dates):
        if date not in scan_by_date:
            raise LakeError(f"regime needs the scan for {date.date()}; materialize scan first")
        scan = scan_by_date[date]
        t = int(close.index.searchsorted(date, side="right")) - 1
        chosen = scan["symbol"].to_numpy(dtype=object)[scan["eligible"].to_numpy(dtype=bool)]
        js = tuple(sorted(col_of[s] for s in chosen if s in col_of))
        if not js and t >= 0:
            js = tuple(np.flatnonzero(has_bar[t]).tolist())
        if js not in proxies:
            if len(proxies) >= 16:  # dates ascend, so old symbol sets rarely come back: bound the memory
                proxies.clear()
            sub = returns[:, list(js)]
            ok = ~np.isnan(sub)
            count = ok.sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                proxy = np.where(ok, sub, 0.0).sum(axis=1) / count
            valid = count > 0
            proxies[js] = (proxy[valid], np.cumsum(valid), close.index[valid])
        values, n_upto, proxy_dates = proxies[js]
        k = int(n_upto[t]) if t >= 0 else 0
        x = values[:k]  # proxy returns stamped <= D, oldest first

        vol_short = _vol(x[-cfg.short_window:]) if k >= cfg.short_window else np.nan
        vol_long = _vol(x[-cfg.long_window:]) if k >= cfg.long_window else np.nan
        growth = float(np.prod(1.0 + x[-cfg.growth_window:]) - 1.0) if k >= cfg.growth_window else np.nan
        metrics = _metrics(x, cfg)
        fit_at, stress = _hmm_stress(x, proxy_dates[:k], cfg, fits, js)
        warmup = k < cfg.long_window
        if warmup:
            ratio = vol_score = score = np.nan
            label, quadrant = RegimeLabel.NORMAL, Quadrant.NORMAL
        else:
            ratio = vol_short / vol_long if vol_long > 0 else np.nan
            vol_score = float(np.nanmax([ratio, vol_short / cfg.stress_vol]))
            score = composite_score(vol_score, stress, metrics["vol_clustering"], metrics["wavelet_entropy"], cfg)
            label = label_of(score, cfg)
            quadrant = quadrant_of(growth, vol_short, label, cfg)
        preset = active_preset(label.value, quadrant.value, presets)
        chosen = presets[preset] if preset else None

        row = {
            "date": date,
            "n_symbols": len(js),
            "vol_short": vol_short,
            "vol_long": vol_long,
            "vol_ratio": ratio,
            "vol_score": vol_score,
            **metrics,
            "hmm_stress": stress,
            "hmm_fit_date": fit_at,
            "stress_score": score,
            "growth": growth,
            "label": label.value,
            "quadrant": quadrant.value,
            "preset": preset,
            **preset_columns(chosen),
            "warmup": warmup,
        }
        keys.append(date)
        for c, dtype in DTYPES.items():
            rows[c].append(np.asarray([row[c]], dtype=object if dtype == "str" else dtype))
    return frames_by_date(keys, rows, DTYPES)
