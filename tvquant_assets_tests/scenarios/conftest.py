"""The scenario suite's shared setup: one ephemeral Dagster instance and one lake for the whole session;
each scenario manifest is materialized once (on first use) over the same short range, which holds the
February-March 2020 crash (a stress period for both the bundled and the synthetic market)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.manifest import Manifest, load_manifest

HERE = Path(__file__).resolve().parent
START, END = "2020-03-02", "2020-03-13"
TODAY_SCENARIO = "sc_last_partition_today"


@dataclass
class Ran:
    name: str
    path: Path
    manifest: Manifest
    report: object  # runner.RangeReport
    lake_root: str
    instance: object
    dates: list[pd.Timestamp]


def today_manifest(directory: Path) -> Path:
    """The today scenario with its source ending today and its partitions starting 15 days before."""
    today = dt.date.today()
    text = (HERE / f"{TODAY_SCENARIO}.yaml").read_text()
    text = text.replace("end: 2026-12-01", f"end: {today}").replace("start: 2024-01-01",
                                                                   f"start: {today - dt.timedelta(days=730)}")
    text = text.replace("start: 2026-11-16", f"start: {today - dt.timedelta(days=15)}")
    path = directory / f"{TODAY_SCENARIO}.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def scenario(tmp_path_factory):
    """``scenario(name) -> Ran``: the scenario materialized through Dagster (cached for the session)."""
    from dagster import DagsterInstance

    from tvquant_assets.runner import materialize_range

    lake = tmp_path_factory.mktemp("scenario_lake")
    instance = DagsterInstance.ephemeral()
    cache: dict[str, Ran] = {}

    def run(name: str) -> Ran:
        if name not in cache:
            if name == TODAY_SCENARIO:
                path = today_manifest(tmp_path_factory.mktemp("today"))
                m = load_manifest(path)
                start, end = str(m.start), str(dt.date.today())
            else:
                path, start, end = HERE / f"{name}.yaml", START, END
                m = load_manifest(path)
            report = materialize_range(path, start, end, lake_root=str(lake), instance=instance)
            cache[name] = Ran(name, path, m, report, str(lake), instance,
                              manifest_dates(m, report.start, report.end))
        return cache[name]

    return run


def assert_complete_checked_sealed_replayed(ran: Ran) -> None:
    """What every scenario asserts: every asset-partition materialized (lake and instance), every check run
    passed, the ledger verifies and holds every date, and ``audit replay`` of the middle date matches."""
    from dagster import AssetCheckKey, AssetKey
    from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

    from tvquant_assets.defs.checks import CHECKS
    from tvquant_assets.lake import Lake
    from tvquant_assets.lake.ledger import Ledger
    from tvquant_assets.replay import replay
    from tvquant_assets.stages import assets_of

    assert ran.report.failures == [], [f.line() for f in ran.report.failures[:5]]
    lake = Lake(ran.lake_root)
    keys = {d.strftime("%Y-%m-%d") for d in ran.dates}
    for stage in assets_of(ran.manifest):  # opt-in stages (the paper account) when the manifest enables them
        assert all(lake.exists(ran.name, stage, d) for d in ran.dates), stage
        assert keys <= ran.instance.get_materialized_partitions(AssetKey([ran.name, stage])), stage
    for check, (stage, _, _) in CHECKS.items():
        records = ran.instance.event_log_storage.get_asset_check_execution_history(
            AssetCheckKey(AssetKey([ran.name, stage.value]), check), limit=20)
        done = [r for r in records if r.status != AssetCheckExecutionRecordStatus.PLANNED]
        assert done and all(r.status == AssetCheckExecutionRecordStatus.SUCCEEDED for r in done), check
    ledger = Ledger(lake.ledger_path(ran.name))
    assert ledger.verify().ok
    assert {e["payload"]["date"] for e in ledger.entries()} >= keys
    middle = ran.dates[len(ran.dates) // 2]
    report = replay(ran.manifest, ran.lake_root, middle)
    assert report.ok, [(s.stage, s.problems) for s in report.failed]
