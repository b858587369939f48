"""The regime event study: spikes of the bundled S&P history, lead arithmetic, point in time."""

import numpy as np
import pandas as pd

from tvquant_assets.core.regime_evidence import alarms, base_rates, episode_events, leads, spikes
from tvquant_assets.sources.bundled import _sp500_close


def test_spikes_of_the_bundled_history_are_the_known_crises():
    close = _sp500_close()
    proxy = close.pct_change(fill_method=None).mean(axis=1).dropna()
    events = episode_events(proxy)
    assert pd.Timestamp("2008-09-15") <= events["2008 Lehman"] <= pd.Timestamp("2008-10-10")
    assert pd.Timestamp("2020-02-24") <= events["2020 COVID"] <= pd.Timestamp("2020-03-06")
    assert {"1998 LTCM", "2011 US downgrade", "2022 rate shock"} <= set(events)


def test_leads_count_trading_days_from_the_alarm_onset():
    days = pd.bdate_range("2020-01-01", periods=400)
    quiet = np.tile([0.0, 1.0], 200)  # its z-score never reaches 2
    event = days[350]
    early, late, stuck = quiet.copy(), quiet.copy(), quiet.copy()
    early[345:] = 50.0  # onset 5 days before the event
    late[353:] = 50.0  # 3 days after
    signals = pd.DataFrame({"vol_ratio": early, "hurst": late, "vol_clustering": stuck}, index=days)
    table = leads(signals, {"e": event})
    assert table.loc["e", "vol_ratio"] == 5.0
    assert table.loc["e", "hurst"] == -3.0
    assert np.isnan(table.loc["e", "vol_clustering"])
    assert base_rates(signals)["vol_ratio"] > base_rates(signals)["vol_clustering"]


def test_alarms_and_spikes_use_no_later_value():
    days = pd.bdate_range("2019-01-01", periods=600)
    r = pd.Series(np.random.default_rng(3).normal(0, 0.01, 600), index=days)
    r.iloc[500:520] *= 6
    for cut in (480, 505, 560):
        changed = r.copy()
        changed.iloc[cut + 1:] = changed.iloc[cut + 1:] * -3.0 + 0.05
        assert list(spikes(r)[spikes(r) <= days[cut]]) == list(spikes(changed)[spikes(changed) <= days[cut]])
        a, b = alarms(r.abs(), "vol_ratio"), alarms(changed.abs(), "vol_ratio")
        assert a.iloc[: cut + 1].equals(b.iloc[: cut + 1])
    assert days[500] <= spikes(r)[0] <= days[505]
