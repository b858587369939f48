"""A DuckDB database of views over the parquet lake, for BI tools, notebooks and ``tvquant lake sql``.

One schema per manifest, one view per stage directory found in the lake (``sp500_demo.backtest``), plus
``<manifest>.ledger`` over the hash-chained JSONL. Views read the parquet files at query time, so new
partitions show up without a refresh; a refresh is needed only when a stage appears or the lake moves.
Every view adds ``partition_date`` (from the file name) in front of the stage's own columns and reads
all partitions with ``union_by_name``, so columns added by later code versions are NULL in older files.

Local lakes only: the view definitions hold absolute paths that any DuckDB client can open.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from tvquant_assets.errors import LakeError
from tvquant_assets.lake.store import Lake

DB_ENV = "TVQUANT_DUCKDB"
DB_NAME = "tvquant.duckdb"
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LOCK_RETRY_SECONDS = 10.0


@dataclass(frozen=True)
class View:
    schema: str
    name: str
    source: str  # the glob or file the view reads

    @property
    def qualified(self) -> str:
        return f"{self.schema}.{self.name}"


def default_db_path(lake: Lake) -> Path:
    """``$TVQUANT_DUCKDB`` or ``<lake>/tvquant.duckdb``."""
    env = os.environ.get(DB_ENV)
    if env:
        return Path(env)
    return Path(_local_root(lake)) / DB_NAME


def _local_root(lake: Lake) -> str:
    root = getattr(lake, "_local_root", None)
    if root is None:
        raise LakeError(f"lake views: {lake.root} is not a local directory; DuckDB views need a local lake "
                        f"(set TVQUANT_LAKE to a local path)")
    return root


def _quote_ident(name: str) -> str:
    if not _IDENT.match(name):
        raise LakeError(f"lake views: {name!r} is not a plain identifier (letters, digits, _)")
    return f'"{name}"'


def _quote_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def discover(lake: Lake, manifests: Iterable[str] | None = None) -> list[View]:
    """The views the lake supports now: every stage directory holding parquet, every ledger."""
    root = Path(_local_root(lake))
    names = sorted(manifests) if manifests is not None else sorted(
        p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")) if root.exists() else []
    views = []
    for m in names:
        mdir = root / m
        if not mdir.is_dir() or not _IDENT.match(m):
            continue
        for stage_dir in sorted(p for p in mdir.iterdir() if p.is_dir() and _IDENT.match(p.name)):
            if any(f.suffix == ".parquet" and not f.name.startswith(".") for f in stage_dir.iterdir()):
                views.append(View(m, stage_dir.name, str(stage_dir / "*.parquet")))
                if stage_dir.name == "backtest" and _has_benchmark(stage_dir):
                    views.append(View(m, BENCHMARK_VIEW, f"{m}.backtest"))
        ledger = mdir / "ledger.jsonl"
        if ledger.is_file() and ledger.stat().st_size > 0:
            views.append(View(m, "ledger", str(ledger)))
    return views


BENCHMARK_VIEW = "vs_benchmark"
BENCHMARK_COLUMNS = ("candidate", "simulator", "rank", "equity", "bench_equity", "total_return", "bench_total_return",
                     "excess_return", "alpha", "beta", "tracking_error", "information_ratio", "up_capture",
                     "down_capture")


def _has_benchmark(stage_dir: Path) -> bool:
    """The newest backtest partition carries the metrics against a benchmark."""
    import pyarrow.parquet as pq

    files = sorted(f for f in stage_dir.iterdir() if f.suffix == ".parquet" and not f.name.startswith("."))
    return bool(files) and "bench_equity" in pq.read_schema(files[-1]).names


def _view_sql(v: View) -> str:
    target = f"{_quote_ident(v.schema)}.{_quote_ident(v.name)}"
    if v.name == BENCHMARK_VIEW:  # the backtest rows against the manifest's benchmark
        cols = ", ".join(_quote_ident(c) for c in BENCHMARK_COLUMNS)
        return (f"CREATE OR REPLACE VIEW {target} AS SELECT partition_date, {cols} FROM "
                f"{_quote_ident(v.schema)}.backtest WHERE bench_equity IS NOT NULL")
    if v.name == "ledger":
        body = (f"SELECT seq, entry_hash, prev_hash, payload->>'date' AS date, payload->>'manifest_hash' "
                f"AS manifest_hash, payload->>'run_id' AS run_id, payload->>'timestamp' AS timestamp, payload "
                f"FROM read_json({_quote_str(v.source)}, format='newline_delimited', "
                f"columns={{seq: 'BIGINT', prev_hash: 'VARCHAR', payload: 'JSON', entry_hash: 'VARCHAR'}})")
    else:
        body = (f"SELECT CAST(regexp_extract(filename, '(\\d{{4}}-\\d{{2}}-\\d{{2}})\\.parquet$', 1) AS DATE) "
                f"AS partition_date, * EXCLUDE (filename) FROM read_parquet({_quote_str(v.source)}, "
                f"union_by_name=true, filename=true)")
    return f"CREATE OR REPLACE VIEW {target} AS {body}"


def connect(path: Path, read_only: bool = False, retry_seconds: float = LOCK_RETRY_SECONDS):
    """Open the database; another process writing it holds a lock, so retry for a while."""
    import duckdb

    deadline = time.monotonic() + retry_seconds
    while True:
        try:
            con = duckdb.connect(str(path), read_only=read_only)
            con.execute("SET enable_progress_bar = false")  # DuckDB draws one on long queries otherwise
            return con
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise LakeError(f"lake views: cannot open {path}: {str(exc).splitlines()[0]}") from None
            time.sleep(0.2)


def refresh(lake: Lake, manifests: Iterable[str] | None = None, db_path: Path | str | None = None) -> list[View]:
    """(Re)create the views of ``manifests`` (default: every manifest in the lake); drop views of stages
    that disappeared. Returns the views now defined for those manifests."""
    path = Path(db_path) if db_path is not None else default_db_path(lake)
    path.parent.mkdir(parents=True, exist_ok=True)
    views = discover(lake, manifests)
    wanted = {(v.schema, v.name) for v in views}
    schemas = sorted({v.schema for v in views} | set(manifests or []))
    con = connect(path)
    try:
        con.execute("BEGIN TRANSACTION")
        for s in schemas:
            if not _IDENT.match(s):
                continue
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {_quote_ident(s)}")
            stale = con.execute("SELECT view_name FROM duckdb_views() WHERE schema_name = ? AND NOT internal",
                                [s]).fetchall()
            for (name,) in stale:
                if (s, name) not in wanted:
                    con.execute(f"DROP VIEW {_quote_ident(s)}.{_quote_ident(name)}")
        for v in views:
            con.execute(_view_sql(v))
        con.execute("COMMIT")
    except Exception as exc:
        con.execute("ROLLBACK")
        if isinstance(exc, LakeError):
            raise
        raise LakeError(f"lake views: refreshing {path} failed: {str(exc).splitlines()[0]}") from None
    finally:
        con.close()
    return views


def query(db_path: Path | str, sql: str, limit: int | None = None):
    """Run one SQL statement read-only; returns (column names, rows)."""
    import duckdb

    path = Path(db_path)
    if not path.exists():
        raise LakeError(f"lake views: no database at {path}; run 'tvquant lake views' first")
    con = connect(path, read_only=True)
    try:
        try:
            cur = con.execute(sql)
        except duckdb.Error as exc:
            raise LakeError(f"sql: {str(exc).splitlines()[0]}") from None
        if cur.description is None:
            return [], []
        cols = [d[0] for d in cur.description]
        rows = cur.fetchmany(limit) if limit else cur.fetchall()
        return cols, rows
    finally:
        con.close()


def row_counts(db_path: Path | str, views: Iterable[View]) -> dict[str, int]:
    """Rows per view. A stage's view counts the rows its files' footers record (``parquet_file_metadata``:
    each footer read once; a ``count(*)`` of the view also binds every file's schema for ``union_by_name``,
    2.6x slower over the demo's 13,000 files); the ledger and the benchmark view (a filter) are counted."""
    con = connect(Path(db_path), read_only=True)
    try:
        out = {}
        for v in views:
            if v.name in ("ledger", BENCHMARK_VIEW):
                sql, params = f"SELECT count(*) FROM {_quote_ident(v.schema)}.{_quote_ident(v.name)}", []
            else:
                sql, params = "SELECT coalesce(sum(num_rows), 0) FROM parquet_file_metadata(?)", [v.source]
            out[v.qualified] = int(con.execute(sql, params).fetchone()[0])
        return out
    finally:
        con.close()


def read_range(lake: Lake, manifest: str, stage: str, start, end) -> pd.DataFrame:
    """Every partition of one stage with date in [start, end] as one frame, with ``partition_date`` first.

    Reads with DuckDB (parallel, no per-file hashing, columns unioned by name) on a local lake, and
    partition by partition through the lake on other roots. Empty frame when there is nothing."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    dates = [d for d in lake.partitions(manifest, stage) if start <= d <= end]
    if not dates:
        return pd.DataFrame()
    if getattr(lake, "_local_root", None) is None:
        frames = lake.read_many(manifest, stage, dates, missing_ok=True)
        parts = [f.assign(partition_date=d) for d, (f, _) in frames.items()]
        out = pd.concat(parts, ignore_index=True)
        return out[["partition_date", *[c for c in out.columns if c != "partition_date"]]]
    import duckdb

    files = "[" + ", ".join(_quote_str(str(lake.path(manifest, stage, d))) for d in dates) + "]"
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        frame = con.execute(
            f"SELECT CAST(regexp_extract(filename, '(\\d{{4}}-\\d{{2}}-\\d{{2}})\\.parquet$', 1) AS TIMESTAMP) "
            f"AS partition_date, * EXCLUDE (filename, file_row_number) FROM read_parquet({files}, "
            f"union_by_name=true, filename=true, file_row_number=true) ORDER BY partition_date, file_row_number").df()
    finally:
        con.close()
    frame["partition_date"] = pd.to_datetime(frame["partition_date"]).astype("datetime64[ns]")
    return frame


def read_columns(lake: Lake, manifest: str, stage: str, dates, columns: list[str]) -> dict[pd.Timestamp, pd.DataFrame]:
    """``{date: frame}`` holding only ``columns`` of one stage's partitions on ``dates`` (every one must
    exist; an empty partition gives an empty frame), rows in file order. On a local lake one DuckDB scan
    of the files instead of decoding and hashing each whole file: a daily run's threshold auditor reads
    every backtest partition since ``backtest.start``. Values are the parquet values, bit for bit."""
    dates = [pd.Timestamp(d) for d in dates]
    if not dates:
        return {}
    missing = [d for d in dates if not lake.exists(manifest, stage, d)]
    if missing or getattr(lake, "_local_root", None) is None:  # the lake's own read names what is missing
        frames = lake.read_many(manifest, stage, dates)
        return {d: f[[c for c in columns if c in f.columns]] for d, (f, _) in frames.items()}
    import duckdb

    files = "[" + ", ".join(_quote_str(str(lake.path(manifest, stage, d))) for d in dates) + "]"
    wanted = ", ".join('"' + c.replace('"', '""') + '"' for c in columns)
    con = duckdb.connect()
    try:
        con.execute("SET enable_progress_bar = false")
        frame = con.execute(
            f"SELECT filename, {wanted} FROM read_parquet({files}, union_by_name=true, filename=true, "
            "file_row_number=true) ORDER BY filename, file_row_number").df()
    finally:
        con.close()
    by_file = {name: part.drop(columns="filename").reset_index(drop=True)
               for name, part in frame.groupby("filename", sort=False)}
    empty = pd.DataFrame({c: pd.Series(dtype=frame[c].dtype) for c in columns})
    return {d: by_file.get(str(lake.path(manifest, stage, d)), empty) for d in dates}
