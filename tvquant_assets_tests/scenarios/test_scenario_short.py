"""Scenario: the long/short variant of the demo (``long_short_sp500.yaml``: 130/30 on both books plus a
dollar- and beta-neutral candidate, borrow on shorts) materialized through real Dagster on the bundled S&P
500 closes over April 2020 (the rebound after the Covid crash), with every asset check (the blocking
``tournament_weights`` verifies each candidate against its own book)."""

from pathlib import Path

import numpy as np
import pytest
from dagster import DagsterInstance

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import materialize_range
from tvquant_assets.stages import STAGES
from tvquant_assets_tests.scenarios.conftest import Ran, assert_complete_checked_sealed_replayed

pytestmark = pytest.mark.scenario
MANIFEST = Path(__file__).with_name("long_short_sp500.yaml")
START, END = "2020-04-01", "2020-04-24"


def test_long_short_sp500_trades_both_books_through_dagster(tmp_path):
    root, instance = str(tmp_path / "lake"), DagsterInstance.ephemeral()
    report = materialize_range(MANIFEST, START, END, lake_root=root, instance=instance)
    m, lake = load_manifest(MANIFEST), Lake(root)
    dates = manifest_dates(m, START, END)
    assert_complete_checked_sealed_replayed(Ran(m.name, MANIFEST, m, report, root, instance, dates))
    assert report.partitions == len(dates) and m.book == "long_short"
    for stage in STAGES:
        assert all(lake.exists(m.name, stage.value, d) for d in dates), stage
    d = "2020-04-06"  # a rebalance date (first of its ISO week) with names in both books
    est = lake.read(m.name, "estimation", d)
    side = dict(zip(est["symbol"], est["direction"]))
    assert {"long", "short"} == set(side.values())
    t = lake.read(m.name, "tournament", d)
    for cand, g in t.groupby("candidate"):
        w = g.set_index("symbol")["weight"]
        shorts = [s for s in w.index if side[s] == "short"]
        assert (w[shorts] <= 1e-9).all() and (w.drop(shorts) >= -1e-9).all(), cand  # a sign per book
        assert w.abs().max() <= 0.30 + 1e-6, cand
        if cand == "custom/market_neutral":
            assert abs(w.sum()) < 1e-6 and w.abs().sum() <= 1.6 + 1e-6
        else:  # 130/30
            assert w.sum() == np.float64(w.sum()) and abs(w.sum() - 1.0) < 1e-6, cand
            assert abs(w[w > 0].sum() - 1.3) < 1e-6 and abs(w[w < 0].sum() + 0.3) < 1e-6, cand
    bt = lake.read(m.name, "backtest", END)
    assert len(bt) == len(m.tournament.candidates) * 2
    by = bt.set_index(["candidate", "simulator"])
    for c in m.tournament.candidates:  # vectorized and cvxportfolio agree exactly with shorts and borrow
        a, b = by.loc[(c.name, "vectorized")], by.loc[(c.name, "cvxportfolio")]
        assert abs(a["equity"] - b["equity"]) < 1e-9 and abs(a["borrow"] - b["borrow"]) < 1e-12
        assert a["borrow"] > 0  # shorts paid borrow
        assert a["short_exposure"] < 0 < a["long_exposure"], c.name
        assert a["gross_exposure"] == a["long_exposure"] - a["short_exposure"]
        if c.profile.value != "market_neutral":  # 130/30 after drift
            assert 1.4 < a["gross_exposure"] < 1.8 and 0.9 < a["net_exposure"] < 1.1, c.name
        assert np.isfinite(a["long_contribution"]) and a["short_contribution"] != 0.0
    drift = lake.read(m.name, "drift", END)
    assert set(drift["side"]) >= {"buy_to_cover"} or set(drift["side"]) >= {"sell_short"} or \
        (drift["target"] < 0).any()
    assert Ledger(lake.ledger_path(m.name)).verify().ok
    from tvquant_assets.report.tearsheet import build_report

    page = Path(build_report(m, END, lake=lake).path).read_text()
    assert 'id="exposure"' in page and "short_contribution" in page
