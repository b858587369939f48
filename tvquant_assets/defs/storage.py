"""SQLite event-log storage that writes a batch of asset events in one transaction per database.

Dagster's SQLite storage stores every event on its own: a new engine, a connection and a commit for the
run database and again for the index database, ~25-30 ms per materialization. A range run emits one
materialization per asset-partition (9 x 1,043 for the demo), so that cost dominated. With
``DAGSTER_EVENT_BATCH_SIZE`` set, Dagster hands the storage the materializations of a multi-partition
step as batches; the stock SQLite class then falls back to one-by-one writes. This class writes each
batch with one run-database transaction and one index-database transaction, reusing Dagster's own
insert statements, so the rows are exactly those the stock class would write: each event is serialized
once for both databases, the run database takes a batch in one ``executemany``, and the ``asset_keys`` row
of an asset (its latest event of each kind) is written once per batch instead of once per event. It also keeps one
SQLAlchemy engine per database file instead of creating and disposing one for every event (a third of
the bookkeeping of a one-partition daily run), with the index database's connection kept open per thread
(``SingletonThreadPool``) instead of a file opened and closed, and so the WAL checkpointed, per event. Run
databases are still closed after each use: Dagster's watcher streams a run's events to the UI when
``<run_id>.db`` itself changes, which a checkpoint does.
"""

import json
import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from dagster import DagsterInvariantViolationError, Field, StringSource
from dagster._core.event_api import EventLogEntry
from dagster._core.events import ASSET_CHECK_EVENTS, ASSET_EVENTS, DagsterEventType
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus
from dagster._core.storage.event_log.schema import AssetCheckExecutionsTable, SqlEventLogStorageTable
from dagster._core.storage.event_log.sql_event_log import SqlEventLogStorage
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SQLITE_BUSY_TIMEOUT_SECONDS,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlalchemy_compat import db_select
from dagster_shared.serdes import serialize_value
from dagster_shared.serdes.serdes import _WHITELIST_MAP
from sqlalchemy import bindparam, create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool, SingletonThreadPool


class _SchemaPackedOnce:
    """Dagster's serializer of ``TableSchema`` with each schema object's packed items kept: the asset's column
    schema object is shared by its partitions' materializations (``metadata.column_schema``), and packing
    its columns was ~80% of serializing such an event. Everything else is the stock serializer's."""

    KEPT = 1024

    def __init__(self, stock):
        self.stock = stock
        self.packed: dict[int, tuple[object, list]] = {}  # id -> (schema, its packed items)

    def pack_items(self, value, whitelist_map, object_handler, descent_path):
        hit = self.packed.get(id(value))
        if hit is None or hit[0] is not value:
            if len(self.packed) >= self.KEPT:
                self.packed.clear()
            hit = self.packed[id(value)] = (value, list(self.stock.pack_items(value, whitelist_map, object_handler,
                                                                               descent_path)))
        return iter(hit[1])

    def __getattr__(self, name):
        return getattr(self.stock, name)


_SERIALIZERS = {**_WHITELIST_MAP.object_serializers}
_SERIALIZERS["TableSchema"] = _SchemaPackedOnce(_SERIALIZERS["TableSchema"])
_EVENT_MAP = _WHITELIST_MAP._replace(object_serializers=_SERIALIZERS)


def serialize_event(event: EventLogEntry) -> str:
    """``serialize_value(event)``, byte for byte (Dagster's packing and sorted-keys JSON), column schemas
    packed once per object (:class:`_SchemaPackedOnce`)."""
    return serialize_value(event, whitelist_map=_EVENT_MAP)


BATCH_SIZE_ENV = "DAGSTER_EVENT_BATCH_SIZE"
DEFAULT_BATCH_SIZE = "500"
ENGINES_KEPT = 32  # the index database plus the most recently used run databases


class BatchedSqliteEventLogStorage(SqliteEventLogStorage):
    """``base_dir`` defaults to Dagster's own location, ``$DAGSTER_HOME/history/runs``."""

    @classmethod
    def config_type(cls):
        return {"base_dir": Field(StringSource, is_required=False)}

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> "BatchedSqliteEventLogStorage":
        base_dir = config_value.get("base_dir")
        if not base_dir:
            home = os.environ.get("DAGSTER_HOME")
            if not home:
                raise DagsterInvariantViolationError(
                    "BatchedSqliteEventLogStorage: set DAGSTER_HOME or give event_log_storage.config.base_dir"
                )
            base_dir = os.path.join(home, "history", "runs")
        return cls(base_dir=base_dir, inst_data=inst_data)

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        """The stock method (same engine settings, same one-time schema check per database), with the
        engine kept for the next event instead of rebuilt."""
        with self._db_lock:
            engines: OrderedDict[str, Engine] = self.__dict__.setdefault("_engines", OrderedDict())
            engine = engines.get(shard)
            if engine is None:
                # The index database: one connection kept per thread (opening and closing the file per event
                # cost more than the event). A run database: closed after each use, as stock, because closing
                # the last connection checkpoints its WAL into `<run_id>.db`, the file whose modification
                # Dagster's watcher streams to the UI's run page (a kept connection leaves the page frozen).
                pool = SingletonThreadPool if shard == INDEX_SHARD_NAME else NullPool
                engine = create_engine(self.conn_string_for_shard(shard), poolclass=pool,
                                       connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS})
                engines[shard] = engine
                while len(engines) > ENGINES_KEPT:
                    engines.popitem(last=False)[1].dispose()
            engines.move_to_end(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def _has_asset_key_index_cols_on_connection(self, conn: Connection) -> bool:
        """The stock method inspects the schema on every asset event; a column once there stays."""
        if self.__dict__.get("_asset_key_index_cols"):
            return True
        found = super()._has_asset_key_index_cols_on_connection(conn)
        self.__dict__["_asset_key_index_cols"] = found
        return found

    @contextmanager
    def index_connection(self):
        """The stock connection, or the one of the batch being written (check evaluations, below)."""
        shared = getattr(self.__dict__.setdefault("_shared", threading.local()), "conn", None)
        if shared is not None:
            yield shared
            return
        with super().index_connection() as conn:
            yield conn

    def has_table(self, table_name: str) -> bool:
        """The stock method builds an engine and reflects the schema on every call (every check evaluation
        asks whether the checks table exists); a table once there stays."""
        tables: set[str] = self.__dict__.setdefault("_tables_seen", set())
        if table_name in tables:
            return True
        found = super().has_table(table_name)
        if found:
            tables.add(table_name)
        return found

    def _store_asset_check_evaluation_planned(self, event: EventLogEntry, event_id: int | None) -> None:
        """The stock rows (one per planned partition, each holding the serialized event), the event serialized
        once instead of once per partition."""
        planned = event.get_dagster_event().event_specific_data
        keys = planned.partitions_subset.get_partition_keys() if planned.partitions_subset else [None]
        row = dict(asset_key=planned.asset_key.to_string(), check_name=planned.check_name, run_id=event.run_id,
                   execution_status=AssetCheckExecutionRecordStatus.PLANNED.value,
                   evaluation_event=serialize_value(event),
                   evaluation_event_timestamp=self._event_insert_timestamp(event),
                   evaluation_event_storage_id=event_id)
        with self.index_connection() as conn:
            conn.execute(AssetCheckExecutionsTable.insert(), [{**row, "partition": key} for key in keys])

    def _event_to_row(self, event: EventLogEntry) -> dict:
        """Dagster's row of an event (``SqlEventLogStorage._event_to_row``), serialized by
        :func:`serialize_event`."""
        dagster_event_type = asset_key_str = partition = None
        step_key = event.step_key
        if event.is_dagster_event:
            dagster_event = event.get_dagster_event()
            dagster_event_type = dagster_event.event_type_value
            step_key = dagster_event.step_key
            if dagster_event.asset_key:
                asset_key_str = dagster_event.asset_key.to_string()
            if dagster_event.partition:
                partition = dagster_event.partition
        return {"run_id": event.run_id, "event": serialize_event(event), "dagster_event_type": dagster_event_type,
                "timestamp": self._event_insert_timestamp(event), "step_key": step_key, "asset_key": asset_key_str,
                "partition": partition}

    def _store_in_run_databases(self, events: Sequence[EventLogEntry]) -> list[dict]:
        """Each event serialized once, its run database's rows inserted in one statement; the rows, for the
        index database."""
        rows = [self._event_to_row(event) for event in events]
        by_run: dict[str, list[dict]] = defaultdict(list)
        for event, row in zip(events, rows, strict=True):
            by_run[event.run_id].append(row)
        for run_id, run_rows in by_run.items():
            with self.run_connection(run_id) as conn:
                conn.execute(SqlEventLogStorageTable.insert(), run_rows)
        return rows

    def _store_check_evaluations(self, events: Sequence[EventLogEntry]) -> None:
        """A batch of check evaluations (one per partition of a range): the event rows and Dagster's own
        check-execution updates in one transaction per database, instead of three commits per event; each
        event serialized once for its three rows."""
        rows = self._store_in_run_databases(events)
        local = self.__dict__.setdefault("_shared", threading.local())
        with self.index_transaction() as conn:
            ids = [conn.execute(SqlEventLogStorageTable.insert(), row).inserted_primary_key[0] for row in rows]
            if self._update_check_executions(conn, events, rows, ids):
                return
            local.conn = conn  # Dagster's own per-event path, inside this transaction
            try:
                for event, event_id in zip(events, ids, strict=True):
                    self.store_asset_check_event(event, event_id)
            finally:
                local.conn = None

    def _store_planned(self, events: Sequence[EventLogEntry]) -> None:
        """Asset and asset-check events mixed (the planned events of a run: one per asset and per check):
        the stock ``store_event`` of each, event by event in order, inside one transaction per database
        instead of two or three commits per event."""
        rows = self._store_in_run_databases(events)
        local = self.__dict__.setdefault("_shared", threading.local())
        with self.index_transaction() as conn:
            local.conn = conn
            try:
                for event, row in zip(events, rows, strict=True):
                    event_id = conn.execute(SqlEventLogStorageTable.insert(), row).inserted_primary_key[0]
                    if event.dagster_event_type in ASSET_EVENTS:
                        self._store_asset_event_tags(conn, [event], [event_id])
                        self._store_asset_event(conn, event, event_id)
                    else:
                        self.store_asset_check_event(event, event_id)
            finally:
                local.conn = None

    def _update_check_executions(self, conn: Connection, events: Sequence[EventLogEntry], rows: list[dict],
                                 ids: list[int]) -> bool:
        """Dagster's ``_update_asset_check_evaluation`` for a batch: each evaluation updates the execution row
        its run planned for its partition, as one ``executemany``. Only when every evaluation of the batch
        has exactly one such row, for partitions distinct within the batch (else False, nothing written:
        the stock per-event path then inserts or refuses as it does)."""
        if not self.has_table(AssetCheckExecutionsTable.name):
            return False
        table = AssetCheckExecutionsTable
        evaluations = [event.get_dagster_event().event_specific_data for event in events]
        wanted = {(ev.asset_key.to_string(), ev.check_name, event.run_id, ev.partition)
                  for ev, event in zip(evaluations, events, strict=True)}
        if len(wanted) != len(events) or any(key[3] is None for key in wanted):
            return False
        planned: dict[tuple, int] = defaultdict(int)
        for asset_key, check_name, run_id in {key[:3] for key in wanted}:
            query = (db_select([table.c.partition]).where(table.c.asset_key == asset_key)
                     .where(table.c.check_name == check_name).where(table.c.run_id == run_id))
            for (partition,) in conn.execute(query):
                planned[(asset_key, check_name, run_id, partition)] += 1
        if any(planned.get(key) != 1 for key in wanted):
            return False
        update = (table.update()
                  .where(table.c.asset_key == bindparam("w_asset_key"))
                  .where(table.c.check_name == bindparam("w_check"))
                  .where(table.c.run_id == bindparam("w_run_id"))
                  .where(table.c.partition == bindparam("w_partition"))
                  .values(execution_status=bindparam("v_status"), evaluation_event=bindparam("v_event"),
                          evaluation_event_timestamp=bindparam("v_timestamp"),
                          evaluation_event_storage_id=bindparam("v_event_id"),
                          materialization_event_storage_id=bindparam("v_materialization_id")))
        passed, failed = AssetCheckExecutionRecordStatus.SUCCEEDED.value, AssetCheckExecutionRecordStatus.FAILED.value
        conn.execute(update, [
            dict(w_asset_key=ev.asset_key.to_string(), w_check=ev.check_name, w_run_id=event.run_id,
                 w_partition=ev.partition, v_status=passed if ev.passed else failed, v_event=row["event"],
                 v_timestamp=row["timestamp"], v_event_id=event_id,
                 v_materialization_id=ev.target_materialization_data.storage_id
                 if ev.target_materialization_data else None)
            for ev, event, row, event_id in zip(evaluations, events, rows, ids, strict=True)])
        return True

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if all(e.is_dagster_event and e.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION and e.run_id
               for e in events):
            return self._store_check_evaluations(events)
        simple = all(e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS for e in events)
        if not simple:
            if all(e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS | ASSET_CHECK_EVENTS and e.run_id
                   for e in events):
                return self._store_planned(events)
            for event in events:  # run-status and other events: keep the stock per-event path
                self.store_event(event)
            return
        rows = self._store_in_run_databases(events)  # each event serialized once, as stock does
        with self.index_transaction() as conn:
            ids = [conn.execute(SqlEventLogStorageTable.insert(), row).inserted_primary_key[0] for row in rows]
            self._store_asset_event_tags(conn, list(events), ids)
            # The asset_keys row holds the latest event of each kind per asset: writing the batch's last
            # one of each kind, in storage order, leaves the row exactly as writing every event would.
            latest: dict[tuple, tuple[int, EventLogEntry]] = {}
            for event, event_id in zip(events, ids, strict=True):
                latest[(event.dagster_event.asset_key, event.dagster_event_type)] = (event_id, event)
            for event_id, event in sorted(latest.values(), key=lambda pair: pair[0]):
                self._store_asset_event(conn, event, event_id)


def materialization_targets(storage, asset_key, storage_ids: list[int]) -> dict[str, tuple[int, str, float]] | None:
    """``partition -> (storage id, run id, timestamp)`` of these materialization events of ``asset_key``, as
    ``fetch_materializations`` would give them, read from the index rows without deserializing each event
    (its metadata is most of it): only the entry's own timestamp is parsed from the stored JSON. None for
    a storage that is not SQL-backed."""
    if not isinstance(storage, SqlEventLogStorage):
        return None
    table, out = SqlEventLogStorageTable, {}
    with storage.index_connection() as conn:
        for i in range(0, len(storage_ids), 500):
            chunk = storage_ids[i:i + 500]
            query = (db_select([table.c.id, table.c.run_id, table.c.partition, table.c.event])
                     .where(table.c.id.in_(chunk)).where(table.c.asset_key == asset_key.to_string())
                     .where(table.c.dagster_event_type == DagsterEventType.ASSET_MATERIALIZATION.value))
            for event_id, run_id, partition, event in conn.execute(query):
                out[partition] = (event_id, run_id, json.loads(event)["timestamp"])
    return out
