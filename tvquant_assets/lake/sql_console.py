"""The sandbox behind ``tvquant lake sql``: one SELECT over the lake's views, nothing else.

A fresh in-memory DuckDB connection defines the views of ``duckdb_views.discover`` (the same SQL as the
BI database), then locks itself down before the user's text runs:

- the text must parse to exactly one statement, of type SELECT (``COPY``, ``EXPORT``, ``ATTACH``,
  ``INSTALL``/``LOAD``, ``SET``, DDL and a second statement after ``;`` are refused before anything runs);
- ``enable_external_access = false`` with an allow-list of exactly what the views read: each stage
  directory (``allowed_directories``, trailing slash so ``prices_x/`` does not match ``prices/``) and
  each ledger file (``allowed_paths``); the spill directory is disabled so it is not allowed implicitly.
  So ``read_csv``/``read_text``/``glob`` of any other file fail, and, inside the allow-list, a SELECT
  can read but never write (writes need ``COPY``, which is not a SELECT);
- extensions are neither installed nor loaded on demand, then ``lock_configuration = true`` so the text
  cannot undo any of this (and ``SET`` is refused anyway);
- at most ``limit`` rows are returned (1000 by default; the CLI says when more were left out) and a query
  running longer than ``timeout`` seconds is interrupted.

Known limit: DuckDB checks the allow-list on the path string, so a symlink planted inside a stage
directory would be followed; whoever can write the lake can already change what the views show.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from tvquant_assets.errors import LakeError
from tvquant_assets.lake import duckdb_views
from tvquant_assets.lake.store import Lake

DEFAULT_LIMIT = 1000
DEFAULT_TIMEOUT = 300.0
_GLOB_CHARS = "*?[{"


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[tuple]
    truncated: bool  # more rows existed than the limit


def allow_list(views: list[duckdb_views.View]) -> tuple[list[str], list[str]]:
    """(directories, files) the views read: a glob's directory, or the file itself."""
    dirs, files = set(), set()
    for v in views:
        src = v.source
        if any(c in src for c in _GLOB_CHARS):
            head = src[: min(src.find(c) for c in _GLOB_CHARS if c in src)]
            dirs.add(os.path.dirname(head).rstrip("/") + "/")
        else:
            files.add(os.path.abspath(src))
    return sorted(dirs), sorted(files)


def check_statement(sql: str) -> None:
    """One statement, and a SELECT; else one line saying what was found."""
    import duckdb

    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise LakeError(f"sql: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise LakeError(f"sql: exactly one statement is allowed, found {len(statements)} "
                        f"(only a single SELECT over the views runs)")
    kind = statements[0].type
    if kind != duckdb.StatementType.SELECT:
        name = getattr(kind, "name", str(kind))
        raise LakeError(f"sql: {name} statements are not allowed; only a single SELECT over the views runs")


def sandboxed_connection(lake: Lake, manifests=None):
    """An in-memory connection with the views defined, external access off except for the views' files,
    no extension loading, configuration locked. Returns (connection, views)."""
    import duckdb

    views = duckdb_views.discover(lake, manifests)
    con = duckdb.connect(":memory:")
    try:
        con.execute("SET enable_progress_bar = false")
        for schema in sorted({v.schema for v in views}):
            con.execute(f"CREATE SCHEMA {duckdb_views._quote_ident(schema)}")
        for v in views:
            con.execute(duckdb_views._view_sql(v))
        dirs, files = allow_list(views)
        con.execute("SET temp_directory = ''")  # else DuckDB allows its spill directory implicitly
        con.execute("SET allowed_directories = ?", [dirs])
        con.execute("SET allowed_paths = ?", [files])
        con.execute("SET autoinstall_known_extensions = false")
        con.execute("SET autoload_known_extensions = false")
        con.execute("SET allow_community_extensions = false")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except Exception:
        con.close()
        raise
    return con, views


def run(lake: Lake, sql: str, limit: int | None = DEFAULT_LIMIT, timeout: float | None = DEFAULT_TIMEOUT,
        manifests=None) -> Result:
    """Run one SELECT in the sandbox. ``limit`` 0 or None returns every row."""
    import duckdb

    check_statement(sql)
    con, _ = sandboxed_connection(lake, manifests)
    timer = threading.Timer(timeout, con.interrupt) if timeout else None
    try:
        if timer:
            timer.start()
        try:
            cur = con.execute(sql)
            if cur.description is None:
                return Result([], [], False)
            cols = [d[0] for d in cur.description]
            if limit:
                rows = cur.fetchmany(limit + 1)
                return Result(cols, rows[:limit], len(rows) > limit)
            return Result(cols, cur.fetchall(), False)
        except duckdb.InterruptException:
            raise LakeError(f"sql: interrupted after {timeout:g} s (--timeout)") from None
        except duckdb.Error as exc:
            raise LakeError(f"sql: {str(exc).splitlines()[0]}") from None
    finally:
        if timer:
            timer.cancel()
        con.close()
