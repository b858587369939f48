"""A real PostgreSQL 15 instance: a 20-partition backfill as 4 concurrent runs (separate processes, like a
UI backfill split in 4), then every asset-partition is materialized exactly once, every check passed and
the ledger verifies."""

import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from dagster import AssetKey, DagsterInstance
from dagster._core.instance.config import dagster_instance_config

from tvquant_assets.calendar import manifest_dates
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import load_manifest
from tvquant_assets.stages import STAGES
from tvquant_assets_tests.postgres import instance_yaml, postgres_server

ROOT = Path(__file__).resolve().parents[2]
START, END, RUNS = "2020-03-02", "2020-03-27", 4
PASSWORD_ENV = "TVQUANT_TEST_PG_PASSWORD"

QUEUE_YAML = """run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 4
"""


def write_manifest(directory: Path) -> Path:
    """The demo with two candidates, rebalancing daily and starting its backtest later: the four runs
    share no partition (history they read and the lake lacks comes from the source)."""
    text = (ROOT / "manifests" / "sp500_demo.yaml").read_text()
    text = text.replace("name: sp500_demo", "name: sp500_pg").replace("start: 2019-01-02", "start: 2021-01-04")
    text = text.replace("  rule: monthly", "  rule: every_k_days\n  every_k_days: 1")
    text = text.replace("    - {engine: custom, profile: max_sharpe}\n    - {engine: skfolio, profile: hrp}\n", "")
    path = directory / "sp500_pg.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def pg_home(tmp_path_factory):
    with postgres_server() as (host, port, user, db):
        home = tmp_path_factory.mktemp("pg_home")
        (home / "dagster.yaml").write_text(instance_yaml(host, port, user, db, PASSWORD_ENV, QUEUE_YAML))
        yield home


def _run(args) -> tuple[str, bool, str]:
    """One range run in a child process against the shared Postgres instance and lake."""
    manifest_path, lake_root, first, last = args
    from dagster import materialize

    from tvquant_assets.defs.checks import build_manifest_checks
    from tvquant_assets.defs.factory import IO_MANAGER_KEY, build_manifest_assets
    from tvquant_assets.defs.io_manager import LakeIOManagerFactory
    from tvquant_assets.defs.resources import LakeResource
    from tvquant_assets.runner import QUIET

    manifest = load_manifest(manifest_path)
    with DagsterInstance.get() as instance:
        result = materialize(
            [*build_manifest_assets(manifest, manifest_path), *build_manifest_checks(manifest)],
            instance=instance, run_config=QUIET, raise_on_error=False,
            resources={IO_MANAGER_KEY: LakeIOManagerFactory(root=lake_root), "lake": LakeResource(root=lake_root)},
            tags={"dagster/asset_partition_range_start": first, "dagster/asset_partition_range_end": last},
        )
        errors = [e.message for e in result.all_events if e.is_step_failure]
        return result.run_id, result.success, "; ".join(errors)


def test_postgres_instance_config_validates(pg_home, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "")
    config, _ = dagster_instance_config(str(pg_home))
    assert "postgres" in config["storage"]


def test_backfill_as_four_concurrent_runs_on_postgres(pg_home, tmp_path, monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "")  # trust auth; the password still comes from the environment
    monkeypatch.setenv("DAGSTER_HOME", str(pg_home))
    monkeypatch.setenv("DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS", "1")
    path = write_manifest(tmp_path)
    m, lake_root = load_manifest(path), str(tmp_path / "lake")
    keys = [d.strftime("%Y-%m-%d") for d in manifest_dates(m, START, END)]
    assert len(keys) == 20
    with DagsterInstance.get() as instance:  # creates the schema once, before the runs race
        from dagster_postgres import PostgresEventLogStorage

        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
    chunks = [keys[i * 5:(i + 1) * 5] for i in range(RUNS)]
    ctx = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(RUNS, mp_context=ctx) as pool:
        results = list(pool.map(_run, [(path, lake_root, c[0], c[-1]) for c in chunks]))
    assert [ok for _, ok, _ in results] == [True] * RUNS, [err for *_, err in results]
    instance = DagsterInstance.get()
    run_ids = {run_id for run_id, _, _ in results}
    for stage in STAGES:
        records = instance.fetch_materializations(AssetKey([m.name, stage.value]), limit=1000).records
        counts = Counter(r.partition_key for r in records)
        assert counts == Counter(keys), stage  # each partition exactly once
        assert {r.run_id for r in records} == run_ids
    for key in _check_keys(m.name):
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=100)
        evaluated = [r for r in history if r.status.value != "PLANNED"]  # Dagster plans one row per partition
        assert {r.run_id for r in evaluated} == run_ids, key  # one evaluation per partition, in every run
        assert {r.status.value for r in evaluated} == {"SUCCEEDED"}, key
    ledger = Ledger(str(Lake(lake_root).ledger_path(m.name)))
    report = ledger.verify()
    assert report.ok and report.n_entries == 20, report
    assert sorted(e["payload"]["date"] for e in ledger.entries()) == keys
    assert os.environ["DAGSTER_HOME"] == str(pg_home)


def _check_keys(manifest: str):
    from dagster import AssetCheckKey

    from tvquant_assets.defs.checks import CHECKS

    return [AssetCheckKey(AssetKey([manifest, stage.value]), name) for name, (stage, *_) in CHECKS.items()]
