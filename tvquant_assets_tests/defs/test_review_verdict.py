"""The monthly tournament review through real Dagster: the review schedule's request, run as the
``<manifest>_tournament_review`` job, writes the verdict of each third-party candidate against its custom
counterpart for the month before, on the bundled S&P data over the COVID crash."""

import datetime as dt
import zoneinfo
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance, build_schedule_context

from tvquant_assets.definitions import build_definitions
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import load_manifest
from tvquant_assets.report.tearsheet import build_report
from tvquant_assets.runner import materialize_range
from tvquant_assets.stages.verdict import pairs_of

ROOT = Path(__file__).resolve().parents[2]
START, END = "2020-02-24", "2020-03-31"


def test_review_job_writes_the_month_verdict(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    text = (ROOT / "manifests" / "sp500_demo.yaml").read_text()
    text = (text.replace("name: sp500_demo", "name: sp500_review").replace("start: 2019-01-02", f"start: {START}")
            .replace("    - {engine: custom, profile: min_variance}\n    - {engine: custom, profile: max_sharpe}\n",
                     "    - {engine: custom, profile: hrp}\n"))
    path = tmp_path / "sp500_review.yaml"
    path.write_text(text)
    m = load_manifest(path)
    assert pairs_of(m)[0] == {"skfolio/hrp": "custom/hrp"}
    lake_root = tmp_path / "lake"
    materialize_range(path, START, END, lake_root=str(lake_root))

    monkeypatch.setenv("TVQUANT_LAKE", str(lake_root))
    defs = build_definitions([path])
    review = defs.resolve_schedule_def(f"{m.name}_monthly_review")
    when = dt.datetime(2020, 4, 1, 19, 0, tzinfo=zoneinfo.ZoneInfo("America/New_York"))
    with build_schedule_context(scheduled_execution_time=when, repository_def=defs.get_repository_def()) as ctx:
        (request,) = review.evaluate_tick(ctx).run_requests
    job = defs.resolve_job_def(f"{m.name}_tournament_review")
    instance = DagsterInstance.get()
    result = job.execute_in_process(instance=instance, tags=request.tags, raise_on_error=False)
    assert result.success

    lake = Lake(lake_root)
    frame = lake.read(m.name, "verdict", pd.Timestamp(END)).set_index("window")
    assert set(frame["candidate"]) == {"skfolio/hrp"} and set(frame["counterpart"]) == {"custom/hrp"}
    assert frame.loc["month", "n_days"] == 22  # every trading day of March 2020
    assert set(frame["verdict"]) <= {"better", "worse", "no difference"}
    # the Sharpe ratios are the backtest's own daily returns over the window
    days = pd.bdate_range("2020-03-02", END)
    board = {d: lake.read(m.name, "backtest", d).set_index("candidate")["day_return"] for d in days
             if lake.exists(m.name, "backtest", d)}
    r = pd.DataFrame(board).T
    for cand, col in (("skfolio/hrp", "sharpe"), ("custom/hrp", "counterpart_sharpe")):
        x = r[cand].to_numpy()
        assert frame.loc["month", col] == pytest.approx(x.mean() / x.std(ddof=1) * np.sqrt(252), rel=1e-12)
    event = instance.get_latest_materialization_event(AssetKey([m.name, "verdict"]))
    md = event.asset_materialization.metadata
    assert md["verdict_12m skfolio/hrp"].value == frame.loc["12m", "verdict"]
    assert "Engines vs custom" in md["summary"].value
    page = Path(build_report(path, END, lake=lake).path).read_text()
    assert 'id="verdict"' in page and frame.loc["12m", "verdict"] in page
