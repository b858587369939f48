"""The files source end to end through Dagster: the shipped example (bundled S&P 500 closes exported to a
CSV), dates appended to the file picked up by ``tvquant run`` and the daily schedule, and an edited
historical row caught by the ``source_unchanged`` check while the lake keeps the bars decisions used."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetCheckKey, AssetKey, DagsterInstance, RunRequest, SkipReason, build_schedule_context

from tvquant_assets import cli
from tvquant_assets.defs.schedules import build_daily_schedule
from tvquant_assets.hashing import df_hash
from tvquant_assets.lake import Lake
from tvquant_assets.manifest import load_manifest
from tvquant_assets.sources.benchmark import sp500_index
from tvquant_assets.sources.files import FilesSource

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "files"
SYMBOLS = ["AAPL", "BAC", "CVX", "HD", "JNJ", "JPM", "KO", "MSFT", "PFE", "PG", "WMT", "XOM"]


def _example_copy(tmp_path: Path, until: str) -> tuple[Path, pd.DataFrame]:
    folder = tmp_path / "data"
    folder.mkdir()
    shutil.copy(EXAMPLE / "catalog.csv", folder / "catalog.csv")
    text = (EXAMPLE / "files_example.yaml").read_text().replace("name: files_example", "name: files_e2e")
    text = text.replace("    - {engine: custom, profile: equal_weight}\n", "")
    path = folder / "files_e2e.yaml"
    path.write_text(text)
    full = pd.read_csv(EXAMPLE / "prices.csv")
    full[full["date"] <= until].to_csv(folder / "prices.csv", index=False, lineterminator="\n")
    return path, full


def _run(path: Path, lake: Path, capsys) -> dict:
    assert cli.main(["run", "--manifest", str(path), "--lake", str(lake), "--no-report", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_appended_dates_run_and_an_edited_row_fails_the_check(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TVQUANT_LAKE", str(tmp_path / "lake"))
    path, full = _example_copy(tmp_path, "2019-01-03")
    lake = Lake(tmp_path / "lake")
    _run(path, tmp_path / "lake", capsys)
    assert lake.partitions("files_e2e", "audit")[-1] == pd.Timestamp("2019-01-03")
    written = lake.read("files_e2e", "prices", "2019-01-03").set_index("symbol")["close"]
    assert written["MSFT"] == full.query("date == '2019-01-03' and symbol == 'MSFT'")["close"].item()

    manifest = load_manifest(path)
    schedule = build_daily_schedule(manifest)
    tick = dt.datetime(2019, 1, 7, 17, 30, tzinfo=dt.timezone(dt.timedelta(hours=-5)))
    assert isinstance(schedule(build_schedule_context(scheduled_execution_time=tick)), SkipReason)

    # append two dates and edit an old row
    prices = full[full["date"] <= "2019-01-07"].copy()
    edited = (prices["date"] == "2019-01-03") & (prices["symbol"] == "MSFT")
    prices.loc[edited, "close"] *= 1.01
    prices.to_csv(path.parent / "prices.csv", index=False, lineterminator="\n")
    request = schedule(build_schedule_context(scheduled_execution_time=tick))
    assert isinstance(request, RunRequest)
    assert (request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]) \
        == ("2019-01-04", "2019-01-07")

    _run(path, tmp_path / "lake", capsys)
    assert lake.partitions("files_e2e", "audit")[-2:] == [pd.Timestamp("2019-01-04"), pd.Timestamp("2019-01-07")]
    assert lake.read("files_e2e", "prices", "2019-01-03").set_index("symbol")["close"]["MSFT"] == written["MSFT"]
    record = DagsterInstance.get().event_log_storage.get_asset_check_execution_history(
        AssetCheckKey(AssetKey(["files_e2e", "prices"]), "source_unchanged"), limit=1)[0]
    evaluation = record.event.dagster_event.event_specific_data
    assert not evaluation.passed
    assert evaluation.metadata["failed_partitions"].value == ["2019-01-03"]
    assert "MSFT" in evaluation.metadata["findings"].value[0]
    assert isinstance(schedule(build_schedule_context(scheduled_execution_time=tick)), SkipReason)  # up to date

    # measured against skfolio's S&P 500 index, point in time
    board = lake.read("files_e2e", "backtest", "2019-01-07")
    index = sp500_index()
    assert board["bench_equity"].iloc[0] == pytest.approx(index["2019-01-07"] / index["2019-01-02"], rel=1e-12)
    assert board[["excess_return", "beta", "information_ratio"]].notna().all().all()

    # the lake exported as a file a files source reads back to the same bars
    out = tmp_path / "export" / "prices.parquet"
    assert cli.main(["lake", "export", "--manifest", str(path), "--lake", str(tmp_path / "lake"), "--stage", "prices",
                     "--format", "parquet", "--out", str(out)]) == 0
    back = FilesSource(str(out), catalog=str(out.parent / "catalog.csv"))
    d = pd.Timestamp("2019-01-04")
    assert df_hash(back.history(SYMBOLS, d, d)) == df_hash(lake.read("files_e2e", "prices", d))
    assert back.catalog().set_index("symbol").loc["MSFT", "sector"] == "Information Technology"


def test_a_bad_file_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "home"))
    path, full = _example_copy(tmp_path, "2019-01-04")
    bad = full[full["date"] <= "2019-01-04"].copy()
    bad.loc[bad.index[40], "close"] = 0.0
    bad.to_csv(path.parent / "prices.csv", index=False, lineterminator="\n")
    code = cli.main(["backfill", "--manifest", str(path), "--lake", str(tmp_path / "lake"), "--start", "2019-01-02",
                     "--end", "2019-01-04", "--no-report", "--json"])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("tvquant: error")]
    assert code == 2 and len(errors) == 1  # (Dagster's own log lines aside)
    assert errors[0].endswith(f"{path.parent / 'prices.csv'} line 42, column close: 0 is not positive")
    lake = Lake(tmp_path / "lake")
    assert all(not lake.partitions("files_e2e", s) for s in ("catalog", "prices", "audit"))
