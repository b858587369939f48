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
from tvquant_assets.core import regime_learning as rl
from tvquant_assets.core import regime_metrics as rm
from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.scan import frames_by_date
from tvquant_assets.enums import Quadrant, RegimeLabel
from tvquant_assets.errors import LakeError
from tvquant_assets.manifest.schema import AdaptiveConfig, CompositeWeights, RegimeConfig, RegimePreset

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
# Published only when the manifest learns (``regime.regret.apply`` or ``regime.weights: auto``), so a manifest
# that does not keeps its partitions byte for byte.
LEARNED_DTYPES = {
    "turbulent_threshold": "float64", "crisis_threshold": "float64", "thresholds_fit_date": "datetime64[ns]",
    "thresholds_decisions": "int64", "learned_regret": "float64", "fixed_regret": "float64",
    "weight_hmm": "float64", "weight_clustering": "float64", "weight_spectral": "float64",
    "weights_fit_date": "datetime64[ns]", "weights_status": "str",
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
                    cfg: RegimeConfig, weights: CompositeWeights | None = None) -> float:
    """The documented composite (module docstring); NaN metric terms count 0. ``weights`` default to the
    manifest's (``regime.weights: auto`` has none: pass the learned ones)."""
    w = weights or (cfg.weights if isinstance(cfg.weights, CompositeWeights) else CompositeWeights())
    terms = (w.hmm * (hmm_stress - 0.5), w.clustering * clustering, w.spectral * (1.0 - wavelet_entropy))
    return float(vol_score + sum(t for t in terms if not np.isnan(t)))


def with_thresholds(cfg: RegimeConfig, turbulent: float, crisis: float) -> RegimeConfig:
    """``cfg`` with other turbulent/crisis thresholds (quiet stays, kept below turbulent)."""
    th = cfg.thresholds
    return cfg.model_copy(update={"thresholds": th.model_copy(
        update={"turbulent": turbulent, "crisis": crisis, "quiet": min(th.quiet, turbulent * 0.999)})})


def grid_pairs(cfg: RegimeConfig) -> list[tuple[float, float]]:
    """(turbulent, crisis) pairs of ``regime.regret.turbulent_grid``: crisis scales with turbulent."""
    th = cfg.thresholds
    return [(g, g * th.crisis / th.turbulent) for g in sorted(set(cfg.regret.turbulent_grid))]


def regime_profile(label: str, quadrant: str, presets: Mapping[str, RegimePreset], mapping: Mapping[str, str],
                   default: str) -> str:
    """The adaptive engine's profile for a label and quadrant (``engines/adaptive.pick_profile``): the active
    preset's profile, else the mapping of the label, then of the quadrant, else the default."""
    key = active_preset(label, quadrant, presets)
    chosen = presets[key].profile if key else None
    if chosen is not None and chosen.value != "adaptive":
        return chosen.value
    for k in (label, quadrant):
        if k in mapping:
            return mapping[k]
    return default


def adaptive_map(adaptive: AdaptiveConfig | None) -> tuple[dict[str, str], str]:
    """(mapping, default) as the tournament hands them to the adaptive engine."""
    a = adaptive or AdaptiveConfig()
    return dict(sorted((str(k), str(v)) for k, v in a.mapping.items())), str(a.default)


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
        if len(fits) >= 160:
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


def _period(d: pd.Timestamp, refit: str) -> tuple:
    return (d.year, d.month) if refit == "monthly" else tuple(d.isocalendar())[:2]


def period_start(dates: pd.DatetimeIndex, k: int, refit: str = "monthly") -> int:
    """Index of the first of ``dates[:k]`` in the period (month or ISO week) of ``dates[k - 1]``."""
    period, a = _period(dates[k - 1], refit), k - 1
    while a > 0 and _period(dates[a - 1], refit) == period:
        a -= 1
    return a


class _Learner:
    """Thresholds and composite weights of the fit day (the first proxy day of D's month), learned on the
    proxy of D's universe before the fit day (``core/regime_learning.py``); cached per universe and fit day."""

    def __init__(self, cfg: RegimeConfig, presets: Mapping[str, RegimePreset], adaptive: AdaptiveConfig | None,
                 switch_cost: float, fits: dict) -> None:
        self.cfg, self.presets, self.fits, self.switch_cost = cfg, presets, fits, switch_cost
        self.mapping, self.default = adaptive_map(adaptive)
        self.signals: dict[tuple, tuple] = {}
        self.learned: dict[tuple, dict] = {}

    def _signal(self, x: np.ndarray, dates: pd.DatetimeIndex, t: int, js: tuple) -> tuple:
        """(vol_short, vol_long, growth, vol_score, hmm_stress, vol_clustering, wavelet_entropy) of day t."""
        key = (js, t)
        if key not in self.signals:
            cfg, k = self.cfg, t + 1
            vs, vl = _vol(x[k - cfg.short_window:k]), _vol(x[k - cfg.long_window:k])
            growth = float(np.prod(1.0 + x[k - cfg.growth_window:k]) - 1.0)
            ratio = vs / vl if vl > 0 else np.nan
            w = x[k - cfg.metrics_window:k]
            _, stress = _hmm_stress(x[:k], dates[:k], cfg, self.fits, js)
            self.signals[key] = (vs, vl, growth, float(np.nanmax([ratio, vs / cfg.stress_vol])), stress,
                                 rm.vol_clustering(w), rm.wavelet_entropy(w, cfg.wavelet, cfg.wavelet_levels))
        return self.signals[key]

    def at(self, x: np.ndarray, defensive: np.ndarray, dates: pd.DatetimeIndex, k: int, js: tuple) -> dict:
        """The learned columns (:data:`LEARNED_DTYPES`) for a date whose proxy holds ``k`` returns."""
        cfg, reg = self.cfg, self.cfg.regret
        a = period_start(dates, k)
        if (js, a) in self.learned:
            return self.learned[(js, a)]
        first = max(cfg.long_window, cfg.growth_window, cfg.metrics_window) - 1
        lo = max(first, a - reg.horizon - reg.learn_window)
        samples = np.arange(lo, a - reg.horizon)  # outcomes end before the fit day a
        rows = np.array([self._signal(x, dates, t, js) for t in samples], dtype="float64").reshape(-1, 7)
        fit_date = pd.Timestamp(dates[a]).to_datetime64()

        manual = cfg.weights if isinstance(cfg.weights, CompositeWeights) else None
        weights, status = manual, "manifest"
        if manual is None:
            target = rl.future_vol_ratio(x, rows[:, 1], samples, reg.horizon)
            terms = np.column_stack([rows[:, 4] - 0.5, rows[:, 5], 1.0 - rows[:, 6]])
            fitted, status = rl.fit_weights(rows[:, 3], terms, target)
            weights = CompositeWeights() if fitted is None else CompositeWeights(
                hmm=float(fitted[0]), clustering=float(fitted[1]), spectral=float(fitted[2]))
            if fitted is None:
                status += ": default weights"
        out = {"weight_hmm": weights.hmm, "weight_clustering": weights.clustering,
               "weight_spectral": weights.spectral, "weights_fit_date": fit_date if manual is None else
               np.datetime64("NaT", "ns"), "weights_status": status}

        th = cfg.thresholds
        out.update(turbulent_threshold=th.turbulent, crisis_threshold=th.crisis,
                   thresholds_fit_date=np.datetime64("NaT", "ns"), thresholds_decisions=0,
                   learned_regret=np.nan, fixed_regret=np.nan)
        days = rl.decision_days(a, first, reg.horizon, reg.learn_window)
        if reg.apply and days.size >= rl.MIN_DECISIONS:
            at = {t: rows[t - lo] for t in days}
            scores = [composite_score(at[t][3], at[t][4], at[t][5], at[t][6], cfg, weights) for t in days]
            growth = rl.holding_log_returns(np.vstack([x[:a], defensive[:a]]), days, reg.horizon)
            pairs = grid_pairs(cfg)
            choices = np.array([[self._proxy(sc, at[t], with_thresholds(cfg, *pair))
                                 for t, sc in zip(days, scores, strict=True)]
                                for pair in [*pairs, (th.turbulent, th.crisis)]])
            regret = rl.regrets(choices, growth, self.switch_cost)
            i = rl.pick([p[0] for p in pairs], regret[:-1], th.turbulent)
            out.update(turbulent_threshold=pairs[i][0], crisis_threshold=pairs[i][1], thresholds_fit_date=fit_date,
                       thresholds_decisions=int(days.size), learned_regret=float(regret[i]),
                       fixed_regret=float(regret[-1]))
        self.learned[(js, a)] = out
        return out

    def _proxy(self, score: float, sig: np.ndarray, cfg: RegimeConfig) -> int:
        label = label_of(score, cfg)
        quadrant = quadrant_of(float(sig[2]), float(sig[0]), label, cfg)
        return rl.proxy_of(regime_profile(label.value, quadrant.value, self.presets, self.mapping, self.default))


def detect(
    panel: PricePanel,
    scan_by_date: Mapping[pd.Timestamp, pd.DataFrame],
    dates: Iterable[pd.Timestamp],
    cfg: RegimeConfig,
    presets: Mapping[str, RegimePreset] | None = None,
    adaptive: AdaptiveConfig | None = None,
    switch_cost: float = 0.002,
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
    adaptive : AdaptiveConfig, optional
        The adaptive engine's profile map, which learned thresholds are judged by (default mapping if None).
    switch_cost : float
        Fraction of value a change of profile proxy costs when learning thresholds.

    Returns
    -------
    dict of Timestamp -> DataFrame
        One row, columns :data:`DTYPES` (plus :data:`LEARNED_DTYPES` when the manifest learns; see the module
        docstring).
    """
    close = panel.close
    col_of = {str(c): j for j, c in enumerate(close.columns)}
    returns = panel.returns().to_numpy(dtype="float64")
    has_bar = np.cumsum(~np.isnan(close.to_numpy(dtype="float64")), axis=0) > 0
    presets = {str(k): v for k, v in (presets or {}).items()}
    # The proxy of a symbol set is row-local (a cross-sectional mean), so it is computed once over the
    # panel and reused while the set is unchanged; each date then reads its rows <= t.
    proxies: dict[tuple[int, ...], tuple[np.ndarray, np.ndarray, pd.DatetimeIndex, np.ndarray | None]] = {}
    fits: dict[tuple, rm.StressHMM | None] = {}
    learner = _Learner(cfg, presets, adaptive, switch_cost, fits) if cfg.learns else None
    dtypes = {**DTYPES, **LEARNED_DTYPES} if learner else DTYPES

    keys: list[pd.Timestamp] = []
    rows: dict[str, list] = {c: [] for c in dtypes}
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
            defensive = rl.inverse_vol_returns(sub, cfg.short_window * 3)[valid] if learner else None
            proxies[js] = (proxy[valid], np.cumsum(valid), close.index[valid], defensive)
        values, n_upto, proxy_dates, defensive = proxies[js]
        k = int(n_upto[t]) if t >= 0 else 0
        x = values[:k]  # proxy returns stamped <= D, oldest first

        vol_short = _vol(x[-cfg.short_window:]) if k >= cfg.short_window else np.nan
        vol_long = _vol(x[-cfg.long_window:]) if k >= cfg.long_window else np.nan
        growth = float(np.prod(1.0 + x[-cfg.growth_window:]) - 1.0) if k >= cfg.growth_window else np.nan
        metrics = _metrics(x, cfg)
        fit_at, stress = _hmm_stress(x, proxy_dates[:k], cfg, fits, js)
        warmup = k < cfg.long_window
        learned = learner.at(values, defensive, proxy_dates, k, js) if learner and k > 0 else {}
        day_cfg, weights = cfg, None
        if learned:
            day_cfg = with_thresholds(cfg, learned["turbulent_threshold"], learned["crisis_threshold"])
            weights = CompositeWeights(hmm=learned["weight_hmm"], clustering=learned["weight_clustering"],
                                       spectral=learned["weight_spectral"])
        if warmup:
            ratio = vol_score = score = np.nan
            label, quadrant = RegimeLabel.NORMAL, Quadrant.NORMAL
        else:
            ratio = vol_short / vol_long if vol_long > 0 else np.nan
            vol_score = float(np.nanmax([ratio, vol_short / cfg.stress_vol]))
            score = composite_score(vol_score, stress, metrics["vol_clustering"], metrics["wavelet_entropy"], cfg,
                                    weights)
            label = label_of(score, day_cfg)
            quadrant = quadrant_of(growth, vol_short, label, day_cfg)
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
        if learner:
            row.update(learned or {c: (np.nan if d == "float64" else "" if d == "str" else 0 if d == "int64"
                                       else np.datetime64("NaT", "ns")) for c, d in LEARNED_DTYPES.items()})
        keys.append(date)
        for c, dtype in dtypes.items():
            rows[c].append(np.asarray([row[c]], dtype=object if dtype == "str" else dtype))
    return frames_by_date(keys, rows, dtypes)
