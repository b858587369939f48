"""Regime evidence: how many trading days each regime signal leads (or lags) a realized-volatility spike.

An event study, point in time on both sides:

* **Spike** — the proxy's realized volatility over ``short`` days (annualized) first reaches ``multiple``
  times its median over the previous ``baseline`` days, after at least ``quiet`` days below that level.
  The first spike inside each named period (:data:`EPISODES`) is that episode's event day.
* **Alarm** — a signal's trailing z-score (its value minus the mean of its previous ``baseline`` values, over
  their standard deviation; values <= t only) reaches ``z``. Signals are oriented so that higher means more
  stress (:data:`ORIENTATION`): wavelet entropy falls and the ADF p-value rises in turbulence. The HMM's
  stress probability alarms when it reaches 0.5 (it already is a probability).
* **Lead** — trading days from the signal's alarm onset (a day in alarm after a day out of it) to the event:
  the last onset in [event − ``before``, event], else the first in (event, event + ``after``]; positive
  leads, negative lags, missing without an onset in that window. A signal that is in alarm on most days
  leads every event and tells nothing: :func:`base_rates` gives the share of all days each one is in alarm.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

EPISODES: dict[str, tuple[str, str]] = {
    "1998 LTCM": ("1998-07-01", "1998-12-31"),
    "2001 September": ("2001-08-01", "2001-12-31"),
    "2002 bear market": ("2002-06-01", "2002-10-31"),
    "2008 Lehman": ("2008-09-01", "2008-12-31"),
    "2011 US downgrade": ("2011-07-15", "2011-10-31"),
    "2020 COVID": ("2020-02-01", "2020-04-30"),
    "2022 rate shock": ("2022-01-01", "2022-06-30"),
}
SIGNALS = ("vol_ratio", "hmm_stress", "wavelet_entropy", "vol_clustering", "hurst", "adf_pvalue")
ORIENTATION = {"wavelet_entropy": -1.0}  # every other signal: higher is more stress


def realized_vol(returns: pd.Series, short: int = 21) -> pd.Series:
    """Annualized trailing ``short``-day volatility of daily returns (NaN before a full window)."""
    return returns.rolling(short).std(ddof=1) * np.sqrt(252.0)


def spikes(returns: pd.Series, short: int = 21, baseline: int = 252, multiple: float = 2.0,
           quiet: int = 21) -> pd.DatetimeIndex:
    """Days the realized volatility first reaches ``multiple`` x its trailing median after ``quiet`` days
    below it (the median of the ``baseline`` days before t, so t's level never sets its own bar)."""
    vol = realized_vol(returns, short)
    bar = vol.shift(1).rolling(baseline, min_periods=baseline).median() * multiple
    above = (vol >= bar) & bar.notna()
    below_run = (~above).astype(int).groupby(above.cumsum()).cumsum().shift(1).fillna(0)
    return vol.index[above & (below_run >= quiet)]


def alarms(signal: pd.Series, name: str, baseline: int = 252, z: float = 2.0) -> pd.Series:
    """True on the days ``signal`` alarms (module docstring); point in time."""
    s = signal.astype(float) * ORIENTATION.get(name, 1.0)
    if name == "hmm_stress":
        return s >= 0.5
    past = s.shift(1).rolling(baseline, min_periods=baseline // 2)
    score = (s - past.mean()) / past.std(ddof=1)
    return score >= z


def leads(signals: pd.DataFrame, events: dict[str, pd.Timestamp], before: int = 63, after: int = 21,
          baseline: int = 252, z: float = 2.0) -> pd.DataFrame:
    """Episode x signal table of leads in trading days (positive: the alarm came first; NaN: no alarm)."""
    index = signals.index
    out = pd.DataFrame(index=list(events), columns=[c for c in SIGNALS if c in signals.columns], dtype=float)
    for name in out.columns:
        on = alarms(signals[name], name, baseline, z).to_numpy(dtype=bool)
        onset = on & ~np.r_[False, on[:-1]]
        for episode, day in events.items():
            k = int(index.searchsorted(day))
            early = np.flatnonzero(onset[max(0, k - before):k + 1]) + max(0, k - before)
            late = np.flatnonzero(onset[k + 1:k + after + 1]) + k + 1
            first = early[-1] if early.size else late[0] if late.size else None
            out.loc[episode, name] = np.nan if first is None else float(k - first)
    return out


def base_rates(signals: pd.DataFrame, baseline: int = 252, z: float = 2.0) -> pd.Series:
    """Share of the days (with a defined signal) each signal is in alarm."""
    rates = {}
    for name in [c for c in SIGNALS if c in signals.columns]:
        ok = signals[name].notna()
        rates[name] = float(alarms(signals[name], name, baseline, z)[ok].mean()) if ok.any() else np.nan
    return pd.Series(rates)


def episode_events(returns: pd.Series, episodes: dict[str, tuple[str, str]] = EPISODES, **kw
                   ) -> dict[str, pd.Timestamp]:
    """The first spike inside each episode's period (episodes without one are left out)."""
    days = spikes(returns, **kw)
    out = {}
    for name, (a, b) in episodes.items():
        inside = days[(days >= pd.Timestamp(a)) & (days <= pd.Timestamp(b))]
        if len(inside):
            out[name] = inside[0]
    return out
