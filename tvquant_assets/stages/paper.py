"""Paper account (opt-in, `paper.enabled`): the drift monitor's orders of the previous date filled at D's open.

The orders ``drift`` publishes after D-1's close (whole units) go to nautilus_trader's simulated exchange and
fill at the open of session D (``core/paper.py``); an order whose symbol has no open on D stays pending to the
next session. The partition of D holds the account after D's close: cash, positions marked at D's closes,
D's fills (price vs the decision-time close: implementation shortfall in bps), pending orders, and the P&L of
D against the backtest's day return of the same candidate. It starts from its own partition of D-1 (a
self-dependency) with ``paper.cash`` (default ``backtest.drift.notional``). The execution-shortfall feedback
learns from these fills instead of a fill model (``core/execution_feedback.estimate_step``, the settings of
``backtest.execution_feedback``): the suggested slippage per asset class is in the partition, its metadata and
``<lake>/<manifest>/paper_slippage.json`` - a suggestion, never written into the manifest.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from tvquant_assets.calendar import manifest_dates, previous_dates
from tvquant_assets.core import paper
from tvquant_assets.core.execution_feedback import estimate_step
from tvquant_assets.errors import SourceConfigError
from tvquant_assets.lake.store import atomic_write_bytes
from tvquant_assets.stages.books import cost_classes
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.markdown import md_table
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="paper", description=__doc__, upstream=("prices", "backtest"), previous=("drift", "paper"),
                 kinds=("nautilus",), enabled_by="paper.enabled")

SLIPPAGE_FILE = "paper_slippage.json"


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    m = ctx.manifest
    dates = sorted(pd.Timestamp(d) for d in dates)
    start, account, estimates = _state_before(ctx, dates[0])
    chain = manifest_dates(m, start, dates[-1])
    panel = ctx.panel(dates[-1], first=chain[0])
    if panel.open is None:
        raise SourceConfigError(f"{m.name}: paper.enabled fills at the open and source {m.source.kind} has no open "
                                "prices; add an open column or turn paper off")
    bt = m.backtest
    classes = cost_classes(ctx)
    costs = {s: bt.costs_by_class.get(c, bt.costs) for s, c in classes.items()}
    commission = pd.Series({s: c.commission_bps / 1e4 for s, c in costs.items()}, dtype=float)
    fb = bt.execution_feedback
    alpha = 1.0 - 0.5 ** (1.0 / fb.halflife)
    for c in sorted(set(classes.values())):
        prior = bt.costs_by_class.get(c, bt.costs).slippage_bps
        estimates.setdefault(c, paper.Estimate(float(np.clip(prior, fb.min_bps, fb.max_bps))))
    prevs = {d: previous_dates(m, d, 1)[0] for d in chain if d > pd.Timestamp(m.start)}
    drifts = {d: f for d, (f, _) in ctx.lake.read_many(ctx.name, "drift", sorted(set(prevs.values())),
                                                       missing_ok=True).items()}
    missing = sorted(p for p in prevs.values() if p not in drifts)
    if missing:
        raise FileNotFoundError(f"{m.name}/paper reads drift {missing[0].date()}, which is not in the lake: "
                                "materialize drift first")
    boards = {d: f for d, (f, _) in ctx.lake.read_many(ctx.name, "backtest", chain, missing_ok=True).items()}
    frames, notes, metadata = {}, {}, {}
    for d in chain:
        before = account.equity
        orders = []
        if d in prevs:
            rows = drifts[prevs[d]]
            rows = rows[rows["side"] != "none"].set_index("symbol") if len(rows) else rows
            orders = paper.to_orders(rows["side"], rows["quantity"], rows["price"], prevs[d]) if len(rows) else []
            if len(drifts[prevs[d]]):
                account.candidate = str(drifts[prevs[d]]["candidate"].iloc[0])
        opens = panel.open.loc[d] if d in panel.open.index else pd.Series(dtype=float)
        closes = panel.close.loc[d] if d in panel.close.index else pd.Series(dtype=float)
        account, fills = paper.session(account, orders, opens, closes, commission, d, tick=m.paper.tick,
                                       fill_model=m.paper.fill_model.model_dump())
        estimates = _learn(estimates, fills, classes, alpha, fb)
        pnl = account.equity - before
        day_return = pnl / before if before else 0.0
        bench = _backtest_return(boards.get(d), account.candidate, bt.simulators[0])
        frames[d] = paper.frame(account, fills, classes, estimates, pnl=pnl, day_return=day_return,
                                backtest_return=bench)
        notional = sum(f.quantity * f.reference for f in fills)
        fill_bps = sum(f.quantity * f.reference * f.shortfall_bps for f in fills) / notional if fills else 0.0
        notes[d] = (f"{len(fills)} fills at the open ({len(account.pending)} pending); equity {account.equity:,.2f}; "
                    f"day return {day_return:.4%} vs backtest {bench:.4%}")
        metadata[d] = {"paper_equity": account.equity, "paper_cash": account.cash, "paper_pnl": pnl,
                       "paper_fills": len(fills), "paper_positions": len(account.positions),
                       "fill_shortfall_bps": fill_bps,
                       "suggested_slippage_bps": {c: e.bps for c, e in sorted(estimates.items())},
                       "paper_fills_seen": {c: e.fills for c, e in sorted(estimates.items())}}
        if np.isfinite(bench):
            metadata[d]["return_shortfall_bps"] = 1e4 * (bench - day_return)
    out = {d: frames[d] for d in dates}
    if ctx.history.persist:  # replay (audit replay) writes nothing
        path = write_suggestion(ctx, dates[-1], estimates)
        for d in dates:
            metadata[d]["slippage_file"] = str(path)
    return StageResult(out, ctx.same_date_hashes(SPEC.upstream, dates), {d: notes[d] for d in dates},
                       {d: metadata[d] for d in dates})


def _state_before(ctx: RunContext, first: pd.Timestamp) -> tuple[pd.Timestamp, paper.Account, dict]:
    """The first date to compute and the account before it: the lake's paper partition of the previous date,
    else the last stored one before ``first`` (the dates between are recomputed), else the opening account."""
    m = ctx.manifest
    opening = paper.Account(float(m.paper.cash or m.backtest.drift.notional))
    if first <= pd.Timestamp(m.start):
        return first, opening, {}
    stored = [p for p in ctx.lake.partitions(ctx.name, "paper") if p < first]
    if not stored:
        return pd.Timestamp(m.start), opening, {}
    account, estimates = paper.from_frame(ctx.lake.read(ctx.name, "paper", stored[-1]))
    if stored[-1] == previous_dates(m, first, 1)[0]:
        return first, account, estimates
    return manifest_dates(m, stored[-1] + pd.Timedelta(days=1), first)[0], account, estimates


def _learn(estimates: dict, fills: list, classes: dict, alpha: float, fb) -> dict:
    """The estimates after a session's fills (notional at the decision-time close, as the feedback weighs)."""
    out = dict(estimates)
    for c in sorted({classes.get(f.symbol, "default") for f in fills}):
        mine = [f for f in fills if classes.get(f.symbol, "default") == c]
        notional = sum(f.quantity * f.reference for f in mine)
        weighted = sum(f.quantity * f.reference * f.shortfall_bps for f in mine)
        e = out[c]
        bps, pool = estimate_step(e.bps, (e.weighted, e.notional, e.seen), weighted, notional, len(mine),
                                  alpha=alpha, min_fills=fb.min_fills, min_bps=fb.min_bps, max_bps=fb.max_bps)
        out[c] = paper.Estimate(bps, *pool, fills=e.fills + len(mine))
    return out


def _backtest_return(board: pd.DataFrame | None, candidate: str, simulator: str) -> float:
    if board is None or not candidate or "candidate" not in board.columns:
        return float("nan")
    rows = board[board["candidate"] == candidate]
    if "simulator" in rows.columns:
        rows = rows[rows["simulator"].astype(str) == str(simulator)]
    return float(rows["day_return"].iloc[0]) if len(rows) else float("nan")


def write_suggestion(ctx: RunContext, as_of: pd.Timestamp, estimates: dict):
    """``<lake>/<manifest>/paper_slippage.json``: the slippage learned from paper fills <= ``as_of`` per asset
    class beside the manifest's (a later date's suggestion is not replaced by an earlier one)."""
    m = ctx.manifest
    path = ctx.lake.manifest_dir(ctx.name) / SLIPPAGE_FILE
    if path.exists():
        try:
            if json.loads(path.read_text()).get("as_of", "") > f"{as_of:%Y-%m-%d}":
                return path
        except (ValueError, OSError):
            pass
    body = {"manifest": ctx.name, "as_of": f"{as_of:%Y-%m-%d}",
            "note": "learned from the paper account's fills vs the decision-time close; a suggestion for "
                    "backtest.costs(_by_class).slippage_bps, not applied",
            "classes": {c: {"suggested_slippage_bps": round(e.bps, 4), "fills": e.fills,
                            "manifest_slippage_bps": m.backtest.costs_by_class.get(c, m.backtest.costs).slippage_bps}
                        for c, e in sorted(estimates.items())}}
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, (json.dumps(body, indent=1, sort_keys=True) + "\n").encode())
    return path


def summary(frame: pd.DataFrame) -> dict:
    if frame.empty or "kind" not in frame.columns:
        return {"summary": "paper account: nothing yet"}
    acc = frame[frame["kind"] == "account"].iloc[0]
    fills = frame[frame["kind"] == "fill"]
    md = (f"equity **{acc['equity']:,.2f}** (cash {acc['cash']:,.2f}), P&L {acc['pnl']:,.2f}, day return "
          f"{acc['day_return']:.4%} vs backtest {acc['backtest_return']:.4%}; **{len(fills)}** fills")
    if len(fills):
        md += "\n\n" + md_table(fills, ["symbol", "side", "quantity", "price", "reference", "commission",
                                        "shortfall_bps"],
                                {"quantity": ".0f", "price": ".4f", "reference": ".4f", "commission": ".2f",
                                 "shortfall_bps": ".2f"})
    out = {"summary": md, "equity": float(acc["equity"]), "fills": len(fills)}
    if np.isfinite(acc["return_shortfall"]):
        out["return_shortfall_bps"] = float(1e4 * acc["return_shortfall"])
    return out
