"""Markdown helpers of the stages' UI summaries (plain strings; the Dagster layer wraps them)."""

from __future__ import annotations

import numpy as np
import pandas as pd

SUMMARY_ROWS = 12


def cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d")
    return str(v)[:24]


def to_float(v) -> float | None:
    """``v`` as a float, None when it is not a number or NaN (not a valid metadata float for plots)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None


def column_heads(df: pd.DataFrame, cols: list, n: int) -> list[list]:
    """The first ``n`` values of each column in ``cols`` (names present in ``df``, unique), as
    ``list(df[c].array[:n])`` gives them, without building a Series per column (most of a summary's time)."""
    where = {c: i for i, c in enumerate(df.columns)}
    return [list(df._get_column_array(where[c])[:n]) for c in cols]  # noqa: SLF001


def md_table(df: pd.DataFrame, cols: list[str], fmt: dict[str, str] | None = None) -> str:
    """The first :data:`SUMMARY_ROWS` rows of ``cols`` (those present) as a markdown table."""
    cols = [c for c in cols if c in df.columns]
    if not cols or df.empty:
        return "_(empty)_"
    fmt = fmt or {}
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    values = column_heads(df, cols, SUMMARY_ROWS)
    for r in range(min(len(df), SUMMARY_ROWS)):
        cells = []
        for c, col in zip(cols, values, strict=True):
            v = col[r]
            numeric = isinstance(v, (int, float, np.number)) and v == v
            cells.append(format(v, fmt[c]) if c in fmt and numeric else cell(v))
        lines.append("| " + " | ".join(cells) + " |")
    if len(df) > SUMMARY_ROWS:
        lines.append(f"\n{len(df) - SUMMARY_ROWS} more rows")
    return "\n".join(lines)
