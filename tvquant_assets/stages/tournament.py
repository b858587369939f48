"""Target weights of every engine x profile (solver status, fallbacks); carried off-rebalance.

On a rebalance date (``rebalance.rule``) every candidate (custom, skfolio, riskfolio, cvxportfolio,
adaptive) is fitted on D's estimates (``core/tournament.py``, docs/engines.md) with the cap of the regime's
preset; the last decision, when in the lake, feeds the turnover penalty and the fallback. On any other date
the last decision is carried forward (``rebalanced`` false, ``decision_date`` says which).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from tvquant_assets.calendar import previous_dates
from tvquant_assets.core.tournament import merge_groups, run_tournament
from tvquant_assets.errors import LakeError
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.markdown import md_table
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="tournament", description=__doc__, upstream=("estimation", "regime"),
                 kinds=("cvxpy", "skfolio"), price_window=True, carries_decision=True, parallel="parts")


def _previous_decision(ctx: RunContext, first: pd.Timestamp, rebalance) -> pd.DataFrame | None:
    """The tournament partition before ``first``: optional on a rebalance date, required off one."""
    m = ctx.manifest
    prev_date = previous_dates(m, first, 1)[0]
    if prev_date < pd.Timestamp(m.start):
        return None
    if first in rebalance:  # when present, it feeds the turnover penalty and the fallback
        exists = ctx.lake.exists(ctx.name, SPEC.name, prev_date)
        return ctx.lake.read(ctx.name, SPEC.name, prev_date) if exists else None
    try:
        return ctx.lake.read(ctx.name, SPEC.name, prev_date)
    except LakeError:
        last_rb = max((r for r in rebalance if r <= first), default=None)
        raise LakeError(
            f"{ctx.name}/tournament {first.date()}: carries the decision of rebalance date "
            f"{last_rb.date() if last_rb is not None else '?'}, whose partitions are not in the lake; "
            f"materialize from {last_rb.date() if last_rb is not None else m.start} on"
        ) from None


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    return run_part(ctx, dates, None)


def parts(ctx: RunContext, dates: list[pd.Timestamp], n: int) -> list[tuple[str, ...]]:
    """The candidates in up to ``n`` groups for worker processes: a candidate's decisions depend on its own
    previous decision only (turnover penalty, fallback), never on another candidate's, and no solver
    warm-starts, so each group runs every date in order on its own. Balanced by the engines' typical fit
    times (``fit_ms`` in the engine registry; a skfolio fit takes ~8 custom ones): each candidate, slowest
    first, joins the group with the least so far; manifest order inside a group. One group (not split)
    when the range holds no rebalance date or fewer dates than a worker is worth."""
    from tvquant_assets.core.engines import ENGINES
    from tvquant_assets.stages.parallel import MIN_DATES_PER_PART

    candidates = ctx.manifest.tournament.candidates
    rebalance = ctx.rebalance_set(max(dates))
    k = min(n, len(candidates))
    if k < 2 or len(dates) < 2 * MIN_DATES_PER_PART or not any(d in rebalance for d in dates):
        return []
    cost = [ENGINES.info(c.engine).fit_ms for c in candidates]
    groups: list[list[int]] = [[] for _ in range(k)]
    loads = [0.0] * k
    for i in sorted(range(len(candidates)), key=lambda i: -cost[i]):  # stable: manifest order among equals
        g = loads.index(min(loads))
        groups[g].append(i)
        loads[g] += cost[i]
    return [tuple(candidates[i].name for i in sorted(g)) for g in groups if g]


def run_part(ctx: RunContext, dates: list[pd.Timestamp], names: tuple[str, ...] | None) -> StageResult:
    """The tournament of ``dates`` for the candidates ``names`` (None: every candidate). The first group of a
    split (the one holding the manifest's first candidate) also carries the previous decision's rows of
    candidates the manifest no longer has."""
    m = ctx.manifest
    rebalance = ctx.rebalance_set(max(dates))
    previous = _previous_decision(ctx, dates[0], rebalance)
    cfg = m.tournament
    if names is not None:
        everyone = [c.name for c in cfg.candidates]
        cfg = cfg.model_copy(update={"candidates": [c for c in cfg.candidates if c.name in names]})
        if previous is not None:
            keep = previous["candidate"].isin(names)
            if everyone[0] in names:  # the first group
                keep |= ~previous["candidate"].isin(everyone)
            previous = previous[keep].reset_index(drop=True)
    estimates = ctx.frames("estimation", dates)
    regimes = ctx.frames("regime", dates)
    panel = ctx.window_panel(dates)
    presets = {k.value if hasattr(k, "value") else str(k): v for k, v in m.regime_presets.items()}
    frames = run_tournament(panel, estimates, regimes, dates, lambda d: d in rebalance, cfg, presets,
                            m.estimation, previous, m.selection.linkage, m.selection.correlation_windows,
                            m.book)
    notes = {}
    for d, f in frames.items():
        decided = pd.Timestamp(f["decision_date"].iloc[0]).date() if len(f) else None
        notes[d] = f"rebalanced ({m.rebalance.rule})" if d in rebalance else \
            f"not a rebalance date: carries the decision of {decided}"
    return StageResult(frames, ctx.same_date_hashes(SPEC.upstream, dates), notes)


def merge_parts(results: list[StageResult]) -> StageResult:
    """The groups of a split as one result: each date's rows of every group, sorted as one run sorts them."""
    first = results[0]
    frames = merge_groups([r.frames for r in results])
    return StageResult(frames, first.upstream, first.notes, first.metadata)


def summary(frame: pd.DataFrame) -> dict:
    """Each candidate's status, holdings, largest weight and top holding."""
    if frame.empty or "candidate" not in frame.columns:
        return {}
    # Plain arrays: a few dozen rows per partition, summarized for every partition of a range run.
    cand = frame["candidate"].astype(str).to_numpy()
    sym = frame["symbol"].astype(str).to_numpy() if "symbol" in frame.columns else np.full(len(frame), "?")
    weight = frame["weight"].to_numpy(dtype="float64")
    extra = [c for c in ("status", "fallback", "score", "rank", "adaptive_pick") if c in frame.columns]
    firsts = {c: frame[c].to_numpy(dtype=object) for c in extra}
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
    return {"summary": md_table(board, cols, {"max_weight": ".1%"}), "candidates": len(rows)}
