"""The batched SQLite event log stores what Dagster's stock SQLite event log stores, for a range run of two
partitioned assets (materializations with per-partition metadata and tags) on a real instance each."""

import sqlite3
from pathlib import Path

import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    BackfillPolicy,
    DagsterInstance,
    DailyPartitionsDefinition,
    asset,
    materialize,
)

PARTITIONS = DailyPartitionsDefinition(start_date="2024-01-01")


@asset(partitions_def=PARTITIONS, backfill_policy=BackfillPolicy.single_run())
def first(context: AssetExecutionContext) -> None:
    for key in context.partition_keys:
        context.add_asset_metadata({"rows": int(key[-2:]), "hash": f"h{key}"}, partition_key=key)


@asset(deps=[first], partitions_def=PARTITIONS, backfill_policy=BackfillPolicy.single_run())
def second(context: AssetExecutionContext) -> None:
    for key in context.partition_keys:
        context.add_asset_metadata({"rows": 2 * int(key[-2:])}, partition_key=key)


def _instance(home: Path, batched: bool) -> DagsterInstance:
    home.mkdir()
    storage = ("event_log_storage:\n  module: tvquant_assets.defs.storage\n  class: BatchedSqliteEventLogStorage\n"
               if batched else
               "event_log_storage:\n  module: dagster._core.storage.event_log\n  class: SqliteEventLogStorage\n"
               f"  config:\n    base_dir: {home}/history/runs\n")
    (home / "dagster.yaml").write_text(storage)
    return DagsterInstance.from_config(str(home))


def _index_rows(home: Path) -> dict:
    db = sqlite3.connect(home / "history" / "runs" / "index.db")
    try:
        events = db.execute("SELECT dagster_event_type, asset_key, partition FROM event_logs ORDER BY id").fetchall()
        # tag values are data versions derived from run ids and timestamps: compare which tags exist
        tags = sorted(db.execute("SELECT asset_key, key FROM asset_event_tags").fetchall())
        keys = sorted(db.execute("SELECT asset_key FROM asset_keys").fetchall())
    finally:
        db.close()
    return {"events": events, "tags": tags, "keys": keys}


@pytest.mark.parametrize("batch_size", ["3"])
def test_batched_storage_writes_what_the_stock_storage_writes(tmp_path, monkeypatch, batch_size):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)  # 5 partitions: batches of 3 and 2
    tags = {"dagster/asset_partition_range_start": "2024-01-01", "dagster/asset_partition_range_end": "2024-01-05"}
    seen = {}
    for batched in (False, True):
        home = tmp_path / ("batched" if batched else "stock")
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        with _instance(home, batched) as instance:
            if batched:
                assert type(instance.event_log_storage).__name__ == "BatchedSqliteEventLogStorage"
            assert materialize([first, second], instance=instance, tags=tags).success
            latest = {k: instance.get_latest_materialization_event(AssetKey(k)) for k in ("first", "second")}
            seen[batched] = {
                "index": _index_rows(home),
                "partitions": {k: sorted(instance.get_materialized_partitions(AssetKey(k))) for k in latest},
                "latest": {k: (e.asset_materialization.partition, dict(e.asset_materialization.metadata))
                           for k, e in latest.items()},
                "run_events": sorted(e.dagster_event_type for e in instance.all_logs(instance.get_runs()[0].run_id)
                                     if e.is_dagster_event),
            }
    assert seen[True]["partitions"]["first"] == [f"2024-01-0{i}" for i in range(1, 6)]
    assert seen[True]["latest"]["second"][0] == "2024-01-05"
    assert seen[True] == seen[False]
