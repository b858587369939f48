"""Execution feedback through the pipeline on the small real lake: nautilus fills with a planted one-tick
slippage move the slippage estimate the backtest charges; the record of D is point in time (a range run and a
single-date run agree) and disabled changes nothing."""

import shutil

import pandas as pd
import pytest

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake import Lake
from tvquant_assets.stages import Stage
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import run_stage


def _with_feedback(manifest, **feedback):
    data = manifest.model_dump()
    data["backtest"]["execution_feedback"] = feedback
    return type(manifest).model_validate(data)


@pytest.fixture(scope="module")
def fed(small_lake, tmp_path_factory):
    lake_root = tmp_path_factory.mktemp("feedback") / "lake"
    shutil.copytree(small_lake["lake_root"], lake_root)
    m = _with_feedback(small_lake["manifest"], enabled=True, min_fills=1, halflife=1.0,
                       fill_model={"prob_slippage": 1.0, "random_seed": 7})
    dates = manifest_dates(m, small_lake["start"], small_lake["end"])
    pipe = RunContext(m, Lake(lake_root))
    return {"pipe": pipe, "dates": dates, "range": run_stage(pipe, Stage.BACKTEST, dates), "lake": small_lake}


def test_planted_slippage_moves_the_charged_estimate(fed):
    res, dates = fed["range"], fed["dates"]
    prior = fed["pipe"].manifest.backtest.costs.slippage_bps
    recs = [res.metadata[d]["execution_feedback"]["default"] for d in dates]
    first = next(r for r in recs if r["fills"])
    assert first["slippage_bps_before"] == prior
    # one tick (0.01) on S&P prices is well under 5 bps: the estimate falls, within (0, prior)
    assert 0.0 < first["slippage_bps_after"] < prior
    assert recs[-1]["fills_total"] == sum(r["fills"] for r in recs) > 0
    assert "execution feedback default: slippage" in res.notes[dates[-1]]
    # the backtest charged less than the manifest's fixed rate once the estimate moved
    plain = Lake(fed["lake"]["lake_root"]).read(fed["pipe"].name, "backtest", dates[-1])
    got = res.frames[dates[-1]]
    assert (got.set_index("candidate")["costs"] <= plain.set_index("candidate")["costs"] + 1e-15).all()
    assert (got["costs"] < plain["costs"].max()).any()


def test_record_and_frame_of_d_are_point_in_time(fed):
    d = fed["dates"][len(fed["dates"]) // 2]
    one = run_stage(fed["pipe"], Stage.BACKTEST, [d])
    assert one.metadata[d] == fed["range"].metadata[d]
    assert df_hash(one.frames[d]) == df_hash(fed["range"].frames[d])


def test_disabled_changes_nothing(small_lake):
    m = _with_feedback(small_lake["manifest"], enabled=False, fill_model={"prob_slippage": 1.0})
    d = pd.Timestamp(small_lake["end"])
    res = run_stage(RunContext(m, Lake(small_lake["lake_root"])), Stage.BACKTEST, [d])
    assert res.metadata == {} and df_hash(res.frames[d]) == Lake(small_lake["lake_root"]).read_with_hash(
        m.name, "backtest", d)[1]


def test_drift_orders_are_priced_with_the_calibrated_rate(fed):
    d = fed["dates"][-1]
    res = run_stage(fed["pipe"], Stage.DRIFT, [d])
    frame = res.frames[d]
    assert {"cost", "cluster", "execution_rank"} <= set(frame.columns)
    est = fed["range"].metadata[d]["execution_feedback"]["default"]["slippage_bps_after"]
    rate = fed["pipe"].manifest.backtest.costs.commission_bps + est
    traded = frame[frame["notional"] > 0]
    assert len(traded) and traded["cost"].to_numpy() == pytest.approx(traded["notional"].to_numpy() * rate / 1e4,
                                                                     rel=1e-6)  # the record rounds to 1e-6 bps
