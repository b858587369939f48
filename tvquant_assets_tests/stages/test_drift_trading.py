"""Drift-triggered trading through real Dagster (``rebalance.rule: drift``) on the bundled S&P data (November
2019, a full-mode equal-weight book with a 10% threshold): the drift asset's orders on D are the trade the
backtest makes at D's close, and on no other day does the backtest trade. Measured: 13 of 19 days trade (the
daily selection swaps a name of the book on most days; the quiet days drift < 1% and are not traded)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tvquant_assets.lake import Lake
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import materialize_range

ROOT = Path(__file__).resolve().parents[2]
START, END = "2019-11-01", "2019-11-29"
CANDIDATE = "custom/equal_weight"


@pytest.fixture(scope="module")
def drift_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("drift_trading")
    text = (ROOT / "manifests" / "sp500_demo.yaml").read_text()
    text = (text.replace("name: sp500_demo", "name: sp500_drift").replace("start: 2019-01-02", f"start: {START}")
            .replace("    - {engine: custom, profile: max_sharpe}\n    - {engine: skfolio, profile: hrp}\n", "")
            .replace("rebalance:\n  rule: monthly\n", "rebalance:\n  rule: drift\n")
            .replace("    slippage_bps: 5.0\n", "    slippage_bps: 5.0\n  drift:\n    threshold: 0.10\n"
                     f"    mode: full\n    candidate: {CANDIDATE}\n"))
    path = tmp / "sp500_drift.yaml"
    path.write_text(text)
    m = load_manifest(path)
    assert m.rebalance.rule == "drift" and m.backtest.drift.threshold == 0.10
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_HOME", str(tmp / "home"))
    try:
        materialize_range(path, START, END, lake_root=str(tmp / "lake"))
    finally:
        mp.undo()
    return m, Lake(tmp / "lake")


def test_drift_orders_are_the_backtest_trades(drift_run):
    m, lake = drift_run
    days = [d for d in pd.bdate_range(START, END) if lake.exists(m.name, "backtest", d)]
    board = {d: lake.read(m.name, "backtest", d).set_index("candidate").loc[CANDIDATE] for d in days}
    orders = {d: lake.read(m.name, "drift", d) for d in days}
    traded_days, checked = 0, 0
    for prev, d in zip(days, days[1:]):
        if len(pd.bdate_range(prev, d)) != 2 or board[d]["n_days"] != board[prev]["n_days"] + 1:
            continue  # a holiday in between: its decision re-maps onto the trading day before it
        checked += 1
        turnover = float(board[d]["turnover"] - board[prev]["turnover"])  # the backtest's trade at D's close
        frame = orders[d]
        sent = frame[frame["side"] != "none"]
        # the orders bring the book before D's trade to the targets: their notional is that turnover
        book = float(frame["book_value"].iloc[0]) if len(frame) else 1.0
        assert float(sent["notional"].sum()) / book == pytest.approx(turnover, abs=1e-9), d
        if len(sent):
            traded_days += 1
            assert float(frame["drift"].iloc[0]) > m.backtest.drift.threshold
            signed = np.where(sent["side"] == "buy", 1.0, -1.0) * sent["notional"] / book
            np.testing.assert_allclose(signed, sent["target"] - sent["weight"], atol=1e-12)
        else:
            assert turnover == 0.0 and (not len(frame) or float(frame["drift"].iloc[0]) <= 0.10)
    assert checked >= 18
    # the selection's changes move the book past 10% on most days, not every day: trading is gated
    assert 2 <= traded_days < checked

