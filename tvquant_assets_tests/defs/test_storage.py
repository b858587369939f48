"""The batched SQLite event log stores what Dagster's stock SQLite event log stores, for range runs of
partitioned assets (materializations with per-partition metadata and tags) and of a partitioned asset check
(planned, passed and failed evaluations per partition), on a real instance each."""

import sqlite3
from pathlib import Path

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetExecutionContext,
    AssetKey,
    AssetRecordsFilter,
    BackfillPolicy,
    DagsterEventType,
    DagsterInstance,
    DailyPartitionsDefinition,
    Output,
    asset,
    asset_check,
    materialize,
)
from dagster._core.definitions.asset_checks.asset_check_evaluation import AssetCheckEvaluationTargetMaterializationData
from dagster_shared.serdes import deserialize_value

from tvquant_assets.defs.checks import batched_checks, latest_materializations, log_passed

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


RANGE_TAGS = {"dagster/asset_partition_range_start": "2024-01-01",
              "dagster/asset_partition_range_end": "2024-01-05"}


def _homes(tmp_path, monkeypatch):
    """The stock storage's DAGSTER_HOME, then the batched one's (each set as DAGSTER_HOME in turn)."""
    for batched in (False, True):
        home = tmp_path / ("batched" if batched else "stock")
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        yield batched, home


@pytest.mark.parametrize("batch_size", ["3"])
def test_batched_storage_writes_what_the_stock_storage_writes(tmp_path, monkeypatch, batch_size):
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", batch_size)  # 5 partitions: batches of 3 and 2
    tags = RANGE_TAGS
    seen = {}
    for batched, home in _homes(tmp_path, monkeypatch):
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


@asset_check(asset=first, partitions_def=PARTITIONS, blocking=False)
def rows_even(context: AssetCheckExecutionContext):
    """Passes on every partition but the 3rd: passed evaluations go through ``log_passed`` as one batch on the
    batched storage (as the tvquant checks do), failed ones through Dagster; the stock storage gets all one by
    one."""
    op = context.op_execution_context
    keys = sorted(op.partition_keys)
    targets = latest_materializations(context.instance, first.key, keys)
    evaluations = [AssetCheckEvaluation(asset_key=first.key, check_name="rows_even", passed=key != "2024-01-03",
                                        partition=key, metadata={"rows": int(key[-2:])}, description=f"d {key}",
                                        target_materialization_data=targets.get(key))
                   for key in keys]
    if batched_checks(context.instance):
        log_passed(op, [e for e in evaluations if e.passed])
        yield from (e for e in evaluations if not e.passed)
    else:
        yield from evaluations
    yield Output(None)


def _check_rows(home: Path) -> list:
    """Every check-execution row, with the events it names as (type, partition, run) instead of raw ids (the
    batched storage stores a run's passed evaluations before its failed one)."""
    db = sqlite3.connect(home / "history" / "runs" / "index.db")
    try:
        events = {i: (t, p, r) for i, t, p, r in db.execute(
            "SELECT id, dagster_event_type, partition, run_id FROM event_logs")}
        rows = db.execute("SELECT asset_key, check_name, partition, run_id, execution_status, evaluation_event, "
                          "evaluation_event_storage_id, materialization_event_storage_id "
                          "FROM asset_check_executions").fetchall()
    finally:
        db.close()
    out = []
    for asset_key, name, partition, run_id, status, event, event_id, materialization_id in rows:
        entry = deserialize_value(event)
        data = entry.dagster_event.event_specific_data
        evaluation = (data.passed, dict(data.metadata), data.description,
                      events[data.target_materialization_data.storage_id]
                      if getattr(data, "target_materialization_data", None) else None) if status != "PLANNED" else None
        out.append((asset_key, name, partition, run_id, status, entry.dagster_event.event_type_value, evaluation,
                    events.get(event_id), events.get(materialization_id)))
    return out


def _renamed(value, names: dict):
    if isinstance(value, tuple):
        return tuple(_renamed(v, names) for v in value)
    return names.get(value, value) if isinstance(value, str) else value


def test_batched_check_evaluations_write_what_the_stock_storage_writes(tmp_path, monkeypatch):
    """Two range runs of an asset and its partitioned check: every check-execution row (status, stored
    evaluation, the materialization it targets: its partition's latest, of the second run) and every event
    row equal the stock storage's, run ids aside."""
    monkeypatch.setenv("DAGSTER_EVENT_BATCH_SIZE", "3")  # 4 passed evaluations per run: batches of 3 and 1
    tags = RANGE_TAGS
    seen = {}
    for batched, home in _homes(tmp_path, monkeypatch):
        with _instance(home, batched) as instance:
            runs = [materialize([first, rows_even], instance=instance, tags=tags).run_id for _ in range(2)]
            rows = _check_rows(home)
            # the targets read from the index rows are those Dagster's records give
            keys = [f"2024-01-0{i}" for i in range(1, 6)]
            ids = instance.event_log_storage.get_latest_storage_id_by_partition(
                first.key, DagsterEventType.ASSET_MATERIALIZATION, set(keys))
            records = instance.fetch_materializations(
                AssetRecordsFilter(asset_key=first.key, storage_ids=sorted(ids.values())), limit=10).records
            assert latest_materializations(instance, first.key, keys) == {
                r.partition_key: AssetCheckEvaluationTargetMaterializationData(
                    storage_id=r.storage_id, run_id=r.run_id, timestamp=r.timestamp) for r in records}
            assert {r.run_id for r in records} == {runs[1]}
        names = {run: f"run{i}" for i, run in enumerate(runs)}
        seen[batched] = {"checks": sorted((_renamed(r, names) for r in rows), key=repr), "index": _index_rows(home)}
    checks = seen[True]["checks"]
    assert len(checks) == 10 and {r[4] for r in checks} == {"SUCCEEDED", "FAILED"}
    assert [r[2] for r in checks if r[4] == "FAILED"] == ["2024-01-03", "2024-01-03"]
    # each evaluation targets the latest materialization of its own partition: the same run's
    assert all(r[6][3] == ("ASSET_MATERIALIZATION", r[2], r[3]) for r in checks)
    assert seen[True] == seen[False]


def test_events_serialize_as_dagster_serializes_them_with_each_column_schema_packed_once():
    """``serialize_event`` is ``serialize_value`` byte for byte on materializations carrying tvquant's
    metadata, and packs the column schema they share once."""
    import pandas as pd
    from dagster import AssetMaterialization
    from dagster._core.events import DagsterEvent, StepMaterializationData
    from dagster._core.events.log import EventLogEntry
    from dagster_shared.serdes import serialize_value

    from tvquant_assets.defs import storage
    from tvquant_assets.defs.metadata import column_schema, partition_metadata

    frames = [pd.DataFrame({"symbol": ["AAA", "BBB"], "weight": [0.25 * i, 1 - 0.25 * i], "cov:AAA": [0.1, 0.2],
                            "active": [True, False], "first": pd.to_datetime(["2024-01-02", "2024-01-03"])})
              for i in range(3)]
    packer = storage._SERIALIZERS["TableSchema"]
    packer.packed.clear()
    for i, frame in enumerate(frames):
        md = partition_metadata(frame, f"hash{i}", {"prices": "p"}, "m", "a note", "tournament")
        mat = AssetMaterialization(asset_key=AssetKey(["demo", "tournament"]), partition=f"2024-01-0{i + 2}",
                                   metadata=md)
        event = EventLogEntry(error_info=None, level=10, user_message="", run_id="r", timestamp=1.0 + i,
                              step_key="demo__tournament", job_name="job",
                              dagster_event=DagsterEvent(DagsterEventType.ASSET_MATERIALIZATION.value, "job",
                                                         event_specific_data=StepMaterializationData(mat)))
        assert storage.serialize_event(event) == serialize_value(event)
        assert deserialize_value(storage.serialize_event(event), EventLogEntry) == event
    assert list(packer.packed) == [id(column_schema(frames[0]))]
