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
