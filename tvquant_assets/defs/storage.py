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
the bookkeeping of a one-partition daily run); connections are still opened per use (``NullPool``).
"""

import os
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from dagster import DagsterInvariantViolationError, Field, StringSource
from dagster._core.event_api import EventLogEntry
from dagster._core.events import ASSET_EVENTS, DagsterEventType
from dagster._core.storage.event_log.schema import SqlEventLogStorageTable
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SQLITE_BUSY_TIMEOUT_SECONDS, SqliteEventLogStorage
from dagster._core.storage.sqlalchemy_compat import db_result
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import NullPool

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
                engine = create_engine(self.conn_string_for_shard(shard), poolclass=NullPool,
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

    def _store_check_evaluations(self, events: Sequence[EventLogEntry]) -> None:
        """A batch of check evaluations (one per partition of a range): the event rows and Dagster's own
        check-execution updates in one transaction per database, instead of three commits per event."""
        by_run: dict[str, list[EventLogEntry]] = defaultdict(list)
        for event in events:
            by_run[event.run_id].append(event)
        for run_id, run_events in by_run.items():
            with self.run_connection(run_id) as conn:
                for event in run_events:
                    conn.execute(self.prepare_insert_event(event))
        local = self.__dict__.setdefault("_shared", threading.local())
        with self.index_transaction() as conn:
            local.conn = conn
            try:
                for event in events:
                    with db_result(conn, self.prepare_insert_event(event)) as result:
                        event_id = result.inserted_primary_key[0]
                    self.store_asset_check_event(event, event_id)
            finally:
                local.conn = None

    def store_event_batch(self, events: Sequence[EventLogEntry]) -> None:
        if all(e.is_dagster_event and e.dagster_event_type == DagsterEventType.ASSET_CHECK_EVALUATION and e.run_id
               for e in events):
            return self._store_check_evaluations(events)
        simple = all(e.is_dagster_event and e.dagster_event_type in ASSET_EVENTS for e in events)
        if not simple:  # run-status and other events: keep the stock per-event path
            for event in events:
                self.store_event(event)
            return
        rows = [self._event_to_row(event) for event in events]  # each event serialized once, as stock does
        by_run: dict[str, list[dict]] = defaultdict(list)
        for event, row in zip(events, rows, strict=True):
            by_run[event.run_id].append(row)
        for run_id, run_rows in by_run.items():
            with self.run_connection(run_id) as conn:
                conn.execute(SqlEventLogStorageTable.insert(), run_rows)
        with self.index_transaction() as conn:
            ids = []
            for row in rows:
                with db_result(conn, SqlEventLogStorageTable.insert().values(**row)) as result:
                    ids.append(result.inserted_primary_key[0])
            self._store_asset_event_tags(conn, list(events), ids)
            # The asset_keys row holds the latest event of each kind per asset: writing the batch's last
            # one of each kind, in storage order, leaves the row exactly as writing every event would.
            latest: dict[tuple, tuple[int, EventLogEntry]] = {}
            for event, event_id in zip(events, ids, strict=True):
                latest[(event.dagster_event.asset_key, event.dagster_event_type)] = (event_id, event)
            for event_id, event in sorted(latest.values(), key=lambda pair: pair[0]):
                self._store_asset_event(conn, event, event_id)
