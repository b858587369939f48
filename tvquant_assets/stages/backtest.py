"""Walk-forward of every candidate to D with drift and costs; metrics and leaderboard.

Every decision since ``backtest.start`` is stitched from the tournament partitions and simulated on the
lake's closes by each of ``backtest.simulators`` (``core/backtest.py``: cash mode, costs per asset class,
drift band, borrow on shorts, forced sale of delisted names); scores, the deflated Sharpe ratio and PBO use
returns <= D only, and so do the metrics against the manifest's ``benchmark`` (excess return, alpha, beta,
tracking error, information ratio, up/down capture). With ``backtest.execution_feedback`` the costs are
calibrated from event-driven fills.
With ``rebalance.rule: drift`` a decision trades only when the candidate's drift exceeds
``backtest.drift.threshold`` (the drift monitor's orders, simulated).
"""

from __future__ import annotations

import pandas as pd

from tvquant_assets.core.backtest import walk_forward
from tvquant_assets.errors import SourceError
from tvquant_assets.sources.benchmark import benchmark_closes
from tvquant_assets.stages.books import borrow_rates, collect_decisions, cost_rates, execution_feedback, trading_gate
from tvquant_assets.stages.context import RunContext
from tvquant_assets.stages.markdown import md_table, to_float
from tvquant_assets.stages.spec import StageResult, StageSpec

SPEC = StageSpec(name="backtest", description=__doc__, upstream=("tournament", "prices"), kinds=("numpy",),
                 book=True, parallel="interleaved")


def backtest_frames(ctx: RunContext, dates: list[pd.Timestamp], events: list[dict] | None = None,
                    feedback: list | None = None) -> dict[pd.Timestamp, pd.DataFrame]:
    """The leaderboard frames of ``dates``: every decision since ``backtest.start`` from the lake, prices from
    the lake, simulated with the manifest's settings by each configured simulator."""
    m = ctx.manifest
    bt = m.backtest
    start = pd.Timestamp(m.backtest_start)
    last = max(dates)
    settings = dict(simulators=bt.simulators, execution=bt.execution, **trading_gate(m),
                    borrow_bps_per_year=borrow_rates(ctx), delist_after=bt.delist_after_days,
                    pbo_blocks=bt.pbo_blocks, events=events)
    if last < start:
        empty = pd.Series(dtype="float64") if m.benchmark is not None else None
        return walk_forward(pd.DataFrame(dtype="float64"), {}, start, dates, bt.costs.rate, bt.periods_per_year,
                            **{**settings, "execution": "close"}, benchmark=empty)
    decisions = collect_decisions(ctx, start, last)
    panel = ctx.panel(last, first=start)
    if m.benchmark is not None:
        settings["benchmark"] = benchmark_closes(m.benchmark, panel.close, ctx.source)
    if bt.execution == "next_open" and panel.open is None:
        raise SourceError(f"{m.name}: backtest.execution next_open needs open prices and source "
                          f"{m.source.kind} has close only; use execution: close")
    rates = cost_rates(ctx)
    if bt.execution_feedback.enabled:
        calibrated = execution_feedback(ctx, panel.close, panel.open, decisions, start, last)
        rates = calibrated.rates
        if feedback is not None:
            feedback.append(calibrated)
    return walk_forward(panel.close, decisions, start, dates, rates, bt.periods_per_year,
                        open_=panel.open, **settings)


def run(ctx: RunContext, dates: list[pd.Timestamp]) -> StageResult:
    events: list[dict] = []
    feedback: list = []
    frames = backtest_frames(ctx, dates, events, feedback)
    notes: dict[pd.Timestamp, str] = {}
    metadata: dict[pd.Timestamp, dict] = {}
    for d in frames if feedback else []:
        metadata[d], line = feedback[0].record(d)
        if line:
            notes[d] = line
    for e in events:  # forced sales, recorded on the report date of the day they happened
        d = pd.Timestamp(e["date"])
        if d in frames:
            line = (f"{e['simulator']} {e['candidate']}: {e['symbol']} had no bar for more than "
                    f"{ctx.manifest.backtest.delist_after_days} days; sold {e['weight']:.4f} at its last price")
            notes[d] = f"{notes[d]}; {line}" if d in notes else line
    return StageResult(frames, ctx.same_date_hashes(SPEC.upstream, dates), notes, metadata)


def summary(frame: pd.DataFrame) -> dict:
    if frame.empty or "candidate" not in frame.columns:
        return {"summary": "before the backtest start: no leaderboard yet"}
    board = frame.sort_values("rank") if "rank" in frame.columns else frame
    cols = ["rank", "candidate", "simulator", "total_return", "ann_return", "ann_vol", "sharpe", "deflated_sharpe",
            "dsr", "pbo", "max_drawdown", "turnover", "excess_return", "beta", "information_ratio"]
    fmt = {"total_return": ".2%", "ann_return": ".2%", "ann_vol": ".2%", "sharpe": ".2f", "max_drawdown": ".2%",
           "turnover": ".2f", "deflated_sharpe": ".3f", "dsr": ".3f", "pbo": ".2f", "excess_return": ".2%",
           "beta": ".2f", "information_ratio": ".2f"}
    leader = board.iloc[0]
    out = {"summary": "Leaderboard\n\n" + md_table(board, cols, fmt), "leader": str(leader["candidate"])}
    f = to_float(leader.get("sharpe"))
    if f is not None:
        out["leader_sharpe"] = f
    return out
