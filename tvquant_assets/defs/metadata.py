"""Materialization metadata: small on purpose (one event per asset-partition dominates range runs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from dagster import MetadataValue, TableColumn, TableSchema

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


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d")
    return str(v)[:24]


def preview_markdown(df: pd.DataFrame) -> str:
    cols = [c for c in df.columns if not str(c).startswith("cov:")][:PREVIEW_COLUMNS]
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    columns = [list(df[c].array[:PREVIEW_ROWS]) for c in cols]  # the head of each column, no frame copies
    for r in range(min(len(df), PREVIEW_ROWS)):
        lines.append("| " + " | ".join(_cell(col[r]) for col in columns) + " |")
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


# Per-stage summaries ---------------------------------------------------------------------------------
# Each returns a markdown summary plus a few typed values (plotted by the UI across partitions). They
# read columns defensively: stages gain columns as the project grows.

OWNERS = ("team:quant-research",)
"""Owners shown on every tvquant asset in the Dagster UI."""

SUMMARY_ROWS = 12


def _md_table(df: pd.DataFrame, cols: list[str], fmt: dict[str, str] | None = None) -> str:
    cols = [c for c in cols if c in df.columns]
    if not cols or df.empty:
        return "_(empty)_"
    fmt = fmt or {}
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    values = [list(df[c].array[:SUMMARY_ROWS]) for c in cols]
    for r in range(min(len(df), SUMMARY_ROWS)):
        cells = []
        for c, col in zip(cols, values, strict=True):
            v = col[r]
            numeric = isinstance(v, (int, float, np.number)) and v == v
            cells.append(format(v, fmt[c]) if c in fmt and numeric else _cell(v))
        lines.append("| " + " | ".join(cells) + " |")
    if len(df) > SUMMARY_ROWS:
        lines.append(f"\n{len(df) - SUMMARY_ROWS} more rows")
    return "\n".join(lines)


def _float(v) -> float | None:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if f == f else None  # NaN is not a valid metadata float for plots


def _catalog(df: pd.DataFrame) -> dict:
    active = int(df["active"].sum()) if "active" in df.columns else len(df)
    return {"summary": MetadataValue.md(f"**{len(df)}** symbols listed, **{active}** active")}


def _prices(df: pd.DataFrame) -> dict:
    fields = [c for c in df.columns if c not in ("date", "symbol")]
    return {"summary": MetadataValue.md(f"**{len(df)}** bars; fields: {', '.join(fields) or 'none'}")}


def _scan(df: pd.DataFrame) -> dict:
    if "eligible" not in df.columns:
        return {}
    n = int(df["eligible"].sum())
    md = f"**{n}** of {len(df)} symbols eligible"
    if "reason" in df.columns and n < len(df):
        reasons = df.loc[~df["eligible"], "reason"].astype(str).value_counts().head(5)
        md += "\n\n" + "\n".join(f"- {k}: {v}" for k, v in reasons.items())
    return {"summary": MetadataValue.md(md), "eligible": n}


def _selection(df: pd.DataFrame) -> dict:
    if "selected" not in df.columns:
        return {}
    sel = df[df["selected"]]
    k = int(sel["cluster"].nunique()) if "cluster" in df.columns else 0
    md = f"**{len(sel)}** selected of {len(df)} in **{k}** clusters\n\n" + _md_table(
        sel, ["symbol", "cluster", "momentum_pct", "sector", "direction"], {"momentum_pct": ".2f"})
    return {"summary": MetadataValue.md(md), "selected": len(sel), "clusters": k}


def _regime(df: pd.DataFrame) -> dict:
    if df.empty:
        return {}
    row = df.iloc[0]
    label, quadrant = str(row.get("label", "")), str(row.get("quadrant", ""))
    md = f"**{label}** · quadrant **{quadrant}**"
    preset = row.get("preset")
    if isinstance(preset, str) and preset:
        md += f" · preset `{preset}` active"
    metrics = [c for c in df.columns if c not in ("date", "label", "quadrant", "preset") and df[c].dtype.kind in "fiu"]
    md += "\n\n" + "\n".join(f"- {c}: {_cell(row[c])}" for c in metrics)
    out: dict = {"summary": MetadataValue.md(md), "label": label, "quadrant": quadrant}
    for c in metrics:
        f = _float(row[c])
        if f is not None:
            out[c] = f
    return out


def _estimation(df: pd.DataFrame) -> dict:
    if df.empty:
        return {"summary": MetadataValue.md("empty universe: nothing to estimate")}
    row = df.iloc[0]
    parts = [f"**{len(df)}** symbols"]
    for c in ("shrinkage", "n_obs"):
        if c in df.columns:
            parts.append(f"{c} {_cell(row[c])}")
    return {"summary": MetadataValue.md(" · ".join(parts))}


def _tournament(df: pd.DataFrame) -> dict:
    if df.empty or "candidate" not in df.columns:
        return {}
    # Plain arrays: a few dozen rows per partition, summarized for every partition of a range run.
    cand = df["candidate"].astype(str).to_numpy()
    sym = df["symbol"].astype(str).to_numpy() if "symbol" in df.columns else np.full(len(df), "?")
    weight = df["weight"].to_numpy(dtype="float64")
    extra = [c for c in ("status", "fallback", "score", "rank", "adaptive_pick") if c in df.columns]
    firsts = {c: df[c].to_numpy(dtype=object) for c in extra}
    rows = []
    # Early dates hold only the empty-universe row per candidate: every candidate is listed, with no holdings.
    for name in sorted(set(cand)):
        at = np.flatnonzero(cand == name)
        live = at[sym[at] != ""]
        w = weight[live]
        top = ""
        if live.size:  # largest weight, ties to the first symbol by name
            order = np.lexsort((sym[live], -w))
            top = str(sym[live][order[0]])
        row = {"candidate": name, "holdings": int(np.count_nonzero(w > 1e-6)),
               "max_weight": float(w.max()) if live.size else 0.0, "top": top}
        row.update({c: firsts[c][at[0]] for c in extra})
        rows.append(row)
    board = pd.DataFrame(rows)
    if "rank" in board.columns:
        board = board.sort_values("rank")
    cols = ["candidate", "status", "holdings", "max_weight", "top", "fallback", "score", "rank", "adaptive_pick"]
    return {"summary": MetadataValue.md(_md_table(board, cols, {"max_weight": ".1%"})),
            "candidates": len(rows)}


def _backtest(df: pd.DataFrame) -> dict:
    if df.empty or "candidate" not in df.columns:
        return {"summary": MetadataValue.md("before the backtest start: no leaderboard yet")}
    board = df.sort_values("rank") if "rank" in df.columns else df
    cols = ["rank", "candidate", "simulator", "total_return", "ann_return", "ann_vol", "sharpe", "deflated_sharpe", "dsr", "pbo",
            "max_drawdown", "turnover"]
    fmt = {"total_return": ".2%", "ann_return": ".2%", "ann_vol": ".2%", "sharpe": ".2f", "max_drawdown": ".2%",
           "turnover": ".2f", "deflated_sharpe": ".3f", "dsr": ".3f", "pbo": ".2f"}
    leader = board.iloc[0]
    out = {"summary": MetadataValue.md("Leaderboard\n\n" + _md_table(board, cols, fmt)),
           "leader": str(leader["candidate"])}
    f = _float(leader.get("sharpe"))
    if f is not None:
        out["leader_sharpe"] = f
    return out


def _audit(df: pd.DataFrame) -> dict:
    if df.empty or "entry_hash" not in df.columns:
        return {}
    row = df.iloc[0]
    md = (f"chain position **#{int(row['seq'])}**, entry `{row['entry_hash']}`, previous `{row['prev_hash']}`"
          + ("" if bool(row.get("appended", True)) else " (unchanged: no new entry appended)"))
    return {"summary": MetadataValue.md(md)}  # the typed chain head values come from the audit runner


STAGE_SUMMARIES = {
    "catalog": _catalog, "prices": _prices, "scan": _scan, "selection": _selection, "regime": _regime,
    "estimation": _estimation, "tournament": _tournament, "backtest": _backtest, "audit": _audit,
}


def stage_summary(stage: str, df: pd.DataFrame) -> dict:
    """Markdown summary and a few typed values for one stage partition (empty for an unknown stage)."""
    fn = STAGE_SUMMARIES.get(str(stage))
    return fn(df) if fn is not None else {}


def report_metadata(result) -> dict:
    """Metadata of a ``report`` materialization: where the tearsheet is, and what it says."""
    path = str(result.path)
    md = [f"Tearsheet of **{result.manifest}** as of **{result.date.date()}**", "",
          f"- file: `{path}`", f"- featured candidate: {result.featured or '-'}",
          f"- leader: {result.leader or '-'}", f"- regime on D: {result.regime or '-'}"]
    if result.missing:
        md += ["", "Not shown:"] + [f"- {m}" for m in result.missing]
    return {
        "tearsheet": MetadataValue.path(path),
        "tearsheet_url": MetadataValue.url("file://" + path) if path.startswith("/") else MetadataValue.text(path),
        "as_of": result.date.strftime("%Y-%m-%d"),
        "summary": MetadataValue.md("\n".join(md)),
        "size_bytes": int(result.bytes),
    }


def views_metadata(db_path: str, counts: dict[str, int]) -> dict:
    rows = pd.DataFrame({"view": list(counts), "rows": list(counts.values())})
    md = (f"DuckDB database `{db_path}`\n\n" + _md_table(rows, ["view", "rows"])
          + f"\n\nQuery: `tvquant lake sql \"SELECT * FROM {next(iter(counts), 'x.y')} LIMIT 5\"`")
    return {"database": MetadataValue.path(db_path), "views": len(counts), "summary": MetadataValue.md(md),
            "dagster/row_count": int(sum(counts.values()))}
