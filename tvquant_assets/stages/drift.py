"""Drift monitor for D: the leader's drifted book vs its latest targets; orders when drift exceeds the threshold.

The monitored candidate (``backtest.drift.candidate``, else the leaderboard's leader of D on the first
simulator) is held after D's close as the backtest holds it; when its drift exceeds
``backtest.drift.threshold`` the orders (partial or full) restore the targets, in the selection's execution
rank when ``max_orders``/``max_traded`` bind (``core/drift.py``). Each order is priced with D's cost rate.
With ``rebalance.rule: drift`` the book of D is the one before D's close trade and the orders are the trade the
backtest makes at that close (drift-triggered trading: the advice is simulated). Each order names the
``instrument`` it trades (``backtest.drift.instrument``): the symbol, or the implementation alternative the
catalog of D lists for it (``alt_ticker``: e.g. the perpetual of a spot pair), point in time.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from tvquant_assets.core.backtest import books
from tvquant_assets.core.drift import COLUMNS, drift_orders, order_instruments
from tvquant_assets.stages.books import book_settings, collect_decisions, cost_classes, cost_rates, execution_feedback
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.markdown import md_table
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="drift", description=__doc__,
                 upstream=("backtest", "tournament", "prices", "selection", "catalog"), kinds=("numpy",), book=True,
                 parallel="interleaved")


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    m = ctx.manifest
    bt, cfg = m.backtest, m.backtest.drift
    start, last = pd.Timestamp(m.backtest_start), max(dates)
    empty = pd.DataFrame({c: pd.Series(dtype=t) for c, t in COLUMNS.items()})
    frames = {d: empty.copy() for d in dates}
    notes = {d: "before backtest.start: nothing held" for d in dates if d < start}
    live = [d for d in dates if d >= start]
    if not live:
        return StageResult(frames, ctx.same_date_hashes(SPEC.upstream, dates), notes)
    decisions = collect_decisions(ctx, start, last)
    panel = ctx.panel(last, first=start)
    if cfg.candidate is not None:
        chosen = {d: cfg.candidate for d in live}
    else:  # the leaderboard's leader of D (first configured simulator)
        boards = ctx.read("backtest", live)
        chosen = {}
        for d in live:
            board = boards[d][0]
            board = board[board["simulator"] == bt.simulators[0]] if "simulator" in board.columns else board
            chosen[d] = str(board.sort_values("rank")["candidate"].iloc[0]) if len(board) else None
    closes = panel.close.ffill()
    settings = book_settings(ctx, panel)
    rates = cost_rates(ctx)
    next_rate: Callable[[pd.Timestamp], float | pd.Series]
    if bt.execution_feedback.enabled:  # the books pay the calibrated costs; orders are priced after D's fills
        calibrated = execution_feedback(ctx, panel.close, panel.open, decisions, start, last)
        rates = calibrated.rates
        classes = cost_classes(ctx)
        commission = {c: bt.costs_by_class.get(c, bt.costs).commission_bps / 1e4 for c in set(classes.values())}

        def next_rate(d: pd.Timestamp) -> pd.Series:
            est = calibrated.path.estimate.loc[:d]
            row = est.iloc[-1] if len(est) else pd.Series(dtype=float)
            return pd.Series({s: commission[c] + row.get(c, bt.costs.slippage_bps) / 1e4 for s, c in classes.items()})
    else:
        def next_rate(d: pd.Timestamp) -> float | pd.Series:
            return pd.Series(rates) if isinstance(rates, dict) else rates
    selections = {d: f for d, (f, _) in ctx.lake.read_many(ctx.name, "selection", live, missing_ok=True).items()}
    alternatives: dict[pd.Timestamp, pd.Series] = {}
    if cfg.instrument != "primary":
        for d, (cat, _) in ctx.lake.read_many(ctx.name, "catalog", live, missing_ok=True).items():
            alt = cat["alt_ticker"] if "alt_ticker" in cat.columns else pd.Series("", index=cat.index)
            alternatives[d] = pd.Series(alt.to_numpy(), index=cat["symbol"].to_numpy())
    for cand in sorted({c for c in chosen.values() if c is not None}):
        ds = [d for d in live if chosen[d] == cand]
        if cand not in decisions:
            notes.update({d: f"{cand}: no decisions in the lake" for d in ds})
            continue
        for d, (held, target, equity) in books(panel.close, decisions[cand], start, ds, rates, **settings).items():
            at = closes.index.searchsorted(d, side="right")  # the last close <= D (sorted dates)
            prices = closes.iloc[at - 1] if at else pd.Series(dtype=float)
            sel = selections.get(d)
            ranked = sel is not None and "execution_score" in sel.columns
            by_symbol = pd.Index(sel["symbol"]) if ranked else None
            frame = drift_orders(cand, held, target, prices, cfg.notional * equity, cfg.threshold, bt.drift_band,
                                 cfg.mode, cost_rate=next_rate(d),
                                 clusters=pd.Series(sel["cluster"].to_numpy(), by_symbol) if ranked else None,
                                 execution_score=pd.Series(sel["execution_score"].to_numpy(), by_symbol)
                                 if ranked else None,
                                 max_orders=cfg.max_orders, max_traded=cfg.max_traded)
            frame = order_instruments(frame, alternatives.get(d, pd.Series(dtype=str)), cfg.instrument)
            frames[d] = frame
            n = int((frame["side"] != "none").sum())
            drift = float(frame["drift"].iloc[0]) if len(frame) else 0.0
            notes[d] = f"{cand}: drift {drift:.4f} vs threshold {cfg.threshold:.4f}; {n} orders ({cfg.mode})"
    return StageResult(frames, ctx.same_date_hashes(SPEC.upstream, dates), notes)


def summary(frame: pd.DataFrame) -> dict:
    if frame.empty or "side" not in frame.columns:
        return {"summary": "nothing held: no drift to monitor"}
    orders = frame[frame["side"] != "none"]
    drift = float(frame["drift"].iloc[0]) if "drift" in frame.columns else 0.0
    md = f"drift **{drift:.4f}**, **{len(orders)}** orders"
    if len(orders):
        md += "\n\n" + md_table(orders, ["symbol", "instrument", "side", "quantity", "notional", "reason"],
                                {"quantity": ".4g", "notional": ".2f"})
    return {"summary": md, "drift": drift, "orders": len(orders)}

