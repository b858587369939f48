"""Materialization metadata: small on purpose (one event per asset-partition dominates range runs)."""

from __future__ import annotations

import pandas as pd
from dagster import MetadataValue, TableColumn, TableSchema

from tvquant_assets.lake.store import prepare_frame
from tvquant_assets.stages import MODULES
from tvquant_assets.stages.markdown import cell, column_heads, md_table

PREVIEW_ROWS = 5
PREVIEW_COLUMNS = 8

_TYPES = {"f": "float", "i": "int", "u": "int", "b": "bool", "M": "datetime"}


def column_schema(df: pd.DataFrame) -> TableSchema:
    key = tuple(zip(map(str, df.columns), (t.kind for t in df.dtypes), strict=True))
    if key not in _SCHEMAS:
        _SCHEMAS[key] = _column_schema(df)
    return _SCHEMAS[key]


_SCHEMAS: dict[tuple, TableSchema] = {}


def _column_schema(df: pd.DataFrame) -> TableSchema:
    cols = [c for c in df.columns if not str(c).startswith("cov:")]
    extra = len(df.columns) - len(cols)
    columns = [TableColumn(str(c), _TYPES.get(df[c].dtype.kind, "string")) for c in cols]
    if extra:
        columns.append(TableColumn("cov:<symbol>", "float", description=f"{extra} covariance columns"))
    return TableSchema(columns=columns)


def preview_markdown(df: pd.DataFrame) -> str:
    cols = [c for c in df.columns if not str(c).startswith("cov:")][:PREVIEW_COLUMNS]
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    columns = column_heads(df, cols, PREVIEW_ROWS)  # the head of each column, no frame copies
    for r in range(min(len(df), PREVIEW_ROWS)):
        lines.append("| " + " | ".join(cell(col[r]) for col in columns) + " |")
    if len(df) > PREVIEW_ROWS:
        lines.append(f"\n{len(df) - PREVIEW_ROWS} more rows")
    return "\n".join(lines)


def partition_metadata(df: pd.DataFrame, digest: str, upstream: dict[str, str], manifest_hash: str,
                       note: str = "", stage: str = "") -> dict:
    md = {
        "dagster/row_count": len(df),
        "dagster/column_schema": column_schema(df),
        "df_hash": digest,
        "upstream_hashes": MetadataValue.json(dict(sorted(upstream.items()))),
        "manifest_hash": manifest_hash,
        "preview": MetadataValue.md(preview_markdown(df)),
    }
    if note:
        md["note"] = note
    if stage:
        md.update(stage_summary(stage, df))
    return md


def finish_partition(stage: str, manifest_hash: str, result, date) -> tuple[str, dict]:
    """One date of ``stage``'s result as its materialization records it, for a worker to compute beside the
    run's process (``run_parallel``'s ``finish``): the frame as its lake file holds it (put back in
    ``result.frames``), its df_hash and its UI metadata (``partition_metadata`` plus the stage's own)."""
    frame, digest = prepare_frame(result.frames[date])
    result.frames[date] = frame
    md = partition_metadata(frame, digest, result.upstream.get(date, {}), manifest_hash,
                            result.notes.get(date, ""), stage)
    md.update(result.metadata.get(date, {}))
    return digest, md


def add_partition_metadata(context, by_partition: dict[str, dict]) -> None:
    """``context.add_asset_metadata(md, partition_key=key)`` for each partition of the step's asset at once.
    Called per partition, Dagster lists the step's whole partition range to check the key and copies the
    metadata of every partition added so far: quadratic in a range's partitions (~0.5 ms a call at 1,000
    partitions). The keys are the step's own (``context.partition_keys``); the accumulated metadata is the
    same (``tvquant_assets_tests/defs/test_metadata.py``). Dagster's own call when its internals differ."""
    from dagster._core.execution.context.metadata_logging import AssetMetadataHandle, OutputMetadataAccumulator

    step = getattr(context.op_execution_context, "_step_execution_context", None)
    accumulated = getattr(step, "_metadata_accumulator", None)
    if not isinstance(accumulated, OutputMetadataAccumulator):
        for key, md in by_partition.items():
            context.add_asset_metadata(md, partition_key=key)
        return
    asset_key = context.assets_def.key
    per_output = dict(accumulated.per_output_metadata)
    for key, md in by_partition.items():
        handle = AssetMetadataHandle(asset_key=asset_key, partition_key=key)
        per_output[handle] = {**per_output.get(handle, {}), **md}
    step._metadata_accumulator = OutputMetadataAccumulator(per_output_metadata=per_output)  # noqa: SLF001


OWNERS = ("team:quant-research",)
"""Owners shown on every tvquant asset in the Dagster UI."""


def stage_summary(stage: str, df: pd.DataFrame) -> dict:
    """The stage module's markdown summary (as markdown metadata) and typed values for one partition (empty
    for a name that is not a stage)."""
    module = MODULES.get(str(stage))
    out = dict(module.summary(df)) if module is not None else {}
    if "summary" in out:
        out["summary"] = MetadataValue.md(out["summary"])
    return out


def report_metadata(result, lake_root=None) -> dict:
    """Metadata of a ``report`` materialization: where the tearsheet is, and what it says. The link is
    ``tvquant ui``'s report server (``report/server.py``): the UI cannot open ``file://`` links."""
    from tvquant_assets.report.server import report_url

    path = str(result.path)
    url = report_url(lake_root, path) if lake_root is not None and path.startswith("/") else None
    md = [f"Tearsheet of **{result.manifest}** as of **{result.date.date()}**", "",
          f"- file: `{path}`", *([f"- open: [{url}]({url}) (served by `tvquant ui`)"] if url else []),
          f"- featured candidate: {result.featured or '-'}",
          f"- leader: {result.leader or '-'}", f"- regime on D: {result.regime or '-'}"]
    if result.missing:
        md += ["", "Not shown:"] + [f"- {m}" for m in result.missing]
    return {
        "tearsheet": MetadataValue.path(path),
        "tearsheet_url": MetadataValue.url(url) if url else MetadataValue.text(path),
        "as_of": result.date.strftime("%Y-%m-%d"),
        "summary": MetadataValue.md("\n".join(md)),
        "size_bytes": int(result.bytes),
    }


def views_metadata(db_path: str, counts: dict[str, int]) -> dict:
    rows = pd.DataFrame({"view": list(counts), "rows": list(counts.values())})
    md = (f"DuckDB database `{db_path}`\n\n" + md_table(rows, ["view", "rows"])
          + f"\n\nQuery: `tvquant lake sql \"SELECT * FROM {next(iter(counts), 'x.y')} LIMIT 5\"`")
    return {"database": MetadataValue.path(db_path), "views": len(counts), "summary": MetadataValue.md(md),
            "dagster/row_count": int(sum(counts.values()))}
