"""Learned regime thresholds and composite weights through Dagster (``sc_regime_learned``, Mar 2-13 2020 on
the bundled S&P 500 closes): what the regime partitions record, that they read nothing on or after the fit
day, that the adaptive engine follows the learned label, and that the auditor audits the applied thresholds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.core.panel import PricePanel
from tvquant_assets.core.regime import (
    LEARNED_DTYPES,
    adaptive_map,
    detect,
    grid_pairs,
    label_of,
    regime_profile,
    with_thresholds,
)
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake import Lake
from tvquant_assets.stages.regime import switch_cost

pytestmark = pytest.mark.scenario
NAME = "sc_regime_learned"
FIT_DAY = pd.Timestamp("2020-03-02")  # the first proxy day of March: the fit every date of the range carries


def frames(ran, stage: str) -> dict[pd.Timestamp, pd.DataFrame]:
    lake = Lake(ran.lake_root)
    return {d: lake.read(ran.name, stage, d) for d in ran.dates}


def test_learned_thresholds_and_weights_are_recorded_and_applied(scenario):
    ran = scenario(NAME)
    cfg = ran.manifest.regime
    regimes = frames(ran, "regime")
    rows = pd.concat(regimes.values(), ignore_index=True)
    assert set(LEARNED_DTYPES) <= set(rows.columns)
    assert (rows["thresholds_fit_date"] == FIT_DAY).all() and (rows["weights_fit_date"] == FIT_DAY).all()
    assert (rows["weights_status"] == "fitted").all() and (rows["thresholds_decisions"] == 12).all()
    assert {(t, c) for t, c in zip(rows["turbulent_threshold"], rows["crisis_threshold"], strict=True)} <= \
        set(grid_pairs(cfg))
    assert (rows["learned_regret"] <= rows["fixed_regret"] + 1e-12).all()
    for _, row in rows.iterrows():
        day = with_thresholds(cfg, row["turbulent_threshold"], row["crisis_threshold"])
        assert row["label"] == label_of(row["stress_score"], day).value
        expected = row["vol_score"] + row["weight_hmm"] * (row["hmm_stress"] - 0.5) + row["weight_clustering"] * \
            row["vol_clustering"] + row["weight_spectral"] * (1 - row["wavelet_entropy"])
        assert row["stress_score"] == pytest.approx(expected)
    # the adaptive engine picks by the learned label (its own map: label, then quadrant, then default)
    mapping, default = adaptive_map(ran.manifest.tournament.adaptive)
    tours = frames(ran, "tournament")
    decided = [d for d, t in tours.items() if bool(t["rebalanced"].iloc[0])]
    assert decided
    for d in decided:
        r, t = regimes[d].iloc[0], tours[d]
        picked = t.loc[t["candidate"] == "adaptive/adaptive", "picked"].astype(str).unique()
        assert list(picked) == [regime_profile(r["label"], r["quadrant"], {}, mapping, default)], d


def test_no_look_ahead_through_dagster(scenario, sp500_close):
    """The lake's regime of the last date is recomputed from the bundled closes and its scan; with every price
    from the fit day on disturbed, its learned thresholds and weights are unchanged."""
    ran = scenario(NAME)
    lake = Lake(ran.lake_root)
    d = ran.dates[-1]
    scan = {d: lake.read(ran.name, "scan", d)}
    stored = lake.read(ran.name, "regime", d)
    m = ran.manifest

    def run(close: pd.DataFrame) -> pd.DataFrame:
        return detect(PricePanel(close.loc[:d]), scan, [d], m.regime, {}, m.tournament.adaptive, switch_cost(m))[d]

    assert df_hash(run(sp500_close)) == df_hash(stored)
    noisy = sp500_close.copy()
    later = noisy.index >= FIT_DAY
    rng = np.random.default_rng(5)
    noisy.loc[later] = noisy.loc[later].to_numpy() * rng.uniform(0.5, 2.0, (int(later.sum()), noisy.shape[1]))
    learned = list(LEARNED_DTYPES)
    again = run(noisy)
    assert df_hash(again[learned]) == df_hash(stored[learned])
    assert again["stress_score"].iloc[0] != stored["stress_score"].iloc[0]


def test_the_auditor_audits_the_applied_thresholds(scenario):
    ran = scenario(NAME)
    regimes, audits = frames(ran, "regime"), frames(ran, "regime_regret")
    for d, f in audits.items():
        applied = f[f["applied"]]
        assert len(applied) == 1 and bool(applied["current"].iloc[0]), d
        assert applied["turbulent_threshold"].iloc[0] == regimes[d]["turbulent_threshold"].iloc[0]
        assert f["suggested"].sum() == 1 and not bool(applied["suggested"].iloc[0])
    last = audits[ran.dates[-1]]
    assert (last["status"] == "ok").all() and last["regret"].notna().all()


def test_tearsheet_shows_thresholds_over_time_and_learned_vs_fixed(scenario, tmp_path):
    import json

    from tvquant_assets.report import build_report

    ran = scenario(NAME)
    result = build_report(ran.manifest, ran.dates[-1], lake_root=ran.lake_root, out=tmp_path / "page.html")
    page = (tmp_path / "page.html").read_text(encoding="utf-8")
    for chart in ("regime_thresholds", "regime_weights", "regime_learned_vs_fixed"):
        assert f'data-chart="{chart}"' in page, chart
    blob = page.split('data-chart="regime_thresholds"', 1)[1].split(
        '<script type="application/json" class="chart-data">', 1)[1].split("</script>", 1)[0]
    regimes = frames(ran, "regime")
    shown = json.loads(blob)
    assert "turbulent_threshold" in json.dumps(shown)
    assert ">learned<" in page and ">manifest<" in page  # the auditor's backtest regret, learned vs fixed
    assert result.regime == regimes[ran.dates[-1]]["label"].iloc[0]
