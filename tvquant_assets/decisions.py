"""What was decided for a date and why it can be trusted: the decision record behind ``tvquant audit show``.

The regime, the selection, every candidate's weights and the leaderboard as stored in the lake, each
stage's hash checked against the ledger's latest entry for the date, and the entry's provenance
(manifest hash, git sha, environment, run, when, what it superseded). Plain data, no Dagster.
"""

from __future__ import annotations

import math

import pandas as pd

from tvquant_assets.errors import LedgerError, TvquantError
from tvquant_assets.lake import Lake
from tvquant_assets.lake.ledger import Ledger
from tvquant_assets.manifest import Manifest
from tvquant_assets.stages import ALL_STAGES, SPECS, Stage
from tvquant_assets.stages.lineage import output_hashes

TOP_WEIGHTS = 5


def _plain(v):
    """JSON-friendly scalar (NaN -> None, timestamps -> ISO date, numpy -> python)."""
    if isinstance(v, pd.Timestamp):
        return v.strftime("%Y-%m-%d")
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def _read(lake: Lake, manifest: str, stage: Stage, d: pd.Timestamp) -> tuple[pd.DataFrame | None, str | None]:
    try:
        return lake.read_with_hash(manifest, stage.value, d, verify=True)  # provenance: from the content
    except TvquantError:
        return None, None


def decision_record(manifest: Manifest, lake_root, date=None) -> dict:
    """The decisions for ``date`` (default: the ledger's latest date) and their provenance.

    Raises
    ------
    LedgerError
        If the ledger has no entry (for the date).
    """
    lake = Lake(lake_root)
    ledger = Ledger(lake.ledger_path(manifest.name))
    entries = ledger.entries() if ledger.path.exists() else []
    if not entries:
        raise LedgerError(f"{ledger.path}: no ledger entries; materialize {manifest.name} first")
    day = pd.Timestamp(date if date is not None else max(e["payload"]["date"] for e in entries))
    key = day.strftime("%Y-%m-%d")
    history = [e for e in entries if e["payload"].get("date") == key]
    if not history:
        raise LedgerError(f"{ledger.path}: no entry for {key}; materialize that date first")
    entry = history[-1]
    p = entry["payload"]
    recorded = output_hashes(p)
    frames, hashes = {}, {}
    for stage in ALL_STAGES:
        if stage is not Stage.AUDIT and SPECS[stage].enabled(manifest):
            frames[stage], digest = _read(lake, manifest.name, stage, day)
            hashes[stage.value] = {"lake": digest, "ledger": recorded.get(stage.value),
                                   "matches": digest is not None and digest == recorded.get(stage.value)}
    chain = ledger.verify()
    return {
        "manifest": manifest.name,
        "date": key,
        "regime": _regime(frames[Stage.REGIME]),
        "selection": _selection(frames[Stage.SELECTION]),
        "tournament": _tournament(frames[Stage.TOURNAMENT]),
        "leaderboard": _leaderboard(frames[Stage.BACKTEST]),
        "hashes": hashes,
        "provenance": {
            "entry_seq": entry["seq"], "entry_hash": entry["entry_hash"], "prev_hash": entry["prev_hash"],
            "signed": "hmac" in entry, "timestamp": p.get("timestamp"), "run_id": p.get("run_id"),
            "supersedes": p.get("supersedes"), "entries_for_date": len(history),
            "manifest_hash": p.get("manifest_hash"), "git": p.get("git") or {"sha": p.get("git_sha"),
                                                                              "dirty": p.get("git_dirty")},
            "environment": p.get("environment") or {k: p.get(k) for k in ("uv_lock_hash", "python", "packages")},
            "ledger": str(ledger.path), "ledger_intact": chain.ok,
            "ledger_problem": None if chain.ok else f"entry {chain.first_bad}: {chain.reason}",
        },
    }


def _regime(df: pd.DataFrame | None) -> dict | None:
    if df is None or not len(df):
        return None
    return {str(c): _plain(v) for c, v in df.iloc[0].items()}


def _selection(df: pd.DataFrame | None) -> dict | None:
    if df is None:
        return None
    chosen = df[df["selected"]] if "selected" in df.columns else df
    keep = [c for c in ("symbol", "sector", "direction", "cluster", "momentum_pct", "rank_in_cluster")
            if c in df.columns]
    return {"screened": len(df), "selected": len(chosen),
            "symbols": [{c: _plain(r[c]) for c in keep} for _, r in chosen.iterrows()]}


def _tournament(df: pd.DataFrame | None) -> list[dict] | None:
    if df is None:
        return None
    out = []
    for cand, g in df.groupby("candidate", sort=True):
        held = g[(g["symbol"] != "") & (g["weight"].abs() > 0)].sort_values(["weight", "symbol"],
                                                                            ascending=[False, True])
        first = g.iloc[0]
        out.append({
            "candidate": str(cand),
            **{c: _plain(first[c]) for c in ("status", "fallback", "max_weight", "decision_date", "rebalanced")
               if c in g.columns},
            "holdings": len(held), "weight_sum": _plain(float(g["weight"].sum())),
            "top": [{"symbol": s, "weight": _plain(w)} for s, w in
                    zip(held["symbol"].head(TOP_WEIGHTS), held["weight"].head(TOP_WEIGHTS), strict=True)],
        })
    return out


def _leaderboard(df: pd.DataFrame | None) -> list[dict] | None:
    if df is None:
        return None
    keep = [c for c in ("rank", "candidate", "total_return", "sharpe", "max_drawdown", "turnover", "n_days")
            if c in df.columns]
    board = df.sort_values("rank") if "rank" in df.columns else df
    return [{c: _plain(r[c]) for c in keep} for _, r in board.iterrows()]
