"""Materialization metadata: small on purpose (one event per asset-partition dominates range runs)."""

from __future__ import annotations

import pandas as pd
from dagster import MetadataValue, TableColumn, TableSchema

PREVIEW_ROWS = 5
PREVIEW_COLUMNS = 8

_TYPES = {"f": "float", "i": "int", "u": "int", "b": "bool", "M": "datetime"}


def column_schema(df: pd.DataFrame) -> TableSchema:
    key = tuple((str(c), df.dtypes.iloc[i].kind) for i, c in enumerate(df.columns))
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


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d")
    return str(v)[:24]


def preview_markdown(df: pd.DataFrame) -> str:
    cols = [c for c in df.columns if not str(c).startswith("cov:")][:PREVIEW_COLUMNS]
    head = df.iloc[:PREVIEW_ROWS]
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    columns = [head[c].to_numpy(dtype=object) for c in cols]
    for r in range(len(head)):
        lines.append("| " + " | ".join(_cell(col[r]) for col in columns) + " |")
    if len(df) > PREVIEW_ROWS:
        lines.append(f"\n{len(df) - PREVIEW_ROWS} more rows")
    return "\n".join(lines)


def partition_metadata(df: pd.DataFrame, digest: str, upstream: dict[str, str], manifest_hash: str,
                       note: str = "") -> dict:
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
    return md
