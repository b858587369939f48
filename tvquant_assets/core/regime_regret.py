"""Threshold auditor ("regime regret"): what adaptive profile switches cost versus the best fixed
candidate in hindsight, per threshold setting. Advisory only: nothing here changes a threshold.

For each turbulent threshold ``theta`` of ``regime.regret.turbulent_grid`` (the crisis threshold scales
with it, ``theta * crisis / turbulent`` of the manifest; quiet stays), every day's published composite
``stress_score`` is relabelled (:func:`tvquant_assets.core.regime.label_of`; warm-up NaN -> NORMAL) and
mapped to a profile (``regime_presets[label].profile`` when set, else ``regime.regret.profiles``) and so
to a tournament candidate (the first with that profile). The adaptive book decides at the close of each
rebalance date and holds that candidate from the next day on; a change of candidate costs
``switch_cost`` (a fraction of value, default two times the backtest cost rate: sell one book, buy the
other). With ``R_c(t)`` the backtest's ``day_return`` of candidate c::

    adaptive(D)  = sum_{t <= D} log(1 + R_held(t)) + n_switches(D) * log(1 - switch_cost)
    best(D)      = max_c sum_{t <= D} log(1 + R_c(t))          (the best fixed candidate in hindsight)
    regret(D)    = best(D) - adaptive(D)                        (log-return points; >= 0 unless it beats all)

``suggested`` marks the threshold with the smallest regret (ties: the one nearest the manifest's, then
the smaller). Everything at D uses returns and scores stamped <= D.

When the regime stage learns its thresholds (``regime.regret.apply``), the auditor audits what the adaptive
engine actually does: labels map to profiles through its own map (:func:`tvquant_assets.core.regime.regime_profile`:
the active preset's profile, else ``tournament.adaptive.mapping`` of the label, then of the quadrant, which is
recomputed per threshold from the published growth and short volatility, else its default), and one more row,
``applied``, switches on the published labels — the thresholds learned and applied day by day.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from tvquant_assets.core.regime import label_of, quadrant_of, regime_profile
from tvquant_assets.core.scan import frames_by_date
from tvquant_assets.enums import RegimeLabel
from tvquant_assets.manifest.schema import RegimeConfig

DTYPES = {
    "date": "datetime64[ns]", "turbulent_threshold": "float64", "crisis_threshold": "float64",
    "n_days": "int64", "n_switches": "int64", "switch_cost_total": "float64", "adaptive_return": "float64",
    "best_fixed": "str", "best_fixed_return": "float64", "regret": "float64", "stressed_share": "float64",
    "current": "bool", "suggested": "bool", "status": "str",
}
APPLIED_DTYPES = {"applied": "bool"}  # only when the thresholds are learned (``adaptive`` given)


def regime_regret(
    scores: pd.Series,
    returns: pd.DataFrame,
    rebalance: Iterable[pd.Timestamp],
    dates: Iterable[pd.Timestamp],
    cfg: RegimeConfig,
    profile_of: Mapping[str, str],
    candidate_of: Mapping[str, str],
    switch_cost: float,
    adaptive: tuple | None = None,
) -> dict[pd.Timestamp, pd.DataFrame]:
    """Regret table per date (module docstring).

    Parameters
    ----------
    scores : Series
        The regime asset's ``stress_score`` by date (NaN in warm-up).
    returns : DataFrame
        Candidates' daily returns (backtest ``day_return``), index = days ascending, columns = candidates.
    rebalance : iterable of Timestamp
        Decision dates of the adaptive book.
    dates : iterable of Timestamp
        Dates to report (rows of ``returns`` <= each date are used).
    cfg : RegimeConfig
    profile_of : mapping label -> profile
    candidate_of : mapping profile -> candidate name (a column of ``returns``)
    switch_cost : float
        Fraction of value lost per switch.
    adaptive : tuple, optional
        ``(regime frame, presets, mapping, default)``: audit the adaptive engine's map on learned thresholds.
        The frame (index = days) holds the published ``label``, ``growth``, ``vol_short``,
        ``turbulent_threshold`` and ``crisis_threshold``; ``profile_of`` is then unused.

    Returns
    -------
    dict of Timestamp -> DataFrame, one row per threshold of the grid (plus the ``applied`` row with
    ``adaptive``), columns :data:`DTYPES` (plus :data:`APPLIED_DTYPES` with ``adaptive``).
    """
    th = cfg.thresholds
    grid = sorted(set(cfg.regret.turbulent_grid))
    days = returns.index
    rb = np.isin(days, pd.DatetimeIndex(list(rebalance)))
    score = scores.reindex(days).to_numpy(dtype="float64")
    log_fixed = np.log1p(returns.fillna(0.0).to_numpy(dtype="float64"))
    cum_fixed = np.cumsum(log_fixed, axis=0)
    names = list(returns.columns)
    published = adaptive[0].reindex(days) if adaptive else None

    def profiles(labels: list[str], scaled: RegimeConfig | None) -> list[str]:
        if adaptive is None:
            return [profile_of[lab] for lab in labels]
        _, presets, mapping, default = adaptive
        growth = published["growth"].to_numpy(dtype="float64")
        vol = published["vol_short"].to_numpy(dtype="float64")
        out = []
        for i, lab in enumerate(labels):  # the quadrant reads the label, stress_vol and neutral_growth only
            quadrant = quadrant_of(growth[i], vol[i], RegimeLabel(lab), scaled or cfg).value
            out.append(regime_profile(lab, quadrant, presets, mapping, default))
        return out

    settings: list[tuple[float, float, list[str], RegimeConfig | None]] = []
    for theta in grid:
        scaled = cfg.model_copy(update={"thresholds": th.model_copy(
            update={"turbulent": theta, "crisis": theta * th.crisis / th.turbulent,
                    "quiet": min(th.quiet, theta * 0.999)})})
        settings.append((theta, scaled.thresholds.crisis, [label_of(s, scaled).value for s in score], scaled))
    if adaptive is not None:
        labels = [str(x) if isinstance(x, str) and x else RegimeLabel.NORMAL.value for x in published["label"]]
        settings.append((np.nan, np.nan, labels, None))
    chosen = [profiles(labels, scaled) for _, _, labels, scaled in settings]
    used = {p for ps in chosen for p in ps} if adaptive is not None else set(profile_of.values())
    missing = sorted({p for p in used if candidate_of.get(p) not in names})

    per_theta = []
    for (theta, crisis, labels, _), profile in zip(settings, chosen, strict=True):
        stressed = np.isin(labels, [RegimeLabel.TURBULENT.value, RegimeLabel.CRISIS.value])
        if missing or not names:
            per_theta.append((theta, crisis, None, stressed))
            continue
        choice = np.array([names.index(candidate_of[p]) for p in profile], dtype="float64")
        decided = pd.Series(np.where(rb, choice, np.nan)).ffill().shift(1)
        held = decided.bfill().fillna(choice[0] if choice.size else 0).to_numpy(dtype="int64")
        switched = np.r_[False, held[1:] != held[:-1]]
        book = log_fixed[np.arange(days.size), held] + np.where(switched, np.log1p(-switch_cost), 0.0)
        per_theta.append((theta, crisis, (np.cumsum(book), np.cumsum(switched)), stressed))

    dtypes = {**DTYPES, **APPLIED_DTYPES} if adaptive is not None else DTYPES
    keys: list[pd.Timestamp] = []
    columns: dict[str, list[np.ndarray]] = {c: [] for c in dtypes}
    for date in map(pd.Timestamp, dates):
        t = int(days.searchsorted(date, side="right")) - 1
        rows = {c: [] for c in dtypes}
        for theta, crisis, path, stressed in per_theta:
            applied = bool(np.isnan(theta))
            if applied:  # the thresholds the regime stage applied on D
                theta = _finite(published["turbulent_threshold"].iloc[t], np.nan) if t >= 0 else np.nan
                crisis = _finite(published["crisis_threshold"].iloc[t], np.nan) if t >= 0 else np.nan
            rows["date"].append(date)
            rows["turbulent_threshold"].append(theta)
            rows["crisis_threshold"].append(crisis)
            rows["n_days"].append(max(t + 1, 0))
            rows["stressed_share"].append(float(stressed[:t + 1].mean()) if t >= 0 else np.nan)
            rows["current"].append(applied if adaptive is not None else bool(np.isclose(theta, th.turbulent)))
            if adaptive is not None:
                rows["applied"].append(applied)
            if path is None or t < 0:
                status = f"no candidate for profile(s) {', '.join(missing)}" if missing else "no backtest returns yet"
                for c in ("n_switches",):
                    rows[c].append(0)
                for c in ("switch_cost_total", "adaptive_return", "best_fixed_return", "regret"):
                    rows[c].append(np.nan)
                rows["best_fixed"].append("")
                rows["status"].append(status)
                continue
            cum_adaptive, cum_switches = path
            best = int(np.argmax(cum_fixed[t]))
            rows["n_switches"].append(int(cum_switches[t]))
            rows["switch_cost_total"].append(float(-cum_switches[t] * np.log1p(-switch_cost)))
            rows["adaptive_return"].append(float(np.expm1(cum_adaptive[t])))
            rows["best_fixed"].append(names[best])
            rows["best_fixed_return"].append(float(np.expm1(cum_fixed[t, best])))
            rows["regret"].append(float(cum_fixed[t, best] - cum_adaptive[t]))
            rows["status"].append("ok")
        regret = np.asarray(rows["regret"], dtype="float64")[:len(grid)]
        suggested = np.zeros(len(per_theta), dtype=bool)
        if np.isfinite(regret).any():
            key = [(r if np.isfinite(r) else np.inf, abs(g - th.turbulent), g)
                   for r, g in zip(regret, grid, strict=True)]
            suggested[min(range(len(grid)), key=key.__getitem__)] = True
        rows["suggested"] = list(suggested)
        keys.append(date)
        for c, dtype in dtypes.items():
            columns[c].append(np.asarray(rows[c], dtype=object if dtype == "str" else dtype))
    return frames_by_date(keys, columns, dtypes)


def _finite(value, default: float) -> float:
    v = float(value) if value is not None else np.nan
    return v if np.isfinite(v) else default
