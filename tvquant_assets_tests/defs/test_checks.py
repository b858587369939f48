"""Data-quality checks: each passes on clean real data and fails on its planted fault; blocking checks
stop downstream steps of a real Dagster run."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from tvquant_assets import quality
from tvquant_assets.calendar import manifest_dates
from tvquant_assets.defs.checks import CHECKS, evaluate
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest
from tvquant_assets.runner import materialize_range
from tvquant_assets.stages import Stage
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.plan import run_one_shot
from tvquant_assets_tests import faults

ROOT = Path(__file__).resolve().parents[2]
START, END = "2020-03-02", "2020-03-06"


def write_manifest(directory: Path, name: str, backtest_start: str = START) -> Path:
    text = (ROOT / "manifests" / "sp500_demo.yaml").read_text()
    text = text.replace("name: sp500_demo", f"name: {name}").replace("start: 2019-01-02", f"start: {backtest_start}")
    path = directory / f"{name}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("checks")
    manifest = load_manifest(write_manifest(tmp, "sp500_checks"))
    lake = Lake(tmp / "lake")
    run_one_shot(RunContext(manifest, lake), manifest_dates(manifest, START, END))
    return manifest, lake, manifest_dates(manifest, START, END)


def frames(lake, m, stage, dates):
    return {d: f.copy() for d, (f, _) in lake.read_many(m.name, stage.value, dates).items()}


def test_every_check_passes_on_clean_real_data(clean):
    manifest, lake, dates = clean
    for name in CHECKS:
        report = evaluate(manifest, lake, name, dates)
        assert report.passed, report.summary()
        assert report.checked == len(dates)


def test_price_checks_fail_on_each_planted_fault(clean):
    m, lake, dates = clean
    d = dates[2]
    prices, cats = frames(lake, m, Stage.PRICES, dates), frames(lake, m, Stage.CATALOG, dates)
    history = frames(lake, m, Stage.PRICES, manifest_dates(m, "2020-02-10", "2020-02-28"))
    cfg = m.quality

    def planted(mutate):
        p = {k: v.copy() for k, v in prices.items()}
        p[d] = mutate(p[d].copy())
        return p

    def set_close(value, symbol="MSFT"):
        def mutate(f):
            f.loc[f["symbol"] == symbol, "close"] = value
            return f
        return mutate

    nan = quality.check_price_values(planted(set_close(np.nan)))
    assert [(f.date, f.symbol, f.problem) for f in nan.findings] == [(d, "MSFT", "NaN close")]
    assert nan.metadata()["failed_partitions"] == [d.strftime("%Y-%m-%d")]
    assert quality.check_price_values(planted(set_close(0.0))).findings[0].problem == "non-positive close 0"
    assert quality.check_price_values(planted(set_close(-3.0))).findings[0].symbol == "MSFT"

    dup = quality.check_unique_bars(planted(lambda f: pd.concat([f, f.iloc[:1]], ignore_index=True)))
    assert [(x.symbol, x.problem) for x in dup.findings] == [(prices[d]["symbol"].iloc[0], "duplicate bars")]

    def restamp(f):
        f.loc[f["symbol"] == "KO", "date"] = d - pd.Timedelta(days=1)
        return f
    assert quality.check_unique_bars(planted(restamp)).findings[0].problem == "bar stamped with another date"
    # a user's file may stamp bars as text or in the exchange's zone: text compares by value, a zoned stamp
    # never equals the naive partition date
    as_text = quality.check_unique_bars(planted(lambda f: restamp(f).assign(date=f["date"].dt.strftime("%Y-%m-%d"))))
    assert [x.symbol for x in as_text.findings] == ["KO"]
    zoned = quality.check_unique_bars(planted(lambda f: f.assign(date=f["date"].dt.tz_localize("America/New_York"))))
    assert sorted(x.symbol for x in zoned.findings) == sorted(prices[d]["symbol"])

    gap = quality.check_complete(planted(lambda f: f[f["symbol"] != "JPM"]), cats)
    assert [(x.date, x.symbol) for x in gap.findings] == [(d, "JPM")]
    holiday = {k: (v.iloc[:0] if k == d else v) for k, v in prices.items()}  # no bar at all: a holiday
    assert quality.check_complete(holiday, cats).passed

    jump = quality.check_returns(planted(set_close(float(prices[d].set_index("symbol").loc["MSFT", "close"]) * 3)),
                                 history, cfg)
    assert {(x.date, x.symbol) for x in jump.findings} >= {(d, "MSFT")}

    prev = {k: v.copy() for k, v in prices.items()}
    msft = float(history[max(history)].set_index("symbol").loc["MSFT", "close"])
    stale_hist = {k: v.assign(close=np.where(v["symbol"] == "MSFT", msft, v["close"])) for k, v in history.items()}
    for k in prev:
        prev[k].loc[prev[k]["symbol"] == "MSFT", "close"] = msft
    stale = quality.check_fresh(prev, stale_hist, cats, cfg)
    assert {x.symbol for x in stale.findings} == {"MSFT"} and stale.findings[0].problem.startswith("close unchanged")
    assert quality.check_fresh(prices, history, cats, cfg).passed

    stopped_cat = {k: v.copy() for k, v in cats.items()}
    stopped_cat[d].loc[stopped_cat[d]["symbol"] == "GE", "active"] = False
    stopped = quality.check_fresh(prices, history, stopped_cat, cfg)
    assert [(x.date, x.symbol) for x in stopped.findings] == [(d, "GE")]
    assert stopped.findings[0].problem.startswith("stopped reporting")


def test_downstream_checks_fail_on_planted_faults(clean):
    m, lake, dates = clean
    d, cfg = dates[1], m.quality
    sel = frames(lake, m, Stage.SELECTION, dates)
    assert quality.check_selection_size(sel, m.selection.max_symbols, cfg).passed
    sel[d]["selected"] = True  # 20 selected, cap is 12
    assert [x.date for x in quality.check_selection_size(sel, m.selection.max_symbols, cfg).findings] == [d]
    sel[d]["selected"] = False
    assert "fewer than" in quality.check_selection_size(sel, m.selection.max_symbols, cfg).findings[0].problem

    long_cap, short_cap = quality.selection_caps(m)
    assert (long_cap, short_cap) == (m.selection.max_symbols, m.selection.short.max_symbols if
                                     m.selection.short.enabled else 0)

    tour = frames(lake, m, Stage.TOURNAMENT, dates)
    assert quality.check_weights(tour, cfg).passed
    for mutate, needle in [
        (lambda w: w * 1.01, "sum to"),
        (lambda w: np.where(np.arange(len(w)) == 0, np.nan, w), "NaN weight"),
        (lambda w: np.where(np.arange(len(w)) == np.argmax(w), w + 0.5, w - 0.5 / max(1, len(w) - 1)), "above cap"),
    ]:
        bad = {k: v.copy() for k, v in tour.items()}
        f = bad[d]
        rows = (f["candidate"] == "custom/min_variance").to_numpy()
        f.loc[rows, "weight"] = mutate(f.loc[rows, "weight"].to_numpy())
        report = quality.check_weights(bad, cfg)
        assert {x.symbol for x in report.findings} == {"custom/min_variance"}, needle
        assert any(needle in x.problem for x in report.findings), report.summary()

    bt = frames(lake, m, Stage.BACKTEST, dates)
    assert quality.check_equity(bt).passed
    bt[d].loc[0, "equity"] = np.nan
    assert [x.date for x in quality.check_equity(bt).findings] == [d]


def test_blocking_price_check_stops_downstream_in_a_dagster_run(tmp_path, monkeypatch):
    """A NaN close from the source: prices materializes, its blocking check fails, nothing that reads that
    partition runs (no scan from that date on, no ledger entry for it), the dates before it are complete
    and sealed, and the failure names the partition and symbol."""
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    path = write_manifest(tmp_path, "sp500_block", backtest_start="2020-03-02")
    faults.install(monkeypatch, {("MSFT", "2020-03-04"): float("nan")})
    report = materialize_range(path, START, END, lake_root=str(tmp_path / "lake"))
    roots = [f for f in report.failures if f.blocked_by is None]
    assert [(f.stage, f.date) for f in roots] == [("prices", pd.Timestamp("2020-03-04"))]
    assert roots[0].reason == "check price_values failed: MSFT: NaN close"
    lake, m = Lake(tmp_path / "lake"), load_manifest(path)
    assert lake.exists(m.name, "prices", "2020-03-04")
    assert not lake.exists(m.name, "scan", "2020-03-04") and not lake.exists(m.name, "scan", "2020-03-06")
    assert lake.exists(m.name, "audit", "2020-03-03")
    sealed = {e["payload"]["date"] for e in Ledger(lake.ledger_path(m.name)).entries()}
    assert sealed and max(sealed) == "2020-03-03"
    instance = DagsterInstance.get()
    storage = instance.event_log_storage
    key = _check_key(m.name, "price_values")
    # one evaluation per partition of the range: the bad one failed, the others passed, all current
    records = storage.get_asset_check_execution_history(key, limit=100)
    by_partition = {r.partition: r for r in records}
    keys = [d.strftime("%Y-%m-%d") for d in manifest_dates(m, START, END)]
    assert sorted(by_partition) == keys and len(records) == len(keys)
    failed = {p for p, r in by_partition.items() if r.status == AssetCheckExecutionRecordStatus.FAILED}
    assert failed == {"2020-03-04"}
    assert all(r.status == AssetCheckExecutionRecordStatus.SUCCEEDED for p, r in by_partition.items()
               if p != "2020-03-04")
    evaluation = by_partition["2020-03-04"].event.dagster_event.event_specific_data
    assert not evaluation.passed and evaluation.partition == "2020-03-04"
    assert evaluation.metadata["failed_partitions"].value == ["2020-03-04"]
    assert evaluation.metadata["findings"].value == ["2020-03-04 MSFT: NaN close"]
    infos = {i.partition_key: i for i in storage.get_asset_check_partition_info([key])}
    assert sorted(infos) == keys and all(i.is_current for i in infos.values())


def _check_key(manifest: str, name: str):
    from dagster import AssetCheckKey

    return AssetCheckKey(AssetKey([manifest, "prices"]), name)


def test_selection_size_counts_the_long_and_short_books_separately():
    """sp500_demo on 2020-06-03: 11 long + 2 short selected with max_symbols 12 is within both caps (the
    check once counted 13 against the long cap and stopped the demo)."""
    from tvquant_assets.manifest.schema import QualityConfig

    d = pd.Timestamp("2020-06-03")
    frame = pd.DataFrame({"symbol": [f"S{i:02d}" for i in range(16)],
                          "direction": ["long"] * 12 + ["short"] * 4,
                          "selected": [True] * 11 + [False] + [True, True, False, False],
                          "momentum_pct": np.linspace(0, 1, 16)})
    cfg = QualityConfig(min_selected=2)
    assert quality.check_selection_size({d: frame}, 12, cfg, 3).passed
    over_short = frame.assign(selected=[True] * 11 + [False] + [True] * 4)
    assert [f.problem for f in quality.check_selection_size({d: over_short}, 12, cfg, 3).findings] == [
        "4 short symbols selected, more than selection.short.max_symbols 3"]
    over_long = frame.assign(selected=[True] * 12 + [False] * 4)
    assert quality.check_selection_size({d: over_long}, 11, cfg, 3).findings[0].problem.startswith(
        "12 long symbols selected, more than")
    no_long = frame.assign(selected=[False] * 12 + [True, True, False, False])
    problem = quality.check_selection_size({d: no_long}, 12, cfg, 3).findings[0].problem
    assert "fewer than quality.min_selected 2" in problem


def test_the_checks_job_rechecks_one_partition_from_the_lake(clean, tmp_path):
    """``<manifest>_checks`` (the UI's Launchpad path for one partition): a NaN close planted in one price
    file behind the lake's back fails price_values on that partition only, recorded on the check itself; the
    run fails with Dagster's blocking-check error (the retry sensor leaves it to repair); a clean partition
    passes; an unknown check name is refused in one line. Dagster's stock in-memory storage: one event each."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq
    from dagster import AssetCheckKey, DagsterEventType

    from tvquant_assets.defs.recheck import build_checks_job
    from tvquant_assets.defs.resources import LakeResource

    m, lake, dates = clean
    root = tmp_path / "lake"
    shutil.copytree(lake.root.path, root)
    bad, good = dates[2].strftime("%Y-%m-%d"), dates[1].strftime("%Y-%m-%d")
    path = root / m.name / "prices" / f"{bad}.parquet"
    table = pq.read_table(path)
    frame = table.to_pandas()
    frame.loc[frame["symbol"] == "MSFT", "close"] = float("nan")
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False).replace_schema_metadata(table.schema.metadata),
                   path)
    job, instance = build_checks_job(m), DagsterInstance.ephemeral()
    config = {"ops": {f"{m.name}_recheck": {"config": {"checks": ["price_values", "unique_bars"]}}}}
    runs = {key: job.execute_in_process(partition_key=key, instance=instance, run_config=config,
                                        resources={"lake": LakeResource(root=str(root))}, raise_on_error=False)
            for key in (bad, good)}
    assert not runs[bad].success and runs[good].success
    failure = next(e for e in runs[bad].all_events if e.event_type == DagsterEventType.STEP_FAILURE)
    assert failure.step_failure_data.error.cls_name == "DagsterAssetCheckFailedError"
    assert f"Blocking check(s) failed: price_values on {bad}" in failure.step_failure_data.error.message
    for name, statuses in {"price_values": {bad: "FAILED", good: "SUCCEEDED"},
                           "unique_bars": {bad: "SUCCEEDED", good: "SUCCEEDED"}}.items():
        records = instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey([m.name, "prices"]), name), limit=10)
        assert {r.partition: r.status.value for r in records} == statuses, name
    assert instance.event_log_storage.get_asset_check_execution_history(_check_key(m.name, "complete_bars"),
                                                                        limit=10) == []  # not configured
    with pytest.raises(Exception, match="checks: unknown nosuch; known: price_values"):
        job.execute_in_process(partition_key=good, instance=instance, resources={"lake": LakeResource(root=str(root))},
                               run_config={"ops": {f"{m.name}_recheck": {"config": {"checks": ["nosuch"]}}}})
