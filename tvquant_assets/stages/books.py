"""The book helpers the backtest, drift and the tearsheet share: the decisions stitched from the lake, the
cost rates (one, per asset class, or calibrated by the execution-shortfall feedback), the simulation
settings and the book held after drift."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from tvquant_assets.core.backtest import books, event_driven_fills
from tvquant_assets.core.execution_feedback import SlippagePath, calibrated_rates, shortfall_table, slippage_path
from tvquant_assets.stages.context import RunContext


def collect_decisions(ctx: RunContext, start: pd.Timestamp, last: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """Stitch the decisions of every tournament partition in [start, last]: only the partitions that can
    change the weights are read (the one at ``start`` and each rebalance date after it)."""
    rebalance = ctx.rebalance_set(last)
    wanted = sorted({pd.Timestamp(start), *(r for r in rebalance if start < r <= last)})
    frames = ctx.read("tournament", wanted)
    rows = []
    for d in wanted:
        f = frames[d][0]
        f = f[f["symbol"] != ""]
        rows.append(f.assign(effective=d)[["candidate", "effective", "symbol", "weight"]])
    long = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["candidate", "effective",
                                                                                   "symbol", "weight"])
    out = {}
    for cand, g in long.groupby("candidate"):
        w = g.pivot_table(index="effective", columns="symbol", values="weight", aggfunc="sum").fillna(0.0)
        w = w.reindex(wanted).fillna(0.0)
        w.columns.name = None
        w.index.name = None
        out[str(cand)] = w
    return out


def cost_rates(ctx: RunContext) -> float | dict[str, float]:
    """Commission + slippage per unit of notional: one rate, or one per symbol when the manifest sets costs per
    asset class (the catalog's ``type``)."""
    bt = ctx.manifest.backtest
    if not bt.costs_by_class:
        return bt.costs.rate
    cat = ctx.source.catalog()
    kinds = dict(zip(cat["symbol"].astype(str), cat["type"].astype(str)))
    return {s: bt.costs_by_class.get(kinds.get(s, ""), bt.costs).rate for s in ctx.universe_symbols}


def borrow_rates(ctx: RunContext) -> float | dict[str, float]:
    """Borrow on short notional (bps per year): one rate, or one per symbol when the manifest sets
    ``borrow_bps_by_class`` (the catalog's ``type``; other classes pay ``borrow_bps_per_year``)."""
    bt = ctx.manifest.backtest
    if not bt.borrow_bps_by_class:
        return bt.borrow_bps_per_year
    cat = ctx.source.catalog()
    kinds = dict(zip(cat["symbol"].astype(str), cat["type"].astype(str)))
    return {s: bt.borrow_bps_by_class.get(kinds.get(s, ""), bt.borrow_bps_per_year) for s in ctx.universe_symbols}


def cost_classes(ctx: RunContext) -> dict[str, str]:
    """Asset class of every universe symbol for costs: the catalog's type when ``costs_by_class`` names it,
    else ``default`` (the manifest's ``backtest.costs``)."""
    bt = ctx.manifest.backtest
    if not bt.costs_by_class:
        return {s: "default" for s in ctx.universe_symbols}
    cat = ctx.source.catalog()
    kinds = dict(zip(cat["symbol"].astype(str), cat["type"].astype(str)))
    return {s: kinds.get(s, "") if kinds.get(s, "") in bt.costs_by_class else "default" for s in ctx.universe_symbols}


@dataclass
class ExecutionFeedback:
    """Cost rates per day and symbol calibrated by the execution-shortfall feedback, and what moved them."""

    rates: pd.DataFrame
    path: SlippagePath
    skipped: dict[str, str]

    def record(self, d: pd.Timestamp) -> tuple[dict, str]:
        """(metadata, note) of date ``d``: per class the estimate in force on d, after d's fills, and counts."""
        d = pd.Timestamp(d)
        p = self.path
        if d not in p.estimate.index:  # not a trading day: the last one before it
            k = p.estimate.index.searchsorted(d, side="right") - 1
            if k < 0:
                return {}, ""
            d = p.estimate.index[k]
        rec = {c: {"slippage_bps_before": round(float(p.before.at[d, c]), 6),
                   "slippage_bps_after": round(float(p.estimate.at[d, c]), 6),
                   "fills": int(p.fills.at[d, c]), "fills_total": int(p.total.at[d, c])} for c in p.estimate.columns}
        note = "; ".join(f"execution feedback {c}: slippage {v['slippage_bps_before']:.2f} -> "
                         f"{v['slippage_bps_after']:.2f} bps ({v['fills']} fills, {v['fills_total']} so far)"
                         for c, v in rec.items())
        return {"execution_feedback": rec, "execution_feedback_skipped": sorted(self.skipped)}, note


def execution_feedback(ctx: RunContext, close: pd.DataFrame, open_: pd.DataFrame | None,
                       decisions: Mapping[str, pd.DataFrame], start: pd.Timestamp, last: pd.Timestamp
                       ) -> ExecutionFeedback:
    """Trade every candidate's decisions through nautilus with the manifest's fill model, measure each fill's
    shortfall, and turn it into per-day cost rates (commission + the class's slippage estimate)."""
    bt = ctx.manifest.backtest
    cfg = bt.execution_feedback
    classes = cost_classes(ctx)
    costs = {c: bt.costs_by_class.get(c, bt.costs) for c in set(classes.values())}
    symbols = [str(s) for s in close.columns]
    commission = pd.Series([costs[classes.get(s, "default")].commission_bps / 1e4 if s in classes
                            else bt.costs.commission_bps / 1e4 for s in symbols], index=close.columns, dtype=float)
    classes = {s: classes.get(s, "default") for s in symbols}
    fills, days, per_day, skipped = event_driven_fills(
        close, decisions, start, last, commission.to_numpy(), tick=cfg.tick, fill_model=cfg.fill_model.model_dump(),
        execution=bt.execution, open_=open_)
    table = shortfall_table(fills, days, symbols, classes, per_day)
    prior = {c: costs.get(c, bt.costs).slippage_bps for c in sorted(set(classes.values()))}
    path = slippage_path(table, prior, days, halflife=cfg.halflife, min_fills=cfg.min_fills, min_bps=cfg.min_bps,
                         max_bps=cfg.max_bps)
    return ExecutionFeedback(calibrated_rates(path, commission, classes), path, skipped)


def trading_gate(manifest) -> dict:
    """Band and drift threshold of the simulation: with ``rebalance.rule: drift`` a decision trades only when
    the drift exceeds ``backtest.drift.threshold``, with the drift monitor's mode (``full``: no band)."""
    bt = manifest.backtest
    if manifest.rebalance.rule != "drift":
        return dict(band=bt.drift_band)
    return dict(band=bt.drift_band if bt.drift.mode == "partial" else 0.0, threshold=bt.drift.threshold)


def book_settings(ctx: RunContext, panel) -> dict:
    """The manifest's simulation settings for :func:`tvquant_assets.core.backtest.books`."""
    bt = ctx.manifest.backtest
    return dict(execution=bt.execution, open_=panel.open, **trading_gate(ctx.manifest),
                borrow_bps_per_year=borrow_rates(ctx), periods_per_year=bt.periods_per_year,
                delist_after=bt.delist_after_days)


def held_weights(ctx: RunContext, candidate: str, dates: list[pd.Timestamp]) -> pd.DataFrame:
    """The drifted book of ``candidate`` after the close of each of ``dates`` (rows), from the decisions and
    closes in the lake: what the backtest holds between decisions, not the targets."""
    start, last = pd.Timestamp(ctx.manifest.backtest_start), max(dates)
    decisions = collect_decisions(ctx, start, last)
    if candidate not in decisions:
        return pd.DataFrame(dtype="float64")
    panel = ctx.panel(last, first=start)
    held = books(panel.close, decisions[candidate], start, [d for d in dates if d >= start],
                 cost_rates(ctx), **book_settings(ctx, panel))
    frame = pd.DataFrame({d: w for d, (w, _, _) in held.items()}).T.sort_index()
    return frame.loc[:, frame.abs().gt(0).any()] if len(frame) else frame
