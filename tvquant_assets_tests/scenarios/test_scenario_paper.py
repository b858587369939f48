"""The paper account through real Dagster (``sc_paper_account``: drift-triggered trading on the synthetic
OHLCV market, the scenario suite's short range): D-1's drift orders fill at D's open, the account's books
add up, the ledger seals it, the suggested slippage file is written, and paper(D) ignores every bar after D."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey

from tvquant_assets.calendar import previous_dates
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.replay import latest_entry
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.paper import SLIPPAGE_FILE
from tvquant_assets.stages.plan import run_stage

pytestmark = pytest.mark.scenario
NAME = "sc_paper_account"


def _rows(frame: pd.DataFrame, kind: str) -> pd.DataFrame:
    return frame[frame["kind"] == kind]


def test_drift_orders_of_the_previous_date_fill_at_the_open_and_the_books_add_up(scenario):
    ran = scenario(NAME)
    lake = Lake(ran.lake_root)
    papers = {d: lake.read(NAME, "paper", d) for d in ran.dates}
    filled_days = 0
    for prev, d in zip(ran.dates, ran.dates[1:]):
        before, now = papers[prev], papers[d]
        drift = lake.read(NAME, "drift", prev)
        sent = drift[drift["side"] != "none"]
        want = {s: (("buy" if side in ("buy", "buy_to_cover") else "sell"), int(round(q)))
                for s, side, q in zip(sent["symbol"], sent["side"], sent["quantity"]) if round(q) > 0}
        fills = _rows(now, "fill")
        assert (fills["order_date"] == prev.strftime("%Y-%m-%d")).all()  # filled on D, decided on D-1
        assert {s: (side, int(q)) for s, side, q in zip(fills["symbol"], fills["side"], fills["quantity"])} == want
        opens = lake.read(NAME, "prices", d).set_index("symbol")["open"]
        slipped = (fills["price"].to_numpy() - opens.reindex(fills["symbol"]).to_numpy()) * \
            np.where(fills["side"] == "buy", 1, -1)
        ok = np.isclose(slipped, 0.0, atol=1e-6) | np.isclose(slipped, 0.01, atol=1e-6)  # prices in 6 decimals
        assert ok.all(), slipped  # the open, or one tick worse
        assert np.allclose(fills["reference"], sent.set_index("symbol")["price"].reindex(fills["symbol"]))
        filled_days += bool(len(fills))
        held = dict(zip(_rows(before, "position")["symbol"], _rows(before, "position")["quantity"]))
        for s, side, q in zip(fills["symbol"], fills["side"], fills["quantity"]):
            held[s] = held.get(s, 0.0) + (q if side == "buy" else -q)
        assert {s: q for s, q in held.items() if q} == dict(zip(_rows(now, "position")["symbol"],
                                                                  _rows(now, "position")["quantity"]))
        sign = np.where(fills["side"] == "buy", 1.0, -1.0)
        cash = _rows(before, "account")["cash"].iloc[0] - float((sign * fills["quantity"] * fills["price"]).sum()
                                                               + fills["commission"].sum())
        acc = _rows(now, "account").iloc[0]
        assert acc["cash"] == pytest.approx(cash)
        pos = _rows(now, "position")
        assert acc["equity"] == pytest.approx(acc["cash"] + float((pos["quantity"] * pos["price"]).sum()))
        assert acc["pnl"] == pytest.approx(acc["equity"] - _rows(before, "account")["equity"].iloc[0])
        board = lake.read(NAME, "backtest", d).set_index("candidate")
        assert acc["backtest_return"] == pytest.approx(board.loc[acc["candidate"], "day_return"])
    assert filled_days >= 3
    # the implementation shortfall vs the backtest stays small: same orders, a night later, whole units
    gaps = [abs(_rows(papers[d], "account")["return_shortfall"].iloc[0]) for d in ran.dates[2:]]
    assert max(gaps) < 0.003, gaps


def test_the_ledger_seals_the_account_and_the_suggestion_is_written_not_applied(scenario):
    ran = scenario(NAME)
    lake = Lake(ran.lake_root)
    ledger = Ledger(lake.ledger_path(NAME))
    assert ledger.verify().ok
    for d in ran.dates[1:]:
        stage = latest_entry(ledger, d)["payload"]["stages"]["paper"]
        assert stage["output"] == lake.read_with_hash(NAME, "paper", d, verify=True)[1]
        prev = previous_dates(ran.manifest, d, 1)[0].strftime("%Y-%m-%d")
        assert stage["inputs"]["drift"]["dates"] == prev and stage["inputs"]["paper"]["dates"] == prev
    body = json.loads((lake.manifest_dir(NAME) / SLIPPAGE_FILE).read_text())
    last = lake.read(NAME, "paper", ran.dates[-1])
    learned = _rows(last, "slippage").set_index("asset_class")
    assert body["as_of"] == ran.dates[-1].strftime("%Y-%m-%d")
    assert body["classes"]["default"]["suggested_slippage_bps"] == pytest.approx(learned.loc["default",
                                                                                             "estimate_bps"], abs=1e-4)
    assert body["classes"]["default"]["fills"] == int(sum(len(_rows(lake.read(NAME, "paper", d), "fill"))
                                                          for d in ran.dates))
    assert learned.loc["default", "estimate_bps"] != 5.0  # moved off the manifest's prior by the paper fills
    assert ran.manifest.backtest.costs.slippage_bps == 5.0 and "slippage_bps: 5.0" in ran.path.read_text()
    rec = ran.instance.fetch_materializations(AssetKey([NAME, "paper"]), limit=50).records
    md = {r.partition_key: r.asset_materialization.metadata for r in rec}
    key = ran.dates[-1].strftime("%Y-%m-%d")
    assert md[key]["suggested_slippage_bps"].value == {"default": pytest.approx(learned.loc["default",
                                                                                           "estimate_bps"])}
    assert md[key]["slippage_file"].value.endswith(SLIPPAGE_FILE)
    assert md[key]["fills"].value == len(_rows(last, "fill")) and "equity" in md[key]["summary"].value


def test_the_tearsheet_reports_the_shortfall_against_the_backtest(scenario):
    from tvquant_assets.report.tearsheet import build_report

    ran = scenario(NAME)
    d = ran.dates[-2]
    result = build_report(ran.path, d, lake=Lake(ran.lake_root))
    assert "paper" in result.sections
    page = open(result.path, encoding="utf-8").read()
    assert f"Paper account on {d.date()}" in page and "vs backtest since start" in page
    assert "suggested slippage default" in page and "paper_slippage.json" in page
    fills = _rows(Lake(ran.lake_root).read(NAME, "paper", d), "fill")
    section = page[page.index('id="paper"'):page.index("</section>", page.index('id="paper"'))]
    assert all(s in section for s in fills["symbol"])


def test_paper_of_d_ignores_every_bar_after_d_and_follows_d_own_open(scenario, tmp_path):
    """No look-ahead: with every price after D's session and every later drift order rescaled, paper(D)
    recomputes to the same hash, alone and in a range; a change of D's own open changes it."""
    ran = scenario(NAME)
    shutil.copytree(Lake(ran.lake_root).manifest_dir(NAME), tmp_path / NAME)
    lake = Lake(str(tmp_path))
    d = ran.dates[5]
    stored = lake.read_with_hash(NAME, "paper", d, verify=True)[1]
    for later in [x for x in ran.dates if x > d]:
        prices = lake.read(NAME, "prices", later).copy()
        for col in ("open", "high", "low", "close"):
            prices[col] = prices[col] * 1.7
        lake.write(NAME, "prices", later, prices)
    for later in [x for x in ran.dates if x >= d]:
        drift = lake.read(NAME, "drift", later).copy()
        drift["quantity"] = drift["quantity"] * 3.0
        lake.write(NAME, "drift", later, drift)
    ctx = RunContext(ran.manifest, lake)
    assert df_hash(run_stage(ctx, "paper", [d]).frames[d].reset_index(drop=True)) == stored
    ranged = run_stage(RunContext(ran.manifest, lake), "paper", ran.dates[3:6])
    assert df_hash(ranged.frames[d].reset_index(drop=True)) == stored
    for gone in ran.dates[2:5]:  # no paper(D-1) in the lake: the account is rebuilt from the last one stored
        (tmp_path / NAME / "paper" / f"{gone:%Y-%m-%d}.parquet").unlink()
    rebuilt = run_stage(RunContext(ran.manifest, Lake(str(tmp_path))), "paper", [d])
    assert df_hash(rebuilt.frames[d].reset_index(drop=True)) == stored
    own = lake.read(NAME, "prices", d).copy()
    own["open"] = own["open"] * 1.01
    lake.write(NAME, "prices", d, own)
    moved = run_stage(RunContext(ran.manifest, lake), "paper", [d]).frames[d].reset_index(drop=True)
    assert df_hash(moved) != stored
